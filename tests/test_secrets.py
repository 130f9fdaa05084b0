"""Stream keys from the environment never appear in anything linly-push prints (issue 9): wherever
a `${VAR}` stands in the URL, on air and when the server is not there. Real nginx-rtmp."""

from __future__ import annotations

import pytest

from broadcast import SENTENCES, SMALL, write_script
from cli_run import linly, text
from rtmp_server import RtmpServer, free_port

pytestmark = pytest.mark.live

SECRETS = {"APP": "app-s3cret-42", "TOKEN": "t0ken-s3cret", "WHO": "us3r-s3cret", "KEY": "k3y-one/k3y-two"}


@pytest.fixture
def secret_app(tmp_path):
    """nginx-rtmp whose application name is itself a secret."""
    server = RtmpServer(tmp_path / "rtmp", app=SECRETS["APP"])
    server.start()
    yield server
    server.stop()


def leaks(r) -> list[str]:
    everything = text(r)
    pieces = {p for v in SECRETS.values() for p in (v, *v.split("/"), *v.split("-")) if len(p) >= 4}
    return sorted(p for p in pieces if p in everything)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/${APP}/stream", "/****/****"),
        ("/${APP}/stream?token=${TOKEN}", "/****/****?****"),
    ],
)
def test_on_air_no_value_is_printed(secret_app, tmp_path, path, shown):
    url = f"rtmp://127.0.0.1:{secret_app.port}{path}"
    r = linly("live", "--script", write_script(tmp_path, SENTENCES[:1]), "--url", url, "--json", *SMALL,
              env=SECRETS, timeout=120)
    assert r.returncode == 0, text(r)
    assert leaks(r) == []
    assert f'"output": "rtmp://127.0.0.1:{secret_app.port}{shown}"' in r.stdout.decode()
    assert len(secret_app.recordings()) == 1  # it did go on air


@pytest.mark.parametrize(
    "path", ["/${APP}/stream", "/live/${KEY}", "/live/x?token=${TOKEN}", "/${APP}/x/${KEY}"]
)
def test_errors_print_no_value(tmp_path, path):
    url = f"rtmp://127.0.0.1:{free_port()}{path}"
    r = linly("live", "--script", write_script(tmp_path, SENTENCES[:1]), "--url", url, "--json", *SMALL,
              "--set", "reconnect.give_up_after=0", env=SECRETS, timeout=60)
    assert r.returncode == 5, text(r)
    assert "Connection refused" in r.stderr.decode()
    assert leaks(r) == []


def test_a_user_name_from_the_environment_is_masked(tmp_path):
    url = f"rtmp://${{WHO}}@127.0.0.1:{free_port()}/live/stream"
    r = linly("live", "--script", write_script(tmp_path, SENTENCES[:1]), "--url", url, "--json", *SMALL,
              "--set", "reconnect.give_up_after=0", env=SECRETS, timeout=60)
    assert r.returncode == 5, text(r)
    assert leaks(r) == []
    assert "rtmp://****@127.0.0.1:" in r.stdout.decode()
