"""The files a template reads: only inside its directory (symlinks followed), each bounded in
size, so a template cannot make a job print `../../etc/shadow` or read a 50 MB file. Pure."""

from __future__ import annotations

import hashlib
from pathlib import Path

MAX_REFERENCED_BYTES = 16 * 1024 * 1024  # a config, secret or env file


def display(path: Path) -> str:
    """The path as the user gave it, relative to the working directory when inside it."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def inside(directory: Path, path: Path) -> Path | None:
    """`path` with every symlink followed, if that stays inside `directory`; else None."""
    real = path.resolve()
    return real if real.is_relative_to(directory.resolve()) else None


def read_bounded(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it holds more than `limit` (read no further than that)."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    return None if len(data) > limit else data


def read_reference(directory: Path, given: str, what: str) -> bytes:
    """A file the template refers to (`file:`, `env_file`), relative to its directory.

    Raises ValueError saying what is wrong: outside the directory, missing, or too big.
    """
    path = directory / given
    real = inside(directory, path)
    if real is None:
        raise ValueError(f"{what} {given} resolves to {path.resolve()}, outside the template "
                         f"directory {display(directory)}; keep the files a template reads in it")
    if not real.is_file():
        raise ValueError(f"{what} {given} does not exist in {display(directory)}")
    data = read_bounded(real, MAX_REFERENCED_BYTES)
    if data is None:
        raise ValueError(f"{what} {given} is larger than {MAX_REFERENCED_BYTES // 1024 // 1024} "
                         "MiB")
    return data


def deploy_files_hash(directory: Path) -> str:
    """sha256 over every file of the template directory (the Compose files, their overlays and
    the config files they use), by path and content: a release's `template_hash`, so a release
    that differs only in its configuration is another release."""
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        real = inside(directory, path)
        data = read_bounded(real, MAX_REFERENCED_BYTES) if real else None
        if data is None:
            raise ValueError(f"{display(path)} is outside the template directory or larger "
                             f"than {MAX_REFERENCED_BYTES // 1024 // 1024} MiB")
        lines.append(f"{relative.as_posix()}\0{hashlib.sha256(data).hexdigest()}\n")
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
