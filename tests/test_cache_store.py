"""The chunked feature cache: the one-file cache's interface in a few files, safe with
concurrent writers, and a damaged chunk recomputed, never trusted."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import pytest
import torch

from polymodal.encoders.cache_store import ChunkedFeatureCache


def _entry(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(i)
    return torch.randn(1 + i % 5, 6, generator=g), torch.randn(6, generator=g)


def _fill(root, start: int, stop: int) -> None:
    cache = ChunkedFeatureCache(root, fingerprint="enc", chunk_bytes=4096)
    for i in range(start, stop):
        cache.put(f"k{i}", *_entry(i))
    cache.close()


def test_entries_round_trip_in_a_few_files(tmp_path):
    cache = ChunkedFeatureCache(tmp_path, fingerprint="enc", chunk_bytes=2048)
    assert cache.get("k0") is None and cache.misses == 1
    with cache.writing():
        for i in range(300):
            cache.put(f"k{i}", *_entry(i))
    for i in (0, 7, 299):
        tokens, pooled = cache.get(f"k{i}")
        want = _entry(i)
        assert torch.equal(tokens, want[0]) and torch.equal(pooled, want[1])
    assert cache.hits == 3 and len(cache) == 300 and "k5" in cache and "nope" not in cache
    chunks = list((tmp_path / "enc" / "chunks").iterdir())
    assert 5 < len(chunks) < 60  # 300 entries, chunks of 2 KiB: not a file per entry
    cache.put("k0", torch.zeros(2, 6), torch.ones(6))  # written again: the newest wins
    assert torch.equal(cache.get("k0")[1], torch.ones(6))


def test_a_damaged_chunk_is_recomputed_never_trusted(tmp_path):
    cache = ChunkedFeatureCache(tmp_path, fingerprint="enc")
    for i in range(4):
        cache.put(f"k{i}", *_entry(i))
    cache.close()
    (chunk,) = (tmp_path / "enc" / "chunks").iterdir()
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0xFF  # a flipped bit inside the first entry
    chunk.write_bytes(bytes(data[: len(data) - 10]))  # and the last one cut short
    reopened = ChunkedFeatureCache(tmp_path, fingerprint="enc")
    assert reopened.get("k0") is None and reopened.get("k3") is None
    assert reopened.damaged == 2 and "k0" not in reopened  # dropped from the index
    assert torch.equal(reopened.get("k1")[0], _entry(1)[0])
    reopened.put("k0", *_entry(0))  # the caller computes it again
    assert torch.equal(reopened.get("k0")[0], _entry(0)[0])


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_fill, args=(tmp_path, 100 * w, 100 * w + 150))
             for w in range(3)]  # overlapping keys: 100-149 and 200-249 twice
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ChunkedFeatureCache(tmp_path, fingerprint="enc")
    assert len(cache) == 350
    for i in range(350):
        assert torch.equal(cache.get(f"k{i}")[0], _entry(i)[0])
    writers = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "enc" / "chunks").iterdir()}
    assert len(writers) == 3  # each process appends to its own chunks


def test_it_travels_to_workers(tmp_path):
    cache = ChunkedFeatureCache(tmp_path, fingerprint="enc")
    cache.put("a", *_entry(1))
    copy = pickle.loads(pickle.dumps(cache))
    assert torch.equal(copy.get("a")[0], _entry(1)[0])
    with pytest.raises(ValueError, match="frozen encoder or a fingerprint"):
        ChunkedFeatureCache(tmp_path)
