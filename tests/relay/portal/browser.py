"""Headless Debian Chromium driven by Playwright, with console/CSP error collection.

Playwright never downloads a browser here: it launches /usr/bin/chromium with
background networking off (the test machine has no way out).  Every page of a
context reports console errors, uncaught exceptions and CSP violations into
`Tab.problems`; tests assert it stays empty.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Generous: a loaded 2-core CI machine can stall Chromium for seconds; these only bound success.
TIMEOUT_MS = 20_000
EXPECT_TIMEOUT_MS = 15_000
# expect() does not use the context's timeouts and defaults to 5 s; it is process-wide.
expect.set_options(timeout=EXPECT_TIMEOUT_MS)

# Runs before any page script; CSP does not apply to it, and it reports what CSP blocks.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


def require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing and CI=true (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=20_000
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    """One account's browser context and page, saving numbered screenshots."""

    page: Page
    name: str
    shots: Path
    problems: list[str] = field(default_factory=list)
    step: int = 0

    async def shot(self, what: str) -> Path:
        self.step += 1
        path = self.shots / f"{self.name}-{self.step:02d}-{what}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


async def open_tab(
    browser: Browser, base_url: str, name: str, shots: Path, *, javascript: bool = True
) -> Tab:
    context = await browser.new_context(
        base_url=base_url, viewport={"width": 1280, "height": 800}, java_script_enabled=javascript
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    await context.add_init_script(_REPORT_CSP)
    page = await context.new_page()
    tab = Tab(page=page, name=name, shots=shots)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.problems.append(f"console: {message.text} at {page.url}")

    def on_page_error(error: Error) -> None:
        tab.problems.append(f"page error: {error} at {page.url}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return tab
