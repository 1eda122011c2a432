"""Shard folders: written from a manifest with its bad rows reported as validate reports
them, read back as the rows MultimodalDataset gives, each process and worker reading
its own rows, resumable mid-epoch, and bad folders named with their rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.errors import MediaError
from polymodal.data.shard_source import META_FILE, ShardError, open_shards
from polymodal.data.shards import write_shards
from polymodal.data.validation import validate


@pytest.fixture()
def manifest(tmp_path):
    """23 rows (picture, sound, caption, label, split); rows 5 and 7 have bad pictures."""
    rows = []
    for i in range(23):
        Image.new("RGB", (40, 20), (i * 10, 255 - i, 0)).save(tmp_path / f"{i}.png")
        wave = np.sin(np.arange(400) * (i + 1) / 30).astype("float32")
        sf.write(tmp_path / f"{i}.wav", wave, 16000)
        rows.append({"image": f"{i}.png", "sound": f"{i}.wav", "text": f"caption {i}",
                     "label": "odd" if i % 2 else "even"})
    rows[5]["image"] = "gone.png"
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    rows[7]["image"] = "broken.png"
    rows[9]["text"] = ""  # row 9 lacks a caption: not a problem
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


@pytest.fixture()
def folder(manifest, tmp_path):
    write_shards(manifest, tmp_path / "shards", shard_rows=4, image_size=None,
                 show_progress=False)
    return tmp_path / "shards"


def _rows(loader):
    return [i for batch in loader for i in batch.indices.tolist()]


def test_bad_rows_are_reported_as_validate_reports_them(manifest, tmp_path):
    report = write_shards(manifest, tmp_path / "s", shard_rows=4, show_progress=False)
    checked = validate(Manifest.read(manifest), show_progress=False)
    assert [(p.row, p.column, p.kind) for p in report.problems] == \
        [(p.row, p.column, p.kind) for p in checked.problems] == \
        [(5, "image", "missing_file"), (7, "image", "unreadable")]
    assert report.rows_written == 21 and len(report.shards) == 6  # 4 x 5 + 1
    assert report.columns["text"].empty == 1
    assert (tmp_path / "s" / "problems.csv").read_text().count("\n") == 3
    with pytest.raises(MediaError, match=r"row 5.*image"):
        write_shards(manifest, tmp_path / "r", on_error="raise", show_progress=False)


def test_rows_read_back_as_the_manifest_dataset_gives_them(manifest, folder):
    source = open_shards(folder)
    assert len(source) == 21 and source.labels()[:3] == ["even", "odd", "even"]
    assert source.schema["text"].source == "inline"
    batch = next(iter(source.loader(batch_size=21)))
    good = [i for i in range(23) if i not in (5, 7)]
    ref = MultimodalDataset(Manifest.read(manifest).subset(good))
    assert batch.ids == [str(i) for i in good]  # the manifest's rows
    for position, example in enumerate(ref[i] for i in range(len(ref))):
        assert torch.equal(batch.inputs["image"][position], example.inputs["image"])
        assert torch.allclose(batch.inputs["sound"][position], example.inputs["sound"])
        assert batch.inputs["text"][position] == (example.inputs["text"] or "")
    assert batch.present["text"].sum() == 20  # row 9 has no caption
    assert list(source.cells("text"))[:2] == ["caption 0", "caption 1"]


def test_pictures_are_fitted_in_the_square(manifest, tmp_path):
    write_shards(manifest, tmp_path / "small", image_size=10, show_progress=False)
    batch = next(iter(open_shards(tmp_path / "small").loader(batch_size=2)))
    assert tuple(batch.inputs["image"].shape) == (2, 3, 5, 10)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_each_process_reads_its_own_rows(folder, world):
    source = open_shards(folder)
    per_rank = [_rows(source.loader(batch_size=2, shuffle=True, seed=3, rank=r,
                                    world_size=world, window=3)) for r in range(world)]
    rows = [i for part in per_rank for i in part]
    assert len(rows) == len(set(rows))  # no row twice
    assert len(rows) == (21 if world in (1, 3) else 20)  # 21 % 2 = 1 row sits out
    assert len({len(part) for part in per_rank}) == 1  # equal shares: no DDP stall
    epoch_two = _rows(source.loader(batch_size=2, shuffle=True, seed=3))
    assert sorted(epoch_two) == list(range(21))


def test_workers_split_a_process_share(folder):
    source = open_shards(folder)
    loader = source.loader(batch_size=2, shuffle=True, num_workers=2)
    rows = _rows(loader)
    assert sorted(rows) == list(range(21)) and len(loader) == 11
    first, second = _rows(loader), _rows(loader)  # each pass is the next epoch
    assert first != second and sorted(first) == sorted(second)


def test_a_loader_resumes_mid_epoch(folder):
    source = open_shards(folder)
    whole = source.loader(batch_size=3, shuffle=True, seed=1)
    _rows(whole)  # epoch 0
    expected = [b.indices.tolist() for b in whole]  # epoch 1
    stopped = source.loader(batch_size=3, shuffle=True, seed=1)
    _rows(stopped)
    it = iter(stopped)
    seen = [next(it).indices.tolist() for _ in range(3)]
    state = stopped.state_dict()
    assert state["epoch"] == 1 and state["batches"] == 3
    resumed = source.loader(batch_size=3, shuffle=True, seed=1)
    resumed.load_state_dict(json.loads(json.dumps(state)))  # a checkpoint round trip
    assert seen + [b.indices.tolist() for b in resumed] == expected


def test_a_newer_folder_is_refused_with_the_version_it_needs(folder):
    meta = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps({**meta, "format": 9, "polymodal": "7.0"}))
    with pytest.raises(ShardError, match=r"format 9.*polymodal >= 7\.0"):
        open_shards(folder)
    with pytest.raises(ShardError, match="not a shard folder"):
        open_shards(folder.parent)


def test_a_missing_shard_is_named_with_its_rows(folder):
    (folder / "all-000001.tar").unlink()
    with pytest.raises(ShardError, match=r"all-000001\.tar is missing \(rows 4-7"):
        open_shards(folder)
    source = open_shards(folder, on_error="skip")
    assert len(source) == 17
    assert [p.row for p in source.problems] == [4, 6, 8, 9]  # the manifest's rows
    assert {p.kind for p in source.problems} == {"missing_shard"}


def test_a_truncated_shard_is_named_and_skipped_or_refused(folder):
    shard = folder / "all-000002.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(ShardError, match=r"all-000002\.tar holds 3,000 bytes"):
        open_shards(folder)
    meta = json.loads((folder / META_FILE).read_text())  # the size recorded matches
    meta["shards"][2]["bytes"] = 3000  # (a shard cut where its size was written too)
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ShardError, match=r"all-000002\.tar.*rows \d+-11"):
        _rows(open_shards(folder).loader(batch_size=4))
    batches = list(open_shards(folder, on_error="skip").loader(batch_size=4))
    skipped = [p for b in batches for p in b.skipped]
    assert skipped and {p.kind for p in skipped} == {"truncated_shard"}
    assert sum(len(b) for b in batches) + len(skipped) == 21


def test_splits_become_their_own_shards(manifest, tmp_path):
    table = pd.read_csv(manifest)
    table["split"] = ["val" if i < 6 else "train" for i in range(len(table))]
    table.to_csv(manifest, index=False)
    write_shards(manifest, tmp_path / "sp", shard_rows=8, show_progress=False)
    source = open_shards(tmp_path / "sp")
    assert source.splits == ["train", "val"]
    assert len(source.split("train")) == 16 and len(source.split("validation")) == 5
    train, tune = source.split("train").holdout(0.5, seed=0)
    assert len(train) + len(tune) == 16 and len(tune) > 0


def test_the_shard_command(manifest, tmp_path):
    result = CliRunner().invoke(app, ["shard", str(manifest), "--out", str(tmp_path / "c"),
                                      "--shard-rows", "10", "--image-size", "16"])
    assert result.exit_code == 0, result.output
    assert "21 rows written to 3 shards" in result.output and "missing_file" in result.output
    again = CliRunner().invoke(app, ["shard", str(manifest), "--out", str(tmp_path / "c")])
    assert again.exit_code == 2 and "--overwrite" in again.output


# -- 2 nodes x 2 processes under torchrun, against one process -------------------------
MULTINODE = """

