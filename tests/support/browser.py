"""The console as a person sees it: Debian's headless Chromium through its chromedriver (Selenium).

No browser is downloaded: ``scripts/ensure-browser`` installs ``chromium`` and ``chromium-driver``
from Debian, and Selenium is pointed at both binaries, so Selenium Manager never runs. Waits poll
a condition until a deadline and yield to the event loop in between (the tests are asyncio, and
the stack's observers must keep reading while the page works).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support.processes import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Quiet, offline, reproducible: no first-run UI, no background fetches, no GPU, no QUIC.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-device-scale-factor=1",
    "--lang=en-GB",
)
OUTPUT = ROOT / "build" / "test-output"
SESSION_STORE = "snapdeploy.console.session"  # where the console keeps its login (js/api.js)
T = TypeVar("T")


def require_browser() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    message = f"{CHROMIUM} or {CHROMEDRIVER} is missing: run scripts/ensure-browser (make test does)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def output_dir(test_name: str) -> Path:
    """build/test-output/<test>/ (never committed), emptied for this run."""
    folder = OUTPUT / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


class Browser:
    def __init__(self, base_url: str, output: Path, *, width: int = 1360, height: int = 900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        require_browser()
        self.base_url = base_url.rstrip("/")
        self.output = output
        self._profile = tempfile.TemporaryDirectory(prefix="snapdeploy-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile.name}")
        options.add_argument(f"--window-size={width},{height}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        self.driver.set_page_load_timeout(30)

    # -- navigation and reading ------------------------------------------------------------------------

    def open(self, path: str = "") -> None:
        """``open("#/instances")``: the console page at that route."""
        self.driver.get(f"{self.base_url}/console/{path}")

    def go(self, route: str) -> None:
        """Change the route inside the loaded page, as a link click would."""
        self.driver.execute_script("location.hash = arguments[0]", route)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css: str) -> list[str]:
        return [element.text for element in self.find_all(css)]

    def text(self, css: str = "main") -> str:
        found = self.find_all(css)
        return found[0].text if found else ""

    @property
    def route(self) -> str:
        return self.driver.execute_script("return location.hash")

    async def wait(self, condition: Callable[[], T], what: str, timeout: float = 30.0) -> T:
        """The first truthy value of ``condition()``; fails with the page's text after ``timeout``."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
                if value:
                    return value
            except (StaleElementReferenceException, WebDriverException):
                pass  # the page re-rendered under us: ask again
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the page shows:\n{self.text('body')}")
            await asyncio.sleep(0.1)

    async def wait_for(self, css: str, what: str | None = None, timeout: float = 30.0):
        return await self.wait(lambda: self.find_all(css) and self.find_all(css)[0], what or css, timeout)

    async def wait_text(self, css: str, needle: str, timeout: float = 30.0) -> str:
        return await self.wait(
            lambda: needle in self.text(css) and self.text(css), f"{needle!r} in {css}", timeout
        )

    def errors(self) -> list[str]:
        """Script errors the page logged (a broken page must fail the test, not just look odd).
        An api answer with an error status is logged too; it is the page's to show, not an error."""
        logged = self.driver.get_log("browser")
        return [
            e["message"]
            for e in logged
            if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
        ]

    def api(self, command: str, **params: str) -> tuple[int, dict]:
        """One api call through the page's own login session (its cookie and session key), as any
        script on the page could make it: (HTTP status, body)."""
        return self.driver.execute_async_script(
            """const [store, command, params, done] = arguments;
               const key = JSON.parse(sessionStorage.getItem(store)).sessionkey;
               const body = new URLSearchParams({...params, command, response: "json", sessionkey: key});
               fetch("/client/api", {method: "POST", body})
                 .then((r) => r.json().then((json) => done([r.status, json])));""",
            SESSION_STORE,
            command,
            params,
        )

    # -- forms ---------------------------------------------------------------------------------------

    def fill(self, css: str, value: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def click(self, css: str) -> None:
        self.find(css).click()

    async def login(self, username: str, password: str) -> None:
        self.open()
        await self.wait_for("#username", "the login form")
        self.fill("#username", username)
        self.fill("#password", password)
        self.click("form.login button[type=submit]")
        await self.wait_for(".topbar", "the console after logging in")

    # -- pictures ------------------------------------------------------------------------------------

    def screenshot(self, name: str) -> Path:
        """The whole page (not just the window) as ``<output>/<name>.png``."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
        )
        path = self.output / f"{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            self._profile.cleanup()
