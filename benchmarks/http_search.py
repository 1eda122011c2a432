"""``GET /api/search`` in words under concurrent load, against a server in its own
process (``polymodal.serve.serve``, uvicorn, as ``polymodal serve`` runs it) on
loopback: requests/s, p50, p95 and errors at concurrency 8 and 32, for the server as it
is (a pool of worker threads, identical searches in flight shared), the same pool with
sharing off, and the baseline of one worker without sharing, all in the same run."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.library import _quiet
from benchmarks.report import RESULTS, Section

#: a handful of popular searches, asked round-robin
WORDS = ["a frog", "a red car", "a cow", "music", "a tree", "the sun", "a boat", "a cat"]
CONCURRENCY = (8, 32)
QUICK_ROWS = 60

LAUNCH = ("import sys; from polymodal.serve.app import serve; "
          "serve(sys.argv[1], sys.argv[2], port=int(sys.argv[3]), workers=int(sys.argv[4]), "
          "dedup=sys.argv[5] == '1')")


def tuxpaint_library(quick: bool) -> tuple[str, Path, int]:
    """A library of tuxpaint's stamps (pictures and captions; the first
    :data:`QUICK_ROWS` with ``quick``) with ``builtin:lit-tuxpaint``, indexed once and
    then reused: its name, root and number of items."""
    import pandas as pd

    from polymodal.data.bundled import make_dataset
    from polymodal.data.bundled.registry import data_home
    from polymodal.library import Library

    manifest = data_home() / "tuxpaint" / "manifest.csv"
    if not manifest.exists():
        manifest = make_dataset("tuxpaint")
    rows = pd.read_csv(manifest)
    if quick:
        rows = rows.iloc[:QUICK_ROWS]
    rows = rows[["id", "image", "caption"]].assign(
        image=[str((manifest.parent / p).resolve()) for p in rows.image])
    name = "tuxpaint-http" + ("-quick" if quick else "")
    root = RESULTS / "libraries"
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "stamps.csv"
    if not source.exists() or pd.read_csv(source).shape != rows.shape:
        rows.to_csv(source, index=False)
    lib = Library.create(name, "builtin:lit-tuxpaint", root=root)
    if len(lib) != 2 * len(rows):
        lib.index(source, progress=False)
    return name, root, len(rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(name: str, root: Path, workers: int, dedup: bool, log: Path
           ) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, name, str(root), str(port),
                                 str(workers), "1" if dedup else "0"],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not answer within 120 s; see {log}")


def _load(base: str, requests: int, concurrency: int, distinct: bool = False
          ) -> dict[str, float]:
    """``requests`` searches, ``concurrency`` at a time: requests/s, p50, p95, errors.
    ``distinct``: every request asks words no other asked, in this load or another
    (``"a frog 8-17"``), so none is shared nor found among the recent queries'
    vectors: each is embedded."""
    import httpx

    latencies: list[float] = []
    errors = 0
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=concurrency)
                      ) as client:
        def one(i: int) -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                words = WORDS[i % len(WORDS)] + (f" {concurrency}-{i}" if distinct else "")
                r = client.get(f"{base}/api/search", params={"q": words, "k": 10})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t)
            errors += not ok

        for i in range(2 * len(WORDS)):  # warm-up: the model loads, every word once
            one(i)
        latencies.clear()
        errors = 0
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(requests)))
        wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"rps": requests / wall, "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "errors": errors}


def run(quick: bool = False) -> Section:
    """The search endpoint at concurrency 8 and 32: the server, its pool without
    sharing, and one worker without sharing (the baseline)."""
    from polymodal.serve.pool import default_workers, torch_threads_for

    _quiet()
    name, root, items = tuxpaint_library(quick)
    requests = 64 if quick else 800
    workers = default_workers()
    servers = [("1 worker, no sharing (baseline)", 1, False),
               (f"{workers} workers, no sharing", workers, False),
               (f"{workers} workers, sharing identical searches (default)", workers, True)]
    queries = [("popular (8 words)", False), ("all distinct", True)]
    log = root / name / "server.log"  # the servers' output, in the library folder
    log.unlink(missing_ok=True)
    results: dict[tuple[str, int, str], dict[str, float]] = {}
    for label, n, dedup in servers:
        proc, base = _start(name, root, n, dedup, log)
        try:
            for c in CONCURRENCY:
                for q, distinct in queries:
                    results[label, c, q] = _load(base, requests, c, distinct)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    section = Section(
        key="library-http-search",
        title="Library HTTP search: a pool of workers, sharing identical searches",
        command="python -m benchmarks --only library-http-search" + (" --quick" if quick
                                                                            else ""),
        columns=["server", "queries", "concurrency", "requests", "requests/s",
                 "ratio to baseline", "p50 ms", "p95 ms", "errors"])
    for q, _distinct in queries:
        for c in CONCURRENCY:
            baseline = results[servers[0][0], c, q]["rps"]
            for label, _n, _dedup in servers:
                r = results[label, c, q]
                section.rows.append([label, q, f"{c}", f"{requests}", f"{r['rps']:.1f}",
                                     f"{r['rps'] / baseline:.2f}", f"{r['p50']:.1f}",
                                     f"{r['p95']:.1f}", f"{int(r['errors'])}"])
    section.notes = (
        f"`GET /api/search?q=...&k=10` on loopback against a library of {items} tuxpaint "
        f"stamps ({2 * items} facets: pictures and captions) with `builtin:lit-tuxpaint`; "
        f"'popular': {len(WORDS)} searches asked round-robin, so at concurrency 32 each is "
        "in flight about four times at once, and each is embedded once (a library keeps "
        "the vectors of its recent queries in words); 'all distinct': every request asks "
        "words of its own (\"a frog 8-17\"), so every one is embedded (on onnxruntime). "
        "Before issue 22 this endpoint answered 29 requests/s at concurrency 8 (torch, "
        "LanceDB, requests in one process with the client). Each server runs in "
        "its own process (`polymodal.serve.serve`, as `polymodal serve --workers N` "
        "runs it; torch's intra-op threads lowered to cores / workers: "
        f"{torch_threads_for(1)} for one worker, {torch_threads_for(workers)} for "
        f"{workers}); the client (httpx, one thread per request in flight) shares the "
        "machine with it. Errors are answers other than 200 (a 503 when the queue "
        "is full; none expected here: the queue holds 64). A warm-up of every word "
        "twice precedes each measurement.")
    return section
