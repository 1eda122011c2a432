"""ONNX Runtime against torch for the library's embeddings, on the builtin model
(locked MiniLM and EfficientNet-Lite0 towers, heads trained on tuxpaint):

(a) a query: the caption tower on one text at a time, one thread each
    (``torch.set_num_threads(1)``, ``intra_op_num_threads=1``), p50 over 200 queries,
    torch against onnxruntime fp32 and int8, with each one's cosine to torch;
(b) indexing tuxpaint's pictures and captions: items/s with torch and with
    onnxruntime, the embedding alone (batches of 64, the same threads for both) and
    ``Library.index`` of a new library end to end (hashing, thumbnails and the store
    included).

``python -m benchmarks --only onnx-speed [--quick]``, or ``python -m
benchmarks.onnx_speed [--quick]`` to print the section only. ``--quick``: 20 queries
and tuxpaint limited to 3 stamps a category, on the quick builtin model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.library import _quiet, tuxpaint_model
from benchmarks.report import RESULTS, Section

KEY = "onnx-speed"


def _cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))


def _latencies(embed: Callable[[str], np.ndarray], queries: Sequence[str]
               ) -> tuple[np.ndarray, np.ndarray]:
    """(ms per query, the vectors) for one query at a time, after a warm-up."""
    for q in queries[:5]:
        embed(q)
    times, vectors = [], []
    for q in queries:
        start = time.perf_counter()
        vectors.append(embed(q))
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000, np.stack(vectors)


@contextmanager
def _torch_threads(n: int) -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _onnx_setting(value: str) -> Any:
    before = os.environ.get("POLYMODAL_ONNX")
    os.environ["POLYMODAL_ONNX"] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("POLYMODAL_ONNX", None)
        else:
            os.environ["POLYMODAL_ONNX"] = before


def query_rows(pre: Any, export: Path, queries: Sequence[str]) -> list[list[str]]:
    """(a): one caption at a time, one thread, torch / fp32 / int8."""
    from polymodal.export import OnnxTowers

    column = "caption"
    with _torch_threads(1):
        base_ms, base = _latencies(lambda q: pre.embed_values(column, [q])[0], queries)
    rows = [["a query (caption tower), 1 thread", "torch", f"{np.median(base_ms):.2f}",
             f"{np.percentile(base_ms, 95):.2f}", "", "1.00", "1 / 1"]]
    for precision in ("fp32", "int8"):
        towers = OnnxTowers(export, model=pre, threads=1, precision=precision)
        ms, got = _latencies(lambda q, t=towers: t.embed_values(column, [q])[0], queries)
        cos = _cosines(got, base)
        rows.append(["", f"onnxruntime {precision}", f"{np.median(ms):.2f}",
                     f"{np.percentile(ms, 95):.2f}", "",
                     f"{np.median(base_ms) / np.median(ms):.2f}",
                     f"{cos.min():.4f} / {cos.mean():.4f}"])
    return rows


def embedding_rows(pre: Any, export: Path, values: dict[str, list[Any]], threads: int,
                   kept: dict[str, str]) -> list[list[str]]:
    """(b), the embedding alone: every picture and caption in batches of 64, on torch,
    on the fp32 graphs (a library's default) and on int8 where "auto" keeps it."""
    from polymodal.export import OnnxTowers

    towers = {p: OnnxTowers(export, model=pre, threads=threads, precision=p)
              for p in ("fp32", "int8")}
    n = sum(len(v) for v in values.values())
    times: dict[str, float] = {}
    vectors: dict[str, dict[str, np.ndarray]] = {}
    int8 = "onnxruntime (" + ", ".join(f"{c} {p}" for c, p in sorted(kept.items())) + ")"
    engines: dict[str, Callable[[str, list[Any]], np.ndarray]] = {
        "torch": lambda c, v: pre.embed_values(c, v, batch_size=64),
        "onnxruntime fp32": lambda c, v: towers["fp32"].embed_values(c, v, batch_size=64),
        int8: lambda c, v: towers[kept[c]].embed_values(c, v, batch_size=64)}
    with _torch_threads(threads):
        for embed in engines.values():
            for c, v in values.items():
                embed(c, v[:8])  # warm-up
        for _round in range(2):  # in turn, twice: a busy moment does not pick one engine
            for name, embed in engines.items():
                start = time.perf_counter()
                vectors[name] = {c: embed(c, v) for c, v in values.items()}
                took = time.perf_counter() - start
                times[name] = min(times.get(name, took), took)
    rows = []
    for name in engines:
        cos = np.concatenate([_cosines(vectors[name][c], vectors["torch"][c])
                              for c in values])
        rows.append(["" if rows else f"embedding {n:,} pictures and captions, {threads} "
                     "threads", name, "", "", f"{n / times[name]:,.1f}",
                     f"{times['torch'] / times[name]:.2f}",
                     f"{cos.min():.4f} / {cos.mean():.4f}"])
    return rows


def index_rows(model: Path, source: Path, warm_up: Any) -> tuple[list[list[str]], float]:
    """(b), end to end: ``Library.index`` of a new library on torch, on onnxruntime
    (fp32, the default) and with ``POLYMODAL_ONNX=int8``; the export is made (or
    opened) by each library's warm-up query, timed apart, after a throwaway index run
    of ``warm_up`` (a few rows: the store, the thumbnails and the imports warmed)."""
    from polymodal.library import Library

    root = RESULTS / "libraries"
    rates, first_use = {}, 0.0
    runs = (("warm-up", "0"), ("torch", "0"), ("onnxruntime fp32", "1"),
            ("onnxruntime int8 (POLYMODAL_ONNX=int8)", "int8"))
    for i, (name, setting) in enumerate(runs):
        shutil.rmtree(root / f"onnx-speed-{i}", ignore_errors=True)
        with _onnx_setting(setting):
            lib = Library.create(f"onnx-speed-{i}", model, root=root)
            start = time.perf_counter()
            lib.embed_query("warm-up")  # loads the model (and makes or opens its export)
            if setting == "1":
                first_use = time.perf_counter() - start
            start = time.perf_counter()
            report = lib.index(warm_up if name == "warm-up" else source, progress=False)
            rates[name] = report.added / (time.perf_counter() - start)
    shutil.rmtree(root / "onnx-speed-0", ignore_errors=True)
    return [["" if i > 1 else "polymodal index: a new library", name, "", "",
             f"{rates[name]:,.1f}", f"{rates[name] / rates['torch']:.2f}", ""]
            for i, (name, _setting) in enumerate(runs) if name != "warm-up"], first_use


def run(quick: bool = False) -> Section:
    """Both measures on the builtin model (the quick one with ``quick``)."""
    import torch

    from polymodal.data import Manifest
    from polymodal.data.bundled import make_dataset
    from polymodal.export import export_towers
    from polymodal.export.record import INT8_MIN_COSINE
    from polymodal.pretraining import Pretrainer

    _quiet()
    threads = torch.get_num_threads()
    model = tuxpaint_model(quick)
    pre = Pretrainer.load(model)
    export = model.with_name(f"{model.name}-bench-onnx")  # beside it: ignored by git
    start = time.perf_counter()
    # int8 kept for every tower, to time it; "auto" (the library's) keeps it where its
    # cosine to torch is >= INT8_MIN_COSINE, as `kept` records below
    report = export_towers(model, export, int8=True, loaded=pre)
    export_s = time.perf_counter() - start
    kept = {c: "int8" if (t.int8_cosine or -1) >= INT8_MIN_COSINE else "fp32"
            for c, t in report.towers.items()}
    source = make_dataset("tuxpaint", limit=3 if quick else None)
    m = Manifest.read(source)
    captions = [c for c in (m.decode(r, "caption") for r in range(len(m))) if c]
    n_queries = 20 if quick else 200
    queries = [captions[i % len(captions)] for i in range(n_queries)]
    values = {c: [v for v in (m.decode(r, c) for r in range(len(m))) if v is not None]
              for c in ("caption", "image")}
    section = Section(
        key=KEY, title="ONNX Runtime against torch: queries and indexing",
        command="python -m benchmarks --only onnx-speed" + (" --quick" if quick else ""),
        columns=["what", "engine", "p50 ms", "p95 ms", "items/s", "speed-up vs torch",
                 "cosine to torch (min / mean)"])
    section.rows += query_rows(pre, export, queries)
    section.rows += embedding_rows(pre, export, values, threads, kept)
    rows, first_use = index_rows(model, source, m.subset(list(range(min(16, len(m))))))
    section.rows += rows
    towers = "; ".join(
        f"{c}: fp32 cosine {t.fp32_cosine:.6f}, int8 cosine {t.int8_cosine:.4f} "
        f"(auto keeps {kept[c]})" for c, t in sorted(report.towers.items()))
    section.notes = (
        f"The builtin model `lit-tuxpaint`{' (quick)' if quick else ''}; tuxpaint "
        f"({len(m)} rows). Export to ONNX (TorchScript exporter, opset {report.opset}) "
        f"with int8 copies (dynamic, per channel, MatMul and Gemm): {export_s:.0f} s; "
        f"checked against torch on held-out tuxpaint-like values: {towers}. (a): "
        f"{n_queries} captions of the dataset one at a time, preprocessing (tokenising) "
        "included for every engine. (b): the decoded pictures and captions embedded in "
        "batches of 64, onnxruntime fp32 and int8 where the export keeps it per "
        "tower, each engine its best of two rounds taken in turn; then `Library.index` "
        "of a new library with `POLYMODAL_ONNX=0`, unset (fp32, a library's default: "
        "torch's vectors to about 1e-6) and `=int8` (the fp32 library's first query "
        f"made or opened its export: {first_use:.0f} s, not timed). Ratios above 1 are "
        "faster than torch.")
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    print(run(parser.parse_args(argv).quick).render())


if __name__ == "__main__":
    main()
