"""Running the real command line in a child process, as users do."""

from __future__ import annotations

import os
import subprocess
import sys


def linly(*args: str, input: bytes | None = None, env: dict | None = None, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "linly_push", *args],
        input=input if input is not None else b"",
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        cwd=cwd,
    )


def text(r: subprocess.CompletedProcess) -> str:
    return r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
