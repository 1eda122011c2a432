"""Every Python block of README.md, run as written, in order, in one namespace (as a
reader pastes them into one session), in a fresh folder with the data, model and
library homes inside it. The default suite runs them on smaller data (the
substitutions below, applied to the numbers only); ``-m slow`` runs them exactly as
written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: smaller data and fewer epochs for the default suite: the code is the README's
QUICK = {r'make_dataset\("av-digits"\)': 'make_dataset("av-digits", limit=3)',
         r"limit=10\b": "limit=5", r"max_epochs=\d+": "max_epochs=1"}


def python_blocks(text: str) -> list[str]:
    """The fenced ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _run(blocks: list[str], folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder)
    for name, sub in (("POLYMODAL_DATA", "data"), ("POLYMODAL_LIBRARIES", "libraries"),
                      ("POLYMODAL_MODELS", "models")):
        monkeypatch.setenv(name, str(folder / sub))
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block that failed
            raise AssertionError(f"README block {i + 1} failed: {exc!r}\n{block}") from exc
    return namespace


def test_the_readme_has_the_blocks_it_promises():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    assert "Predictor(" in blocks[0] and ".save(" in blocks[0]


def _check(namespace: dict, folder: Path) -> None:
    assert (folder / "model" / "config.yaml").exists()  # block 1 saved its model
    assert (folder / "model" / "auto").is_dir()  # the auto fit's kept members
    board = namespace["predictor"].leaderboard()
    assert (board["weight"] > 0).any() and (board["status"] == "ok").any()
    assert (folder / "pretrained" / "config.yaml").exists()
    assert len(namespace["lib"]) > 0 and (folder / "libraries" / "stamps").is_dir()
    assert tuple(namespace["vectors"].shape) == (2, 384)


def test_readme_blocks_run_on_small_data(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    for pattern, quick in QUICK.items():
        text = re.sub(pattern, quick, text)
    namespace = _run(python_blocks(text), tmp_path, monkeypatch)
    _check(namespace, tmp_path)


@pytest.mark.slow
def test_readme_blocks_run_as_written(tmp_path, monkeypatch):
    namespace = _run(python_blocks(README.read_text(encoding="utf-8")), tmp_path,
                     monkeypatch)
    _check(namespace, tmp_path)
    # the whole av-digits has enough validation rows for the network: its curves travel
    assert (tmp_path / "model" / "learning_curves.png").exists()
