"""Real Debian base images and an offline wheelhouse, for tests that build the project's images.

No base image can be pulled here, so a Debian root filesystem is made with `mmdebstrap` (from
the machine's apt sources) and `docker import`ed. Containers cannot reach PyPI either: Python
packages are installed into images from a wheelhouse built on the host with `pip wheel`.

Both are kept between test sessions (keyed by what they hold), because making them takes a
minute or more: the base image as `docker-cd-test/debian:<key>`, the wheelhouse in the
temporary directory. A lock file keeps two test processes from making the same one at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support import TEST_LABEL

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
BASE_REPOSITORY = "docker-cd-test/debian"


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


@contextmanager
def _locked(name: str) -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / f"docker-cd-{name}.lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debian_base_image(client, packages: Sequence[str] = ("python3", "python3-venv")) -> str:
    """A minimal Debian image holding `packages`; its tag. Made once per package set.

    `client` is a docker-py client. Raises RuntimeError naming the fix when mmdebstrap is
    missing or fails.
    """
    wanted = sorted(set(packages))
    tag = f"{BASE_REPOSITORY}:{SUITE}-{_key(SUITE, *wanted)}"
    with _locked(f"debian-{tag.rsplit(':', 1)[1]}"):
        if client.images.list(name=tag):
            return tag
        if shutil.which("mmdebstrap") is None:
            raise RuntimeError("mmdebstrap is not installed: apt-get install mmdebstrap "
                               "(.ci/setup does)")
        with tempfile.TemporaryDirectory(prefix="docker-cd-rootfs-") as tmp:
            tarball = Path(tmp) / "rootfs.tar"
            command = ["mmdebstrap", "--quiet", "--variant=minbase",
                       f"--include={','.join(wanted)}", SUITE, str(tarball)]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
            repository, version = tag.rsplit(":", 1)
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=version,
                changes=[f"LABEL {TEST_LABEL}=1",
                         "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         'CMD ["/bin/bash"]'])
    return tag


def wheelhouse(*extras: str) -> Path:
    """A folder of wheels for the project (with `extras`) and all it depends on.

    The dependencies are kept between sessions (keyed by pyproject.toml); the project's own
    wheel is built afresh every time, so an image gets the code under test.
    """
    pyproject = (ROOT / "pyproject.toml").read_text()
    folder = Path(tempfile.gettempdir()) / f"docker-cd-wheelhouse-{_key(pyproject, *extras)}"
    requirement = f"{ROOT}[{','.join(extras)}]" if extras else str(ROOT)
    with _locked(folder.name):
        if not (folder / ".complete").exists():
            _pip("wheel", "--quiet", "--wheel-dir", str(folder), requirement)
            (folder / ".complete").write_text("")
        for old in folder.glob("docker_cd-*.whl"):
            old.unlink()
        with tempfile.TemporaryDirectory(prefix="docker-cd-build-") as build:
            # from a copy of what git tracks: setuptools reuses the tree's build/ folder, where
            # files since deleted or renamed would otherwise ride along into the wheel
            source = Path(build) / "source"
            _copy_tracked(source)
            _pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), str(source),
                 cwd=build)
    return folder


def _copy_tracked(target: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        path = ROOT / name
        if path.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / name)


def _pip(*args: str, cwd: str | None = None) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
