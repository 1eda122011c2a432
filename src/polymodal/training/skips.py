"""``on_error="skip"`` in training: fit vocabularies on the good cells only, and collect
one report that names every bad row a run left out (Predictor and Pretrainer alike)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from polymodal.data.dataset import MultimodalDataset, sweep_unvisited
from polymodal.data.errors import MediaError, OnError, Problem, SkipReport
from polymodal.data.manifest import Manifest
from polymodal.progress import console


def decoded_cells(manifest: Manifest, column: str, on_error: OnError) -> Iterator[Any]:
    """Every cell of ``column`` decoded, for fitting an encoder's vocabulary. Under
    ``on_error="skip"`` a bad cell is passed over here (the training batches report
    it); under ``"raise"`` it stops the run, named."""
    for row in range(len(manifest)):
        try:
            yield manifest.decode(row, column)
        except MediaError:
            if on_error == "raise":
                raise


def training_skip_report(source: str, problems: Iterable[Problem | MediaError],
                         datasets: Mapping[str, MultimodalDataset],
                         visited: Mapping[str, set[int]], on_error: OnError,
                         run_dir: Path) -> SkipReport:
    """The report of a finished run: the problems its batches met, plus those of rows
    that no batch met (checked now, under ``on_error="skip"`` only), one line per bad
    (manifest, row, column, kind). When it names any, it is written to
    ``run_dir/skipped_rows.csv`` and the count is printed."""
    report = SkipReport(source)
    report.extend(problems)
    if on_error == "skip":
        for stage, dataset in datasets.items():
            sweep_unvisited(dataset, visited.get(stage, set()), report)
    report = report.deduplicate()
    if len(report):
        path = report.write(Path(run_dir) / "skipped_rows.csv")
        console.print(f"{len(report.rows)} bad rows skipped; reasons in {path}")
    return report
