"""Past one machine (issue 23): streaming from shard folders, and the chunked feature
cache at a million entries.

``scale-stream``: generated picture + caption pairs (64 distinct 32 x 32 PNGs named by
the rows, a caption of its own per row) are sharded by ``write_shards`` and streamed
by ``ShardSource.loader`` into a tiny model's training steps (a linear layer on the
pixels, forward + backward), each size in a fresh process: pairs/s, the share of each
step spent waiting for data, and the process's peak RSS. The baseline is the
manifest path (``MultimodalDataset`` decoding the files) at the smallest size, in the
same run; the RSS goal is the largest size within 1.2x of the smallest.

``scale-cache``: ``ChunkedFeatureCache`` filled with a million entries (4 tokens x
32 + a pooled 32, float32) and read at random, against today's one-file-per-cell
``FeatureCache`` filled for the same wall time: entries/s, bytes on disk per entry
(allocated blocks), files.

``python -m benchmarks --only scale-stream --only scale-cache [--quick]``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from benchmarks.report import Section

STREAM_SIZES = (10_000, 100_000)
QUICK_STREAM_SIZES = (2_000, 10_000)


def make_pairs(folder: Path, n: int) -> Path:
    """A manifest of ``n`` (picture, caption) rows over 64 distinct small PNGs."""
    rng = np.random.default_rng(0)
    for i in range(64):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"img-{i}.png")
    table = pd.DataFrame({"image": [f"img-{i % 64}.png" for i in range(n)],
                          "caption": [f"pair {i} of the generated set" for i in range(n)]})
    path = folder / "pairs.csv"
    table.to_csv(path, index=False)
    return path


def _stream(source: str, kind: str, batch_size: int = 256) -> dict:
    """One epoch of tiny training steps from a shard folder or a manifest (this runs
    in its own process so that its peak RSS is its own)."""
    import resource

    torch.manual_seed(0)
    if kind == "shards":
        from polymodal.data.shard_source import open_shards

        loader = open_shards(source).loader(batch_size=batch_size, shuffle=True)
    else:
        from polymodal.data import MultimodalDataset
        from polymodal.data.dataset import EpochShuffleSampler

        ds = MultimodalDataset(source)
        loader = ds.loader(batch_size, sampler=EpochShuffleSampler(len(ds)))
    model = torch.nn.Linear(3 * 32 * 32, 32)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    wait = compute = 0.0
    rows = steps = 0
    start = time.perf_counter()
    it = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        loss = model(batch.inputs["image"].flatten(1)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        wait += t1 - t0
        compute += time.perf_counter() - t1
        rows += len(batch)
        steps += 1
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "steps": steps,
            "wait_ms": 1000 * wait / max(1, steps), "wait_share": wait / (wait + compute),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _in_process(source: Path, kind: str) -> dict:
    code = ("import json, sys; from benchmarks.scale import _stream; "
            "print(json.dumps(_stream(sys.argv[1], sys.argv[2])))")
    done = subprocess.run([sys.executable, "-c", code, str(source), kind],
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_stream(quick: bool = False) -> Section:
    """Pairs/s, data wait and peak RSS from shards at each size (manifest baseline)."""
    from polymodal.data.shards import write_shards

    sizes = QUICK_STREAM_SIZES if quick else STREAM_SIZES
    section = Section("scale-stream", "Streaming from shard folders: memory flat in the rows",
                      "python -m benchmarks --only scale-stream" + (" --quick" if quick else ""),
                      ["path", "rows", "shard write rows/s", "pairs/s", "vs manifest",
                       "data wait / step", "wait share", "peak RSS", "RSS vs smallest"])
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for n in sizes:
            folder = Path(tmp) / str(n)
            folder.mkdir()
            manifest = make_pairs(folder, n)
            t0 = time.perf_counter()
            write_shards(manifest, folder / "shards", shard_rows=2000, show_progress=False)
            write_rate = n / (time.perf_counter() - t0)
            if n == sizes[0]:
                base = _in_process(manifest, "manifest")
                results.append(("manifest (MultimodalDataset)", n, None, base))
            results.append(("shards", n, write_rate, _in_process(folder / "shards", "shards")))
    base_rate = base["rows"] / base["seconds"]
    smallest = {}
    for path, n, write_rate, r in results:
        smallest.setdefault(path, r["peak_rss_mb"])
        rate = r["rows"] / r["seconds"]
        section.rows.append([path, f"{n:,}", "" if write_rate is None else f"{write_rate:,.0f}",
                             f"{rate:,.0f}", f"{rate / base_rate:.2f}x",
                             f"{r['wait_ms']:.1f} ms", f"{100 * r['wait_share']:.0f}%",
                             f"{r['peak_rss_mb']:.0f} MB",
                             f"{r['peak_rss_mb'] / smallest[path]:.2f}x"])
    section.notes = (
        "One epoch, batches of 256, shuffled (shards: pieces in a seeded order, rows "
        "shuffled in windows of 512), no DataLoader workers, one process each. A step "
        "is a linear layer's forward + backward on the 32 x 32 pixels, so the wait "
        "share is what decoding costs against a model far smaller than any real one. "
        "Goal: the largest size's peak RSS within 1.2x of the smallest's.")
    return section


class _Frozen:
    """What the one-file cache asks of an encoder: frozen, and a fingerprint."""

    trainable = False

    def fingerprint(self) -> str:
        return "bench-encoder"


def _disk(folder: Path) -> tuple[int, int]:
    """(allocated bytes, files) under ``folder``."""
    size = files = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            size += os.stat(os.path.join(root, name)).st_blocks * 512
            files += 1
    return size, files


def run_cache(quick: bool = False) -> Section:
    """The chunked cache at 1M entries against the one-file cache for the same time."""
    from polymodal.encoders.cache import FeatureCache
    from polymodal.encoders.cache_store import ChunkedFeatureCache

    n = 20_000 if quick else 1_000_000
    tokens, pooled = torch.randn(4, 32), torch.randn(32)
    rng = random.Random(0)
    section = Section("scale-cache", "The feature cache at a million entries",
                      "python -m benchmarks --only scale-cache" + (" --quick" if quick else ""),
                      ["cache", "entries", "fill entries/s", "read entries/s (random)",
                       "disk / entry", "files", "fill vs one-file", "read vs one-file"])
    with tempfile.TemporaryDirectory() as tmp:
        chunked = ChunkedFeatureCache(Path(tmp) / "chunked", fingerprint="bench-encoder")
        t0 = time.perf_counter()
        for start in range(0, n, 10_000):
            with chunked.writing():
                for i in range(start, min(n, start + 10_000)):
                    chunked.put(f"{i:040x}", tokens, pooled)
        fill_seconds = time.perf_counter() - t0
        keys = [f"{rng.randrange(n):040x}" for _ in range(min(n, 100_000))]
        t0 = time.perf_counter()
        assert all(chunked.get(k) is not None for k in keys)
        chunked_read = len(keys) / (time.perf_counter() - t0)
        chunked.close()
        c_bytes, c_files = _disk(Path(tmp) / "chunked")

        one = FeatureCache(Path(tmp) / "one-file", _Frozen())  # type: ignore[arg-type]
        t0, m = time.perf_counter(), 0
        while time.perf_counter() - t0 < fill_seconds:
            one.put(f"{m:040x}", tokens, pooled)
            m += 1
        one_fill = m / (time.perf_counter() - t0)
        one_keys = [f"{rng.randrange(m):040x}" for _ in range(min(m, 20_000))]
        t0 = time.perf_counter()
        assert all(one.get(k) is not None for k in one_keys)
        one_read = len(one_keys) / (time.perf_counter() - t0)
        o_bytes, o_files = _disk(Path(tmp) / "one-file")
    chunked_fill = n / fill_seconds
    section.rows = [
        ["one file per cell (FeatureCache, baseline)", f"{m:,}", f"{one_fill:,.0f}",
         f"{one_read:,.0f}", f"{o_bytes / m:,.0f} B", f"{o_files:,}", "1.00x", "1.00x"],
        ["chunks + SQLite index (ChunkedFeatureCache)", f"{n:,}", f"{chunked_fill:,.0f}",
         f"{chunked_read:,.0f}", f"{c_bytes / n:,.0f} B", f"{c_files:,}",
         f"{chunked_fill / one_fill:.1f}x", f"{chunked_read / one_read:.1f}x"]]
    section.notes = (
        f"An entry: 4 x 32 tokens + a pooled 32, float32 (640 B of data). The chunked "
        f"cache's fill took {fill_seconds:.0f} s (puts in transactions of 10,000, as a "
        "fill does); the one-file cache was filled for the same time, so its row shows "
        "the size it reaches in that time. Reads: random keys, each entry's CRC-32 "
        "checked. Disk is allocated blocks (a small file costs a whole block).")
    return section


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for fn in (run_stream, run_cache):
        print(fn(quick).render())
