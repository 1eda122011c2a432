"""Pictures' EfficientNet-Lite0 features (computed once, kept on disk) and the choice of
the bridge's temperature and top-k on :data:`~.sources.TUNING` (the tuxpaint stamps'
train split: no evaluation split, no held-out package)::

    python -m polymodal.library.general.build --choose
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)
#: the grid the temperature and top-k are chosen from
TEMPERATURES = (0.5, 1.0, 2.0, 3.0, 4.0)
TOP_KS = (5, 10, 50)
#: the "confident at" values tried (1.0: the raw confidence scales every picture)
CONFIDENT_ATS = (0.1, 0.2, 0.3, 0.4, 1.0)


@torch.no_grad()
def pooled_features(paths: Sequence[str | os.PathLike[str]], cache: Path | None = None,
                    batch_size: int = 32) -> np.ndarray:
    """``(N, 1280)`` EfficientNet-Lite0 pooled features of the pictures at ``paths``
    (the bridge's and lit-tuxpaint's image tower's input), kept in ``cache`` by the
    paths and their sizes and times; NaN for a picture that cannot be decoded (a
    bomb, a broken file: logged with its path)."""
    from PIL import Image

    from polymodal.data.errors import MediaError
    from polymodal.data.media import decode_image
    from polymodal.encoders.efficientnet_lite import efficientnet_lite0, preprocess_image

    file = _cache_file(paths, cache) if cache is not None else None
    if file is not None and file.exists():
        return np.load(file)
    net = efficientnet_lite0().eval()
    out = []
    for i in range(0, len(paths), batch_size):
        pictures, failed = [], []
        for j, p in enumerate(paths[i: i + batch_size]):
            try:
                pictures.append(decode_image(Path(p)))
            except MediaError as exc:  # a bomb, a broken file: no features, named
                log.warning("%s: not encoded (%s)", p, exc)
                pictures.append(Image.new("RGB", (32, 32)))
                failed.append(j)
        feats = net.forward_features(torch.stack([preprocess_image(x) for x in pictures]))
        feats = feats.mean(dim=(2, 3)).numpy()
        feats[failed] = np.nan
        out.append(feats)
    feats = np.concatenate(out) if out else np.zeros((0, 1280), np.float32)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        part = file.with_name(f"{file.stem}.{os.getpid()}.part.npy")
        np.save(part, feats)
        os.replace(part, file)  # a stopped run leaves no half-written chunk
    return feats


def paths_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """A key of files as they are now: their paths, sizes and times (16 hex digits)."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _cache_file(paths: Sequence[str | os.PathLike[str]], cache: Path) -> Path:
    """Where :func:`pooled_features` keeps the features of ``paths``: named by the
    paths and their sizes and times."""
    return cache / f"lite0-{paths_digest(paths)}.npy"


def chunked_features(paths: Sequence[str | os.PathLike[str]], cache: Path,
                     chunk: int = 500, processes: int | None = None) -> np.ndarray:
    """:func:`pooled_features` of ``paths`` computed and kept ``chunk`` pictures at a
    time (an interrupted run of a large source keeps what it encoded). The chunks not
    in ``cache`` yet are encoded by ``processes`` worker processes of one thread each
    (default ``$POLYMODAL_ENCODE_PROCESSES``, else 1: in this process); a chunk is the
    same batches in any process, so the features do not depend on how many ran (but
    for the rounding of another thread count)."""
    chunks = [list(paths[i: i + chunk]) for i in range(0, len(paths), chunk)]
    processes = processes or int(os.environ.get("POLYMODAL_ENCODE_PROCESSES", "1"))
    missing = [c for c in chunks if not _cache_file(c, cache).exists()]
    if processes > 1 and len(missing) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(processes, len(missing)), initializer=_one_thread,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(pooled_features, missing, [cache] * len(missing)))
    parts = [pooled_features(c, cache) for c in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, 1280), np.float32)


def _one_thread() -> None:
    torch.set_num_threads(1)


def bridge_vectors(pooled: np.ndarray, bridge: torch.nn.Module) -> np.ndarray:
    """The bridge's normalised vectors of pooled features (its ``place`` of the
    classifier's logits)."""
    with torch.no_grad():
        x = torch.as_tensor(pooled)
        v = bridge.place(bridge.net.classify(x))
    return torch.nn.functional.normalize(v, dim=-1).numpy()


def caption_retrieval(images: np.ndarray, captions: Sequence[str], words: np.ndarray
                      ) -> dict[str, float]:
    """Caption -> picture retrieval metrics (captions shared by pictures retrieve
    all of them)."""
    from polymodal.pretraining.retrieval import co_occurrence, retrieval_metrics

    queries, _gallery, relevant = co_occurrence(list(captions), [str(i) for i in
                                                                range(len(images))])
    first = {c: i for i, c in reversed(list(enumerate(captions)))}
    return retrieval_metrics(words[[first[q] for q in queries]], images, relevant)


def grid(cache: Path | None = None) -> list[dict[str, float]]:
    """Caption -> picture R@1 / R@10 on the tuning source for every temperature, top-k
    and "confident at" of the grid, and without the "nothing" axis (confident at 0)."""
    from polymodal.encoders.bridge import ImageNetBridge
    from polymodal.encoders.registry import build_encoder
    from polymodal.library.general.sources import TUNING

    rows = TUNING.rows()
    pooled = pooled_features(list(rows["image"]), cache)
    text = build_encoder("minilm")
    with torch.no_grad():
        words = torch.cat([text.encode(list(rows["caption"][i: i + 128])).pooled
                           for i in range(0, len(rows), 128)])
    words = torch.nn.functional.normalize(torch.cat([words, torch.zeros(len(words), 1)], 1),
                                          dim=-1).numpy()
    bridge, plain = ImageNetBridge(), ImageNetBridge(null_axis=False)
    out = []
    for t in TEMPERATURES:
        for k in TOP_KS:
            for c0 in (0.0, *CONFIDENT_ATS):
                b = plain if c0 == 0.0 else bridge
                b.temperature, b.top_k, b.confident_at = t, k, c0 or 1.0
                m = caption_retrieval(bridge_vectors(pooled, b), list(rows["caption"]),
                                      words[:, :-1] if c0 == 0.0 else words)
                out.append({"temperature": t, "top_k": k, "confident_at": c0,
                            "R@1": m["R@1"], "R@10": m["R@10"],
                            "median_rank": m["median_rank"], "queries": m["queries"]})
    return out


def print_grid() -> None:
    """Print the grid, best R@10 first."""
    from polymodal.library.builtin import models_home

    rows = sorted(grid(models_home() / "bridge" / "features"), key=lambda r: -r["R@10"])
    print("temperature  top_k  confident_at (0: no axis)   R@1    R@10   median rank")
    for r in rows:
        print(f"{r['temperature']:>11}  {r['top_k']:>5}  {r['confident_at']:>12}  "
              f"{r['R@1']:.3f}  {r['R@10']:.3f}  {r['median_rank']:.0f}  "
              f"({r['queries']:.0f} captions)")
