"""Past one machine (issue 23), the estimators and the library at scale.

``scale-pretrain``: ``Pretrainer.fit`` (the ``tiny`` preset: a CNN on 16 px pictures,
word-mean captions) on generated picture + caption pairs (``benchmarks.scale.
make_pairs``) written by ``write_shards``, at 10k, 100k and 1M rows, each fit in a
process of its own for at most ``FIT_SECONDS`` (one epoch, or as much of it as fits):
pairs/s, the share of each step spent waiting for its batch, peak RSS. Baseline: the
same fit from the manifest at the smallest size, decoding the files (caches off).

``scale-processes``: ``polymodal embed`` (EfficientNet-Lite0 on tuxpaint's pictures)
and ``Library.index`` (tuxpaint with ``builtin:general``, ONNX off so both run the
same torch towers) with 1 and 2 processes: items/s and the ratio.

``python -m benchmarks --only scale-pretrain --only scale-processes [--quick]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Section

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (2_000, 10_000)
FIT_SECONDS = 300
BATCH = 256
#: the generated pairs and their shards, kept between runs (the 1M folder takes 12 min)
PAIRS = Path(os.environ.get("POLYMODAL_BENCH_DATA", Path.home() / ".cache" / "polymodal"
                            / "bench")) / "scale-pairs"

FIT = """
import json, resource, sys, time
import lightning as L
from polymodal.pretraining import Pretrainer

class Wait(L.Callback):
    '''Seconds between a step's end and the next one's start (its batch's fetch).'''
    def __init__(self):
        self.wait = self.step = 0.0
        self.end = self.begin = None
    def on_train_batch_start(self, trainer, module, batch, idx):
        self.begin = time.perf_counter()
        if self.end is not None:
            self.wait += self.begin - self.end
    def on_train_batch_end(self, trainer, module, outputs, batch, idx):
        self.end = time.perf_counter()
        self.step += self.end - self.begin

source, run, cached, limit = sys.argv[1], sys.argv[2], sys.argv[3] == "1", float(sys.argv[4])
BATCH = int(sys.argv[5])
wait = Wait()
pre = Pretrainer(preset="tiny", max_epochs=1, batch_size=BATCH, patience=0, path=run,
                 memory_cache_mb=256 if cached else 0, media_cache=None)
