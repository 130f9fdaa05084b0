"""The operator page at / (issue 11), in a real headless Chromium (Debian's, with its driver):
status, a say box, the queue, interrupt, live events — and the token prompt."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from optional import need
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
    c = Controlled(rtmp_server)
    try:
        browser.get(f"http://127.0.0.1:{c.port}/")
        text = lambda i: browser.find_element("id", i).text  # noqa: E731
        until("on air", lambda: text("state") == "on air")
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
