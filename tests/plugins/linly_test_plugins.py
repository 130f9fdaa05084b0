"""A third-party plugin package, as a user would write one, for testing discovery and failures."""

import time

from pydantic import Field

from linly_push.backends.base import Avatar, TTSBackend
from linly_push.backends.tts.espeak import EspeakTTS
from linly_push.timeline import FrameContext
from linly_push.media import Speech


class CrashingTTS(TTSBackend):
    name = "crashing"
    description = "a TTS whose engine fails on every sentence"

    def synthesize(self, text: str, lang: str) -> Speech:
        raise RuntimeError("engine crashed")


class UninstalledTTS(TTSBackend):
    name = "uninstalled"
    description = "a TTS whose engine [a package] is not installed"
    extra = "uninstalled"

    @classmethod
    def missing(cls) -> str | None:
        return "engine-package is not installed"

    def synthesize(self, text: str, lang: str) -> Speech:
        raise AssertionError("never started: it is not ready")


class SlowEspeakTTS(EspeakTTS):
    """espeak that takes ``delay`` seconds before each sentence, like a slow neural TTS or a
    remote one on a bad day: the live stream must keep going (silence, idle avatar) meanwhile."""

    name = "slow-espeak"
    description = "espeak-ng, sleeping `delay` seconds before each sentence (for starvation tests)"

    class Options(EspeakTTS.Options):
        delay: float = Field(2.0, ge=0.0)  # seconds slept before each sentence

    options: Options

    def synthesize(self, text: str, lang: str) -> Speech:
        time.sleep(self.options.delay)
        return super().synthesize(text, lang)


class TornAvatar(Avatar):
    name = "torn"
    description = "an avatar that draws frames of the wrong size"

    def draw(self, ctx: FrameContext) -> bytes:
        return b"\x10" * (self.video.frame_bytes - 1)
