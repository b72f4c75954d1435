"""Headless Chromium from Debian's package, driven by the Python `playwright` package.

Playwright never downloads a browser here: it launches the system Chromium through
``executable_path``. Flags: no sandbox (tests may run as root), no GPU, and no background traffic
(the machine has no internet; without these Chromium keeps trying to reach Google's services).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the test extra installs playwright; importing this module needs none of it
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",  # lets the dashboard's Web Audio cue run in tests
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def chromium_binary() -> str | None:
    """$HAZARDWATCH_CHROMIUM, else Debian's /usr/bin/chromium, else chromium on PATH."""
    for candidate in (os.environ.get("HAZARDWATCH_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def browser_unavailable_reason() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if chromium_binary() is None:
        return "/usr/bin/chromium not found (run .ci/install-system.sh: Debian package chromium)"
    return None


def launch(playwright: Playwright) -> Browser:
    """Start the system Chromium headless through Playwright."""
    return playwright.chromium.launch(
        executable_path=chromium_binary(), args=CHROMIUM_FLAGS, headless=True
    )


def artifact_dir(name: str) -> Path:
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def signed_in_page(browser: Browser, url: str, token: str, errors: list[str], lang: str = "en", **context: Any) -> Page:
    """A fresh context (no cookies) on the dashboard at `url`, signed in through the form; page errors
    are appended to `errors`. `context` goes to new_context (viewport, timezone_id...)."""
    ctx = browser.new_context(
        **{"viewport": {"width": 1600, "height": 900}, "locale": "en-US" if lang == "en" else "zh-CN", **context}
    )
    page = ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + ("/?lang=zh" if lang == "zh" else "/"))
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#live[data-state='live']")
    return page
