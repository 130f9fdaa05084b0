from __future__ import annotations

import pytest
from broadcast import SMALL, write_script
from cli_run import linly, text

from linly_push import urls
from linly_push.errors import UsageError


def test_expand_replaces_braced_variables():
    env = {"KEY": "abc123", "HOST": "example.com"}
    assert urls.expand("rtmp://${HOST}/live/${KEY}", env) == "rtmp://example.com/live/abc123"


def test_expand_leaves_bare_dollars_alone():
    assert urls.expand("rtmp://h/live/a$b$KEY", {"KEY": "x"}) == "rtmp://h/live/a$b$KEY"


@pytest.mark.parametrize("env", [{}, {"STREAM_KEY": ""}])
def test_expand_names_the_missing_variable(env):
    with pytest.raises(UsageError, match=r"STREAM_KEY is not set"):
        urls.expand("rtmp://h/live/${STREAM_KEY}", env)


def test_expand_error_never_shows_other_values():
    with pytest.raises(UsageError) as err:
        urls.expand("rtmp://h/${APP}/${MISSING}", {"APP": "s3cr3t-app"})
    assert "s3cr3t-app" not in str(err.value)


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("rtmp://h/live/k", "rtmp"),
        ("RTMPS://h:443/live/k", "rtmp"),
        ("srt://h:9000?streamid=k", "srt"),
        ("http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=k", "whip"),
        ("HTTPS://h/k/whip", "whip"),
        ("out/show.mp4", "file"),
        ("/abs/show.flv", "file"),
        ("C:\\videos\\show.mkv", "file"),
    ],
)
def test_kind(target, kind):
    assert urls.kind(target) == kind


@pytest.mark.parametrize("target", ["ws://h/live/KEY", "udp://127.0.0.1:1234", "rtp://h:5000"])
def test_kind_rejects_other_schemes_naming_the_supported_ones(target):
    with pytest.raises(UsageError) as err:
        urls.kind(target)
    assert "rtmp://, rtmps://, srt://, or a WHIP endpoint at http(s)://" in str(err.value)
    assert "KEY" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtmp://host/app/KEY", "rtmp://host/app/****"),
        ("rtmp://host/app/KEY?x=y", "rtmp://host/app/****?****"),
        ("rtmps://live.example.com:443/app/sub/KEY/", "rtmps://live.example.com:443/app/sub/****/"),
        ("srt://host:9000?streamid=KEY&passphrase=PASSWORD", "srt://host:9000?****"),
        ("rtmp://user:PASSWORD@host/app/KEY", "rtmp://user:****@host/app/****"),
        ("rtmp://host/app", "rtmp://host/****"),  # a lone segment may be a key: over-masking is safe
        ("rtmp://127.0.0.1:1/sk_live_SECRET", "rtmp://127.0.0.1:1/****"),  # no key segment: nothing to hide
        ("out/show.mp4", "out/show.mp4"),
        # WHIP: the query (SRS's app, stream and secret) and any segment that looks like a key
        ("http://127.0.0.1:1985/rtc/v1/whip/?app=live&stream=KEY", "http://127.0.0.1:1985/rtc/v1/whip/?****"),
        ("http://127.0.0.1:8889/anchor/whip", "http://127.0.0.1:8889/anchor/whip"),
        (
            "https://customer-x.cloudflarestream.com/0123456789abcdef0123456789abcdefk/webRTC/publish",
            "https://customer-x.cloudflarestream.com/****/webRTC/publish",
        ),
        ("https://h/api/whip/stream42ab/x", "https://h/api/whip/****/x"),
    ],
)
def test_mask(url, masked):
    assert urls.mask(url) == masked


def test_mask_keeps_a_host_that_contains_the_key():
    assert urls.mask("rtmp://test.example.com/live/test") == "rtmp://test.example.com/live/****"


def test_secrets_of():
    url = "rtmp://u:pw@host/app/KEY?token=T"
    assert urls.secrets_of(url) == [url, "KEY", "token=T", "pw"]
    assert urls.secrets_of("show.mp4") == []


def test_redact_shows_urls_masked_and_hides_keys_anywhere():
    url = "rtmp://127.0.0.1:1935/live/sk_live_42"
    text = f"{url}: Connection refused\nstream sk_live_42 rejected"
    assert urls.redact(text, urls.secrets_of(url)) == (
        "rtmp://127.0.0.1:1935/live/****: Connection refused\nstream **** rejected"
    )


def test_redact_hides_percent_encoded_and_decoded_forms():
    text = "a%20b%2Bc%2Fd | a b+c/d | p%40ss%20word | p@ss%20word"
    assert urls.redact(text, ["a b+c/d", "p@ss word"]) == "**** | **** | **** | ****"
    url = "rtmp://h/live/my%20key"
    assert urls.redact("rtmp://h/live/my key: refused", urls.secrets_of(url)) == "rtmp://h/live/****: refused"


def test_redact_hides_a_key_that_also_occurs_in_the_host():
    url = "rtmp://test.example.com/live/test"
    out = urls.redact(f"Connection to {url} failed; host test.example.com", urls.secrets_of(url))
    assert "test" not in out
    assert out == "Connection to rtmp://****.example.com/live/**** failed; host ****.example.com"


