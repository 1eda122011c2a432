"""The media cache: a picture or a sound is decoded once per content and transform,
across epochs, runs and processes; a changed file is decoded again; a half-written
entry is never read; the folder stays under its bound."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.bundled import make_dataset
from polymodal.data.manifest import DecodeOptions
from polymodal.data.media_cache import (
    MEDIA_CACHE_ENV,
    MediaCache,
    cache_folder,
    encoder_identity,
    transform_identity,
    transform_key,
)
from polymodal.encoders.registry import build_encoder
from polymodal.predictor import Predictor

SRC = str(Path(__file__).resolve().parents[1] / "src")


def pictures(folder: Path, n: int = 4) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i}.png"
        Image.new("RGB", (20 + i, 16), (40 * i, 100, 200 - 40 * i)).save(path)
        paths.append(str(path))
    return pd.DataFrame({"image": paths, "label": [i % 2 for i in range(n)]})


def epoch(ds: MultimodalDataset) -> list[torch.Tensor]:
    return [ds[i].inputs["image"] for i in range(len(ds))]


def test_epochs_and_runs_after_the_first_decode_nothing(tmp_path, decodes):
    m = Manifest.read(pictures(tmp_path / "pics"))
    enc = build_encoder("cnn", image_size=16)
    first = MultimodalDataset(m, transforms={"image": enc.preprocess},
                              media_cache=MediaCache(tmp_path / "cache"))
    cold = epoch(first)
    assert sum(decodes.values()) == len(m)
    warm = epoch(first)  # a second epoch, no memory cache: read from disk
    again = MultimodalDataset(m, transforms={"image": enc.preprocess},  # another run
                              media_cache=MediaCache(tmp_path / "cache"))
    later = epoch(again)
    assert sum(decodes.values()) == len(m)
    assert again.media_cache.hits == len(m) and again.media_cache.misses == 0
    for a, b, c in zip(cold, warm, later, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and c.dtype == torch.float32


def test_a_second_fit_decodes_no_picture_and_no_sound(tmp_path, decodes):
    """The estimator's setting: two epochs, then a second run, memory cache off."""
    data = make_dataset("av-digits", tmp_path / "av-digits", limit=3, show_progress=False)

    def fit(run: str) -> None:
        Predictor(label="label", preset="tiny", fusion="concat", max_epochs=2, patience=0,
                  path=tmp_path / run, modalities=["image", "audio"], memory_cache_mb=0,
                  media_cache=str(tmp_path / "media")).fit(data, progress=False)

    fit("one")
    media = {k: n for k, n in decodes.items() if k[2] in ("image", "audio")}
    assert media and set(media.values()) == {1}, Counter(media.values())  # not per epoch
    decodes.clear()
    fit("two")
    assert not [k for k in decodes if k[2] in ("image", "audio")]


def test_a_changed_file_is_decoded_again(tmp_path, decodes):
    df = pictures(tmp_path / "pics", n=1)
    path = Path(df.image[0])
    cache = MediaCache(tmp_path / "cache")
    ds = MultimodalDataset(Manifest.read(df), media_cache=cache)
    red = epoch(ds)[0]
    before = path.stat()
    Image.new("RGB", (20, 16), (0, 255, 0)).save(path)  # same size on disk, maybe
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    green = epoch(ds)[0]
    assert sum(decodes.values()) == 2 and not torch.equal(red, green)
    assert green[1].mean() == 1.0  # the new picture's green channel
    assert epoch(MultimodalDataset(Manifest.read(df), media_cache=MediaCache(
        tmp_path / "cache")))[0].equal(green)
    assert sum(decodes.values()) == 2


def test_the_key_names_the_transform_not_the_weights():
    torch.manual_seed(0)
    a = build_encoder("cnn", image_size=16)
    torch.manual_seed(1)
    b = build_encoder("cnn", image_size=16)
    assert encoder_identity(a) == encoder_identity(b)  # another seed: same preprocessing
    assert encoder_identity(a) != encoder_identity(build_encoder("cnn", image_size=24))
    assert transform_identity(a.preprocess, "image") == encoder_identity(a)
    assert transform_identity(lambda v: a.preprocess(v), "image") is None  # noise, say
    assert transform_identity(None, "image", 8) != transform_identity(None, "image", 16)
    ident = encoder_identity(a)
    assert transform_key(ident) != transform_key(ident, DecodeOptions(sample_rate=8000))


