"""The web page in a real headless Chromium (Debian's chromium driven by Playwright),
driven as a person would: what the page shows on load, after a search in words, after
a picture upload, after a question, for a link with ``?q=``, when nothing is close, and
on a server that needs a key."""

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


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def _search_says(page, query: str, text: str) -> None:
    """Search ``query`` on the page: the status says ``text`` and no card is left."""
    from playwright.sync_api import expect

    page.fill("#query", query)
    page.click("#search-button")
    expect(page.locator("#status")).to_contain_text(text)
    assert page.locator("#results .card").count() == 0


def _scores(page) -> list[float]:
    texts = page.locator("#results .card .score").all_inner_texts()
    return [float(t.split()[-1]) for t in texts]


def test_search_upload_and_ask_in_a_browser(server, browser, tmp_path):
    from playwright.sync_api import expect

    picture = tmp_path / "blue.png"
    Image.new("RGB", (32, 32), (30, 40, 220)).save(picture)
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(server)
    # on load: the library's items, what to try, items (not facets), and only the
    # uploads the model takes (this one embeds pictures and words, not sounds)
    expect(page.locator("#library")).to_contain_text("photos (72 items)")
    expect(page.locator("#hint")).to_contain_text("12 of 72 items")
    expect(page.locator("#hint")).to_contain_text("a picture")
    cards = page.locator("#results .card")
    assert cards.count() == 12
    expect(page.locator("#image-label")).to_be_visible()
    expect(page.locator("#audio-label")).to_be_hidden()
    expect(page.locator("#key-label")).to_be_hidden()  # no key set on this server
    page.fill("#query", "red")
    page.click("#search-button")
    expect(page.locator("#hint")).to_be_empty()
    expect(cards.first.locator(".score")).to_be_visible()
    assert cards.count() >= 5 and min(_scores(page)) > 0  # nothing less than unrelated
    texts = [cards.nth(i).locator(".text").inner_text() for i in range(5)]
    assert sum("red" in t for t in texts) >= 3, texts  # captions, not file stems
    assert page.url.endswith("?q=red")  # the search can be linked
    page.wait_for_function("document.querySelector('#results img').naturalWidth > 0")
    page.set_input_files("#image-upload", str(picture))
    expect(page.locator("#preview")).to_contain_text("Searched with blue.png")
    page.wait_for_function("document.querySelector('#query-media').naturalWidth > 0")
    expect(cards.first.locator(".text")).to_contain_text("blue")
    page.fill("#query", "yellow")
    page.click("#ask-button")
    expect(page.locator("#answer")).to_contain_text("Best match")
    expect(page.locator("#answer")).to_contain_text("yellow")
    expect(page.locator("#preview")).to_be_empty()  # the picture of the last search goes
    shot = Path(os.environ.get("POLYMODAL_SCREENSHOT", tmp_path / "page.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.fill("#query", "red")
    page.click("#search-button")
    expect(page.locator("#answer")).to_be_empty()
    page.wait_for_function("document.querySelector('#results img') && "
                           "document.querySelector('#results img').naturalWidth > 0")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # an error clears the results of the search before it (no stale results under it)
    _search_says(page, " ", "empty")
    page.close()


def test_a_link_with_q_searches_and_nothing_close_says_so(server, browser):
    import json

    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{server}/?q=green")
    expect(page.locator("#query")).to_have_value("green")
    cards = page.locator("#results .card")
    expect(cards.first).to_be_visible()
    assert "green" in cards.first.locator(".text").inner_text()
    # the server found nothing above zero similarity: the page says so, shows no cards
    page.route("**/api/search?*", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({"query": "x", "hits": []})))
    _search_says(page, "a spaceship", "Nothing in the library is close")
    page.close()


def test_a_server_with_a_key_asks_for_it_first(colour_library, browser):
    from playwright.sync_api import expect

    from polymodal.serve import create_app, serving

    with serving(create_app("photos", colour_library, api_key="k3y")) as url:
        page = browser.new_page()
        page.goto(url)
        expect(page.locator("#key-label")).to_be_visible()
        expect(page.locator("#hint")).to_contain_text("needs an API key")
        page.fill("#api-key", "k3y")
        page.dispatch_event("#api-key", "change")
        expect(page.locator("#results .card").first).to_be_visible()
        page.evaluate("localStorage.clear()")
        page.close()


def test_a_late_answer_never_replaces_a_newer_one(server, browser):
    """Found taking the docs' screenshot: a question asked before the first look at the
    library had arrived was answered, then the late sample replaced its evidence."""
    from playwright.sync_api import expect

    held = []
    page = browser.new_page()
    page.route("**/api/items?*", lambda route: held.append(route))  # the first look waits
    page.goto(server)
    page.wait_for_function("document.getElementById('library').textContent !== '…'")
    page.fill("#query", "yellow")
    page.click("#ask-button")
    expect(page.locator("#answer")).to_contain_text("yellow")
    cards = page.locator("#results .card")
    expect(cards.first).to_be_visible()
    evidence = cards.all_inner_texts()
    assert held, "the first look was not held"
    held[0].continue_()  # the old request's answer arrives now
    expect(page.locator("#library")).to_contain_text("72 items")
    assert cards.all_inner_texts() == evidence  # the evidence stays
    expect(page.locator("#hint")).to_be_empty()
    page.close()
