"""Signals end a run through the contract: one line on stderr, an ``error`` event, exit 128 + N.

Handlers are installed once, for the whole command (a SIGTERM while presets load or recordings
are measured ends as cleanly as one on air). While a broadcast runs, the first signal only asks
it to stop (EOF to ffmpeg, so the trailer is written); a second one stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from ..errors import Interrupted, Signalled, Terminated

# Every signal whose default would end the process without a word. SIGPIPE and SIGXFSZ are left
# alone: Python ignores them, so they surface as errors of the write that caused them.
HANDLED = tuple(
    getattr(signal, name)
    for name in ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM",
                 "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGIO", "SIGPWR")
    if hasattr(signal, name)
)  # fmt: skip


def stopped(signum: int | None, message: str) -> Interrupted:
    """The error for a run ended by ``signum``: its exit code is 128 + the signal's number."""
    if signum is None or signum == signal.SIGINT:
        return Interrupted(message)
    if signum == signal.SIGTERM:
        return Terminated(message)
    return Signalled(signum, message)


class Signals:
    """The process's handler for ``HANDLED``, installed for the ``with`` block."""

    _current: Signals | None = None  # signal handlers are process-wide, and so is this

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: int | None = None
        self._on_air = False

    def __enter__(self) -> Signals:
        # A signal we were started with ignored stays ignored: nohup's SIGHUP, a shell's
        # background job's SIGINT.
        self._old = {sig: signal.signal(sig, self._handle) for sig in HANDLED if signal.getsignal(sig) is not signal.SIG_IGN}
        Signals._current = self
        return self

    def __exit__(self, *exc: object) -> None:
        Signals._current = None
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    @classmethod
    @contextlib.contextmanager
    def on_air(cls) -> Iterator[threading.Event]:
        """While the block runs, a first signal sets the event it yields instead of raising.
        The block's own Interrupted is re-raised as the signal's."""
        current = cls._current or cls()
        current._on_air = True
        try:
            yield current.stop
        except Interrupted as exc:
            if type(exc) is Interrupted and current.received is not None:
                raise stopped(current.received, str(exc)) from None
            raise
        finally:
            current._on_air = False

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is None:
            self.received = signum
            self.stop.set()
            if self._on_air:
                return
            raise stopped(signum, "stopped before anything was written")
        raise stopped(signum, "stopped at once by a second signal; the output may be cut short")
