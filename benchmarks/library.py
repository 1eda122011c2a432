"""Library benchmarks: indexing throughput on tuxpaint (against embedding alone),
search latency and Recall@10 on 100,000 and 1,000,000 stored vectors (against exact
search in numpy), the HTTP search endpoint under concurrent load, and answer quality
on tuxpaint (held-out captions asked as questions: is the right stamp in the top
1 / 5 / 10?)."""

from __future__ import annotations

import logging
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.report import RESULTS, Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.library.store import INDEX_FROM, NPROBES, REFINE_FACTOR, ann_index_config

MODEL = RESULTS / "pretrained" / "lit-tuxpaint"


def _quiet() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


def tuxpaint_model(quick: bool = False) -> Path:
    """The builtin LiT model of tuxpaint's train split (made once, then reused)."""
    from polymodal.library.builtin import builtin_model

    return builtin_model("lit-tuxpaint", root=RESULTS / "pretrained", quick=quick)


def index_and_answers(quick: bool = False) -> Section:
    """Indexing throughput and answer quality on tuxpaint."""
    from polymodal.library import Library
    from polymodal.pretraining import Pretrainer

    _quiet()
    model = tuxpaint_model(quick)
    source = make_dataset("tuxpaint", limit=3 if quick else None)
    m = Manifest.read(source)
    root = RESULTS / "libraries"
    pre = Pretrainer.load(model)
    pre.embed(m.subset(list(range(min(32, len(m))))))  # warm-up: loads, first batches
    start = time.perf_counter()
    pre.embed(m)  # the baseline: embedding alone, same model, same rows
    embed_s = time.perf_counter() - start
    shutil.rmtree(root / "tuxpaint", ignore_errors=True)  # index from nothing
    lib = Library.create("tuxpaint", model, root=root)
    lib.embed_query("warm-up")  # loads the library's copy of the model
    start = time.perf_counter()
    report = lib.index(source, progress=False)
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    again = lib.index(source, progress=False)
    reindex_s = time.perf_counter() - start
    facets = report.added
    # answer quality: each held-out caption asked as a question; the stamps of the test
    # split that carry that caption are right
    test = m.split("test")
    questions: dict[str, set[str]] = {}
    for row in range(len(test)):
        caption = test.decode(row, "caption")
        if caption:
            questions.setdefault(caption, set()).add(test.ids()[row])
    test_ids = set(test.ids())
    ranks = []
    for caption, right in questions.items():
        hits = [h for h in lib.search(caption, k=200, modality="image") if h.item in test_ids]
        found = [i for i, h in enumerate(hits, 1) if h.item in right]
        ranks.append(found[0] if found else 10**6)
    ranks_arr = np.array(ranks)
    section = Section(
        key="library-index", title="Library: indexing tuxpaint and answering from it",
        command="python -m benchmarks --only library-index" + (" --quick" if quick
                                                                      else ""),
        columns=["what", "items", "seconds", "items/s", "ratio to baseline"])
    section.rows += [
        ["embed every picture and caption (baseline)", f"{facets:,}", f"{embed_s:.1f}",
         f"{facets / embed_s:,.0f}", "1.00"],
        ["polymodal index: a new library", f"{facets:,}", f"{index_s:.1f}",
         f"{facets / index_s:,.0f}", f"{embed_s / index_s:.2f}"],
        ["polymodal index again: nothing changed", f"{again.unchanged:,}",
         f"{reindex_s:.1f}", f"{again.unchanged / reindex_s:,.0f}",
         f"{embed_s / reindex_s:.2f}"],
    ]
    chance = {k: min(1.0, k / len(test_ids)) for k in (1, 5, 10)}
    section.notes = (
        f"tuxpaint ({len(m)} rows: a picture and a caption each) with the builtin model "
        "`builtin:lit-tuxpaint` (locked EfficientNet-Lite0 and MiniLM, heads trained on "
        "tuxpaint's train split). The "
        "baseline embeds the same cells with the same model and stores nothing; indexing "
        "also hashes every file, writes thumbnails and upserts into LanceDB; both run "
        "after a warm-up. Ratios above 1 are faster than the baseline. **Answer "
        "quality**: each of the "
        f"{len(questions)} distinct held-out (test split) captions asked as a question "
        f"against the {len(test_ids)} test stamps' pictures: the right stamp is first for "
        f"{np.mean(ranks_arr <= 1):.1%} of them, in the top 5 for "
        f"{np.mean(ranks_arr <= 5):.1%}, in the top 10 for {np.mean(ranks_arr <= 10):.1%} "
        f"(chance {chance[1]:.1%} / {chance[5]:.1%} / {chance[10]:.1%}).")
    return section


