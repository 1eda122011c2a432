"""Issue 8, point 4: two ``polymodal index`` processes on one library serialise (the
second is refused with a clear message while the first holds the lock), and searches
made while an index run writes see whole batches only, never a half-written one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from polymodal.library import Library

BATCH = 8


@pytest.fixture()
def setup(colour_model, colours, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    colours.drop(columns=["split"]).to_csv(folder / "photos.csv", index=False)
    model = colour_model.save(tmp_path / "model")
    lib = Library.create("photos", model, root=tmp_path / "libs")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "POLYMODAL_LIBRARIES": str(tmp_path / "libs")}
    return lib, folder / "photos.csv", model, env, 2 * len(colours)


def _slow_indexer(libs: Path, manifest: Path, gate: Path | None, pause: float) -> str:
    """A script that indexes in batches of BATCH, pausing after each batch (and, with a
    gate file, waiting for it before the second batch)."""
    return textwrap.dedent(f"""
        import time
        from pathlib import Path
        from polymodal.library import LanceStore, Library
        real, calls = LanceStore.upsert, []
        def upsert(self, records):
            real(self, records)
            calls.append(len(records))
            print("batch", len(calls), flush=True)
            gate = {str(gate) if gate else None!r}
            while gate and not Path(gate).exists():
                time.sleep(0.05)
            time.sleep({pause})
        LanceStore.upsert = upsert
        Library("photos", {str(libs)!r}).index({str(manifest)!r}, batch_size={BATCH},
                                               progress=False)
        print("done", flush=True)
    """)


def test_a_second_index_process_is_refused_with_a_clear_message(setup, tmp_path):
    lib, manifest, model, env, n = setup
    gate = tmp_path / "go"
    first = subprocess.Popen([sys.executable, "-c", _slow_indexer(lib.folder.parent,
                                                                  manifest, gate, 0.0)],
                             env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "batch 1"  # it holds the lock now
        second = subprocess.run(
            [sys.executable, "-m", "polymodal.cli", "index", str(manifest), "--library",
             "photos", "--model", str(model)], env=env, capture_output=True, text=True,
            timeout=120)
        assert second.returncode == 2  # a clear refusal, not a crash
        said = " ".join((second.stdout + second.stderr).split())
        assert f"library 'photos' is being indexed by pid {first.pid}" in said
        assert "Traceback" not in said
    finally:
        gate.touch()
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0 and out.strip().endswith("done")
    contents = lib.store.contents()
    assert len(contents) == len(lib) == n  # the refused run wrote nothing, lost nothing


def test_searches_during_indexing_see_whole_batches_only(setup):
    lib, manifest, _model, env, n = setup
    writer = subprocess.Popen([sys.executable, "-c", _slow_indexer(lib.folder.parent,
                                                                   manifest, None, 0.15)],
                              env=env, stdout=subprocess.PIPE, text=True)
    reader = Library("photos", lib.folder.parent)
    counts, searches = [], 0
    deadline = time.time() + 120
    try:
        while writer.poll() is None and time.time() < deadline:
            count = len(reader)
            counts.append(count)
            hits = reader.store.search(reader.embed_query("red")[0], 200)
            searches += 1
            keys = [h["key"] for h in hits]
            assert len(keys) == len(set(keys))  # no facet twice
            assert all(h["item"] and h["column"] and h["modality"] and h["content"]
                       for h in hits)  # every record whole
            assert len(hits) <= n
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    print(f"{searches} searches during indexing; counts seen: {sorted(set(counts))}")
    assert searches >= 5
    assert counts == sorted(counts)  # versions only move forward
    assert all(c % BATCH == 0 or c == n for c in counts), counts  # whole batches
    assert len({c for c in counts if 0 < c < n}) >= 3  # it did read while the writer wrote
    assert len(reader) == n
