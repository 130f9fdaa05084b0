"""The operator page at / (issue 11), in a real headless Chromium (Debian's, with its driver):
status, a say box, the queue, interrupt, live events — the token prompt, the page the show
writes for its operator, and a page of another site that tries to drive the show (issue 18)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from optional import need
from rtmp_server import free_port
from test_control import LONG, Controlled

need("aiohttp", "control")
webdriver = need("selenium.webdriver", "test")
pytestmark = pytest.mark.live

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and DRIVER):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing under CI")
        pytest.skip("needs Debian's chromium and chromium-driver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1000,1200", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def until(what: str, ok, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (found := ok()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)
    return found


def test_the_page_drives_the_show(rtmp_server, browser, tmp_path):
    c = Controlled(rtmp_server)  # no token of its own: it makes one
    try:
        # The page the show wrote for its operator opens the operator page, signed in.
        browser.get(Path(c.control["page_file"]).as_uri())
        until("the operator page", lambda: browser.current_url.startswith(f"http://127.0.0.1:{c.port}/"))
        text = lambda i: browser.find_element("id", i).text  # noqa: E731
        until("on air", lambda: text("state") == "on air")
        assert c.token not in browser.current_url  # taken out of the address bar
        assert not browser.find_element("id", "token-box").is_displayed()
        browser.find_element("id", "say-text").send_keys(LONG)
        browser.find_element("id", "say").click()
        until("queued", lambda: text("message").startswith("queued as q"))
        c.wait_for("sentence", text=LONG)
        until("speaking", lambda: text("speaking") == "yes")
        until("the sentence in the event log", lambda: "sentence" in text("log") and LONG[:20] in text("log"))
        browser.save_screenshot(str(tmp_path / "page.png"))
        browser.find_element("id", "interrupt").click()
        until("interrupted", lambda: text("message") == "interrupted 1")
        c.wait_for("interrupted")
        until("quiet", lambda: text("speaking") == "no")
        until("no sentence shown once quiet", lambda: text("text") == "–")
        assert browser.get_log("browser") == [] or all(e["level"] != "SEVERE" for e in browser.get_log("browser"))
    finally:
        c.stop()


def test_the_page_asks_for_the_token(rtmp_server, browser):
    token = "page-t0ken-s3cret"
    c = Controlled(rtmp_server, env={"LINLY_PUSH_CONTROL_TOKEN": token})
    try:
        browser.get(f"http://127.0.0.1:{c.port}/")
        until("the token box", lambda: browser.find_element("id", "token-box").is_displayed())
        browser.find_element("id", "token").send_keys(token)
        browser.find_element("id", "use-token").click()
        until("on air", lambda: browser.find_element("id", "state").text == "on air")
        browser.find_element("id", "say-text").send_keys("Said from the page.")
        browser.find_element("id", "say").click()
        c.wait_for("sentence", text="Said from the page.")
    finally:
        c.stop()


ATTACK = """<!doctype html><meta charset="utf-8"><title>a page of another site</title>
<form id="form" method="POST" action="{api}/say" enctype="text/plain" target="sink">
  <input name='{{"text": "A form made me say this' value='."}}'>
</form>
<iframe name="sink"></iframe>
<iframe id="framed" src="{api}/"></iframe>
<script>
const api = "{api}", token = "{token}", said = JSON.stringify({{text: "A page made me say this."}});
const results = {{}};
const note = (name, value) => {{ results[name] = String(value); }};
async function attempt(name, run) {{
  try {{ note(name, await run()); }} catch (e) {{ note(name, "failed: " + e); }}
}}
(async () => {{
  await attempt("no-cors say", () => fetch(api + "/say", {{method: "POST", mode: "no-cors", body: said,
    headers: {{"Content-Type": "text/plain"}}}}).then((r) => r.type));
  await attempt("no-cors interrupt", () => fetch(api + "/interrupt", {{method: "POST", mode: "no-cors"}}).then((r) => r.type));
  await attempt("cors say with the token", () => fetch(api + "/say", {{method: "POST", body: said,
    headers: {{"Content-Type": "application/json", Authorization: "Bearer " + token}}}}).then((r) => r.status));
  const riff = new Uint8Array([82, 73, 70, 70]);
  await attempt("no-cors audio", () => fetch(api + "/audio?mode=now", {{method: "POST", mode: "no-cors", body: riff}})
    .then((r) => r.type));
  await attempt("read status", () => fetch(api + "/status", {{headers: {{Authorization: "Bearer " + token}}}})
    .then((r) => r.text()));
  await attempt("websocket", () => new Promise((resolve) => {{
    const ws = new WebSocket(api.replace("http", "ws") + "/ws");
    const got = [];
    ws.onmessage = (m) => got.push(m.data);
    ws.onerror = () => resolve("error after " + got.length + " messages");
    ws.onclose = () => resolve("closed after " + got.length + " messages");
    setTimeout(() => resolve("open with " + got.length + " messages"), 3000);
  }}));
  await attempt("event source", () => new Promise((resolve) => {{
    const es = new EventSource(api + "/events");
    let got = 0;
    es.onmessage = () => got++;
    es.addEventListener("status", () => got++);
    es.onerror = () => {{ es.close(); resolve("error after " + got + " events"); }};
    setTimeout(() => {{ es.close(); resolve("open with " + got + " events"); }}, 3000);
  }}));
  document.getElementById("form").submit();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  note("done", true);
  document.title = "done";
  window.results = results;
}})();
</script>"""


class _Site:
    """Another site: a plain web server on 127.0.0.1 at a port of its own (another origin)."""

    def __init__(self, root: Path) -> None:
        handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_page_of_another_site_cannot_drive_the_show(rtmp_server, browser, tmp_path):
    c = Controlled(rtmp_server)
    (tmp_path / "site").mkdir()
    site = _Site(tmp_path / "site")
    try:
        api = f"http://127.0.0.1:{c.port}"
        # The worst case: the page even knows the token (it leaked, or was typed into it).
        (tmp_path / "site" / "attack.html").write_text(ATTACK.format(api=api, token=c.token), encoding="utf-8")
        browser.get(f"{site.url}/attack.html")
        until("the attack to finish", lambda: browser.title == "done", timeout=90)
        results = browser.execute_script("return window.results")
        assert results["cors say with the token"].startswith("failed"), results  # the preflight was refused
        assert results["read status"].startswith("failed"), results
        assert results["websocket"] in ("error after 0 messages", "closed after 0 messages"), results
        assert results["event source"] == "error after 0 events", results
        # DNS rebinding, as a browser does it: a name of the page's own that leads to 127.0.0.1.
        browser.get(f"http://rebound.localhost:{c.port}/status")
        assert "is not 'rebound.localhost" in browser.page_source, browser.page_source[:500]
        said = browser.execute_async_script(
            "const done = arguments[1]; fetch('/say', {method: 'POST', body: JSON.stringify({text: 'Rebound.'}),"
            " headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + arguments[0]}})"
            ".then((r) => done(r.status), (e) => done(String(e)));", c.token)
        assert said == 403
        # Nothing of it reached the show, which carries on.
        c.wait_for("status", count=len(c.of("status")) + 2)
        assert c.of("queued") == [] and c.of("interrupted") == [] and c.of("dropped") == []
        assert c.request("GET", "/queue")[1]["items"] == []
    finally:
        site.close()
        c.stop()
