"""Shared by the browser tests: headless Chromium (Debian's package) driven by Playwright."""
import os
import shutil

import pytest

CHROMIUM = os.environ.get("KAFKALAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("no Chromium: install Debian's `chromium` package (.ci/run does) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extra)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()
