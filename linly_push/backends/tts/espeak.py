"""espeak-ng through its C library, for phoneme and word timings the command line cannot give.

The library comes from the espeakng-loader wheel (espeak-ng 1.52, which speaks Mandarin tones;
Debian's 1.51 reads the tone digits aloud). It keeps global state, so one process-wide instance
serves every backend object, one call at a time.
"""

from __future__ import annotations

import ctypes
import difflib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import Field

from ...errors import BackendError, UsageError
from ...media import Mark, Speech
from ...script import is_cjk
from ..base import BackendOptions, TTSBackend

# From espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001  # ASCII phoneme names: "_" pauses stay apart from tone marks
_INITIALIZE_DONT_EXIT = 0x8000  # without it, unreadable data makes the library exit() the process
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3

_KEEP_SILENCE = 0.05  # seconds

# Voices for text in each script when no voice is chosen.
_AUTO_VOICES = {"zh": "cmn", "en": "en-us"}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based, in characters
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # the same moment as an exact sample count
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, name, NUL) repeated, then NUL
        ("identifier", ctypes.c_char_p),  # file under espeak-ng-data/voices, e.g. gmw/en-US
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))

# (type, sample, text_position, phoneme name) of the word and phoneme events of one utterance
_Events = list[tuple[int, int, int, str]]


class _Engine:
    """The process's libespeak-ng, initialised for synchronous synthesis with phoneme events."""

    def __init__(self) -> None:
        import espeakng_loader

        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
        except OSError as exc:
            raise BackendError(f"cannot load libespeak-ng ({exc}); reinstall espeakng-loader") from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self.lib = lib

        # The header asks for the folder holding espeak-ng-data (1.52 takes either). On bad data
        # it returns 0 or -1 rather than a rate.
        data = Path(espeakng_loader.get_data_path())
        flags = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data.parent).encode(), flags)
        if self.sample_rate <= 0:
            raise BackendError(f"espeak-ng cannot read its data in {data}; reinstall espeakng-loader")
        self._callback = _SynthCallback(self._on_synth)  # kept alive here: the library holds only a pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.voices = self._voice_table()
        self._audio: list[bytes] = []
        self._events: _Events = []

    def _voice_table(self) -> dict[str, str]:
        """Lower-case voice file names and language codes -> voice file (en-gb is the file gmw/en)."""
        found = self.lib.espeak_ListVoices(None)
        voices: list[_Voice] = []
        while found[len(voices)]:
            voices.append(found[len(voices)].contents)
        table: dict[str, str] = {}
        for v in voices:  # file names first: "yue" is sit/yue, not sit/yue-Latn-jyutping
            ident = v.identifier.decode()
            table.setdefault(ident.rsplit("/", 1)[-1].lower(), ident)
        for v in voices:
            ptr = v.languages
            while ptr and (entry := ctypes.string_at(ptr)):
                table.setdefault(entry[1:].decode().lower(), v.identifier.decode())
                ptr += len(entry) + 1
        return table

    def resolve(self, voice: str) -> str:
        ident = self.voices.get(voice.lower())
        if ident is None:
            close = difflib.get_close_matches(voice.lower(), self.voices, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "use a language code like en-us, en-gb or cmn"
            raise UsageError(f"espeak-ng has no voice {voice!r}; {hint}")
        return ident

    def _on_synth(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]) -> int:
        if wav and count > 0:
            self._audio.append(ctypes.string_at(wav, count * 2))
        i = 0
        while (e := events[i]).type != 0:  # the list ends with espeakEVENT_LIST_TERMINATED
            if e.type in (_EVENT_WORD, _EVENT_PHONEME):
                name = e.id.string.decode("utf-8", "replace") if e.type == _EVENT_PHONEME else ""
                self._events.append((e.type, e.sample, e.text_position, name))
            i += 1
        return 0  # continue

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, _Events]:
        """int16 PCM and events for ``text``; sample positions count from its first sample."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise BackendError(f"espeak-ng cannot load voice {voice!r}; reinstall espeakng-loader")
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self._audio, self._events = [], []
        data = text.encode()
        # No espeakENDPAUSE flag: the pipeline adds its own pauses between sentences.
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0 or self.lib.espeak_Synchronize() != 0:
            raise BackendError(f"espeak-ng failed to speak {text[:40]!r} (error {err}); try simpler text")
        return np.frombuffer(b"".join(self._audio), dtype=np.int16), self._events


_lock = threading.Lock()
_engine: _Engine | None = None


@contextmanager
def _espeak() -> Iterator[_Engine]:
    """The shared engine, started on first use, held by one caller at a time."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        yield _engine


