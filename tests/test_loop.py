"""The loop avatar: clips decoded at the stream's size and rate, idle and talk switched by speech
with a crossfade and a hold, loops without a jump, bad clips as one-line errors, and a render."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from cli_run import linly, text
from linly_push.backends import registry
from linly_push.backends.avatars.loop import LoopAvatar, decode
from linly_push.timeline import Ticker
from linly_push.errors import InputError, UsageError
from linly_push.ffmpeg import find_ffmpeg
from linly_push.media import AudioFormat, Mark, Segment, VideoFormat, silence, to_int16
from linly_push.video import planes
from media_probe import count_frames, probe

RATE, FPS = 44100, 25
AUDIO = AudioFormat(RATE, 2)
SMALL = VideoFormat(160, 90, FPS)
FRAME = RATE // FPS  # samples per frame


def _make(path: Path, source: str, fps: int = FPS) -> Path:
    """A clip from an ffmpeg lavfi source, nearly lossless (so colours and motion survive)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-r", str(fps),
         "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "idle": _make(d / "idle.mp4", "color=c=blue:s=320x180:d=1"),
        "talk": _make(d / "talk.mp4", "color=c=red:s=320x180:d=1.2"),
        # 4:3 at 30 fps with red bands top and bottom: cropped away by cover, shown by contain.
        "banded": _make(
            d / "banded.mp4",
            "color=c=blue:s=320x240:d=2,drawbox=y=0:w=iw:h=24:c=red:t=fill,drawbox=y=ih-24:w=iw:h=24:c=red:t=fill",
            fps=30,
        ),
        # Brightness waves that do not return to where they started at the end of the clip.
        "smooth": _make(
            d / "smooth.mp4",
            "color=c=gray:s=160x90:d=2,format=yuv420p,"
            "geq=lum='128+70*sin(2*PI*T/1.5)+20*sin(2*PI*(X/W+T/1.7))':cb=128:cr=128",
        ),
    }


def _planes(frame: np.ndarray, video: VideoFormat = SMALL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return planes(frame, video.width, video.height)


def _redness(frame: np.ndarray) -> float:
    """Mean V minus mean U: about -120 for blue, +140 for red, in between for a blend."""
    _, u, v = _planes(frame)
    return float(v.mean()) - float(u.mean())


def _avatar(video: VideoFormat = SMALL, **options: object) -> LoopAvatar:
    return LoopAvatar(video, registry.options(LoopAvatar, {k: str(v) if isinstance(v, Path) else v
                                                           for k, v in options.items()}))  # fmt: skip


def _frames(avatar: LoopAvatar, *segments: Segment) -> list[np.ndarray]:
    ticker = Ticker(avatar.video, AUDIO, avatar.draw)
    return [np.asarray(tick.frame) for segment in segments for tick in ticker.feed(segment)]


def _quiet(frames: int) -> Segment:
    return Segment(silence(frames * FRAME, AUDIO), "pause")


def _tone(frames: int) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * 220 * np.arange(frames * FRAME) / RATE)


def _speech(*parts: int) -> Segment:
    """A sentence: frame counts alternately of voice (a tone under an 'a' mark) and of silence."""
    audio, marks, at = [], [], 0
    for k, n in enumerate(parts):
        voiced = k % 2 == 0
        audio.append(_tone(n) if voiced else np.zeros(n * FRAME))
        if voiced:
            marks.append(Mark("a", at, at + n * FRAME))
        at += n * FRAME
    mono = np.concatenate(audio)
    return Segment(to_int16(np.repeat(mono[:, None], 2, axis=1)), "speech", text="A a.", phonemes=marks)


# --- decoding -------------------------------------------------------------------------------


def test_clips_are_decoded_at_the_stream_size_and_rate(clips: dict[str, Path]) -> None:
    avatar = _avatar(idle=clips["banded"], seam=0)  # 2 s at 30 fps, 4:3
    frames = _frames(avatar, _quiet(120))
    assert {f.size for f in frames} == {SMALL.frame_bytes} and {f.dtype for f in frames} == {np.dtype(np.uint8)}
    loop = next(k for k in range(1, 120) if frames[k] is frames[0])  # a stored buffer comes round again
    assert 49 <= loop <= 51  # 2 s at the stream's 25 fps
    y, u, v = _planes(frames[10])
    assert u.min() > 200 and v.max() < 140  # cover: all blue, the red bands cropped away


def test_contain_shows_the_whole_clip_with_borders(clips: dict[str, Path]) -> None:
    frame = _frames(_avatar(idle=clips["banded"], fit="contain", background="white"), _quiet(1))[0]
    y, u, v = _planes(frame)
    # 4:3 in 16:9: 120x90 in the middle, white pillars either side.
    assert (y[:, :16] > 230).all() and (y[:, -16:] > 230).all()
    assert v[0, 40] > 200 and v[-1, 40] > 200 and u[22, 40] > 200  # red bands, blue middle


def test_steady_frames_are_the_stored_read_only_buffers(clips: dict[str, Path]) -> None:
    frames = _frames(_avatar(idle=clips["idle"]), _quiet(60))  # 25 frames, 12 of them the seam: a loop of 13
    assert all(not f.flags.writeable for f in frames)
    assert all(frames[k] is frames[k + 13] for k in range(40))


