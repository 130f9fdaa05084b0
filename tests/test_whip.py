"""WebRTC out (issue 12): `live --url http://.../whip` against a real WebRTC stack on 127.0.0.1.

The endpoint is aiortc (``whip_endpoint``): it answers ffmpeg's offer, completes ICE and DTLS,
receives and decodes both tracks. Codecs, media, lip sync (against a plain ffmpeg push of the
same file through the same endpoint), the token, refusals, a dropped endpoint and a hung one,
and WHIP beside RTMP and a recording.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess

import imageio_ffmpeg
import pytest

from broadcast import KEY, SENTENCES, Broadcast, url, write_script
from cli_run import linly, text
from media_probe import probe
from whip_endpoint import WhipEndpoint, sync_offsets_ms

pytestmark = pytest.mark.live

TOKEN = "wh1p-t0ken-s3cr3t"  # must appear nowhere in what linly-push prints
TESTCARD = ["--set", "avatar.backend=testcard"]
LOW = 40.0  # broadcast tolerance: sound at most 40 ms early ...
HIGH = 60.0  # ... or 60 ms late


@pytest.fixture
def whip():
    with WhipEndpoint() as endpoint:
        yield endpoint


def events(r) -> list[dict]:
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


def plain_push(path, endpoint_url: str) -> None:
    """ffmpeg alone pushing ``path`` in real time over WHIP, as a WebRTC user would by hand."""
    argv = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", str(path),
        "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "25", "-preset", "ultrafast",
        "-tune", "zerolatency", "-c:a", "libopus", "-ar", "48000", "-ac", "2", "-f", "whip", endpoint_url,
    ]
    subprocess.run(argv, capture_output=True, timeout=120, check=True)


def test_live_over_whip_arrives_as_webrtc_h264_and_opus_in_sync(whip, tmp_path):
    """What a WebRTC viewer gets: both tracks, the codecs WHIP allows, every frame, and lip sync
    as good as ffmpeg's own push of the same pictures and sound through the same endpoint."""
    script = write_script(tmp_path, SENTENCES[:3])
    record = tmp_path / "on-air.mkv"
    live = Broadcast("--url", whip.url, "--script", script, "--record", str(record), *TESTCARD)
    code, err = live.finish()
    assert code == 0, err
    ours = whip.wait_session(1)
    assert ours.ended.wait(10), "the session was not closed at the end (DELETE)"
    assert (ours.video_codec, ours.audio_codec, ours.audio_rate, ours.audio_channels) == ("video/H264", "audio/opus", 48000, 2)
    assert "profile-level-id=42" in ours.offer  # H.264 baseline (profile_idc 66)
    # Nearly all of it: on a loaded machine the Python receiver may miss the first few tenths of
    # a second, while its own DTLS set-up lags ffmpeg's (seen: 234 of 244 frames).
    frames = live.of("finished")[0]["frames"]
    assert len(ours.video) >= 0.9 * frames and ours.audio_seconds >= 0.9 * frames / 25
    # The recording beside WHIP keeps the Opus that is encoded anyway (Matroska holds it).
    rec = probe(record)
    assert (rec.video["codec_name"], rec.audio["codec_name"]) == ("h264", "opus")

    plain_push(record, whip.url)
    theirs = whip.wait_session(2)
    ours_ms, theirs_ms = sync_offsets_ms(ours), sync_offsets_ms(theirs)
    assert len(ours_ms) >= 3 and len(theirs_ms) >= 3, (ours_ms, theirs_ms)
    low, high = min(-LOW, *theirs_ms), max(HIGH, *theirs_ms)
    assert all(low <= o <= high for o in ours_ms), (ours_ms, theirs_ms)
    assert abs(statistics.median(ours_ms) - statistics.median(theirs_ms)) <= 20, (ours_ms, theirs_ms)


