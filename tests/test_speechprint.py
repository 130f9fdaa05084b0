"""speechprint finds the sentences the real CLI spoke, and only whole ones."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import speechprint
from cli_run import linly, text

SENTENCES = [
    "Good evening, and welcome to the broadcast.",
    "Tonight we look at the weather, the markets, and a story about a very clever dog.",
    "The quick brown fox jumps over the lazy dog, again and again.",
    "Prices rose by three point five percent in October.",
    "今天天气很好。",
    "Stay with us after the break!",
]
# Sentences that are not in the file, most of them sharing much of their sound with one that is.
ABSENT = [
    "Good morning, and welcome to the show.",
    "Tonight we look at the weather, the markets, and a story about a very clever cat.",
    "Stay with us after the news!",
    "明天天气不好。",
    "Good evening, and welcome to the broadcast, everyone.",
]
MARGIN = 0.1  # every score at least this far from the threshold, on the right side
CUT = 2  # the sentence the cut files split


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[float]]:
    """The script rendered by the real CLI (small video: only the sound matters), and each
    sentence's `at` from its events."""
    tmp = tmp_path_factory.mktemp("speechprint")
    script = tmp / "talk.txt"
    script.write_text(" ".join(SENTENCES[:4]) + "\n\n" + " ".join(SENTENCES[4:]) + "\n", encoding="utf-8")
    out = tmp / "talk.mp4"
    r = linly("render", "--script", str(script), "-o", str(out), "--json",
              "--set", "video.width=320", "--set", "video.height=180", timeout=120)
    assert r.returncode == 0, text(r)
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    spoken = [e for e in events if e["event"] == "sentence"]
    assert [e["text"] for e in spoken] == SENTENCES
    return out, [e["at"] for e in spoken]


def _ffmpeg(*args: str) -> None:
    exe = shutil.which("ffmpeg") or pytest.skip("ffmpeg is not installed")
    subprocess.run([exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=60)


def test_every_sentence_is_found_once_where_it_was_spoken(rendered):
    path, starts = rendered
    found = speechprint.find_sentences([path], SENTENCES)
    for sentence, at in zip(SENTENCES, starts):
        [match] = found[sentence]
        assert match.path == path
        assert match.score >= speechprint.THRESHOLD + MARGIN, (sentence, match)
        # `at` is where its segment starts; the print starts at its first sound, <= 50 ms later
        assert -0.02 <= match.start - at <= 0.08, (sentence, match, at)


def test_a_sentence_not_in_the_file_is_not_found(rendered):
    path, _ = rendered
    scores = speechprint.best_scores([path], ABSENT)
    assert all(s <= speechprint.THRESHOLD - MARGIN for s in scores.values()), scores
    assert speechprint.missing([path], ABSENT + SENTENCES[:1]) == ABSENT


def test_a_file_cut_in_the_middle_of_a_sentence_misses_exactly_that_sentence(rendered, tmp_path):
    path, starts = rendered
    middle = (starts[CUT] + starts[CUT + 1]) / 2  # inside sentence CUT: it ends in its pause
    head, tail = tmp_path / "head.flv", tmp_path / "tail.m4a"
    _ffmpeg("-i", str(path), "-t", f"{middle:.3f}", "-c", "copy", str(head))  # as a server's recording ends
    _ffmpeg("-ss", f"{middle:.3f}", "-i", str(path), "-vn", "-c:a", "aac", str(tail))  # as the next one starts
    assert speechprint.missing([head], SENTENCES) == SENTENCES[CUT:]
    assert speechprint.missing([tail], SENTENCES) == SENTENCES[:CUT + 1]
    assert speechprint.missing([head, tail], SENTENCES) == [SENTENCES[CUT]]
    found = speechprint.find_sentences([head, tail], SENTENCES)
    assert [m.path for s in SENTENCES if s != SENTENCES[CUT] for m in found[s]] == [head] * CUT + [tail] * (len(SENTENCES) - CUT - 1)


def test_a_recording_of_nothing_holds_no_sentence(tmp_path):
    empty = tmp_path / "empty.flv"  # what a server records for a publish that sent no media
    empty.write_bytes(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
    assert speechprint.missing([empty], SENTENCES[:2]) == SENTENCES[:2]
    with pytest.raises(FileNotFoundError):
        speechprint.missing([tmp_path / "nowhere.flv"], SENTENCES[:1])
