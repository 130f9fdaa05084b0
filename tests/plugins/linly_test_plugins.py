"""A third-party plugin package, as a user would write one, for testing discovery and failures."""

from linly_push.backends.base import Avatar, TTSBackend
from linly_push.clock import FrameContext
from linly_push.media import Speech


class CrashingTTS(TTSBackend):
    name = "crashing"
    description = "a TTS whose engine fails on every sentence"

    def synthesize(self, text: str, lang: str) -> Speech:
        raise RuntimeError("engine crashed")


class TornAvatar(Avatar):
    name = "torn"
    description = "an avatar that draws frames of the wrong size"

    def draw(self, ctx: FrameContext) -> bytes:
        return b"\x10" * (self.video.frame_bytes - 1)
