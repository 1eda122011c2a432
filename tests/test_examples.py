"""The examples in examples/ run end to end on small data through the public API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("examples")
    return {**os.environ, "POLYMODAL_MODELS": str(home / "models"),
            "POLYMODAL_LIBRARIES": str(home / "libraries"), "OMP_NUM_THREADS": "1"}


def run(script: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_quickstart(env, tmp_path):
    text = run("quickstart.py", "--limit", "3", "--epochs", "1", "--out", str(tmp_path),
               env=env)
    assert "accuracy" in text and "all columns" in text
    assert (tmp_path / "model" / "config.yaml").exists()


def test_library_qa_indexes_asks_and_searches_by_picture(env):
    text = run("library_qa.py", "--limit", "3", "--library", "ex", env=env)
    assert "96 added" in text  # every tuxpaint-limit3 stamp's picture and caption
    assert text.count("\nQ: ") == 4 and "[retrieval]" in text
    assert "pictures like" in text
    again = run("library_qa.py", "--limit", "3", "--library", "ex", "--question", "a cow",
                env=env)
    assert "0 added, 0 updated, 96 unchanged" in again


def test_recommend_example(env):
    text = run("recommend_tuxpaint.py", "--limit", "3", "--users", "60", env=env)
    for method in ("popularity", "content", "two-tower"):
        assert f"{method:>10}: hit_rate@10" in text
    assert "recommended:" in text
