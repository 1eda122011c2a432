"""Saving and loading what an ``auto`` fit kept, beside the Predictor's config.yaml.

``config.yaml``'s ``fitted.auto`` holds the leaderboard, the members' weights and the
extractors by name; ``auto/`` holds each scikit-learn member and fitted TF-IDF as a
skops file (scikit-learn objects as data: loading runs no code of the file's, and a
file naming a type outside scikit-learn, NumPy and SciPy is refused), and a network
member as a saved Predictor folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from polymodal.auto.candidates import CANDIDATES
from polymodal.auto.features import TFIDF, Extractor
from polymodal.auto.model import AutoModel, CandidateSpec, Trial
from polymodal.heads import Task

FORMAT = 1
FOLDER = "auto"
#: the modules a skops file may name types from
TRUSTED_MODULES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)


def auto_fitted(auto: AutoModel) -> dict[str, Any]:
    """What ``config.yaml`` says of an auto fit (plain data)."""
    used = {s for n in auto.weights for s in auto.trial(n).spec.features}
    return {
        "format": FORMAT, "columns": auto.columns, "modalities": auto.modalities,
        "weights": {n: float(w) for n, w in auto.weights.items()},
        "extractors": {s: {c: e.name for c, e in auto.extractors[s].items()}
                       for s in sorted(used)},
        "trials": [{"name": t.spec.name, "features": list(t.spec.features),
                    "head": t.spec.head, "description": t.spec.description,
                    "status": t.status, "score": _number(t.score), "loss": _number(t.loss),
                    "scored_on": t.scored_on,
                    "fit_seconds": float(t.fit_seconds),
                    "feature_seconds": float(t.feature_seconds),
                    "finished_at": _number(t.finished_at),
                    "rows_per_second": _number(t.rows_per_second)} for t in auto.trials]}


def _tfidf_file(feature_set: str, index: int) -> str:
    return f"tfidf-{feature_set}-{index}.skops"


def save_members(auto: AutoModel, folder: Path) -> None:
    """Write the kept members and fitted extractors into ``folder/auto``."""
    import skops.io as sio

    out = Path(folder) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    for name in auto.weights:
        t = auto.trial(name)
        if t.spec.head == "network":
            t.model.save(out / name)
        else:
            sio.dump(t.model, out / f"{name}.skops")
    used = {s for n in auto.weights for s in auto.trial(n).spec.features}
    for s in sorted(used):
        for i, c in enumerate(auto.columns):
            ex = auto.extractors[s][c]
            if ex.name == TFIDF:
                sio.dump(ex.state, out / _tfidf_file(s, i))


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    if not path.is_file():
        raise ValueError(f"{path}: missing (the auto model's folder is incomplete)")
    untrusted = sio.get_untrusted_types(file=path)
    foreign = [t for t in untrusted if not t.startswith(TRUSTED_MODULES)]
    if foreign:
        raise ValueError(f"{path}: names types outside scikit-learn, NumPy and SciPy "
                         f"({foreign[:3]}); refused")
    return sio.load(path, trusted=untrusted)


def load_members(fitted: dict[str, Any], task: Task, folder: Path, *, seed: int,
                 batch_size: int) -> AutoModel:
    """The :class:`AutoModel` that :func:`save_members` wrote (members loaded; the
    other candidates are their leaderboard rows)."""
    from polymodal.predictor import Predictor

    if int(fitted.get("format", 0)) > FORMAT:
        raise ValueError(f"{folder}: the auto model's format {fitted['format']} is newer "
                         f"than this version reads ({FORMAT}); upgrade polymodal")
    out = Path(folder) / FOLDER
    columns, modalities = list(fitted["columns"]), dict(fitted["modalities"])
    extractors = {}
    for s, names in fitted["extractors"].items():
        extractors[s] = {}
        for i, c in enumerate(columns):
            state = _load_skops(out / _tfidf_file(s, i)) if names[c] == TFIDF else None
            extractors[s][c] = Extractor(c, modalities[c], names[c], state=state)
    trials = []
    for row in fitted["trials"]:
        spec = CANDIDATES.get(row["name"]) if row["name"] in CANDIDATES else \
            CandidateSpec(row["name"], tuple(row["features"]), row["head"], row["description"])
        t = Trial(spec, status=row["status"], score=row["score"], loss=row["loss"],
                  scored_on=row.get("scored_on", ""),
                  fit_seconds=row["fit_seconds"], feature_seconds=row["feature_seconds"],
                  finished_at=row["finished_at"], rows_per_second=row["rows_per_second"])
        if row["name"] in fitted["weights"]:
            t.model = Predictor.load(out / row["name"]) if spec.head == "network" \
                else _load_skops(out / f"{row['name']}.skops")
        trials.append(t)
    return AutoModel(task, columns, modalities, extractors, trials, dict(fitted["weights"]),
                     seed=seed, batch_size=batch_size)