start = time.perf_counter()
pre.fit(source, progress=False, callbacks=[wait], time_limit=limit)
pairs = pre.train_steps_ * BATCH
print(json.dumps({"pairs": pairs, "steps": pre.train_steps_,
                  "fit_s": time.perf_counter() - start,
                  "train_s": wait.wait + wait.step, "wait_s": wait.wait,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _fit(source: Path, run: Path, limit: float) -> dict:
    done = subprocess.run([sys.executable, "-c", FIT, str(source), str(run), "0", str(limit),
                           str(BATCH)],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_pretrain(quick: bool = False) -> Section:
    """Pairs/s, data wait and peak RSS of Pretrainer.fit from shards at each size."""
    from benchmarks.scale import make_pairs
    from polymodal.data.shards import write_shards

    sizes = QUICK_SIZES if quick else SIZES
    limit = 60 if quick else FIT_SECONDS
    section = Section(
        "scale-pretrain", "Pretraining from shards: 10k to 1M pairs",
        "python -m benchmarks --only scale-pretrain" + (" --quick" if quick else ""),
        ["path", "rows", "shard write rows/s", "pairs trained", "pairs/s", "vs manifest",
         "data wait / step", "wait share", "peak RSS", "RSS vs smallest"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = PAIRS / str(n)  # written once, kept for the next run (3 GB at 1M)
            written = folder / "written.json"
            if not written.is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                manifest = make_pairs(folder, n)
                t0 = time.perf_counter()
                write_shards(manifest, folder / "shards", shard_rows=5000,
                             show_progress=False, workers=2)
                written.write_text(json.dumps({"rows_per_s": n / (time.perf_counter() - t0)}))
            write_rate = json.loads(written.read_text())["rows_per_s"]
            if n == sizes[0]:
                results.append(("manifest (files decoded)", n, None,
                                _fit(folder / "pairs.csv", Path(tmp) / "run-m", limit)))
            results.append(("shards", n, write_rate,
                            _fit(folder / "shards", Path(tmp) / f"run-{n}", limit)))
    base = results[0][3]
    base_rate = base["pairs"] / base["train_s"]
    smallest: dict[str, float] = {}
    for path, n, write_rate, r in results:
        smallest.setdefault(path, r["peak_rss_mb"])
        rate = r["pairs"] / r["train_s"]
        section.rows.append([
            path, f"{n:,}", "" if write_rate is None else f"{write_rate:,.0f}",
            f"{r['pairs']:,}", f"{rate:,.0f}", f"{rate / base_rate:.2f}x",
            f"{1000 * r['wait_s'] / max(1, r['steps']):.1f} ms",
            f"{100 * r['wait_s'] / r['train_s']:.0f}%", f"{r['peak_rss_mb']:.0f} MB",
            f"{r['peak_rss_mb'] / smallest[path]:.2f}x"])
    section.notes = (
        f"`Pretrainer(preset='tiny', max_epochs=1, batch_size={BATCH})`, picture + caption "
        "pairs (64 distinct 32 x 32 PNGs, a caption of its own per row: 'pair i of the "
        "generated set'; written once to `$POLYMODAL_BENCH_DATA/scale-pairs`, the write "
        "rate from that run); each fit in a process of its own (2 threads, no DataLoader "
        f"workers) for at most {limit} s, so the larger folders train on the part of an "
        "epoch that fits (pairs trained); a vocabulary is fitted on at most 100,000 rows "
        "of a shard folder. Pairs/s counts the steps' time (a step's batch fetch + "
        "forward, backward, update), not the vocabulary pass. Data wait: the time between "
        "a step's end and the next one's start. The manifest baseline decodes every "
        "file (memory and disk caches off, as a set of distinct files would). Goal: the "
        "largest size's peak RSS within 1.2x of the smallest's.")
    return section


EMBED = """
import json, sys, time
from polymodal.encoders import build_encoder, embed_manifest
manifest, out, processes = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
r = embed_manifest(manifest, build_encoder("efficientnet-lite0"), out, column="image",
                   processes=processes, show_progress=False, on_error="skip")
print(json.dumps({"items": r.embedded, "seconds": time.perf_counter() - start}))
"""

INDEX = """
import json, sys, time
from polymodal.library import Library
manifest, root, processes = sys.argv[1], sys.argv[2], int(sys.argv[3])
lib = Library.create("bench", "builtin:general", root=root)
start = time.perf_counter()
r = lib.index(manifest, progress=False, processes=processes)
print(json.dumps({"items": r.added, "seconds": time.perf_counter() - start}))
"""


def _timed(code: str, *args: str) -> dict:
    env = {**os.environ, "POLYMODAL_ONNX": "0"}
    env.pop("OMP_NUM_THREADS", None)  # each run chooses its threads: cores / processes
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_processes(quick: bool = False) -> Section:
    """Items/s of embed and index with 1 and 2 processes (tuxpaint)."""
    from polymodal.data.bundled import make_dataset

    section = Section(
        "scale-processes", "Embedding and indexing in 1 and 2 processes",
        "python -m benchmarks --only scale-processes" + (" --quick" if quick else ""),
        ["what", "items", "processes", "seconds", "items/s", "vs 1 process"])
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(make_dataset("tuxpaint", limit=3 if quick else None))
        for what, code in (("embed pictures (EfficientNet-Lite0)", EMBED),
                           ("index pictures + captions (builtin:general)", INDEX)):
            first = None
            for processes in (1, 2):
                target = str(Path(tmp) / f"{len(section.rows)}")
                if code is EMBED:
                    target += ".parquet"
                r = _timed(code, str(manifest), target, str(processes))
                rate = r["items"] / r["seconds"]
                first = first or rate
                section.rows.append([what, f"{r['items']:,}", str(processes),
                                     f"{r['seconds']:.1f}", f"{rate:.1f}",
                                     f"{rate / first:.2f}x"])
    section.notes = (
        f"tuxpaint ({'3 stamps a category' if quick else '950 stamps'}; the library "
        "embeds each picture and caption). One process "
        "uses every core's threads; 2 processes each half of them (`cores // processes`), "
        "spawned, each loading the model once (counted in the time). The store's writes "
        "stay in the indexing process. ONNX off (`POLYMODAL_ONNX=0`) so both rows run the "
        "same torch towers. On this 2-core machine the processes share the same 2 cores "
        "one process's threads use: the ratio is what splitting the work costs or gains "
        "here, not what a machine with spare cores (or a second node) would show.")
    return section
