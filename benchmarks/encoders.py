"""Encoder benchmarks: the feature cache across epochs, and embedding memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

import torch

from benchmarks.report import Section
from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.bundled import make_dataset
from polymodal.encoders import CachedEncoder, CachedFeatures, build_encoder


def run_cache(quick: bool = False) -> Section:
    """Epoch 1 fills the cache (decode + encode), epoch 2 reads it, on tuxpaint with a
    frozen EfficientNet-Lite0 (images) and MiniLM (captions)."""
    manifest = Manifest.read(make_dataset("tuxpaint", limit=3 if quick else None))
    encoders = {"image": build_encoder("efficientnet-lite0"), "caption": build_encoder("minilm")}
    section = Section(
        key="feature-cache", title="Feature cache: a second epoch over tuxpaint",
        command="python -m benchmarks --only feature-cache" + (" --quick" if quick else ""),
        columns=["epoch", "rows", "seconds", "rows/s", "speed-up over epoch 1"])
    with tempfile.TemporaryDirectory() as cache_dir:
        loaders = {c: CachedFeatures(e, cache_dir) for c, e in encoders.items()}
        models = {c: CachedEncoder(e) for c, e in encoders.items()}
        ds = MultimodalDataset(manifest, columns=list(encoders), cell_loaders=loaders)

        def epoch(fill: bool) -> float:
            start = time.perf_counter()
            if fill:
                for column, loader in loaders.items():
                    loader.fill(manifest, column, batch_size=32, show_progress=False)
            with torch.no_grad():
                for batch in ds.loader(batch_size=32):
                    for column, model in models.items():
                        model(batch.inputs[column], batch.lengths.get(column))
            return time.perf_counter() - start

        first = epoch(fill=True)
        second = min(epoch(fill=False) for _ in range(1 if quick else 2))
    n = len(manifest)
    section.rows = [["1 (decode, encode, write the cache)", f"{n}", f"{first:.1f}",
                     f"{n / first:,.1f}", "1.0"],
                    ["2 (read the cache)", f"{n}", f"{second:.2f}", f"{n / second:,.0f}",
                     f"{first / second:,.1f}"]]
    section.notes = ("Epoch 1 rasterises the SVGs, runs EfficientNet-Lite0 at 224 px and "
                     "MiniLM in batches of 32 and writes one safetensors file per distinct "
                     "file or caption; epoch 2 hashes each cell's content and reads its entry.")
    return section


_EMBED_CHILD = """
import json, resource, sys
import torch
from polymodal.data import Manifest
from polymodal.encoders import build_encoder, embed_manifest
m = Manifest.read(sys.argv[1])
rows = int(sys.argv[2])
m = m.subset(list(range(rows)))
torch.manual_seed(0)
enc = build_encoder("cnn", image_size=28, dim=64).freeze()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
embed_manifest(m, enc, sys.argv[3], batch_size=256, show_progress=False)
print(json.dumps({"rows": rows, "before_mb": before / 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_memory(quick: bool = False) -> Section:
    """Peak memory of `embed` on fashion-mnist: a tenth of it against all of it."""
    path = make_dataset("fashion-mnist", limit=50 if quick else None)
    total = len(Manifest.read(path))
    section = Section(
        key="embed-memory", title="Embedding memory: bounded by the batch, not the dataset",
        command="python -m benchmarks --only embed-memory" + (" --quick" if quick else ""),
        columns=["rows embedded", "peak RSS (MB)", "growth during embed (MB)",
                 "peak relative to a tenth"])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (total // 10, total):
            out = subprocess.run([sys.executable, "-c", _EMBED_CHILD, str(path), str(rows),
                                  f"{tmp}/emb-{rows}.npy"], capture_output=True, text=True,
                                 check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = results[0]["peak_mb"]
    for r in results:
        section.rows.append([f"{r['rows']:,}", f"{r['peak_mb']:.0f}",
                             f"{r['peak_mb'] - r['before_mb']:.0f}",
                             f"{r['peak_mb'] / base:.2f}"])
    section.notes = ("Each run is a fresh process embedding fashion-mnist images with a frozen "
                     "`cnn` encoder (28 px, 64-d) in batches of 256 to a memory-mapped .npy; "
                     "the manifest's table is the only thing that grows with the rows.")
    return section
