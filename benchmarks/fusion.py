"""Fusion accuracy on av-digits: each modality alone and every fusion method, mean and
std over seeds, with train time, peak memory and parameter count per result."""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path

import numpy as np

from benchmarks.report import RESULTS, ResultLog, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.fusion import FUSIONS
from polymodal.predictor import Predictor

SINGLE = ("image", "audio", "record")
#: the fusions compared on av-digits; "relation" reasons over one column's objects
#: given the others (visual QA) and is measured on sort-of-clevr instead
COMPARED = tuple(sorted(f for f in FUSIONS if f != "relation"))


def settings() -> list[tuple[str, list[str] | None, str]]:
    """(name, modalities, fusion) of every row of the table."""
    rows: list[tuple[str, list[str] | None, str]] = [
        (f"{m} alone", [m], "concat") for m in SINGLE]
    rows += [(f"fusion: {f}", None, f) for f in COMPARED]
    return rows


def run(quick: bool = False, seeds: tuple[int, ...] = (0, 1, 2), epochs: int = 12,
        results: Path = RESULTS / "fusion.jsonl", train: bool = True) -> Section:
    """Train every setting for every seed (results kept in ``results`` as they come, so
    an interrupted run resumes) and report mean and std test accuracy; ``train=False``
    only reports what is there."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    manifest = Manifest.read(make_dataset("av-digits", limit=20 if quick else None))
    if quick:
        seeds, epochs = (0,), 2
        results = results.with_name("fusion-quick.jsonl")
    done = ResultLog(results, ("setting", "seed", "epochs"))
    test = manifest.split("test")
    for seed in seeds:
        for name, modalities, fusion in settings():
            if (name, seed, epochs) in done or not train:
                continue
            start = time.perf_counter()
            p = Predictor(label="label", modalities=modalities, fusion=fusion, preset="fast",
                          max_epochs=epochs, seed=seed, path=RESULTS / "runs" / f"{seed}")
            p.fit(manifest, progress=False)
            r = {"setting": name, "seed": seed, "epochs": epochs,
                 "accuracy": p.evaluate(test)["accuracy"],
                 "seconds": time.perf_counter() - start,
                 "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                 "parameters": sum(x.numel() for x in p.model_.parameters())}
            done.add(r)
    seeds_done = sorted({k[1] for k in done.records if k[2] == epochs})
    section = Section(
        key="fusion-accuracy", title="av-digits: each modality alone and every fusion",
        command="python -m benchmarks --only fusion-accuracy" + (" --quick" if quick
                                                                       else ""),
        columns=["setting", "seeds", "test accuracy (mean ± std)", "train seconds",
                 "parameters", "peak RSS (MB)"])
    best_single = best_fusion = 0.0
    for name, _m, _f in settings():
        rs = [done[(name, s, epochs)] for s in seeds if (name, s, epochs) in done]
        if not rs:
            continue
        acc = np.array([r["accuracy"] for r in rs])
        if name.endswith("alone"):
            best_single = max(best_single, acc.mean())
        else:
            best_fusion = max(best_fusion, acc.mean())
        section.rows.append([name, f"{len(rs)}", f"{acc.mean():.3f} ± {acc.std():.3f}",
                             f"{np.mean([r['seconds'] for r in rs]):.0f}",
                             f"{rs[0]['parameters']:,}",
                             f"{max(r['peak_rss_mb'] for r in rs):.0f}"])
    missing = sorted(set(seeds) - set(seeds_done))
    section.notes = (f"`fast` preset, {epochs} epochs, test split of av-digits (269 rows). "
                     + (f"Seeds {missing} are not measured yet (the run resumes where it "
                        "stopped). " if missing else "") +
                     f"Best fusion {best_fusion:.3f} against best single modality "
                     f"{best_single:.3f}: +{best_fusion - best_single:.3f}. Peak RSS is the "
                     "benchmark process's high-water mark so far; seconds are wall-clock "
                     "and grow when other work shares the two cores.")
    return section
