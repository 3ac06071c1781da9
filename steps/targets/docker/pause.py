"""The network holder's image: a FROM-scratch image whose only program sleeps until signalled.

A service that publishes a fixed host port gets a holder container owning its network
namespace, ports and DNS aliases (the Kubernetes "pause container" pattern); the service's
containers join that namespace. Handing the port to a new release then only replaces the
process listening on it (~0.2 s) instead of tearing down and rebuilding the container's network
and port mapping. No image is pulled: the program is a 129-byte static x86-64 ELF built here.
"""

from __future__ import annotations

import io
import struct
import tarfile
from typing import Any

IMAGE = "docker-cd/pause:1"
_BASE = 0x400000
# loop: mov eax, 34 (pause); syscall; jmp loop
_CODE = bytes.fromhex("b8220000000f05ebf7")


def elf_x86_64() -> bytes:
    """A static executable that calls pause(2) forever (SIGTERM ends it)."""
    header_size, phdr_size = 64, 56
    entry = _BASE + header_size + phdr_size
    size = header_size + phdr_size + len(_CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, entry, header_size, 0, 0,
                                 header_size, phdr_size, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return header + phdr + _CODE


def supported(client: Any) -> bool:
    """Whether the engine's architecture can run the holder (else ports are handed over by
    restarting the container, which costs a few tenths of a second more)."""
    return client.info().get("Architecture") in ("x86_64", "amd64")


def ensure_image(client: Any) -> str:
    """Build the holder image on the engine once (FROM scratch: nothing to pull)."""
    import docker.errors

    try:
        client.api.inspect_image(IMAGE)
        return IMAGE
    except docker.errors.NotFound:
        pass
    program = elf_x86_64()
    dockerfile = b'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n'
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, mode in (("Dockerfile", dockerfile, 0o644), ("pause", program, 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    client.images.build(fileobj=buf, custom_context=True, tag=IMAGE, rm=True,
                        labels={"io.docker-cd.role": "holder-image"})
    return IMAGE
