"""Bounded input (issue 9): scripts, rundowns and lines streamed on standard input have a size
limit, so /dev/zero or a runaway pipe is an error instead of all the memory there is; and standard
input streamed on air is read with os.read, so no thread holds sys.stdin's lock at exit."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator

import pytest

from cli_run import linly, text
from linly_push import presets
from linly_push.cli.inputs import MAX_LINE_BYTES, read_script, stdin_lines
from linly_push.errors import InputError
from linly_push.rundown import load
from linly_push.script import MAX_SCRIPT_BYTES

FAST = ["--preset", "local-test", "--set", "video.width=320", "--set", "video.height=180"]


def _error_line(r: subprocess.CompletedProcess) -> str:
    """The one line a failure prints, checked to be alone and no traceback."""
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text(r), text(r)
    return lines[0]


def test_a_script_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(tmp_path):
    script = tmp_path / "big.txt"
    script.write_bytes(b"a" * MAX_SCRIPT_BYTES)
    assert len(read_script(str(script))) == MAX_SCRIPT_BYTES
    script.write_bytes(b"a" * (MAX_SCRIPT_BYTES + 1))
    with pytest.raises(InputError, match=rf"script {script} is over 16 MiB \(some 300 hours of speech\)"):
        read_script(str(script))


def test_script_from_dev_zero_is_an_input_error_not_all_the_memory(tmp_path):
    out = tmp_path / "zero.mp4"
    r = linly("render", "--script", "/dev/zero", "-o", str(out), *FAST, timeout=120)
    assert r.returncode == 3, text(r)
    assert _error_line(r) == "linly-push: error: script /dev/zero is over 16 MiB (some 300 hours of speech), more than one show may hold"
    assert not out.exists()


def test_a_script_piped_in_whole_past_the_limit_is_an_input_error(tmp_path):
    r = linly("render", "--script", "-", "-o", str(tmp_path / "x.mp4"), *FAST, input=b"Hello. " * (MAX_SCRIPT_BYTES // 7 + 1))
    assert r.returncode == 3, text(r)
    assert "the script on standard input is over 16 MiB" in _error_line(r)


def test_a_rundown_file_past_the_limit_is_an_input_error(tmp_path):
    show = tmp_path / "show.toml"
    show.write_bytes(b"[[segment]]\nscript = 'Hi.'\n" + b"#" * MAX_SCRIPT_BYTES + b"\n")
    with pytest.raises(InputError, match=r"rundown .*show.toml is over 16 MiB"):
        load(show, presets.load("local-test"))


def test_a_script_file_in_a_rundown_is_bounded_too(tmp_path):
    show = tmp_path / "show.toml"
    show.write_text("[[segment]]\nscript = 'Hi.'\n[[segment]]\nscript_file = '/dev/zero'\n", encoding="utf-8")
    r = linly("render", "--rundown", str(show), "-o", str(tmp_path / "x.mp4"), *FAST, timeout=120)
    assert r.returncode == 3, text(r)
    assert _error_line(r).endswith("script /dev/zero is over 16 MiB (some 300 hours of speech), more than one show may hold")


def test_a_rundowns_scripts_together_are_bounded(tmp_path):
    half = "字" * (MAX_SCRIPT_BYTES // 6 + 1)  # 3 bytes each: just over half the limit
    (tmp_path / "half.txt").write_text(half, encoding="utf-8")
    show = tmp_path / "show.toml"
    show.write_text("[[segment]]\nscript_file = 'half.txt'\n" * 2, encoding="utf-8")
    with pytest.raises(InputError, match=r"show.toml, with its scripts up to segment 2, is over 16 MiB"):
        load(show, presets.load("local-test"))
    show.write_text("[[segment]]\nscript_file = 'half.txt'\n", encoding="utf-8")
    assert load(show, presets.load("local-test")).program  # one of them is fine


# Standard input streamed on air: a real pipe, written by a thread.


def _unread(fd: int) -> int:
    """Bytes in the pipe that the reader has not taken yet."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class Pipe:
    """A pipe whose writer thread sends ``steps`` in order: bytes, each only once the reader has
    taken everything before it (so every piece arrives in a read of its own), or an Event to
    wait for. The pipe is closed at the end, or left open (like ``tail -f``) until the test is
    done with it (``release``, which also stops waiting for a reader that has given up)."""

    def __init__(self, *steps: bytes | threading.Event, close: bool = True) -> None:
        self.read_end, self._write_end = os.pipe()
        self.release = threading.Event()
        self._steps, self._close = steps, close
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        try:
            for step in self._steps:
                if isinstance(step, threading.Event):
                    step.wait(30)
                    continue
                os.write(self._write_end, step)
                deadline = time.monotonic() + 30
                while _unread(self.read_end) and not self.release.is_set() and time.monotonic() < deadline:
                    time.sleep(0.001)
            if not self._close:
                self.release.wait(30)
        finally:
            os.close(self._write_end)

    def lines(self) -> Iterator[str]:
        return stdin_lines(self.read_end)

    def __enter__(self) -> Pipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._thread.join(30)
        os.close(self.read_end)


