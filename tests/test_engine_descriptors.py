"""Running out of file descriptors (issue 18): a sink that cannot start is a connection attempt
that failed, retried with backoff until the give-up time, never a crash; the soft limit can be
raised to the hard one at start; the systemd units raise it too.

The live runs use the real command line against nginx-rtmp on 127.0.0.1, inside a small wrapper
that lowers RLIMIT_NOFILE (soft and hard, so nothing raises it again) and, on cue, takes every
descriptor left, as ~1,100 idle connections to the control server once did.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from broadcast import KEY, SENTENCES, SMALL, url, write_script
from speechprint import missing

pytestmark = pytest.mark.live

LIMIT = 256  # descriptors the wrapped run may hold

# argv: LIMIT CUE linly-push-args...  While the file CUE exists, every free descriptor is taken
# and CUE is renamed CUE.full (a rename needs no descriptor); deleting CUE.full gives them back.
HOG = textwrap.dedent("""
    import os, resource, sys, threading, time
    limit, cue = int(sys.argv[1]), sys.argv[2]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    def hog():
        held = []
        while True:
            if not held and os.path.exists(cue):
                try:
                    while True:
                        held.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    os.rename(cue, cue + ".full")
            elif held and not os.path.exists(cue + ".full"):
                for fd in held:
                    os.close(fd)
                held.clear()
            time.sleep(0.02)

    threading.Thread(target=hog, daemon=True).start()
    sys.argv = ["linly-push", *sys.argv[3:]]
    from linly_push.cli.app import main
    main()
""")


class Hogged:
    """`linly-push live --json ...` under HOG, its events read as they come."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.cue = tmp_path / "hog"
        # Loudness off: its background import of scipy would race the descriptors being taken.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOG, str(LIMIT), str(self.cue), "live", "--json", *SMALL,
             "--set", "audio.loudness=off", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "STREAM_KEY": KEY}, start_new_session=True,
        )
        self.events: list[dict] = []

    def wait_for(self, kind: str, until=lambda e: True, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if e["event"] == kind and until(e)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no {kind} event within {timeout} s: {self.events}"
            line = self.proc.stdout.readline()
            assert line, f"linly-push ended before {kind}: {self.proc.stderr.read().decode()}"
            self.events.append(json.loads(line))

    def take_descriptors(self) -> None:
        self.cue.touch()
        deadline = time.monotonic() + 10
        while not self.cue.with_name("hog.full").exists():
            assert time.monotonic() < deadline, "the wrapper did not take the descriptors"
            time.sleep(0.02)

    def give_back(self) -> None:
        self.cue.with_name("hog.full").unlink()

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        out, err = self.proc.communicate(timeout=timeout)
        self.events += [json.loads(line) for line in out.decode().splitlines()]
        assert KEY not in json.dumps(self.events) + err.decode(), "the stream key leaked"
        return self.proc.returncode, err.decode()

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["event"] == kind]


def out_of_descriptors(event: dict) -> bool:
    return "Too many open files" in event["reason"]


def test_running_out_of_descriptors_at_a_reconnect_is_retried_and_the_show_goes_on(rtmp_server, tmp_path):
    b = Hogged(tmp_path, "--script", write_script(tmp_path), "--url", url(rtmp_server),
               "--set", "reconnect.first_delay=0.3", "--set", "reconnect.max_delay=0.5")
    b.wait_for("sentence")
    b.take_descriptors()
    rtmp_server.stop()  # the reconnect needs new pipes and a new ffmpeg: none can be had
    failed = b.wait_for("dropped", out_of_descriptors)
    assert failed["connected"] is False and failed["retry_in"] > 0
    b.give_back()
    rtmp_server.start()
    b.wait_for("reconnected", timeout=30)
    code, err = b.finish()
    assert code == 0, err
    assert "Traceback" not in err
    assert {e["index"] for e in b.of("sentence")} == set(range(1, len(SENTENCES) + 1))
    assert missing(rtmp_server.recordings(), SENTENCES) == []


