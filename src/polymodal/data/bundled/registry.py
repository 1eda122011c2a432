"""The registry of bundled datasets and what every maker shares: where data lives,
fixed splits, data cards, and the marker that says a dataset was made whole."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.errors import PolymodalError
from polymodal.registry import Registry

MANIFEST_NAME = "manifest.csv"
CARD_NAME = "CARD.md"
DONE_NAME = ".complete.json"


class DatasetUnavailable(PolymodalError, RuntimeError):
    """A bundled dataset cannot be made here (a system package or tool is missing)."""


@dataclass(frozen=True)
class DatasetSpec:
    """A bundled dataset: its name, a one-line description, and its maker."""

    name: str
    description: str
    maker: Callable[..., None]
    source: str
    licence: str
    debian_packages: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)


#: every bundled dataset by name; the maker modules are imported at the first lookup
DATASETS: Registry[DatasetSpec] = Registry("dataset", modules=tuple(
    f"polymodal.data.bundled.{m}"
    for m in ("av_digits", "fashion_mnist", "sort_of_clevr", "tuxpaint")))


def register_dataset(name: str, *, description: str, source: str, licence: str,
                     debian_packages: Sequence[str] = (), tools: Sequence[str] = (),
                     **defaults: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a maker ``fn(out: Path, *, seed, limit, show_progress, **defaults)`` (a
    name registered twice is refused)."""
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        DATASETS.add(name, DatasetSpec(name, description, fn, source, licence,
                                       tuple(debian_packages), tuple(tools), dict(defaults)))
        return fn
    return wrap


def data_home() -> Path:
    """Where bundled datasets are made by default: ``$POLYMODAL_DATA`` or
    ``~/.cache/polymodal/datasets``."""
    env = os.environ.get("POLYMODAL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polymodal" / "datasets"


def get_spec(name: str) -> DatasetSpec:
    """The bundled dataset registered as ``name``.

    Raises:
        UnknownName: unknown name (a KeyError; the message names the nearest ones).
    """
    return DATASETS.get(name)


def list_datasets() -> list[DatasetSpec]:
    """Every bundled dataset, sorted by name."""
    return DATASETS.values()


def missing_requirements(spec: DatasetSpec) -> list[str]:
    """System tools or Debian data a maker needs that this machine lacks."""
    missing = [t for t in spec.tools if shutil.which(t) is None]
    for pkg in spec.debian_packages:
        probe = DEBIAN_PROBES.get(pkg)
        if probe is not None and not Path(probe).exists():
            missing.append(f"Debian package {pkg} ({probe} not found)")
    return missing


DEBIAN_PROBES = {
    "tuxpaint-stamps-default": "/usr/share/tuxpaint/stamps",
    "dataset-fashion-mnist": "/usr/share/datasets/fashion-mnist",
}


def make_dataset(name: str, out: str | os.PathLike[str] | None = None, *, seed: int = 0,
                 limit: int | None = None, force: bool = False, show_progress: bool = True,
                 **options: Any) -> Path:
    """Make a bundled dataset (or reuse a complete one made with the same settings).

    Args:
        name: a name from :func:`list_datasets`.
        out: target folder (default: ``data_home() / name``, or ``name-limitN`` when
            ``limit`` is set).
        seed: the seed of every random choice; same seed, same files.
        limit: make a small version (a maker-specific count, for tests and quick runs).
        force: make again even if a complete copy with the same settings exists.
        options: maker-specific settings (see each dataset's card).

    Returns:
        The path of the dataset's ``manifest.csv``.
    """
    spec = get_spec(name)
    settings = {**spec.defaults, **options, "seed": seed, "limit": limit}
    unknown = set(options) - set(spec.defaults)
    if unknown:
        raise TypeError(f"{name} takes no option {sorted(unknown)}; its options: "
                        f"{sorted(spec.defaults)}")
    folder = Path(out) if out is not None else data_home() / (
        name if limit is None else f"{name}-limit{limit}")
    done = folder / DONE_NAME
    if not force and done.exists():
        try:
            if json.loads(done.read_text())["settings"] == settings:
                return folder / MANIFEST_NAME
        except (ValueError, KeyError):
            pass
    missing = missing_requirements(spec)
    if missing:
        raise DatasetUnavailable(
            f"cannot make {name}: missing {', '.join(missing)}. Install with "
            f"`apt-get install {' '.join(spec.debian_packages) or ' '.join(spec.tools)}` "
            "(the Makefile's `make sysdeps` does it).")
    if done.exists():
        done.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    spec.maker(folder, seed=seed, limit=limit, show_progress=show_progress,
               **{k: v for k, v in settings.items() if k not in ("seed", "limit")})
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": name, "settings": settings}, indent=2))
    tmp.replace(done)
    return folder / MANIFEST_NAME


def assign_splits(labels: Sequence[Any], *, seed: int, val: float = 0.15,
                  test: float = 0.15) -> np.ndarray:
    """Stratified, seeded train/val/test assignment; every class with 3+ rows gets at
    least one val and one test row."""
    labels = np.asarray([str(x) for x in labels])
    rng = np.random.default_rng(seed)
    out = np.empty(len(labels), dtype=object)
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        n_test = max(1, round(n * test)) if n >= 3 else 0
        n_val = max(1, round(n * val)) if n >= 3 else 0
        out[idx[:n_test]] = "test"
        out[idx[n_test:n_test + n_val]] = "val"
        out[idx[n_test + n_val:]] = "train"
    return out


def write_manifest(folder: Path, table: pd.DataFrame) -> Path:
    """Write ``manifest.csv`` atomically (temp file, then rename)."""
    path = folder / MANIFEST_NAME
    tmp = path.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def write_card(folder: Path, *, title: str, summary: str, source: str, licence: str,
               how_made: str, table: pd.DataFrame, label: str | None,
               extra: str = "") -> Path:
    """Write the data card: source, licence, size, splits, classes (of ``label``; a set
    without classes, ``None``, has none) and how it was made."""
    splits = table["split"].value_counts().reindex(["train", "val", "test"]).fillna(0)
    classes = None if label is None else table[label].astype(str).value_counts().sort_index()
    class_lines = [] if classes is None else [
        f"- Classes ({label}): {len(classes)}", "", "| class | rows |", "|---|---:|",
        *[f"| {k} | {v:,} |" for k, v in classes.items()]]
    lines = [
        f"# {title}", "", summary, "",
        "## Source and licence", "", f"- Source: {source}", f"- Licence: {licence}", "",
        "## Size", "",
        f"- Rows: {len(table):,} (train {int(splits['train']):,}, val {int(splits['val']):,},"
        f" test {int(splits['test']):,}); fixed, seeded splits in the `split` column.",
        *class_lines, "",
        "## Columns", "",
        "| column | non-empty cells |", "|---|---:|",
        *[f"| {c} | {int(table[c].notna().sum()):,} |" for c in table.columns], "",
        "## How it was made", "", how_made, "",
    ]
    if extra:
        lines += [extra, ""]
    path = folder / CARD_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_tool(args: list[str]) -> None:
    """Run a system tool; a failure says which command and why."""
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
