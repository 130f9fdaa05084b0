"""A throwaway nginx-rtmp server on 127.0.0.1 for tests, and a helper to play a stream back.

nginx runs in the foreground as one process (``master_process off``), so the pid we started is
the whole server: stopping it never leaves workers behind, and it runs as us, so it can write
its recordings into the test's folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")

CONFIG = """\
load_module {module};
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    access_log {root}/access.log;  # the module's default is /var/log/nginx, not ours to write
    server {{
        listen 127.0.0.1:{port};
        application {app} {{
            live on;
            record all;
            record_path {root}/recordings;
            record_unique on;
        }}
    }}
}}
"""

_EVENT = re.compile(r"\] \d+#\d+: \*\d+ (publish|play): name='([^']*)'")


def unavailable() -> str | None:
    """Why the server cannot run here, or None."""
    if shutil.which("nginx") is None:
        return "nginx is not installed (apt install nginx-light libnginx-mod-rtmp)"
    if not MODULE.exists():
        return f"the nginx RTMP module is not installed ({MODULE}; apt install libnginx-mod-rtmp)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtmpServer:
    """nginx-rtmp with one ``live`` application recording each publish to an FLV in ``root``."""

    def __init__(self, root: Path, app: str = "live") -> None:
        self.root = root
        self.app = app
        self.port = free_port()  # kept across restarts, so URLs stay valid
        self._proc: subprocess.Popen[bytes] | None = None
        (root / "recordings").mkdir(parents=True, exist_ok=True)
        self.config = root / "nginx.conf"
        self.config.write_text(CONFIG.format(module=MODULE, root=root, port=self.port, app=app))

    def url(self, app: str | None = None, key: str = "test") -> str:
        return f"rtmp://127.0.0.1:{self.port}/{app or self.app}/{key}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        with open(self.root / "nginx.out", "ab") as out:
            self._proc = subprocess.Popen(
                ["nginx", "-p", str(self.root), "-c", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nginx exited with code {self._proc.returncode}: {self._log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} within {timeout} s: {self._log_tail()}")

    def stop(self, grace: float = 3.0) -> None:
        """Fast shutdown (SIGTERM drops every connection at once), then SIGKILL after ``grace``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def recordings(self) -> list[Path]:
        """The FLV files recorded so far, oldest first (one per publish)."""
        return sorted((self.root / "recordings").glob("*.flv"), key=os.path.getmtime)

    def events(self) -> list[tuple[str, str]]:
        """("publish" or "play", stream name) for each client so far, in order."""
        log = self.root / "error.log"
        return _EVENT.findall(log.read_text(errors="replace")) if log.exists() else []

    def wait_for(self, event: str, key: str = "test", count: int = 1, timeout: float = 10.0) -> None:
        """Block until ``count`` clients have done ``event`` ("publish" or "play") on ``key``."""
        deadline = time.monotonic() + timeout
        while self.events().count((event, key)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} of {key!r} within {timeout} s: {self.events()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        logs = [self.root / "nginx.out", self.root / "error.log"]
        texts = [p.read_text(errors="replace") for p in logs if p.exists()]
        return " | ".join(line for t in texts for line in t.splitlines()[-5:])


def read_stream(url: str, seconds: float, dest: Path, *, ffmpeg: str = "ffmpeg", grace: float = 10.0) -> Path:
    """Play ``url`` and record ``seconds`` of it into ``dest`` (stream copy; FLV by extension).

    Gives up ``grace`` seconds after the media should have been read: a reader blocked on RTMP
    ignores the first SIGTERM, so it is killed.
    """
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-rw_timeout", "5000000",
            "-i", url, "-t", f"{seconds:g}", "-c", "copy", "-y", str(dest)]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(seconds + grace)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return dest