def test_descriptors_that_stay_used_up_end_the_run_with_exit_5_and_one_line(rtmp_server, tmp_path):
    b = Hogged(tmp_path, "--script", write_script(tmp_path), "--url", url(rtmp_server),
               "--set", "reconnect.first_delay=0.3", "--set", "reconnect.give_up_after=3")
    b.wait_for("sentence")
    b.take_descriptors()
    rtmp_server.stop()
    code, err = b.finish()
    assert code == 5, err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()[-1:]
    assert line.startswith("linly-push: error: gave up after 3 s") and "Too many open files" in line, err
    assert "LimitNOFILE" in line  # says what to do about it
    assert b.events[-1]["event"] == "error" and b.events[-1]["code"] == 5
    assert any(out_of_descriptors(d) for d in b.of("dropped"))


# The library, at the first connection: every descriptor is taken when `started` comes (just
# before the first ffmpeg starts) and given back at the first `dropped`.
FIRST = textwrap.dedent("""
    import json, os, resource, sys
    import linly_push as lp
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]),) * 2)
    held, seen = [], []

    def on_event(event):
        seen.append({"event": event.kind, **event.data()})
        if isinstance(event, lp.Started):
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                pass
        elif isinstance(event, lp.Dropped):
            while held:
                os.close(held.pop())

    preset = lp.load_preset("live", {"video.width": 320, "video.height": 180, "reconnect.first_delay": 0.3})
    try:
        lp.live(lp.Show.text("Hello. One sentence is enough."), [sys.argv[2]], preset=preset, on_event=on_event)
    finally:
        print(json.dumps(seen))
""")


def test_a_first_connection_without_descriptors_is_retried_through_the_library(rtmp_server):
    run = subprocess.run([sys.executable, "-c", FIRST, str(LIMIT), rtmp_server.url()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    events = json.loads(run.stdout.splitlines()[-1])
    kinds = [e["event"] for e in events]
    assert kinds.index("started") < kinds.index("dropped") < kinds.index("reconnected") < kinds.index("finished")
    dropped = events[kinds.index("dropped")]
    assert out_of_descriptors(dropped) and dropped["connected"] is False and dropped["attempt"] == 1


# FFmpegSink alone: a start that fails leaves no descriptor behind, and the next one works.
SINK = textwrap.dedent("""
    import json, os, resource, shutil, sys
    from linly_push.errors import OutputError
    from linly_push.ffmpeg import FFmpegSink
    from linly_push.presets import AudioSettings, VideoSettings
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    def count():
        return len(os.listdir("/proc/self/fd"))

    sink = FFmpegSink(VideoSettings(width=64, height=64), AudioSettings(), sys.argv[1], ffmpeg=shutil.which("ffmpeg"))
    held, out = [], {}
    baseline = count()
    # With none free os.pipe() fails; with more, a later pipe, /dev/null, then Popen's own pipe.
    for spare in (0, 1, 3, 8, 10, 12):
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        for _ in range(spare):
            os.close(held.pop())
        try:
            sink.start()
            out[spare] = "started"
        except OutputError as exc:
            out[spare] = [str(exc), sink.state.value]
        while held:
            os.close(held.pop())
        if out[spare] == "started":
            break
        out[spare].append(count() - baseline)  # descriptors the failed start left open
    sink.abort()
    started = FFmpegSink(VideoSettings(width=64, height=64), AudioSettings(), sys.argv[1]).start()
    started.abort()
    print(json.dumps(out))
""")


def test_a_sink_that_cannot_start_is_an_output_error_and_leaks_nothing(tmp_path):
    run = subprocess.run([sys.executable, "-c", SINK, str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    tries = json.loads(run.stdout)
    for spare, got in tries.items():
        if got == "started":
            continue
        message, state, leaked = got
        assert "Too many open files" in message and "LimitNOFILE" in message, (spare, message)
        assert (state, leaked) == ("new", 0), (spare, got)
    assert list(tries.values())[0] != "started"


def test_the_soft_limit_is_raised_to_the_hard_one():
    code = textwrap.dedent("""
        import resource
        from linly_push.limits import raise_open_files
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))
        print(raise_open_files(), *resource.getrlimit(resource.RLIMIT_NOFILE))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["2048", "2048", "2048"]
