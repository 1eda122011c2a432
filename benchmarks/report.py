"""Write benchmark sections into docs/benchmarks.md, each between its own markers, so a
benchmark run updates its section and leaves the others as they are."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: the repository's root: the harness writes into its docs/ and bench-results/ wherever
#: it is run from
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "bench-results"

HEADER = """# Benchmarks

Every number here was measured by `make bench` (or the command given in its section) on
the machine named in the section, against a baseline measured in the same run. Speed
is reported as a ratio to that baseline; no unit test asserts a time. `make bench`
runs every section in full (hours on 2 CPUs; the long ones resume where they stopped);
`make bench-quick` runs them all on small data into `bench-results/quick-report.md`.
"""


@dataclass
class Section:
    """One benchmark's results: a title, the command that reproduces it, a table."""

    key: str
    title: str
    command: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: str = ""

    def render(self) -> str:
        lines = [f"<!-- bench:{self.key} -->", f"## {self.title}", "",
                 f"Reproduce: `{self.command}`", "",
                 f"Machine: {machine_summary()}; measured {datetime.now(timezone.utc):%Y-%m-%d}.",
                 "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.columns)))
                 + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines += ["", self.notes]
        lines += [f"<!-- /bench:{self.key} -->"]
        return "\n".join(lines)


class ResultLog:
    """Benchmark results kept as JSON lines as they come, keyed by some of their fields,
    so that an interrupted benchmark resumes where it stopped."""

    def __init__(self, path: Path, key: tuple[str, ...]) -> None:
        self.path, self.key = path, key
        self.records: dict[tuple[Any, ...], dict[str, Any]] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            for line in path.read_text().splitlines():
                self._keep(json.loads(line))

    def _keep(self, record: dict[str, Any]) -> None:
        self.records[tuple(record.get(k) for k in self.key)] = record  # older: None

    def __contains__(self, key: tuple[Any, ...]) -> bool:
        return key in self.records

    def __getitem__(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return self.records[key]

    def add(self, record: dict[str, Any]) -> None:
        self._keep(record)
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


def best_of(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """(seconds of the fastest of ``repeats`` runs, items the run handled)."""
    best, n = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - start)
    return best, n


def machine_summary() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    slug = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return slug.replace(" ", "-")


def contents(text: str) -> str:
    """The report's table of contents: each section's title, linked, and its command."""
    lines = []
    for key, title in re.findall(r"<!-- bench:([\w-]+) -->\n## (.+)\n", text):
        command = re.search(rf"<!-- bench:{re.escape(key)} -->.*?Reproduce: `([^`]+)`",
                            text, re.DOTALL)
        lines.append(f"- [{title}](#{_anchor(title)})"
                     + (f": `{command.group(1)}`" if command else ""))
    return "\n".join(lines)


CONTENTS = re.compile(r"<!-- contents -->.*?<!-- /contents -->", re.DOTALL)


def write_section(section: Section, path: Path = DOCS / "benchmarks.md",
                  order: list[str] | None = None) -> Path:
    """Insert or replace ``section`` in the report at ``path`` and refresh its table of
    contents. A new section goes before the first section that follows it in ``order``
    (the benchmarks' keys in pipeline order), else at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    block = section.render()
    pattern = re.compile(rf"<!-- bench:{re.escape(section.key)} -->.*?"
                         rf"<!-- /bench:{re.escape(section.key)} -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        later = order[order.index(section.key) + 1:] if order and section.key in order \
            else []
        marks = [text.find(f"<!-- bench:{k} -->") for k in later]
        marks = [m for m in marks if m >= 0]
        if marks:
            at = min(marks)
            text = text[:at] + block + "\n\n" + text[at:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    toc = f"<!-- contents -->\n{contents(text)}\n<!-- /contents -->"
    if CONTENTS.search(text):
        text = CONTENTS.sub(lambda _: toc, text)
    else:  # after the header's first paragraph block
        first = text.find("<!-- bench:")
        text = (text[:first] + toc + "\n\n" + text[first:]) if first >= 0 else \
            text.rstrip() + "\n\n" + toc + "\n"
    path.write_text(text, encoding="utf-8")
    return path


class PeakMemory:
    """Peak resident memory of this process while the block runs, sampled every
    ``interval`` seconds from /proc (Linux); ``peak_mb`` and ``growth_mb`` (over the
    resident size at entry) after the block. Elsewhere, the process high-water mark."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mb = self.growth_mb = 0.0

    @staticmethod
    def _rss_mb() -> float:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def __enter__(self) -> PeakMemory:
        import threading

        self._start = self.peak_mb = self._rss_mb()
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.peak_mb = max(self.peak_mb, self._rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss_mb())
        self.growth_mb = self.peak_mb - self._start
