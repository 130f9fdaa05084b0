"""Lip-sync through the whole pipeline: testcard flashes against sound onsets in the rendered file."""

import pytest

from cli_run import linly, text
from syncmeter import measure

SENTENCES = [
    "Good evening, and welcome to the news at ten.",
    "Tonight we look at the weather, the markets, and a story about a very clever dog.",
    "大家好，欢迎收看今天的节目。",
    "The quick brown fox jumps over the lazy dog.",
    "Prices rose by three point five percent in October.",
    "我们来聊一聊 live streaming 和语音合成。",
    "Stay with us after the break!",
]


@pytest.mark.slow
@pytest.mark.parametrize("fps", [25, 30])
def test_testcard_flashes_land_on_every_onset(tmp_path, fps):
    # About two minutes of speech: every sentence starts after a pause, so each start is an onset.
    script = "\n\n".join(" ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(len(SENTENCES)))
    (tmp_path / "s.txt").write_text(script, encoding="utf-8")
    out = tmp_path / "sync.mp4"
    r = linly("render", "--script", str(tmp_path / "s.txt"), "-o", str(out), "--avatar", "testcard",
              "--set", f"video.fps={fps}", "--set", "video.width=320", "--set", "video.height=180")
    assert r.returncode == 0, text(r)
    rep = measure(out)
    assert rep.video_duration > 100
    assert len(rep.pairs) >= len(SENTENCES) ** 2  # at least one per sentence
    assert rep.unmatched_onsets == 0 and rep.unmatched_flashes == 0, rep
    assert rep.max_abs_offset_ms <= 25.0, rep.offsets_ms
    # First to last: no drift across the file.
    assert abs(rep.offsets_ms[-1]) <= 25.0 and abs(rep.offsets_ms[0]) <= 25.0