from __future__ import annotations

import json
import os
import sys

import lightning as L
import torch
import torch.nn.functional as F

from polymodal.data.shard_source import open_shards
from polymodal.objectives import ContrastiveLoss


class Tiny(L.LightningModule):
    # two linear towers in a shared space; InfoNCE gathers negatives across processes

    def __init__(self) -> None:
        super().__init__()
        self.image = torch.nn.Linear(3 * 8 * 8, 8)
        self.sound = torch.nn.Linear(64, 8)
        self.loss = ContrastiveLoss(["image", "sound"], 8, learn_temperature=False)
        self.steps: list[dict] = []

    def training_step(self, batch, _index):
        emb = {"image": F.normalize(self.image(batch.inputs["image"].flatten(1)), dim=-1),
               "sound": F.normalize(self.sound(batch.inputs["sound"][:, :64]), dim=-1)}
        groups = {c: batch.indices.double() for c in emb}
        loss, _ = self.loss(emb, batch.present, groups)
        self.steps.append({"step": int(self.global_step), "loss": float(loss),
                           "rows": batch.indices.tolist()})
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Fixed(torch.utils.data.IterableDataset):
    # given global batches (lists of rows), read whole from the folder: the reference

    def __init__(self, folder: str, batches: list[list[int]]) -> None:
        loader = open_shards(folder).loader(batch_size=10_000)
        whole = next(iter(loader))
        self.examples = {int(i): j for j, i in enumerate(whole.indices.tolist())}
        self.whole, self.batches = whole, batches

    def __iter__(self):
        for rows in self.batches:
            pick = [self.examples[r] for r in rows]
            b = self.whole
            inputs = {c: v[pick] for c, v in b.inputs.items()}
            present = {c: v[pick] for c, v in b.present.items()}
            yield type(b)(b.indices[pick], [b.ids[p] for p in pick], inputs, present)


