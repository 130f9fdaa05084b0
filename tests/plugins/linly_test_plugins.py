"""A third-party plugin package, as a user would write one, for testing discovery and failures."""

from linly_push.backends.base import TTSBackend
from linly_push.media import Speech


class CrashingTTS(TTSBackend):
    name = "crashing"
    description = "a TTS whose engine fails on every sentence"

    def synthesize(self, text: str, lang: str) -> Speech:
        raise RuntimeError("engine crashed")
