"""The web page in a real headless Chromium (Debian's chromium driven by Playwright):
what a person sees after searching in words, uploading a picture and asking."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(make sysdeps installs it)")


@pytest.fixture(scope="module")
def server(colour_library):
    from polymodal.serve import create_app, serving

    with serving(create_app("photos", colour_library)) as url:
        yield url


def test_search_upload_and_ask_in_a_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    picture = tmp_path / "blue.png"
    Image.new("RGB", (32, 32), (30, 40, 220)).save(picture)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server)
        expect(page.locator("#library")).to_contain_text("photos")
        page.fill("#query", "red")
        page.click("#search-button")
        cards = page.locator("#results .card")
        expect(cards.first).to_be_visible()
        assert cards.count() >= 5
        texts = [cards.nth(i).locator(".text").inner_text() for i in range(5)]
        assert sum("red" in t for t in texts) >= 3, texts
        # thumbnails are loaded and shown (not broken images)
        page.wait_for_function("document.querySelector('#results img').naturalWidth > 0")
        page.set_input_files("#image-upload", str(picture))
        expect(cards.first.locator(".text")).to_contain_text("blue")
        page.fill("#query", "yellow")
        page.click("#ask-button")
        expect(page.locator("#answer")).to_contain_text("Best match")
        expect(page.locator("#answer")).to_contain_text("yellow")
        shot = Path(os.environ.get("POLYMODAL_SCREENSHOT", tmp_path / "page.png"))
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.fill("#query", " ")
        page.click("#search-button")
        expect(page.locator("#status")).to_contain_text("empty")
        browser.close()