def _clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors around ``centres``: closer to real embeddings than uniform noise."""
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, dim)).astype(
        np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def search_latency(quick: bool = False) -> Section:
    """LanceDB (the library's store) against exact search on the same vectors."""
    import lancedb
    import pyarrow as pa

    sizes = (2_000, 20_000) if quick else (100_000, 1_000_000)
    dim, k, n_queries = 128, 10, 50 if quick else 200
    rng = np.random.default_rng(0)
    section = Section(
        key="library-search", title="Library search: latency and recall against exact search",
        command="python -m benchmarks --only library-search" + (" --quick" if quick
                                                                       else ""),
        columns=["stored vectors", "search", "p50 ms", "p95 ms", "Recall@10",
                 "index build s"])
    for n in sizes:
        centres = rng.normal(size=(1000, dim)).astype(np.float32)
        vectors = _clustered(n, centres, rng)
        queries = _clustered(n_queries, centres, rng)  # new points of the same clusters
        exact_times, exact = [], []
        for q in queries:
            t = time.perf_counter()
            top = np.argpartition(-(vectors @ q), k)[:k]
            exact_times.append(time.perf_counter() - t)
            exact.append(set(top.tolist()))
        folder = RESULTS / "search-bench"
        shutil.rmtree(folder, ignore_errors=True)
        db = lancedb.connect(str(folder))
        table = db.create_table("v", pa.table({
            "id": pa.array(np.arange(n)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)}))
        t = time.perf_counter()
        table.create_index("vector", config=ann_index_config(n))
        build_s = time.perf_counter() - t
        rows = [["exact (numpy, baseline)", exact_times, 1.0]]
        for nprobes, refine in ((NPROBES, None), (NPROBES, 2), (NPROBES, REFINE_FACTOR)):
            times, recalls = [], []
            for q, truth in zip(queries, exact, strict=True):
                t = time.perf_counter()
                query = table.search(q).metric("cosine").nprobes(nprobes).limit(k)
                if refine:
                    query = query.refine_factor(refine)
                got = query.select(["id", "_distance"]).to_arrow()["id"].to_pylist()
                times.append(time.perf_counter() - t)
                recalls.append(len(truth & set(got)) / k)
            name = f"LanceDB IVF-HNSW-SQ, nprobes {nprobes}" + (
                f", refine x{refine}" if refine else "")
            ours = (nprobes, refine) == (NPROBES, REFINE_FACTOR)
            rows.append([name + (" (the library's)" if ours else ""), times,
                         float(np.mean(recalls))])
        for name, times, recall in rows:
            ms = np.array(times) * 1000
            section.rows.append([f"{n:,}", name, f"{np.percentile(ms, 50):.2f}",
                                 f"{np.percentile(ms, 95):.2f}", f"{recall:.3f}",
                                 f"{build_s:.0f}" if name.startswith("LanceDB") else ""])
        shutil.rmtree(folder, ignore_errors=True)
    section.notes = (
        f"{dim}-d unit vectors clustered around 1,000 centres; {n_queries} queries; top "
        f"{k} by cosine. Exact search is a numpy matrix product over every vector (the "
        "baseline for recall); queries are new points of the stored clusters. LanceDB "
        "runs in process on local disk with the index a library builds once it holds "
        f"{INDEX_FROM:,} vectors (`polymodal.library.store.ann_index_config`: about "
        "sqrt(n) IVF partitions, HNSW with 8-bit scalar quantisation in each); below "
        "that a library searches by exact scan. 'refine xR': the best R x k candidates "
        "of the quantised index re-ranked by their full vectors.")
    return section


def http_load(quick: bool = False, requests: int = 400, concurrency: int = 8) -> Section:
    """The search endpoint under concurrent load on loopback (bounded in count)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from polymodal.library import Library
    from polymodal.serve import create_app, serving

    _quiet()
    model = tuxpaint_model(quick)
    root = RESULTS / "libraries"
    if not (root / "tuxpaint" / "library.yaml").exists():
        Library.create("tuxpaint", model, root=root).index(
            make_dataset("tuxpaint", limit=3 if quick else None), progress=False)
    if quick:
        requests = 40
    words = ["a frog", "a red car", "a cow", "music", "a tree", "the sun", "a boat", "a cat"]
    latencies: list[float] = []
    errors = 0

    def one(i: int, client: httpx.Client, url: str) -> None:
        nonlocal errors
        t = time.perf_counter()
        r = client.get(url, params={"q": words[i % len(words)], "k": 10})
        latencies.append(time.perf_counter() - t)
        if r.status_code != 200:
            errors += 1

    with serving(create_app("tuxpaint", root)) as base, httpx.Client(timeout=30) as client:
        url = f"{base}/api/search"
        one(0, client, url)  # warm-up: loads the model
        latencies.clear()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda i: one(i, client, url), range(requests)))
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    section = Section(
        key="library-http", title="Library HTTP search under concurrent load",
        command="python -m benchmarks --only library-http" + (" --quick" if quick
                                                                     else ""),
        columns=["requests", "concurrency", "requests/s", "p50 ms", "p95 ms", "errors"])
    section.rows.append([f"{requests}", f"{concurrency}", f"{requests / wall:.1f}",
                         f"{statistics.median(ms):.1f}", f"{np.percentile(ms, 95):.1f}",
                         f"{errors}"])
    section.notes = ("`GET /api/search?q=...&k=10` on loopback against the tuxpaint "
                     "library (uvicorn, one worker, in process with the client); each "
                     "request embeds its words with MiniLM and searches LanceDB.")
    return section
