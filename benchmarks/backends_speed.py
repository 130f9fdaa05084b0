"""Backend and stage speed: what each avatar, the caption burner, each TTS and the loudness
stage costs per unit of work on this machine, so speed goals are tracked outside the tests.

    python benchmarks/backends_speed.py [--seconds 20] [--only cartoon --only captions ...]

Avatars draw ``--seconds`` of frames at 960x540@25 (preset live) and 1280x720@30 (preset hd),
fed through the audio clock (clock.Ticker) with the sentences of examples/talk.txt spoken by
espeak, levelled and paced as a render does. Per frame: CPU time (time.process_time, every
thread of this process) and wall time, mean and 95th percentile, against the frame period.
Captions (burn=words) are timed on the cartoon avatar's frames. TTS: load time and × realtime
over the sentences of examples/talk.txt. Loudness: seconds of audio per CPU second.

Names for --only: cartoon, testcard, portrait, loop, captions, espeak, piper, loudness.
Prints three tables. Optional backends that are not installed get a row saying why.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from linly_push import loudness, presets
from linly_push.audio import remix, speech_segment
from linly_push.backends import registry
from linly_push.backends.base import Avatar, TTSBackend
from linly_push.captions import Captioner
from linly_push.timeline import FrameContext, Ticker
from linly_push.ffmpeg import find_ffmpeg
from linly_push.media import AudioFormat, Segment, Speech, VideoFormat, silence
from linly_push.presets import CaptionSettings
from linly_push.script import Pause, Sentence, parse

TALK = Path(__file__).resolve().parent.parent / "examples" / "talk.txt"
PRESETS = ("live", "hd")  # 960x540@25, 1280x720@30
AVATARS = ("cartoon", "testcard", "portrait", "loop")
TTS = ("espeak", "piper")
NAMES = (*AVATARS, "captions", *TTS, "loudness")
LOUDNESS_SECONDS = 600  # of synthetic stereo audio through measure_blocks
BLOCK_SECONDS = 0.5  # blocks fed to the meter, as audio.py reads files


@dataclass
class Timings:
    """Per-unit CPU and wall seconds."""

    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def timed(self, fn: Callable[..., object], *args: object) -> object:
        c, w = time.process_time(), time.perf_counter()
        out = fn(*args)
        self.wall.append(time.perf_counter() - w)
        self.cpu.append(time.process_time() - c)
        return out

    def ms(self) -> list[str]:
        """CPU mean, CPU p95, wall mean, wall p95, in ms."""
        cpu, wall = np.array(self.cpu) * 1000, np.array(self.wall) * 1000
        return [f"{cpu.mean():.2f}", f"{np.percentile(cpu, 95):.2f}", f"{wall.mean():.2f}", f"{np.percentile(wall, 95):.2f}"]


def video_of(preset: presets.Preset) -> VideoFormat:
    return VideoFormat(preset.video.width, preset.video.height, preset.video.fps)


def audio_of(preset: presets.Preset) -> AudioFormat:
    return AudioFormat(preset.audio.sample_rate, preset.audio.channels)


def sentences() -> list[Sentence | Pause]:
    return parse(TALK.read_text(encoding="utf-8"))


def make_tts(name: str) -> TTSBackend:
    cls = registry.get("tts", name)
    tts = cls(registry.options(cls, {}))
    assert isinstance(tts, TTSBackend)
    return tts


def synthesize_all(tts: TTSBackend, items: list[Sentence | Pause]) -> list[Speech]:
    return [tts.synthesize(s.text, s.lang) for s in items if isinstance(s, Sentence)]


def speech_segments(items: list[Sentence | Pause], speech: list[Speech], preset: presets.Preset) -> list[Segment]:
    """The script as pipeline.segments makes it (lead-in, pauses, levelled speech, tail)."""
    fmt, sp = audio_of(preset), preset.speech
    target = loudness.Target.from_settings(preset.audio)
    leveller = loudness.Leveller(target) if target else None

    def pause(seconds: float) -> Segment:
        return Segment(silence(round(seconds * fmt.sample_rate), fmt), "pause")

    out = [pause(sp.lead_in)]
    spoken = iter(speech)
    previous = None
    number = 0
    for item in items:
        if isinstance(item, Pause):
            out.append(pause(sp.paragraph_pause))
        else:
            number += 1
            if isinstance(previous, Sentence):
                out.append(pause(sp.sentence_pause))
            out.append(speech_segment(next(spoken), fmt, item.text, number, leveller, voice=f"espeak/{item.lang}"))
        previous = item
    out.append(pause(sp.tail))
    return out


def run_frames(video: VideoFormat, audio: AudioFormat, segments: list[Segment], seconds: float,
               draw: Callable[[FrameContext], object]) -> None:
    """Feed the script, over and over, through the clock until ``seconds`` of frames are drawn."""
    ticker = Ticker(video, audio, draw)
    wanted = round(seconds * video.fps)

    def ticks() -> Iterator[object]:
        while True:
            for seg in segments:
                yield from ticker.feed(seg)

    for tick in ticks():
        if tick.index + 1 >= wanted:
            return


def loop_clips(folder: Path) -> dict[str, str]:
    """Two short clips (idle, talk) from ffmpeg's test sources, at the larger size benchmarked."""
    clips = {"idle": "testsrc2=size=1280x720:rate=30:duration=4", "talk": "smptehdbars=size=1280x720:rate=30:duration=3"}
    out = {}
    for which, source in clips.items():
        path = folder / f"{which}.mp4"
        subprocess.run([find_ffmpeg().path, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", source,
                        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
        out[which] = str(path)
    return out


def astronaut(folder: Path) -> str:
    from PIL import Image
    from skimage import data

    path = folder / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return str(path)


def not_ready(kind: registry.Kind, name: str) -> str | None:
    info = registry.discover(kind).get(name)
    if info is None:
        return "not installed"
    return None if info.ready else escape(info.status)  # it names the extra in [brackets]


def avatar_rows(
    table: Table, only: set[str], seconds: float, segments: list[Segment], audio: AudioFormat, tmp: Path
) -> None:
    options: dict[str, Callable[[], dict[str, str]]] = {
        "portrait": lambda: {"image": astronaut(tmp)},
        "loop": lambda: loop_clips(tmp),
    }
    wanted = [a for a in AVATARS if a in only]
    if "captions" in only and "cartoon" not in wanted:
        wanted.insert(0, "cartoon")  # captions are timed on its frames
    for name in wanted:
        why = not_ready("avatar", name)
        if why:
            table.add_row(name, *[""] * 9, f"skipped: {why}")
            continue
        cls = registry.get("avatar", name)
        opts = registry.options(cls, options[name]() if name in options else {})
        for preset in PRESETS:
            video = video_of(presets.load(preset))
            t0 = time.perf_counter()
            avatar = cls(video, opts)
            assert isinstance(avatar, Avatar)
            startup = time.perf_counter() - t0
            drawing, captioning = Timings(), Timings()
            captions = name == "cartoon" and "captions" in only
            captioner = Captioner(video, CaptionSettings(burn="words")) if captions else None

            def draw(ctx: FrameContext) -> object:
                frame = drawing.timed(avatar.draw, ctx)
                return captioning.timed(captioner, frame, ctx) if captioner else frame

            run_frames(video, audio, segments, seconds, draw)
            avatar.close()
            period = 1000 / video.fps
            size = f"{video.width}x{video.height}@{video.fps}"
            for row, t, started in ((name, drawing, f"{startup:.2f}"), ("captions (words)", captioning, "")):
                if not t.cpu or (row == name and name not in only):
                    continue
                share = float(np.mean(t.cpu)) * 1000 / period
                table.add_row(row, size, started, str(len(t.cpu)), *t.ms(), f"{period:.1f}", f"{share:.0%}", "")


def tts_rows(table: Table, only: set[str], items: list[Sentence | Pause]) -> list[Speech] | None:
    """One row per TTS; returns espeak's speech when it ran (the avatars' script)."""
    espeak_speech = None
    for name in (t for t in TTS if t in only):
        why = not_ready("tts", name)
        if why:
            table.add_row(name, "", "", "", "", "", f"skipped: {why}")
            continue
        # Until the first word is heard: engines load lazily (espeak on its first sentence).
        t0 = time.perf_counter()
        tts = make_tts(name)
        tts.synthesize("Hello.", "en")
        load = time.perf_counter() - t0
        c, w = time.process_time(), time.perf_counter()
        speech = synthesize_all(tts, items)
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        tts.close()
        audio = sum(s.duration for s in speech)
        table.add_row(name, f"{load:.2f}", str(len(speech)), f"{audio:.1f}", f"{audio / wall:.1f}", f"{audio / cpu:.1f}", "")
        if name == "espeak":
            espeak_speech = speech
    return espeak_speech


def loudness_rows(table: Table, speech: list[Speech], audio: AudioFormat, target: loudness.Target) -> None:
    rate, channels = audio.sample_rate, audio.channels
    # Ten seconds of speech-like stereo (noise under a syllable-rate envelope), fed again and
    # again in read-only views, so making the signal costs nothing inside the measurement.
    rng = np.random.default_rng(0)
    t = np.arange(10 * rate) / rate
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) * np.sin(2 * np.pi * 0.3 * t)
    pool = (0.2 * rng.standard_normal((len(t), channels)) * envelope[:, None]).astype(np.float32)
    block = int(BLOCK_SECONDS * rate)
    count = LOUDNESS_SECONDS * rate // block

    def blocks() -> Iterator[np.ndarray]:
        for k in range(count):
            start = k * block % (len(pool) - block)
            yield pool[start : start + block]

    loudness.Meter(rate, channels)  # scipy imported before timing
    c, w = time.process_time(), time.perf_counter()
    loudness.measure_blocks(blocks(), rate, channels)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    seconds = count * block / rate
    table.add_row("measure_blocks", f"{seconds:.0f} s synthetic stereo", f"{seconds / cpu:.0f}", f"{seconds / wall:.0f}")

    # The espeak sentences as speech_segment hands them to the leveller: at the stream's rate and layout.
    import soxr

    ready = [remix(soxr.resample(s.samples, s.sample_rate, rate, quality="HQ"), channels) for s in speech]
    leveller = loudness.Leveller(target)
    c, w = time.process_time(), time.perf_counter()
    for samples in ready:
        leveller(samples, rate, "espeak/en")
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    seconds = sum(len(s) for s in ready) / rate
    table.add_row("Leveller", f"{len(ready)} espeak sentences, {seconds:.1f} s", f"{seconds / cpu:.0f}", f"{seconds / wall:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of frames per avatar and size")
    ap.add_argument("--only", action="append", choices=NAMES, help="measure only this (repeatable)")
    args = ap.parse_args()
    only = set(args.only or NAMES)
    console = Console(width=160)
    items = sentences()
    live = presets.load("live")
    audio = audio_of(live)
    target = loudness.Target.from_settings(live.audio) or loudness.Target(-16.0, -1.0)

    tts = Table(title=f"TTS: the {sum(isinstance(i, Sentence) for i in items)} sentences of examples/talk.txt")
    for col in ("tts", "load s (to first word)", "sentences", "audio s", "× realtime (wall)", "× realtime (CPU)", "note"):
        tts.add_column(col, justify="right")
    espeak_speech = tts_rows(tts, only, items)

    wants_speech = only & {*AVATARS, "captions", "loudness"}
    if wants_speech and espeak_speech is None:  # the avatars' script, untimed
        espeak_speech = synthesize_all(make_tts("espeak"), items)

    frames = Table(
        title=f"Avatars and captions: ms per frame, {args.seconds:g} s of frames driven by espeak speech",
        caption="start-up: constructing the avatar (the first size includes importing its libraries); CPU: every thread",
    )
    for col in ("stage", "format", "start-up s", "frames", "CPU mean", "CPU p95", "wall mean", "wall p95",
                "period ms", "CPU mean / period", "note"):
        frames.add_column(col, justify="right")
    if only & {*AVATARS, "captions"}:
        assert espeak_speech is not None
        segments = speech_segments(items, espeak_speech, live)
        with tempfile.TemporaryDirectory() as tmp:
            avatar_rows(frames, only, args.seconds, segments, audio, Path(tmp))

    level = Table(title="Loudness: seconds of audio per second")
    for col in ("stage", "over", "per CPU s", "per wall s"):
        level.add_column(col, justify="right")
    if "loudness" in only:
        assert espeak_speech is not None
        loudness_rows(level, espeak_speech, audio, target)

    for table in (frames, tts, level):
        if table.row_count:
            console.print(table)


if __name__ == "__main__":
    main()