def test_a_half_written_entry_is_never_read(tmp_path, decodes):
    df = pictures(tmp_path / "pics", n=1)
    cache = MediaCache(tmp_path / "cache")
    ds = MultimodalDataset(Manifest.read(df), media_cache=cache)
    key = cache.key(df.image[0], ds._media_keys["image"])
    # a writer killed mid-way leaves its temp file, never the entry's name
    key.entry.parent.mkdir(parents=True)
    tmp = key.entry.with_name(f".{key.entry.name}.999.abcd.tmp")
    tmp.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False")
    good = epoch(ds)[0]
    assert sum(decodes.values()) == 1 and key.entry.exists()
    # a truncated entry (a disk error): removed, decoded again, written whole
    key.entry.write_bytes(key.entry.read_bytes()[:-100])
    assert cache.get(key) is None and not key.entry.exists()
    assert epoch(ds)[0].equal(good) and sum(decodes.values()) == 2
    assert cache.get(key).equal(good)
    # not an .npy at all, or an empty file: never trusted, nothing unpickled
    for junk in (b"", b"\x80\x04K\x01.", b"garbage" * 40):
        key.entry.write_bytes(junk)
        assert cache.get(key) is None
    # a garbled index line: the file is hashed again
    for index in (tmp_path / "cache" / "index").rglob("*"):
        if index.is_file():
            index.write_text("not a digest")
    assert MediaCache(tmp_path / "cache").key(df.image[0], key.entry.parts[-3]) == key
    # stale temp files go at the next size check
    os.utime(tmp, (1, 1))
    cache.evict()
    assert not tmp.exists()


WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from polymodal.data.media_cache import MediaCache
    import torch
    cache = MediaCache(sys.argv[2], max_gb=float(sys.argv[4]))
    files = sorted(Path(sys.argv[3]).glob("*.wav"))
    for rounds in range(3):
        for f in files:
            key = cache.key(f, "t")
            got = cache.get(key)
            if got is None:
                wave = np.frombuffer(f.read_bytes()[44:], dtype=np.int16).astype(np.float32)
                cache.put(key, torch.from_numpy(np.repeat(wave, 4)))
            else:
                assert got.shape[0] > 0
    print(cache.hits, cache.writes)
""")


def test_two_processes_fill_one_cache_and_leave_whole_entries(tmp_path):
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for i in range(24):
        sf.write(sounds / f"{i}.wav", np.full(4000 + 100 * i, i / 30, np.float32), 8000,
                 subtype="PCM_16")
    folder = tmp_path / "cache"
    # a bound of about half the entries: the two also evict while the other reads
    bound = 24 * 20_000 * 4 / 2 / 2**30
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, SRC, str(folder), str(sounds),
                               str(bound)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    entries = list(folder.glob("t/*/*.npy"))
    assert entries and not list(folder.rglob("*.tmp"))
    for entry in entries:
        assert np.load(entry, allow_pickle=False).shape[0] >= 16_000
    # each may have written once while the other held the eviction lock
    assert MediaCache(folder, bound).size_bytes() <= bound * 2**30 + 2 * 26_000 * 4


def test_eviction_keeps_the_folder_under_its_bound_and_the_recent_entries(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    cache = MediaCache(tmp_path / "cache", max_gb=200_000 / 2**30, touch_after=0)
    keys = []
    for i in range(30):
        f = files / f"{i}.bin"
        f.write_bytes(bytes([i]) * 10)
        key = cache.key(f, "t")
        assert cache.put(key, torch.full((10_000,), float(i)))  # 40 kB each
        keys.append(key)
        os.utime(key.entry, (1000 + i, 1000 + i))  # written in this order, long ago
        assert cache.size_bytes() <= cache.max_bytes
    survivors = [k for k in keys if k.entry.exists()]
    assert 1 < len(survivors) < len(keys) and keys[-1] in survivors
    assert not keys[0].entry.exists() and cache.get(keys[0]) is None  # gone: decode again
    oldest = survivors[0]
    assert cache.get(oldest) is not None  # read now: the most recently used
    for i, key in enumerate(keys[:3]):  # three new entries push the others out
        cache.put(key, torch.full((10_000,), float(i)))
    assert oldest.entry.exists() and not survivors[1].entry.exists()
    assert cache.size_bytes() <= cache.max_bytes


def test_the_setting_names_a_folder_or_none(tmp_path, monkeypatch):
    monkeypatch.setenv(MEDIA_CACHE_ENV, str(tmp_path / "env"))
    assert cache_folder("auto") == tmp_path / "env"
    monkeypatch.delenv(MEDIA_CACHE_ENV)
    assert cache_folder("auto") == Path.home() / ".cache" / "polymodal" / "media"
    assert cache_folder(None) is None and cache_folder("off") is None
    assert cache_folder(tmp_path / "x") == tmp_path / "x"
    assert Predictor(label="y").media_cache == "auto"  # on by default
    with pytest.raises(ValueError, match="max_gb"):
        MediaCache(tmp_path, max_gb=0)
