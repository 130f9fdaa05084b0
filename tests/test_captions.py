"""Captions: WebVTT documents, and text burned into frames in a font with real Chinese glyphs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from linly_push import captions
from linly_push.backends.tts.espeak import EspeakTTS
from linly_push.captions import Captioner, Cue, break_points, cue_for, find_font, load_font, spoken_ends, timestamp, webvtt, wrap
from linly_push.timeline import FrameContext, Timeline, frame_start
from linly_push.errors import UsageError
from linly_push.media import AudioFormat, Mark, Segment, VideoFormat, to_int16
from linly_push.presets import CaptionSettings
from linly_push.video import rgb_to_yuv420p

RATE, FPS = 8000, 25
VIDEO = VideoFormat(320, 180, FPS)
AUDIO = AudioFormat(RATE, 1)


# --- WebVTT --------------------------------------------------------------------------------

_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
_TIMING = re.compile(rf"^{_TIME} --> {_TIME}$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_webvtt(doc: str) -> list[tuple[float, float, str]]:
    """A strict reader for what we write: the header, then blocks of an id, a timing line and
    payload lines, separated by one blank line; cues in time order; no unescaped & < >."""
    assert doc.startswith("WEBVTT\n\n") or doc == "WEBVTT\n", doc[:20]
    assert doc.endswith("\n") and not doc.endswith("\n\n\n")
    cues = []
    for block in doc.split("\n\n")[1:]:
        lines = block.strip("\n").split("\n")
        assert len(lines) >= 3, block
        assert lines[0].isdigit() and "-->" not in lines[0]
        timing = _TIMING.match(lines[1])
        assert timing, lines[1]
        start, end = _seconds(*timing.groups()[:4]), _seconds(*timing.groups()[4:])
        assert start <= end
        assert not cues or cues[-1][0] <= start
        text = "\n".join(lines[2:])
        assert "-->" not in text and "<" not in text and ">" not in text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text)
        cues.append((start, end, text))
    return cues


def test_timestamps():
    assert timestamp(0) == "00:00:00.000"
    assert timestamp(3725.5) == "01:02:05.500"
    assert timestamp(59.9996) == "00:01:00.000"  # rounding carries into the minutes
    assert timestamp(1.0005) in ("00:00:01.000", "00:00:01.001")
    assert timestamp(100 * 3600 + 0.25) == "100:00:00.250"


def test_webvtt_document_parses_and_escapes():
    doc = webvtt([
        Cue(0.5, 2.25, "Hello there."),
        Cue(2.5, 4.0, "你好，世界。"),
        Cue(4.0, 4.0, "   "),  # nothing to show: left out
        Cue(3725.5, 3727.0, "<b>A & B</b> --> next\nline"),
    ])
    cues = parse_webvtt(doc)
    assert cues == [
        (0.5, 2.25, "Hello there."),
        (2.5, 4.0, "你好，世界。"),
        (3725.5, 3727.0, "&lt;b&gt;A &amp; B&lt;/b&gt; --&gt; next line"),
    ]
    assert "01:02:05.500 --> 01:02:07.000" in doc
    assert webvtt([]) == "WEBVTT\n"


def test_ffmpeg_reads_our_webvtt(tmp_path: Path):
    """A real WebVTT reader: ffmpeg turns the file into SubRip with the same times and text."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    vtt = tmp_path / "talk.vtt"
    vtt.write_text(webvtt([Cue(0.5, 2.25, "Hello & welcome."), Cue(3725.5, 3727.0, "第二句。")]), encoding="utf-8")
    srt = tmp_path / "talk.srt"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(vtt), str(srt)], check=True, timeout=30)
    out = srt.read_text(encoding="utf-8")
    assert "00:00:00,500 --> 00:00:02,250" in out and "Hello & welcome." in out
    assert "01:02:05,500 --> 01:02:07,000" in out and "第二句。" in out