def main() -> None:
    folder, out, mode, max_steps, resume = sys.argv[1:6]
    L.seed_everything(0, verbose=False)
    model = Tiny()
    ddp = mode == "ddp"
    if ddp:
        loader = open_shards(folder).loader(batch_size=4, shuffle=True, seed=0)
    else:
        batches = json.loads(open(mode).read())
        loader = torch.utils.data.DataLoader(Fixed(folder, batches), batch_size=None)
    class SaveMidEpoch(L.Callback):  # a checkpoint taken while the loader is live
        def on_train_batch_end(self, trainer, *_args):
            if trainer.global_step == int(max_steps):
                trainer.save_checkpoint(out + ".ckpt")

    trainer = L.Trainer(callbacks=[SaveMidEpoch()], accelerator="cpu",
                        devices=2 if ddp else 1, num_nodes=2 if ddp else 1,
                        strategy="ddp" if ddp else "auto", max_epochs=1,
                        max_steps=int(max_steps), logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader, ckpt_path=resume if resume != "-" else None)
    rank = int(os.environ.get("RANK", 0))
    with open(f"{out}.{rank}.json", "w") as fh:
        json.dump(model.steps, fh)


if __name__ == "__main__":
    main()
"""


def _torchrun(script, folder, out, max_steps, resume="-"):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
         "2", "--node-rank", str(node), "--master-addr", "127.0.0.1", "--master-port",
         str(port), str(script), str(folder), str(out), "ddp", str(max_steps), resume],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in range(2)]
    logs = [p.communicate(timeout=300)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), "\n".join(logs)[-4000:]
    return [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(4)]


@pytest.mark.slow
def test_two_nodes_of_two_processes_match_one_process_and_resume(tmp_path):
    """torchrun, 2 nodes x 2 processes (gloo, loopback): each process reads its own
    rows (none twice, none missed), each step's loss (InfoNCE with negatives gathered
    across processes) is one process's on the same global batch, and a run stopped
    after 2 of its 4 steps resumes from its checkpoint, mid-epoch, to the same steps."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    rows = []
    for i in range(64):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png")
        sf.write(tmp_path / f"{i}.wav", rng.normal(0, 0.3, 64).astype("float32"), 16000)
        rows.append({"image": f"{i}.png", "sound": f"{i}.wav"})
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    folder = tmp_path / "shards"
    write_shards(tmp_path / "pairs.csv", folder, shard_rows=8, show_progress=False)
    script = tmp_path / "train.py"
    script.write_text(MULTINODE)
    whole = _torchrun(script, folder, tmp_path / "whole", -1)
    seen = [r for rank in whole for step in rank for r in step["rows"]]
    assert sorted(seen) == list(range(64))  # every row once
    assert [len(rank) for rank in whole] == [4, 4, 4, 4]
    batches = [[r for rank in whole for r in rank[k]["rows"]] for k in range(4)]
    (tmp_path / "batches.json").write_text(json.dumps(batches))
    done = subprocess.run([sys.executable, str(script), str(folder), str(tmp_path / "one"),
                           str(tmp_path / "batches.json"), "-1", "-"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one = [s["loss"] for s in json.loads((tmp_path / "one.0.json").read_text())]
    for rank in whole:
        np.testing.assert_allclose([s["loss"] for s in rank], one, rtol=1e-4)
    assert one[-1] < one[0]  # it learnt
    _torchrun(script, folder, tmp_path / "first", 2)
    rest = _torchrun(script, folder, tmp_path / "rest", -1, str(tmp_path / "first.ckpt"))
    for rank, resumed in zip(whole, rest, strict=True):
        assert [s["rows"] for s in resumed] == [s["rows"] for s in rank[2:]]
        np.testing.assert_allclose([s["loss"] for s in resumed],
                                   [s["loss"] for s in rank[2:]], rtol=1e-4)
