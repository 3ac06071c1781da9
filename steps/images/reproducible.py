"""A built image made reproducible: the same commit built again gives the same image id and,
pushed, the same digest.

The engine's classic builder stamps the build's own time into the image: the config's `created`
and each history entry, and every directory or file a COPY creates or a RUN writes; it also
records the build containers (`container`, `container_config`, the parent's id in
`config.Image`) and the engine's version. `normalise` rewrites the image the engine holds:
`docker save`, each layer's entries with their time clamped to the commit's (min(mtime,
SOURCE_DATE_EPOCH), as reproducible-builds.org defines it), the config's times clamped the same
way and those fields dropped, `docker load`. The build context is sent with its times clamped
too (`context_archive`), so a fresh checkout (new mtimes) builds the same layers.

What stays the Dockerfile's: content a RUN makes differently each time (downloaded packages
that moved on, random ids, compiled files embedding a time) differs in the rebuild.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

_PAX_TIMES = ("mtime", "atime", "ctime")
_BUILD_FIELDS = ("container", "container_config", "docker_version")


def iso(epoch: int) -> str:
    """The RFC 3339 form images carry (`2024-05-01T12:00:00Z`)."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_date_epoch(explicit: str | None, commit_time: str | None,
                      context: Path) -> tuple[int | None, str]:
    """The commit's time as Unix seconds, and where it came from: SOURCE_DATE_EPOCH, else the
    CI's commit timestamp (ISO 8601), else the context's git HEAD; (None, why) when none is
    known."""
    if explicit:
        try:
            return int(explicit), "SOURCE_DATE_EPOCH"
        except ValueError:
            raise ValueError(f"{explicit!r} is not a Unix time in seconds") from None
    if commit_time:
        try:
            moment = datetime.datetime.fromisoformat(commit_time.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{commit_time!r} is not an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return int(moment.timestamp()), "the commit time"
    git = shutil.which("git")
    if git:
        done = subprocess.run([git, "-C", str(context), "log", "-1", "--format=%ct"],
                              capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.strip().isdigit():
            return int(done.stdout.strip()), "git HEAD's commit time"
    return None, "no commit time is known (SOURCE_DATE_EPOCH, CI_COMMIT_TIMESTAMP or a git HEAD)"


def context_archive(root: Path, dockerfile: str, epoch: int | None,
                    extra: Mapping[str, bytes] | None = None) -> IO[bytes]:
    """The build context as the engine takes it (.dockerignore applied, as `docker build`
    does), in name order, owned by root, times clamped to `epoch`. `extra` files (a generated
    Dockerfile) go along but are listed in the archive's .dockerignore, as `docker build -f`
    does with a Dockerfile from outside the context, so no COPY ever takes them."""
    from docker.utils.build import exclude_paths

    patterns: list[str] = []
    ignore = root / ".dockerignore"
    if ignore.is_file():
        patterns = [line.strip() for line in ignore.read_text().splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    generated = dict(extra or {})
    if generated:
        generated[".dockerignore"] = "\n".join(
            [*(patterns or [".dockerignore"]), *sorted(generated)]).encode()
    archive = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(exclude_paths(str(root), patterns, dockerfile=dockerfile)):
            if name in generated:
                continue
            info = tar.gettarinfo(str(root / name), arcname=name)
            if info is None:  # a socket
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if epoch is not None:
                info.mtime = min(int(info.mtime), epoch)
            if info.isfile():
                with open(root / name, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
        for name, content in sorted(generated.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, epoch or 0
            tar.addfile(info, io.BytesIO(content))
    archive.seek(0)
    return archive


def declares_epoch(dockerfile: str) -> bool:
    """Whether the Dockerfile takes SOURCE_DATE_EPOCH as a build argument."""
    return bool(re.search(r"^\s*ARG\s+SOURCE_DATE_EPOCH\b", dockerfile, re.M | re.I))


def normalise(client: Any, image_id: str, epoch: int, tags: Iterable[str]) -> str:
    """Rewrite the engine's image `image_id` with its times clamped to `epoch` and the build's
    traces dropped; tag it with `tags`; return the new image id (the old one is removed)."""
    with tempfile.TemporaryDirectory(prefix="docker-cd-normalise-") as tmp:
        saved = Path(tmp) / "saved.tar"
        with open(saved, "wb") as out:
            for chunk in client.api.get_image(image_id):
                out.write(chunk)
        with tarfile.open(saved) as archive:
            [entry] = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
            config = json.load(archive.extractfile(entry["Config"]))  # type: ignore[arg-type]
            layers, diff_ids = [], []
            for index, name in enumerate(entry["Layers"]):
                path = Path(tmp) / f"{index}.tar"
                diff_ids.append(_clamp_layer(archive.extractfile(name), path, epoch))
                layers.append(path)
        body = json.dumps(_clamp_config(config, epoch, diff_ids), separators=(",", ":")).encode()
        new_id = "sha256:" + hashlib.sha256(body).hexdigest()
        loaded = Path(tmp) / "load.tar"
        with tarfile.open(loaded, "w") as out:
            _add(out, f"{new_id[7:]}.json", body)
            _add(out, "manifest.json", json.dumps([{
                "Config": f"{new_id[7:]}.json", "RepoTags": list(tags),
                "Layers": [f"{i}/layer.tar" for i in range(len(layers))]}]).encode())
            for index, path in enumerate(layers):
                out.add(path, arcname=f"{index}/layer.tar")
        with open(loaded, "rb") as data:
            for _ in client.api.load_image(data):
                pass
    if new_id != image_id:
        import docker.errors

        with contextlib.suppress(docker.errors.APIError):  # still used: then it stays
            client.api.remove_image(image_id, noprune=True)
    return new_id


def _clamp_layer(source: IO[bytes] | None, target: Path, epoch: int) -> str:
    """Copy a layer tar with every entry's time clamped; return its diff id (sha256 of the
    tar)."""
    assert source is not None
    with tarfile.open(fileobj=source, mode="r|") as layer, \
            tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        for member in layer:
            member.mtime = min(int(member.mtime), epoch)
            member.pax_headers = {k: v for k, v in member.pax_headers.items()
                                  if k not in _PAX_TIMES}
            out.addfile(member, layer.extractfile(member) if member.isfile() else None)
    digest = hashlib.sha256()
    with open(target, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _clamp_config(config: Mapping[str, Any], epoch: int, diff_ids: list[str]) -> dict[str, Any]:
    def clamp(value: str | None) -> str:
        if not value:
            return iso(epoch)
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return iso(min(int(moment.timestamp()), epoch))

    out = {k: v for k, v in config.items() if k not in _BUILD_FIELDS}
    out["created"] = clamp(config.get("created"))
    out["history"] = [{**h, "created": clamp(h.get("created"))} for h in config.get("history", [])]
    if "config" in out:
        out["config"] = {**out["config"], "Image": ""}
    out["rootfs"] = {**config["rootfs"], "diff_ids": diff_ids}
    return out


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def context_digest(root: Path, dockerfile: str, given: str) -> str:
    """sha256 over what a build reads: every file of the context that `docker build` sends
    (.dockerignore applied), by name, mode and content, and `given` (the Dockerfile's path,
    target, build args, the user's labels). Times and the commit are left out: a context that
    did not change between two commits gives the same digest."""
    from docker.utils.build import exclude_paths

    patterns: list[str] = []
    ignore = root / ".dockerignore"
    if ignore.is_file():
        patterns = [line.strip() for line in ignore.read_text().splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    total = hashlib.sha256(given.encode())
    for name in sorted(exclude_paths(str(root), patterns, dockerfile=dockerfile)):
        path = root / name
        if path.is_symlink():
            content = str(path.readlink()).encode()
        elif path.is_file():
            content = path.read_bytes()
        else:
            content = b""
        mode = path.lstat().st_mode & 0o777
        total.update(f"{name}\0{mode:o}\0{hashlib.sha256(content).hexdigest()}\n".encode())
    return "sha256:" + total.hexdigest()
