"""The step's readable log on stderr: lines, echoed commands, GitLab collapsible sections."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from steps.runtime.masking import Masker


class Log:
    """The job log. Every line passes through the masker, so a secret never reaches it."""

    def __init__(self, stream: TextIO | None = None, masker: Masker | None = None,
                 sections: bool = False, debug_enabled: bool = False) -> None:
        self.masker = masker or Masker()
        self._stream = stream
        self._sections = sections
        self.debug_enabled = debug_enabled
        self._count = 0

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(self.masker(text))
        stream.flush()

    def info(self, message: str) -> None:
        self._write(message.rstrip("\n") + "\n")

    def warn(self, message: str) -> None:
        self.info(f"Warning: {message}")

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self.info(f"debug: {message}")

    def command(self, argv: Sequence[str]) -> None:
        """Echo an outside action the way CI users expect: `+ docker push ...`."""
        import shlex

        self.info("+ " + " ".join(shlex.quote(str(a)) for a in argv))

    @contextmanager
    def section(self, title: str, collapsed: bool = False) -> Iterator[None]:
        """A GitLab collapsible section around a long part of the log (plain header elsewhere)."""
        self._count += 1
        name = re.sub(r"[^a-z0-9_]+", "_", title.lower()).strip("_")[:40] + f"_{self._count}"
        if self._sections:
            opts = "[collapsed=true]" if collapsed else ""
            self._write(f"\x1b[0Ksection_start:{int(time.time())}:{name}{opts}\r\x1b[0K{title}\n")
        else:
            self.info(f"--- {title}")
        try:
            yield
        finally:
            if self._sections:
                self._write(f"\x1b[0Ksection_end:{int(time.time())}:{name}\r\x1b[0K")
