"""Parsing a script into what is spoken: sentences (Chinese, English or mixed) and paragraph pauses."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

MAX_SCRIPT_BYTES = 16 * 1024 * 1024
"""The most text read for one show: a script, a rundown file, or all the scripts of a rundown
together. Some 300 hours of speech (English at about 15 bytes a second; Chinese, about 11, goes
further), far more than a show needs, and small enough to hold at once: without a bound,
``--script /dev/zero`` filled the memory."""


@dataclass(frozen=True)
class Sentence:
    text: str
    lang: str  # "en" or "zh"
    tag: Hashable | None = field(default=None, compare=False)  # who asked for it (a control request)


@dataclass(frozen=True)
class Pause:
    kind: str  # "paragraph"


Item = Sentence | Pause

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*(?:\n\s*)+")  # a blank (or whitespace-only) line or more
_ENDS = ".!?…。！？；"
_CJK_ENDS = "。！？；"  # end a sentence whatever follows them
_CLOSERS = "\"'”’」』)）]】》"  # stay with the sentence they close
_OPENERS = "\"'“‘「『(（[【《"
# A break after one of these is a softer cut than a space; ASCII ones only before a space, so
# "1,000" and "12:30" stay whole.
_SOFT_BREAK = re.compile(r"[，、；：]|[,;:](?=\s)")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs etc e.g i.e u.s u.k u.n a.m p.m no vol fig inc ltd co corp dept approx".split()
)
_WORD_LOOKBACK = 32  # characters: the longest abbreviation and any openers before it


def over_limit(what: str) -> str:
    """The error message for text past MAX_SCRIPT_BYTES; ``what`` names it ("script talk.txt")."""
    return f"{what} is over {MAX_SCRIPT_BYTES // 2**20} MiB (some 300 hours of speech), more than one show may hold"


def read_text(path: str | Path) -> str:
    """A script file's text: UTF-8 (a BOM is fine), not empty, at most MAX_SCRIPT_BYTES."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"script not found: {path}")
    if path.is_dir():
        raise InputError(f"script path is a folder, not a file: {path}")
    try:
        with path.open("rb") as file:
            data = read_bounded(file, f"script {path}")
    except OSError as exc:
        raise InputError(f"cannot read script {path}: {exc.strerror}") from None
    return decode(data, str(path))


def decode(data: bytes, where: str) -> str:
    """Script bytes as text: UTF-8 (a BOM is fine) and not empty; ``where`` names them in errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"script {where} is not UTF-8 (bad byte at position {exc.start}); save it as UTF-8 and try again"
        ) from None
    if not text.strip():
        raise InputError(f"script {where} is empty")
    return text


def read_bounded(source: BinaryIO, what: str) -> bytes:
    """Everything ``source`` holds, read no further than MAX_SCRIPT_BYTES (an InputError past it)."""
    data = source.read(MAX_SCRIPT_BYTES + 1)
    if len(data) > MAX_SCRIPT_BYTES:
        raise InputError(over_limit(what))
    return data


def is_cjk(ch: str) -> bool:
    """A Chinese character (CJK ideograph)."""
    return bool(_CJK.match(ch))


def detect_lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def parse(text: str, max_chars: int = 160) -> list[Item]:
    """Sentences in script order, with a Pause wherever a blank line separates paragraphs.

    No sentence is longer than ``max_chars``; pieces with nothing to say (a lone "..." or "—")
    are dropped.
    """
    items: list[Item] = []
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    for paragraph in _PARAGRAPH_BREAK.split(text):
        sentences = [
            Sentence(piece, detect_lang(piece))
            for sentence in _sentences(_join_lines(paragraph))
            for piece in _cut(sentence, max_chars)
            if any(ch.isalnum() for ch in piece)
        ]
        if sentences:
            if items:
                items.append(Pause("paragraph"))
            items.extend(sentences)
    return items


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _join_lines(paragraph: str) -> str:
    """One line with whitespace collapsed; a line break between two wide (CJK) characters vanishes."""
    text = ""
    for line in paragraph.split("\n"):
        line = " ".join(line.split())
        if not line:
            continue
        if text and not (_wide(text[-1]) and _wide(line[0])):
            text += " "
        text += line
    return text


def _sentences(text: str) -> list[str]:
    out: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] not in _ENDS:
            i += 1
            continue
        j = i
        while j < len(text) and text[j] in _ENDS:
            j += 1
        while j < len(text) and text[j] in _CLOSERS:
            j += 1
        if _is_boundary(text, i, j):
            out.append(text[start:j].strip())
            start = j
        i = j
    out.append(text[start:].strip())
    return [s for s in out if s]


def _is_boundary(text: str, i: int, j: int) -> bool:
    """Whether the run of terminators text[i:j] (closers included) ends a sentence."""
    if any(ch in _CJK_ENDS for ch in text[i:j]):
        return True
    # Western punctuation ends a sentence only before a space, the end or Chinese text; this
    # keeps 3.14, example.com and v1.2 whole.
    if j < len(text) and not (text[j].isspace() or _wide(text[j])):
        return False
    if text[i:j].rstrip(_CLOSERS) == ".":
        # The word before the dot, from the last few characters only: abbreviations are short, and
        # searching back to the start each time made many dots without spaces quadratic.
        word = text[max(0, i - _WORD_LOOKBACK) : i].rpartition(" ")[2].lstrip(_OPENERS)  # single spaces here
        if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):  # Mr. e.g. J. K.
            return False
    return True


def _cut(sentence: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut after a comma-like mark, else at a space, else hard."""
    pieces: list[str] = []
    floor = limit // 3  # don't leave a stub of a few characters when a later cut exists
    start = 0  # an offset, not sentence[at:] anew each time: cutting stays linear in the length
    while len(sentence) - start > limit:
        window = sentence[start : start + limit + 1]
        soft = [m.end() for m in _SOFT_BREAK.finditer(window) if floor < m.end() <= limit]
        space = window.rfind(" ", floor, limit + 1)
        at = soft[-1] if soft else space if space > 0 else limit
        pieces.append(window[:at].strip())
        start += at
        while start < len(sentence) and sentence[start].isspace():
            start += 1
    pieces.append(sentence[start:])
    return [p for p in pieces if p]


def stream(lines: Iterable[str], max_chars: int = 160) -> Iterator[Item]:
    """Items from text arriving line by line (a script piped in while on air), as each line
    arrives: nothing waits for the end of the input. A blank line is a paragraph pause."""
    said = pause = False
    for line in lines:
        if not line.strip():
            pause = said
            continue
        for item in parse(line, max_chars):
            if isinstance(item, Pause):
                continue
            if pause:
                yield Pause("paragraph")
                pause = False
            said = True
            yield item