class EspeakTTS(TTSBackend):
    name = "espeak"
    description = "espeak-ng (offline, robotic, Chinese and English, exact phoneme timings)"

    class Options(BackendOptions):
        voice: str | None = None  # espeak voice or language: en-us, en-gb, cmn...; None follows the text
        rate: int = Field(175, ge=80, le=450)  # words per minute (espeak's own limits)
        pitch: int = Field(50, ge=0, le=100)

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        with _espeak() as engine:  # an unknown voice fails here, before anything streams
            self._voice = engine.resolve(options.voice) if options.voice else None

    @classmethod
    def missing(cls) -> str | None:
        try:
            import espeakng_loader
        except ImportError:
            return "espeakng-loader is not installed (pip install espeakng-loader)"
        if not Path(espeakng_loader.get_library_path()).is_file():
            return "espeakng-loader has no libespeak-ng for this platform"
        return None

    def synthesize(self, text: str, lang: str) -> Speech:
        runs = [(self._voice, text)] if self._voice else _runs(text, lang)
        audio: list[np.ndarray] = []
        phonemes: list[Mark] = []
        words: list[Mark] = []
        offset = 0
        with _espeak() as engine:
            for voice, run in runs:
                pcm, events = engine.speak(run, voice, self.options.rate, self.options.pitch)
                run_phonemes, run_words = _marks(run, events, len(pcm))
                phonemes += [m.shifted(offset) for m in run_phonemes]
                words += [m.shifted(offset) for m in run_words]
                audio.append(pcm)
                offset += len(pcm)
            rate = engine.sample_rate
        samples = np.concatenate(audio).astype(np.float32) / 32768.0
        return _trim(Speech(samples, rate, phonemes=phonemes, words=words, alphabet="espeak"))


def _trim(speech: Speech) -> Speech:
    """Keep at most _KEEP_SILENCE seconds of silence at each end.

    espeak itself leaves ~10 ms, but a leading quote or bracket adds 0.1-0.3 s, and the pipeline
    times its own pauses.
    """
    loud = np.flatnonzero(np.abs(speech.samples) > 1e-3)
    if not len(loud):
        return speech
    margin = round(_KEEP_SILENCE * speech.sample_rate)
    a, b = max(0, int(loud[0]) - margin), min(len(speech.samples), int(loud[-1]) + 1 + margin)

    def fit(marks: list[Mark]) -> list[Mark]:
        moved = [Mark(m.label, max(m.start - a, 0), min(m.end - a, b - a)) for m in marks]
        return [m for m in moved if m.end > m.start]

    return Speech(speech.samples[a:b], speech.sample_rate, fit(speech.phonemes), fit(speech.words), speech.alphabet)


def _runs(text: str, lang: str) -> list[tuple[str, str]]:
    """(voice, text) for each stretch of Chinese or Latin script; digits, punctuation and spaces
    join the stretch they follow (or, at the start, the one they precede)."""
    runs: list[list[str]] = []
    pending = ""
    for ch in text:
        kind = "zh" if is_cjk(ch) else "en" if ch.isalpha() else None
        if runs and (kind is None or kind == runs[-1][0]):
            runs[-1][1] += ch
        elif kind is None:
            pending += ch
        else:
            runs.append([kind, pending + ch])
            pending = ""
    if not runs:  # no letters at all ("2024。"): read it in the sentence's language
        return [(_AUTO_VOICES.get(lang, "en-us"), text)]
    return [(_AUTO_VOICES[kind], run.strip()) for kind, run in runs]


def _marks(text: str, events: _Events, total: int) -> tuple[list[Mark], list[Mark]]:
    """Phoneme and word marks from one utterance's events; ``total`` is its length in samples.

    A phoneme lasts until the next one starts. A word spans its non-pause phonemes; espeak may
    send several events for one written word (3.14 is "three point one four"), merged here.
    """
    word_starts: list[int] = []
    phones: list[tuple[int, str, int]] = []  # (sample, name, index of the word it belongs to)
    for kind, sample, position, name in events:
        if kind == _EVENT_WORD:
            word_starts.append(position - 1)
        elif not name.startswith("("):  # "(en)", "(cmn)": a language switch, not a sound
            phones.append((sample, name, len(word_starts) - 1))
    phones.sort(key=lambda p: p[0])

    phonemes: list[Mark] = []
    spans: dict[tuple[int, int], tuple[int, int]] = {}  # word's text span -> its samples
    for k, (start, name, word) in enumerate(phones):
        end = phones[k + 1][0] if k + 1 < len(phones) else total
        if end <= start:
            continue
        phonemes.append(Mark(name, start, end))
        if word >= 0 and not name.startswith("_") and (span := _word_span(text, word_starts, word)):
            spans[span] = (spans.get(span, (start, end))[0], end)
    words = [Mark(_bare(text[a:b]), s, e) for (a, b), (s, e) in spans.items() if _bare(text[a:b])]
    return phonemes, words


def _word_span(text: str, starts: list[int], k: int) -> tuple[int, int] | None:
    """The characters of the written word that word event ``k`` points at.

    espeak's own length field is unreliable (1 for a two-character Chinese word, 3 for "Don't"),
    so take the Chinese characters up to the next event, or the surrounding Latin token.
    """
    i = starts[k]
    if not 0 <= i < len(text):
        return None
    if is_cjk(text[i]):
        stop = min((s for s in starts if s > i), default=len(text))
        j = i
        while j < stop and is_cjk(text[j]):
            j += 1
        return i, j

    def latin(ch: str) -> bool:
        return not (ch.isspace() or is_cjk(ch))

    a, b = i, i
    while a > 0 and latin(text[a - 1]):
        a -= 1
    while b < len(text) and latin(text[b]):
        b += 1
    return a, b


def _bare(word: str) -> str:
    """A word without the punctuation around it."""
    return re.sub(r"^\W+|\W+$", "", word)