def test_redact_srt_query():
    url = "srt://127.0.0.1:9000?streamid=publish:live/KEY&passphrase=0123456789ab"
    stderr = f"[srt @ 0x55] Connection to {url} failed: Input/output error"
    out = urls.redact(stderr, urls.secrets_of(url))
    assert out == "[srt @ 0x55] Connection to srt://127.0.0.1:9000?**** failed: Input/output error"


# -- values from the environment are secret wherever they land (issue 9) ------------------------

ENV = {"APP": "app-s3cret", "KEY": "k3y/with-slash", "TOKEN": "t0ken-x", "USER": "us3r-name", "SHORT": "xit"}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("rtmp://host/${APP}/live", "rtmp://host/****/****"),
        ("rtmp://${USER}@host/app/live", "rtmp://****@host/app/****"),
        ("rtmp://host/app/${KEY}", "rtmp://host/app/****"),
        ("rtmp://host/app/live?token=${TOKEN}", "rtmp://host/app/****?****"),
        ("rtmp://${APP}.example/app/live", "rtmp://****.example/app/****"),
    ],
)
def test_a_target_shows_every_environment_value_masked_where_it_stands(raw, shown):
    t = urls.target(raw, ENV)
    assert t.shown == shown
    assert t.url == urls.expand(raw, ENV)
    for value in ENV.values():
        for piece in (value, *value.split("/")):
            if piece in t.url and len(piece) >= 3:
                assert piece not in t.shown


def test_redactor_hides_values_whole_and_in_parts_in_ffmpeg_messages():
    t = urls.target("rtmp://127.0.0.1:1935/${APP}/${KEY}", ENV)
    scrub = urls.Redactor([t])
    stderr = (
        "[rtmp @ 0x55] Cannot open connection tcp://127.0.0.1:1935\n"
        "rtmp://127.0.0.1:1935/app-s3cret/k3y/with-slash: Input/output error\n"
        "[flv @ 0x55] app 'app-s3cret' stream 'k3y' playpath 'with-slash'"
    )
    out = scrub(stderr)
    for leak in ("app-s3cret", "k3y", "with-slash"):
        assert leak not in out
    assert "rtmp://127.0.0.1:1935/****/****: Input/output error" in out
    assert "tcp://127.0.0.1:1935" in out  # nothing secret there


def test_a_short_key_is_masked_where_it_stands_not_inside_words():
    t = urls.target("rtmp://host/live/${SHORT}", ENV)
    out = urls.Redactor([t])("ffmpeg exited with code 1: rtmp://host/live/xit: refused; stream xit exited")
    assert out == "ffmpeg exited with code 1: rtmp://host/live/****: refused; stream **** exited"


def test_a_missing_variable_names_it_and_no_other_value():
    with pytest.raises(UsageError) as err:
        urls.target("rtmp://host/${APP}/${NOPE}", ENV)
    assert "NOPE" in str(err.value) and "s3cret" not in str(err.value)


def test_whip_url_needs_a_path():
    with pytest.raises(UsageError, match=r"has no path: give the WHIP endpoint's whole URL"):
        urls.check("http://127.0.0.1:1985/")


def test_whip_keys_in_the_path_are_secrets():
    url = "https://customer-x.cloudflarestream.com/0123456789abcdef0123456789abcdefk/webRTC/publish"
    scrub = urls.Redactor([urls.Target.plain(url)])
    text = "[whip @ 0x1] Failed to POST to 0123456789abcdef0123456789abcdefk/webRTC/publish"
    assert "0123456789abcdef" not in scrub(text) and "webRTC/publish" in scrub(text)


@pytest.mark.parametrize("raw", ["rtmp://127.0.0.1/${KEY}", "rtmps://ingest.example:443/${KEY}/", "rtmp://h//${KEY}"])
def test_an_rtmp_url_without_an_application_is_refused_with_its_key_masked(raw):
    env = {"KEY": "live_8842_sEcReT"}
    with pytest.raises(UsageError) as err:
        urls.target(raw, env)
    message = str(err.value)
    assert f"'{urls.mask(raw.replace('${KEY}', '****'))}' has one path segment" in message
    assert f"{raw.split(':')[0]}://HOST/APP/KEY" in message
    assert "8842" not in message and "sEcReT" not in message


def test_an_rtmp_url_with_its_key_alone_is_refused_and_the_key_stays_hidden():
    with pytest.raises(UsageError) as err:
        urls.check("rtmp://127.0.0.1/live_8842_sEcReT")
    assert "'rtmp://127.0.0.1/****' has one path segment" in str(err.value) and "8842" not in str(err.value)
    urls.check("rtmp://127.0.0.1/live/live_8842_sEcReT")  # an application, then the key: fine


def test_live_to_an_rtmp_url_without_an_application_exits_2_at_once(tmp_path):
    # Before, this was retried as a connection (here for 2 s, by default for 3 minutes), then exit 5.
    r = linly("live", "--script", write_script(tmp_path), "--url", "rtmp://127.0.0.1:1/${STREAM_KEY}",
              "--set", "reconnect.give_up_after=2", *SMALL, env={"STREAM_KEY": "live_8842_sEcReT"}, timeout=120)
    assert r.returncode == 2, text(r)
    assert r.stderr.decode() == (
        "linly-push: error: 'rtmp://127.0.0.1:1/****' has one path segment, but RTMP needs an application and a "
        "stream key: write rtmp://HOST/APP/KEY (e.g. rtmp://127.0.0.1/live/test)\n"
    )