def test_no_idle_clip_is_a_usage_error_saying_what_to_pass() -> None:
    with pytest.raises(UsageError, match=r"--set avatar\.idle=clip\.mp4"):
        _avatar()


@pytest.mark.parametrize("option", ["idle", "talk"])
def test_a_missing_clip_is_an_input_error(tmp_path: Path, clips: dict[str, Path], option: str) -> None:
    options = {"idle": clips["idle"], option: tmp_path / "nope.mp4"}
    with pytest.raises(InputError, match=rf"avatar\.{option} clip .*nope\.mp4 not found"):
        _avatar(**options)
    with pytest.raises(InputError, match="is not a file"):
        _avatar(**{**options, option: tmp_path})


def test_files_without_video_are_input_errors_with_ffmpegs_reason(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video at all\n" * 50)
    with pytest.raises(InputError, match=r"cannot read .*notes\.mp4: Invalid data") as err:
        _avatar(idle=notes)
    assert "\n" not in str(err.value)
    tone = _make(tmp_path / "tone.wav", "sine=d=0.5")
    with pytest.raises(InputError, match=r"tone\.wav: it has no video"):
        _avatar(idle=tone)


def test_a_clip_too_big_for_memory_is_refused_early(clips: dict[str, Path]) -> None:
    video = VideoFormat(960, 540, FPS)
    ffmpeg = find_ffmpeg().path
    with pytest.raises(UsageError, match="use a shorter clip or a lower resolution"):
        decode(ffmpeg, clips["banded"], video, "cover", "black", budget=10 * video.frame_bytes)
    assert len(decode(ffmpeg, clips["banded"], video, "cover", "black", budget=50 * video.frame_bytes)) == 50


def test_bad_options_are_usage_errors() -> None:
    for values, message in [
        ({"idle": "a.mp4", "fit": "stretch"}, "avatar.fit"),
        ({"idle": "a.mp4", "background": "nocolour"}, "not a colour"),
        ({"idle": "a.mp4", "crossfade": -1}, "avatar.crossfade"),
        ({"idle": "a.mp4", "idel": "b.mp4"}, "unknown option avatar.idel"),
    ]:
        with pytest.raises(UsageError, match=message):
            registry.options(LoopAvatar, values)


def test_cli_errors_exit_with_one_line_and_their_code(tmp_path: Path) -> None:
    script = tmp_path / "ok.txt"
    script.write_text("Fine.", encoding="utf-8")
    (tmp_path / "notes.mp4").write_text("no video here")
    render = ["render", "--script", str(script), "-o", str(tmp_path / "o.mp4"), "--avatar", "loop"]
    for code, sets, message in [
        (2, [], "--set avatar.idle=clip.mp4"),
        (3, ["--set", f"avatar.idle={tmp_path / 'missing.mp4'}"], "not found"),
        (3, ["--set", f"avatar.idle={tmp_path / 'notes.mp4'}"], "cannot read"),
    ]:
        r = linly(*render, *sets)
        err = r.stderr.decode()
        assert r.returncode == code, text(r)
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# --- switching ------------------------------------------------------------------------------


def test_talk_shows_during_speech_and_idle_in_silence(clips: dict[str, Path]) -> None:
    avatar = _avatar(idle=clips["idle"], talk=clips["talk"], crossfade=0.2, hold=0.3)  # 5 and 8 frames
    # Frames 0-24 quiet, 25-74 speech, 75-124 quiet.
    red = [_redness(f) for f in _frames(avatar, _quiet(25), _speech(50), _quiet(50))]
    blue, full = red[0], red[50]
    assert blue < -100 and full > 100
    idle = [k for k, r in enumerate(red) if abs(r - blue) < 3]
    talk = [k for k, r in enumerate(red) if abs(r - full) < 3]
    blends = [k for k in range(len(red)) if k not in idle and k not in talk]
    assert idle == list(range(0, 25)) + list(range(75 + 8 + 5, 125))  # back only after the hold and the fade
    assert talk == list(range(25 + 4, 75 + 8 + 1))  # the last voiced window ends in frame 75
    assert blends == [25, 26, 27, 28, 84, 85, 86, 87]
    assert red[24] < red[25] < red[26] < red[27] < red[28] < red[29]  # a steady fade in
    assert red[83] > red[84] > red[85] > red[86] > red[87] > red[88]  # and out


def test_the_hold_bridges_gaps_between_words(clips: dict[str, Path]) -> None:
    avatar = _avatar(idle=clips["idle"], talk=clips["talk"], crossfade=0.2, hold=0.3)
    # Speech from frame 10: voice, a 6-frame gap (under the hold), voice, a 30-frame gap, voice.
    red = [_redness(f) for f in _frames(avatar, _quiet(10), _speech(20, 6, 20, 30, 20))]
    full = red[20]
    assert all(abs(r - full) < 3 for r in red[15:56])  # talk right through the short gap
    gap = red[56:86]  # the long gap: frames 56 to 85
    assert min(gap) < -100  # back to idle within it
    assert all(abs(r - full) < 3 for r in red[91:106])  # and talk again


def test_recorded_audio_without_marks_switches_by_loudness(clips: dict[str, Path]) -> None:
    avatar = _avatar(idle=clips["idle"], talk=clips["talk"])
    voice = Segment(to_int16(np.repeat(_tone(40)[:, None], 2, axis=1)), "audio", source="a.wav")
    red = [_redness(f) for f in _frames(avatar, _quiet(10), voice)]
    assert red[5] < -100 and red[40] > 100


def test_without_a_talk_clip_speech_keeps_the_idle_loop(clips: dict[str, Path]) -> None:
    avatar = _avatar(idle=clips["idle"])
    frames = _frames(avatar, _quiet(10), _speech(30))
    assert all(frames[k] is frames[k + 13] for k in range(27))


# --- looping --------------------------------------------------------------------------------


def _luma_steps(frames: list[np.ndarray]) -> np.ndarray:
    n = SMALL.width * SMALL.height
    return np.array([np.abs(b[:n].astype(int) - a[:n].astype(int)).mean() for a, b in zip(frames, frames[1:])])


def test_the_loop_point_has_no_jump(clips: dict[str, Path]) -> None:
    # The whole clip (min_loop=1), no seam: a plain wrap, which jumps; the test can tell.
    raw = _frames(_avatar(idle=clips["smooth"], seam=0, min_loop=1.0), _quiet(100))  # 50 frames, twice
    steps = _luma_steps(raw)
    within = steps[:49]
    assert steps[49] > 4 * np.median(within)
    looped = _frames(_avatar(idle=clips["smooth"], seam=0.5, min_loop=1.0), _quiet(100))  # 50 - 12 frames
    assert looped[0] is looped[38] and looped[0] is not looped[37]
    seamed = _luma_steps(looped)
    assert seamed[37] < 1.5 * np.median(within)  # across the loop point
    assert seamed.max() < 1.2 * within.max()  # and nowhere worse than the clip itself


def test_the_loop_is_the_stretch_where_the_clip_matches_itself_best(tmp_path: Path) -> None:
    """A clip whose end differs from its start (a dark lead-in and a bright tail around a
    brightness wave of 1.2 s): the loop is a whole number of waves from inside it, and never jumps."""
    wave = "128+60*sin(2*PI*(T-0.4)/1.2)"
    lum = f"if(lt(T,0.4),30,if(lt(T,3.0),{wave},230))"  # waves from frame 10 to 74
    clip = _make(tmp_path / "lead.mp4", f"color=c=gray:s=160x90:d=3.4,format=yuv420p,geq=lum='{lum}':cb=128:cr=128")
    avatar = _avatar(idle=clip, seam=0)
    period = round(1.2 * FPS)  # 30 frames
    assert len(avatar._idle.frames) == 2 * period  # the longest whole number of waves inside
    frames = _frames(avatar, _quiet(3 * 2 * period))
    steps = _luma_steps(frames)
    assert steps.max() < 1.5 * np.percentile(steps, 95)  # across each loop point too
    shown = [float(_planes(f)[0].mean()) for f in frames]
    assert 40 < min(shown) and max(shown) < 220  # neither the lead-in nor the tail is shown


def test_loop_points_pure():
    from linly_push.backends.avatars.loop import loop_points

    t = np.arange(100, dtype=np.float32)
    thumbs = np.stack([np.sin(2 * np.pi * t / 25), np.cos(2 * np.pi * t / 25)], axis=1) * 50
    thumbs[90:] = 0  # a tail unlike the rest
    start, end = loop_points(thumbs, seam=5, shortest=40)
    assert (end - start) % 25 == 0 and end + 5 <= 90
    assert loop_points(np.zeros((10, 4), np.float32), seam=2, shortest=3) == (0, 8)  # a still clip: the longest loop
    assert loop_points(np.zeros((4, 4), np.float32), seam=2, shortest=3) == (0, 2)  # too short to choose


# --- end to end -----------------------------------------------------------------------------


def test_render_with_clips(tmp_path: Path, clips: dict[str, Path]) -> None:
    script = tmp_path / "talk.txt"
    script.write_text("Hello there, this is a loop.", encoding="utf-8")
    out = tmp_path / "out.mp4"
    r = linly("render", "--script", str(script), "--avatar", "loop", "--set", f"avatar.idle={clips['idle']}",
              "--set", f"avatar.talk={clips['talk']}", "--set", "video.width=320", "--set", "video.height=180",
              "-o", str(out))  # fmt: skip
    assert r.returncode == 0, text(r)
    p = probe(out)
    assert (p.video["width"], p.video["height"]) == (320, 180) and p.video["codec_name"] == "h264"
    assert count_frames(out) == round(p.video_seconds * FPS)
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(out), "-vf", "scale=160:90", "-f", "rawvideo",
         "-pix_fmt", "yuv420p", "-"], capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    red = [_redness(f) for f in np.frombuffer(raw, np.uint8).reshape(-1, SMALL.frame_bytes)]
    assert red[0] < -90 and max(red) > 90  # idle during the lead-in, talk while speaking
