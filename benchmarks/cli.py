"""The command line's start-up: whole-process CPU seconds of commands that need no
model, against bare Python and against importing torch, in one run."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from benchmarks.report import Section
from polymodal.data.bundled import make_dataset


def cpu_seconds(args: list[str], repeats: int) -> float:
    """The least user + system CPU seconds of ``repeats`` runs of ``args`` (a whole
    process: interpreter start-up and imports included)."""
    best = float("inf")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(args, check=True, capture_output=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return best


def run(quick: bool = False) -> Section:
    repeats = 2 if quick else 5
    manifest = Path(make_dataset("av-digits", limit=3, show_progress=False))
    py = sys.executable
    cases = [
        ("python -c pass (baseline)", [py, "-c", "pass"]),
        ("polymodal --help", [py, "-m", "polymodal.cli", "--help"]),
        ("polymodal datasets list", [py, "-m", "polymodal.cli", "datasets", "list"]),
        ("polymodal schema (30 rows)", [py, "-m", "polymodal.cli", "schema", str(manifest)]),
        ("python -c 'import torch' (what the commands no longer pay)",
         [py, "-c", "import torch"]),
    ]
    section = Section(
        key="cli-startup", title="Command line: start-up without a model",
        command="python -m benchmarks --only cli-startup" + (" --quick" if quick else ""),
        columns=["command", "CPU s", "over bare Python s", "ratio to bare Python"])
    base = cpu_seconds(cases[0][1], repeats)
    for name, args in cases:
        s = base if args is cases[0][1] else cpu_seconds(args, repeats)
        section.rows.append([name, f"{s:.2f}", f"{s - base:.2f}", f"{s / base:.1f}"])
    section.notes = (
        "Whole-process CPU seconds (user + system, the least of "
        f"{repeats} runs, one thread), interpreter start-up included. The commands that "
        "need no model import no torch, Lightning, transformers, LanceDB or scikit-learn "
        "(`tests/test_cli_runs.py` checks it in a fresh interpreter); before issue 17 "
        "`polymodal --help` imported torch and Lightning first.")
    return section
