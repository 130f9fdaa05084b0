"""`linly-push live --json` run in the background as users run it, its events read as they come."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from rtmp_server import RtmpServer

KEY = "sk-live-0n41r-k3y"  # must appear nowhere in what linly-push prints
PLUGINS = str(Path(__file__).parent / "plugins")
SMALL = ["--set", "video.width=320", "--set", "video.height=180"]
SENTENCES = [
    "Good evening and welcome to the late news.",
    "Tonight the river rose above its banks for the first time in ten years.",
    "Volunteers filled sandbags through the night.",
    "The mayor thanked everyone who came to help.",
    "In sport, the home team won again.",
    "That is all for tonight, goodbye.",
]

class Broadcast:
    """`linly-push live ... --json` running in the background, its events read as they come."""

    def __init__(self, *args: str, stdin: bool = False, env: dict | None = None, preexec=None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "linly_push", "live", "--json", *SMALL, *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "STREAM_KEY": KEY, **(env or {})},
            # Its own session, as under systemd or a terminal: a background job of a shell (or a
            # test runner started from one) would have SIGINT ignored, and we keep that.
            start_new_session=True,
            preexec_fn=preexec,
        )
        self.events: list[dict] = []
        self.started = time.monotonic()

    def wait_for(self, kind: str, count: int = 1, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while sum(e["event"] == kind for e in self.events) < count:
            assert time.monotonic() < deadline, f"no {kind} event within {timeout} s: {self.events}"
            line = self.proc.stdout.readline()
            assert line, f"linly-push ended before {kind}: {self.proc.stderr.read().decode()}"
            self.events.append(json.loads(line))
        return [e for e in self.events if e["event"] == kind][count - 1]

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        # Through the same buffered readers as wait_for: communicate() reads the pipes' file
        # descriptors, and would lose the lines readline() has already buffered.
        got: dict[str, bytes] = {}
        readers = [
            threading.Thread(target=lambda name=name, f=f: got.__setitem__(name, f.read()), daemon=True)
            for name, f in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for reader in readers:
            reader.start()
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # the end of a script on standard input
        self.proc.wait(timeout)
        for reader in readers:
            reader.join(timeout)
        out, err = got["out"], got["err"]
        self.events += [json.loads(line) for line in out.decode().splitlines()]
        everything = json.dumps(self.events) + err.decode()
        assert KEY not in everything, "the stream key leaked"
        return self.proc.returncode, err.decode()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]


def write_script(tmp_path: Path, sentences=SENTENCES) -> str:
    path = tmp_path / "talk.txt"
    path.write_text(" ".join(sentences), encoding="utf-8")
    return str(path)


def url(server: RtmpServer) -> str:
    return server.url(key="${STREAM_KEY}")
