"""``python -m benchmarks.screenshot``: the library's web page in headless Chromium
after a question, saved as a PNG for the docs.

    python -m benchmarks.screenshot --library tuxpaint --question "a red sports car" \\
        --out docs/img/library-tuxpaint.png
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from benchmarks.report import DOCS


def screenshot(library: str, root: Path | None, question: str, out: Path,
               width: int = 1200, height: int = 900) -> Path:
    """Serve ``library`` on a free loopback port, ask ``question`` on its page and save
    what a person sees (full page) to ``out``."""
    from playwright.sync_api import expect, sync_playwright

    from polymodal.serve import create_app, serving

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (make sysdeps installs it)")
    with serving(create_app(library, root)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.fill("#query", question)
        page.click("#ask-button")
        expect(page.locator("#answer")).to_contain_text("Evidence", timeout=60_000)
        # a thumbnail's src is set when its fetch returns: an image without one is
        # "complete" too, so wait for every one to have its pixels
        page.wait_for_function(
            "[...document.querySelectorAll('#results img')].every(i => i.naturalWidth > 0)",
            timeout=60_000)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screenshot",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", required=True)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--question", default="a red sports car")
    parser.add_argument("--out", type=Path, default=DOCS / "img" / "library-tuxpaint.png")
    args = parser.parse_args(argv)
    print(screenshot(args.library, args.root, args.question, args.out))


if __name__ == "__main__":
    main()
