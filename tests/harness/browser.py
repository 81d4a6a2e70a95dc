"""Airflow 3's UI in a real browser: Playwright driving Debian's Chromium (``apt-get install chromium``).

Harness, not provider: it lives with the tests (``tests/browser``) and never ships in the provider's wheel.

Playwright is given the executable of the system's Chromium (:func:`chromium_executable`); it never downloads a browser
of its own (no ``playwright install``): ``make test`` installs Debian's package when it is missing. The browser runs
headless and talks only to 127.0.0.1 (the stack's api-server and UI).

:class:`Screenshots` keeps what a test saw: numbered PNGs of its key steps in its output folder
``var/test-output/browser/<test name>/`` (under the repository root; ``var/`` is git-ignored), plus one on failure.

Nothing here imports Airflow.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, expect, sync_playwright

__all__ = [
    "CHROMIUM_CANDIDATES",
    "OUTPUT_ROOT",
    "PAGE_WAIT_MS",
    "BrowserNotInstalled",
    "Screenshots",
    "chromium_executable",
    "launch_chromium",
    "log_in",
    "new_context",
    "output_folder",
]

ROOT = Path(__file__).resolve().parents[2]
#: Where each browser test keeps its screenshots, one folder per test.
OUTPUT_ROOT = ROOT / "var" / "test-output" / "browser"
#: Debian's Chromium (package ``chromium``): the wrapper script first, then the binary it starts.
CHROMIUM_CANDIDATES = (Path("/usr/bin/chromium"), Path("/usr/lib/chromium/chromium"))
#: One window size for every test: screenshots compare, and the UI lays its menus out the same way.
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
#: How long an action or an ``expect`` waits for the page: what the page shows next often waits on the api-server,
#: which a busy 2-core CI machine (a scheduler and e2e tests on the other worker) answers in seconds, not milliseconds.
#: Playwright's own default for ``expect`` is 5 s, too short there (a saved connection's dialog took longer to close).
PAGE_WAIT_MS = 30_000


class BrowserNotInstalled(RuntimeError):
    """Debian's Chromium is missing; the message says what to install (the tests fail, they are never skipped)."""


def chromium_executable() -> Path:
    """The executable of Debian's Chromium; BrowserNotInstalled naming the package when there is none."""
    for candidate in CHROMIUM_CANDIDATES:
        if candidate.is_file() and candidate.stat().st_mode & 0o111:
            return candidate
    tried = ", ".join(str(path) for path in CHROMIUM_CANDIDATES)
    raise BrowserNotInstalled(
        f"no Chromium at {tried}: the browser tests drive Debian's Chromium. As root, "
        "apt-get install -y --no-install-recommends chromium (or make chromium), then run the tests again"
    )


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; closed (and its driver stopped) on exit."""
    executable = chromium_executable()
    playwright: Playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable),
            headless=True,
            # No sandbox: the tests run as root (CI too), where Chromium refuses its sandbox. No shared-memory file
            # system of its own size in containers: /dev/shm is small there.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


def new_context(browser: Browser, base_url: str) -> BrowserContext:
    """A fresh browser profile (no cookies) for one test, on the stack's UI, English, UTC, one window size."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(PAGE_WAIT_MS)
    expect.set_options(timeout=PAGE_WAIT_MS)
    return context


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    """Log into Airflow 3's UI through the simple auth manager's login form, as a user does; back on the home page."""
    page.goto(f"{base_url}/")
    # Not logged in: the UI sends the browser to the auth manager's login page.
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Admin")).to_be_visible()


def output_folder(test_name: str) -> Path:
    """The test's own folder under :data:`OUTPUT_ROOT`, emptied (what an earlier run saw is gone), created."""
    safe = re.sub(r"[^A-Za-z0-9_.\-]+", "_", test_name).strip("_") or "test"
    folder = OUTPUT_ROOT / safe
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


class Screenshots:
    """Numbered full-page screenshots of one test, in its output folder: ``01-login.png``, ``02-…``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[Path] = []
        self._numbered = 0

    def take(self, page: Page, step: str) -> Path:
        """Save what the page shows now as the next numbered PNG named after ``step``; its path."""
        self._numbered += 1
        return self._save(page, f"{self._numbered:02d}-{_file_name(step)}.png")

    def keep(self, page: Page, name: str) -> Path:
        """Save what the page shows now as ``<name>.png``, unnumbered: a picture other places use by its name."""
        return self._save(page, f"{_file_name(name)}.png")

    def _save(self, page: Page, file_name: str) -> Path:
        path = self.folder / file_name
        # Animations finished first: a menu that is opening is shown opened, not half faded in.
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        self.taken.append(path)
        return path


def _file_name(step: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "-", step).strip("-") or "step"