def test_the_bearer_token_comes_from_the_variable_whip_token_env_names_and_never_shows(tmp_path):
    with WhipEndpoint(token=TOKEN) as endpoint:
        # The stream key in the URL's query is a secret too.
        live = Broadcast(
            "--url", endpoint.url + "?stream=${STREAM_KEY}", "--script", write_script(tmp_path, SENTENCES[:1]),
            "--set", "whip.token_env=WHIP_TOKEN", env={"WHIP_TOKEN": TOKEN},
        )
        code, err = live.finish()  # checks the stream key leaked nowhere
        assert code == 0, err
        assert endpoint.posts[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert endpoint.wait_session(1).audio_seconds > 1
    everything = json.dumps(live.events) + err
    assert TOKEN not in everything and "?****" in live.of("started")[0]["output"]


@pytest.mark.parametrize(
    ("endpoint", "extra", "says"),
    [
        ({"token": TOKEN}, [], "wants a token: put it in an environment variable and name that with --set whip.token_env=NAME"),
        ({"token": TOKEN}, ["--set", "whip.token_env=WHIP_TOKEN"], "refused the token: check the one whip.token_env names"),
        ({"status": 403}, [], "wants a token"),
        ({"status": 404}, [], "there is no WHIP endpoint at http://127.0.0.1:"),
    ],
    ids=["no-token", "wrong-token", "forbidden", "not-found"],
)
def test_an_endpoint_that_refuses_ends_at_once_with_exit_5_and_says_why(tmp_path, endpoint, extra, says):
    with WhipEndpoint(**endpoint) as refusing:
        r = linly(
            "live", "--json", "--url", refusing.url, "--script", write_script(tmp_path, SENTENCES[:1]), *extra,
            env={"WHIP_TOKEN": "not-the-" + TOKEN}, timeout=60,
        )
        assert len(refusing.posts) == 1, "a refusal a retry would get again was retried"
    err = r.stderr.decode()
    assert r.returncode == 5, text(r)
    lines = err.strip().splitlines()
    assert lines[-1].startswith("linly-push: error: ffmpeg exited") and says in lines[-1], err
    assert "Traceback" not in err and TOKEN not in text(r)
    assert [e["event"] for e in events(r)][-1] == "error" and not [e for e in events(r) if e["event"] == "dropped"]


def test_a_server_error_is_retried_like_an_outage(tmp_path):
    with WhipEndpoint(status=500) as failing:
        r = linly(
            "live", "--json", "--url", failing.url, "--script", write_script(tmp_path, SENTENCES[:1]),
            "--set", "reconnect.give_up_after=2", "--set", "reconnect.first_delay=0.2", timeout=60,
        )
        assert len(failing.posts) >= 2
    assert r.returncode == 5, text(r)
    dropped = [e for e in events(r) if e["event"] == "dropped"]
    assert dropped and "failed on its side" in dropped[0]["reason"]
    assert r.stderr.decode().strip().splitlines()[-1].startswith("linly-push: error: gave up after 2 s")


@pytest.mark.parametrize("how", ["abrupt", "notify"])
def test_a_dropped_endpoint_is_reconnected_and_the_cut_sentence_said_again(whip, tmp_path, how):
    """abrupt: the endpoint's process is gone (ffmpeg hears ICMP unreachable at once). notify: it
    closes the DTLS session and goes quiet, as an SFU does; ffmpeg 9.0 then hangs for good, deaf
    to SIGTERM, and the stall watchdog has to kill it."""
    live = Broadcast("--url", whip.url, "--script", write_script(tmp_path), "--set", "reconnect.first_delay=0.5")
    live.wait_for("sentence", 2)
    whip.wait_session(1).wait(video_frames=25, timeout=20)
    whip.drop(how)
    whip.allow()  # new sessions are answered again; the dropped one stays dead
    dropped = live.wait_for("dropped", timeout=40)
    assert dropped["connected"] is True and dropped["resume_sentence"] in (1, 2)
    live.wait_for("reconnected", timeout=40)
    again = whip.wait_session(2, timeout=30)
    code, err = live.finish()
    assert code == 0, err
    again.wait(video_frames=50, audio_seconds=2, timeout=10)
    said = [e["index"] for e in live.of("sentence")]
    story = [(e["event"], e.get("index"), e.get("resume_sentence"), e.get("reason")) for e in live.events if e["event"] != "status"]
    assert said[-1] == len(SENTENCES) and said.count(dropped["resume_sentence"]) == 2, story
    assert live.of("finished")[0]["reconnects"] == 1


def test_whip_beside_rtmp_and_a_recording_shares_one_encode(whip, rtmp_server, tmp_path):
    record = tmp_path / "show.mkv"
    live = Broadcast(
        "--url", whip.url, "--url", url(rtmp_server), "--script", write_script(tmp_path, SENTENCES[:2]), "--record", str(record),
    )
    code, err = live.finish()
    assert code == 0, err
    assert all(d["complete"] for d in live.of("finished")[0]["destinations"]) and len(live.of("finished")[0]["destinations"]) == 3
    session = whip.wait_session(1)
    assert session.audio_codec == "audio/opus" and session.audio_seconds > 2 and len(session.video) > 50
    # RTMP, and so the recording beside it, keeps AAC; the picture is the one WebRTC encode.
    for path in (record, *rtmp_server.recordings()):
        got = probe(path)
        assert (got.audio["codec_name"], got.video["profile"]) == ("aac", "Constrained Baseline"), path
        assert float(got.format["duration"]) > 4, path
    assert len(rtmp_server.recordings()) == 1


def test_a_token_variable_that_is_not_set_is_a_usage_error_before_anything_is_sent(whip, tmp_path):
    r = linly("live", "--url", whip.url, "--script", write_script(tmp_path, SENTENCES[:1]), "--set", "whip.token_env=NOT_SET_ANYWHERE")
    assert r.returncode == 2, text(r)
    assert "environment variable NOT_SET_ANYWHERE is not set or empty (whip.token_env" in r.stderr.decode()
    assert not whip.posts


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs an ffmpeg on PATH")
def test_an_ffmpeg_that_cannot_push_whip_is_named_with_what_it_lacks(whip, tmp_path):
    listed = subprocess.run(["ffmpeg", "-hide_banner", "-muxers"], capture_output=True, text=True).stdout
    if " whip " in listed:
        pytest.skip("the ffmpeg on PATH has a whip muxer")
    r = linly("live", "--url", whip.url, "--script", write_script(tmp_path, SENTENCES[:1]), env={"LINLY_PUSH_FFMPEG": "ffmpeg"})
    assert r.returncode == 2, text(r)
    line = r.stderr.decode().strip().splitlines()[-1]
    assert "cannot push WebRTC: it lacks the whip muxer" in line and "unset it to use the imageio-ffmpeg wheel's" in line
    assert not whip.posts


def test_backends_names_the_ffmpeg_that_pushes_webrtc():
    r = linly("backends")
    assert r.returncode == 0, text(r)
    assert "WebRTC (WHIP): ffmpeg" in r.stdout.decode()


def test_sigterm_ends_a_whip_push_cleanly_and_closes_the_session(whip, tmp_path):
    live = Broadcast("--url", whip.url, "--script", write_script(tmp_path))
    live.wait_for("sentence", 1)
    session = whip.wait_session(1)
    session.wait(video_frames=10, timeout=20)
    live.proc.send_signal(signal.SIGTERM)
    code, err = live.finish(timeout=30)
    assert code == 143, err
    assert err.strip().splitlines()[-1].startswith("linly-push: terminated")
    assert session.ended.wait(10) and session.end_reason == "DELETE"  # ffmpeg closed the session itself
