"""Captions through the whole pipeline: burned into rendered frames, and a WebVTT file beside."""

import json
import subprocess

import numpy as np

from cli_run import linly, text

FAST = ["--preset", "local-test", "--set", "video.width=320", "--set", "video.height=180", "--json"]


def _frame(path, at: float) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-ss", f"{at:.3f}", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True, timeout=60).stdout
    return np.frombuffer(raw, np.uint8).reshape(180, 320).astype(int)


def test_render_burns_captions_and_writes_webvtt_beside_the_video(tmp_path):
    (tmp_path / "t.txt").write_text("Good morning, everyone. 大家早上好。", encoding="utf-8")
    plain, captioned = tmp_path / "plain.mp4", tmp_path / "captioned.mp4"
    r = linly("render", "--script", str(tmp_path / "t.txt"), "-o", str(plain), "--set", "captions.vtt=false", *FAST)
    assert r.returncode == 0, text(r)
    assert not (tmp_path / "plain.vtt").exists()
    r = linly("render", "--script", str(tmp_path / "t.txt"), "-o", str(captioned), "--set", "captions.burn=sentence", *FAST)
    assert r.returncode == 0, text(r)
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    said = [e for e in events if e["event"] == "sentence"]
    assert events[-1]["vtt"] == str(tmp_path / "captioned.vtt")

    vtt = (tmp_path / "captioned.vtt").read_text(encoding="utf-8").split("\n\n")
    assert vtt[0] == "WEBVTT\n" or vtt[0] == "WEBVTT"
    cues = [block.strip().split("\n") for block in vtt[1:] if block.strip()]
    assert [c[2] for c in cues] == [e["text"] for e in said] == ["Good morning, everyone.", "大家早上好。"]
    first_start = cues[0][1].split(" --> ")[0]
    assert first_start == f"00:00:{said[0]['at']:06.3f}"

    # While a sentence plays the bottom of the picture differs; the top does not.
    for at in (said[0]["at"] + 0.4, said[1]["at"] + 0.4):
        a, b = _frame(plain, at), _frame(captioned, at)
        assert np.abs(a[135:] - b[135:]).mean() > 5
        assert np.abs(a[:90] - b[:90]).mean() < 1.5
