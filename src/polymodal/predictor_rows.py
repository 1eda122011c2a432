"""The rows a Predictor learns from: labelled ones, labels of the right type, and the
columns a pretraining it starts from covers (each row left out is said, with why)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from polymodal.data import Manifest
from polymodal.data.errors import ManifestError, OnError, Problem
from polymodal.data.shard_source import ShardSource
from polymodal.data.validation import check_labels
from polymodal.heads import make_task


def pretrained_columns(init_from: str | os.PathLike[str], columns: list[str]) -> list[str]:
    """Fine-tuning from a checkpoint without ``modalities``: the columns it has encoders
    for, said when that leaves some out (a tuxpaint pretraining of pictures and captions
    fine-tunes those two, not its sounds)."""
    from polymodal.checkpoint import read_saved

    saved = read_saved(init_from, "checkpoint to initialise from").fitted.get("encoders") or {}
    covered = [c for c in columns if c in saved]
    if not covered:
        raise ValueError(f"{init_from} has encoders for {sorted(saved)}, none of this "
                         f"manifest's columns {columns}; pretrain on them first")
    if len(covered) < len(columns):
        from polymodal.progress import console

        console.print(f"fine-tuning the columns {init_from} was pretrained on: "
                      f"{', '.join(covered)} (not {', '.join(sorted(set(columns) - set(covered)))};"
                      " modalities=[...] chooses)")
    return covered


def labelled(m: Manifest, label: str) -> tuple[Manifest, list[Problem]]:
    """The rows of ``m`` that have a label, and a problem for each row left out for
    lacking one (``validate`` calls it ``missing_label``): no row leaves a fit unsaid."""
    keep, missing = [], []
    for i in range(len(m)):
        if m.label(i) is not None:
            keep.append(i)
        else:
            missing.append(Problem(m.source_row(i), label, "missing_label",
                                   "label is missing: the row is left out of training",
                                   manifest=m.source))
    return m.subset(keep), missing


def without_bad_labels(m: Manifest, problem_type: str | None, on_error: OnError,
                       known: Sequence[Problem] = ()) -> tuple[Manifest, list[Problem]]:
    """``m`` without the rows whose label is of the wrong type (what ``validate``
    calls ``bad_label``: a list where one value is due, a word in a column of
    numbers), and their problems after the ``known`` ones; under ``on_error="raise"``
    the first one stops the run, named."""
    label_type = make_task(problem_type).label_type if problem_type is not None else "auto"
    if label_type is None:  # any value is a label (lists)
        return m, list(known)
    bad = [p for p in check_labels(m, label_type) if p.kind == "bad_label"]
    if not bad:
        return m, list(known)
    bad = [Problem(p.row, p.column, p.kind, p.reason, manifest=m.source) for p in bad]
    if on_error == "raise":
        raise bad[0].to_error()
    rows = {p.row for p in bad}
    keep = [i for i in range(len(m)) if m.source_row(i) not in rows]
    return m.subset(keep), [*known, *bad]


def shards_to_train_on(shards: ShardSource, label: str) -> ShardSource:
    """``shards``, checked to hold ``label`` as their label column."""
    if shards.schema.label != label:
        raise ManifestError(f"{shards.source}: the shards' label column is "
                            f"{shards.schema.label!r}, not {label!r}; pass "
                            f"label={shards.schema.label!r}")
    return shards


def shards_to_predict(shards: ShardSource, columns: Sequence[str], is_auto: bool
                      ) -> ShardSource:
    """``shards``, checked to hold every column a network was trained on.

    Raises:
        ValueError: a column the shards lack, or an auto fit (its members compute
            their features from a manifest's files).
    """
    if is_auto:
        raise ValueError(f"{shards.source}: an auto fit's models read a manifest (their "
                         "features are computed row by row from files); predict from the "
                         "manifest the shards were written from")
    lacking = [c for c in columns if c not in shards.modality_columns]
    if lacking:
        raise ValueError(f"{shards.source}: the shards hold no column {lacking} that this "
                         f"model was trained on; they hold {sorted(shards.modality_columns)}")
    return shards