def test_lines_split_across_reads_come_out_whole():
    with Pipe(b"Hel", b"lo there.\nSec", b"ond", b" line.\n", b"\n", b"\xe4\xbd", b"\xa0\xe5", b"\xa5\xbd\n",
              b"no newline at the end") as pipe:
        assert list(pipe.lines()) == ["Hello there.\n", "Second line.\n", "\n", "你好\n", "no newline at the end"]


def test_several_lines_in_one_read_and_a_bom_split_across_reads():
    with Pipe(b"\xef\xbb", b"\xbfOne.\nTwo.\nThr", b"ee.\n") as pipe:
        assert list(pipe.lines()) == ["One.\n", "Two.\n", "Three.\n"]


def test_each_line_comes_out_as_soon_as_it_arrives():
    said = threading.Event()
    with Pipe(b"First.\n", said, b"Second.\n", close=False) as pipe:
        lines = pipe.lines()
        assert next(lines) == "First.\n"  # while the writer still waits: nothing waits for more input
        said.set()
        assert next(lines) == "Second.\n"


def test_a_line_of_the_longest_length_is_read():
    with Pipe(b"a" * MAX_LINE_BYTES + b"\nb") as pipe:
        assert [len(line) for line in pipe.lines()] == [MAX_LINE_BYTES + 1, 1]


def test_an_endless_line_is_an_error_before_the_input_ends():
    # Left open, like /dev/zero: a reader that waits for the end of the line never returns.
    with Pipe(b"Fine.\n", b"a" * (MAX_LINE_BYTES + 1), close=False) as pipe:
        lines = pipe.lines()
        assert next(lines) == "Fine.\n"
        with pytest.raises(InputError, match=r"^line 2 of standard input is over 1 MiB .*; the broadcast was ended there$"):
            next(lines)


def test_a_finished_line_over_the_limit_is_refused_too():
    with Pipe(b"a" * (MAX_LINE_BYTES - 10), b"a" * 11 + b"\n") as pipe:
        with pytest.raises(InputError, match=r"^line 1 of standard input is over 1 MiB"):
            list(pipe.lines())


def test_a_line_that_is_not_utf8_ends_the_input_there():
    with Pipe(b"Fine.\n", b"caf\xe9\n", b"More.\n") as pipe:
        lines = pipe.lines()
        assert next(lines) == "Fine.\n"
        with pytest.raises(InputError, match=r"^line 2 of standard input is not UTF-8; the broadcast was ended there$"):
            next(lines)


READER = """
import threading
from linly_push.cli.inputs import stdin_lines

first = threading.Event()


def read():
    for _ in stdin_lines():
        first.set()


threading.Thread(target=read, daemon=True).start()
assert first.wait(30)
print("exiting while the reader waits for more", flush=True)
"""


def test_the_interpreter_exits_cleanly_while_a_thread_waits_on_standard_input():
    # As `tail -f talk.txt | linly-push live --script -` stopped by a signal: the pipe stays open.
    for _ in range(3):  # the reader blocks in its read a moment after the first line
        proc = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            proc.stdin.write(b"One line.\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == b"exiting while the reader waits for more\n"
            code = proc.wait(timeout=30)
            err = proc.stderr.read().decode()
        finally:
            proc.stdin.close()
            proc.stdout.close()
            proc.stderr.close()
        assert code == 0 and "Fatal Python error" not in err, err


@pytest.mark.live
def test_live_from_dev_zero_ends_with_an_input_error(rtmp_server):
    with open("/dev/zero", "rb") as zero:
        r = subprocess.run([sys.executable, "-m", "linly_push", "live", "--script", "-", "--url", rtmp_server.url(), *FAST],
                           stdin=zero, capture_output=True, timeout=120)
    assert r.returncode == 3, text(r)
    assert r.stderr.decode().strip().splitlines()[-1].startswith("linly-push: error: line 1 of standard input is over 1 MiB")
    assert "Traceback" not in text(r)