def test_cue_for_a_placed_segment():
    seg = Segment(np.zeros((2 * RATE, 1), np.int16), "speech", text="Two seconds.")
    assert cue_for(seg, RATE // 2, RATE) == Cue(0.5, 2.5, "Two seconds.")


# --- the font ------------------------------------------------------------------------------


def test_bundled_font_draws_real_chinese_glyphs():
    file, face = find_font(None)
    font = load_font(file, face, 48)

    def bitmap(text: str) -> np.ndarray:
        img = Image.new("L", (200, 80), 0)
        ImageDraw.Draw(img).text((4, 4), text, fill=255, font=font)
        return np.asarray(img)

    nihao, shijie = bitmap("你好"), bitmap("世界")
    notdef = bitmap("\u0378\u0378")  # unassigned: the font's missing-glyph box, twice
    assert nihao.any() and shijie.any()
    assert not np.array_equal(nihao, shijie)
    assert not np.array_equal(nihao, notdef) and not np.array_equal(shijie, notdef)
    assert not np.array_equal(bitmap("Ab"), bitmap("\u0378\u0378"))


def test_bundled_font_covers_chinese_and_latin():
    ttlib = pytest.importorskip("fontTools.ttLib")  # not a dependency of ours; a second opinion
    file, face = find_font(None)
    cmap = ttlib.TTFont(file, fontNumber=face, lazy=True).getBestCmap()
    assert all(ord(c) in cmap for c in "你好世界，。！？人工智能 Hello, world! 0123456789 é")


def test_bad_font_is_a_usage_error(tmp_path: Path):
    with pytest.raises(UsageError, match="no such file"):
        Captioner(VIDEO, CaptionSettings(burn="sentence", font=str(tmp_path / "missing.ttf")))
    junk = tmp_path / "junk.ttf"
    junk.write_text("not a font")
    with pytest.raises(UsageError, match="cannot use"):
        Captioner(VIDEO, CaptionSettings(burn="words", font=str(junk)))


def test_no_chinese_font_anywhere_is_a_usage_error_with_the_fix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(captions, "_BUNDLED_PACKAGE", "no_such_font_package_here")
    monkeypatch.setattr(captions.shutil, "which", lambda name: None)  # and no fontconfig
    with pytest.raises(UsageError, match="pip install noto-cjk-sans-otc"):
        Captioner(VIDEO, CaptionSettings(burn="sentence"))


def test_caption_off_loads_nothing_and_draws_nothing(tmp_path: Path):
    c = Captioner(VIDEO, CaptionSettings(burn="off", font=str(tmp_path / "unused.ttf")))
    timeline = _timeline(Segment(np.zeros((RATE, 1), np.int16), "speech", text="Hello."))
    frame = _frame(VIDEO)
    assert c(frame, FrameContext(5, VIDEO, timeline)) is frame


# --- line breaking -------------------------------------------------------------------------


def test_breaks_at_spaces_and_between_chinese_characters_but_not_before_closing_punctuation():
    text = "你好，世界 Hello world"
    points = break_points(text)
    assert 1 in points  # 你|好
    assert 2 not in points  # 好|，: a comma never starts a line
    assert 3 in points  # ，|世
    assert text.index("Hello") in points and text.index("world") in points
    assert text.index("ello") not in points
    assert break_points("“你好”") == [2]  # not after the opening quote, nor before the closing one


def test_wrap_fills_lines_and_cuts_words_longer_than_a_line():
    def lines(text: str, width: int) -> list[str]:
        return [text[a:b] for a, b in wrap(text, width, len)]  # every character one unit wide

    assert lines("aa bb cc dd", 5) == ["aa bb", "cc dd"]
    assert lines("一二三四五六七", 3) == ["一二三", "四五六", "七"]
    assert lines("一二三四五六，七", 3) == ["一二三", "四五", "六，七"]  # the comma stays with 六
    assert lines("x" * 12 + " y", 5) == ["xxxxx", "xxxxx", "xx y"]


# --- burn-in -------------------------------------------------------------------------------


def _timeline(*segments: Segment, audio: AudioFormat = AUDIO) -> Timeline:
    timeline = Timeline(audio, keep_seconds=60)
    for s in segments:
        timeline.append(s)
    return timeline


def _frame(video: VideoFormat) -> np.ndarray:
    rgb = np.zeros((video.height, video.width, 3), np.uint8)
    rgb[..., 1] = 140  # mid green everywhere: the caption box and text both change it
    rgb[: video.height // 3, :, 0] = 200
    return rgb_to_yuv420p(rgb)


def _luma(buf: bytes | np.ndarray, video: VideoFormat) -> np.ndarray:
    return np.frombuffer(bytes(buf), np.uint8)[: video.width * video.height].reshape(video.height, video.width)


def _bright(buf: bytes | np.ndarray, video: VideoFormat) -> int:
    """Pixels of near-white luma: the caption's text."""
    return int((_luma(buf, video) > 200).sum())


def test_sentence_is_burned_into_the_bottom_band_only_and_the_input_is_left_alone():
    speech = Segment(np.zeros((2 * RATE, 1), np.int16), "speech", text="Hello there, 你好！")
    timeline = _timeline(Segment(np.zeros((RATE, 1), np.int16), "pause"), speech)
    c = Captioner(VIDEO, CaptionSettings(burn="sentence"))
    frame = _frame(VIDEO)
    before = frame.copy()
    shown = c(frame, FrameContext(FPS + 5, VIDEO, timeline))
    assert np.array_equal(frame, before)  # avatars hand out cached frames
    out = np.asarray(shown)
    assert out.dtype == np.uint8 and out.size == VIDEO.frame_bytes
    changed = np.flatnonzero((_luma(out, VIDEO) != _luma(before, VIDEO)).any(axis=1))
    assert changed.size > 0
    assert changed.min() >= VIDEO.height * 0.6  # the bottom band only
    assert _bright(out, VIDEO) > 50  # white text on the dark box
    # Chroma stays neutral-ward inside the box and untouched above it.
    n = VIDEO.width * VIDEO.height
    u_before, u_after = before[n : n + n // 4], out[n : n + n // 4]
    rows = np.flatnonzero((u_before != u_after).reshape(VIDEO.height // 2, -1).any(axis=1))
    assert rows.size and rows.min() >= VIDEO.height * 0.3

    bytes_frame = bytes(before)  # avatars may hand out bytes too
    assert np.array_equal(np.asarray(c(bytes_frame, FrameContext(FPS + 5, VIDEO, timeline))), out)


def test_no_caption_returns_the_same_frame():
    pause = Segment(np.zeros((RATE, 1), np.int16), "pause")
    audio = Segment(np.zeros((RATE, 1), np.int16), "audio", source="intro.wav")
    timeline = _timeline(pause, audio, Segment(np.zeros((RATE, 1), np.int16), "speech", text="  "))
    c = Captioner(VIDEO, CaptionSettings(burn="sentence"))
    frame = _frame(VIDEO)
    for index in (3, FPS + 3, 2 * FPS + 3, 10 * FPS):  # pause, a recording, empty text, past the end
        assert c(frame, FrameContext(index, VIDEO, timeline)) is frame


def test_words_appear_as_they_are_spoken():
    words = [Mark("One", 0, RATE // 2), Mark("two", RATE // 2, RATE), Mark("three", RATE, 3 * RATE // 2)]
    speech = Segment(np.zeros((2 * RATE, 1), np.int16), "speech", text="One two three.", words=words)
    timeline = _timeline(speech)
    frame = _frame(VIDEO)
    c = Captioner(VIDEO, CaptionSettings(burn="words"))

    def at(seconds: float) -> tuple[tuple[str, int, int] | None, int]:
        ctx = FrameContext(round(seconds * FPS), VIDEO, timeline)
        return c.shown(ctx), _bright(c(frame, ctx), VIDEO)

    (one, lit1), (two, lit2), (three, lit3) = at(0.2), at(0.7), at(1.7)
    assert [s[2] for s in (one, two, three)] == [3, 7, 14]  # "One", "One two", all with the full stop
    assert 0 < lit1 < lit2 < lit3
    # The sentence mode shows all of it from the start.
    whole = Captioner(VIDEO, CaptionSettings(burn="sentence"))
    assert whole.shown(FrameContext(5, VIDEO, timeline)) == ("One two three.", 0, 14)


def test_words_mode_without_word_timings_shows_the_whole_sentence():
    speech = Segment(np.zeros((2 * RATE, 1), np.int16), "speech", text="No timings here.")
    c = Captioner(VIDEO, CaptionSettings(burn="words"))
    assert c.shown(FrameContext(1, VIDEO, _timeline(speech))) == ("No timings here.", 0, 16)


def test_long_sentences_turn_pages_and_words_stay_in_place():
    video = VideoFormat(320, 180, FPS)
    text = "这是一个很长的句子，" * 6
    speech = Segment(np.zeros((6 * RATE, 1), np.int16), "speech", text=text)
    timeline = _timeline(speech)
    c = Captioner(video, CaptionSettings(burn="sentence"))
    pages = [c.shown(FrameContext(i, video, timeline))[1] for i in range(0, 6 * FPS)]
    assert pages == sorted(pages) and pages[0] == 0 and pages[-1] >= 1  # in order, through the pages
    assert len(set(pages)) == len(range(pages[-1] + 1))


def test_espeak_word_marks_reveal_the_whole_sentence_in_order():
    """Real TTS timings: every word espeak reports is found, and the last one ends the sentence."""
    tts = EspeakTTS(EspeakTTS.Options())
    for text, lang in [("Hello, world! I have 3.14 apples, don't you?", "en"), ("大家好，欢迎收看 AI 新闻。", "zh")]:
        speech = tts.synthesize(text, lang)
        plan = spoken_ends(text, speech.words)
        assert len(plan) == len(speech.words)
        ends = [e for _, e in plan]
        assert ends == sorted(ends) and ends[-1] == len(text)

        audio = AudioFormat(speech.sample_rate, 1)
        segment = Segment(to_int16(speech.samples)[:, None], "speech", text=text, words=speech.words)
        timeline = _timeline(segment, audio=audio)
        c = Captioner(VIDEO, CaptionSettings(burn="words"))
        frames = [i for i in range(10_000) if frame_start(i, FPS, audio.sample_rate) < len(segment)]
        shown = [c.shown(FrameContext(i, VIDEO, timeline)) for i in frames]
        revealed = [s[2] for s in shown if s is not None]
        assert revealed == sorted(revealed) and revealed[-1] == len(text)
