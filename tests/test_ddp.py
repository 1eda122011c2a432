"""Data-parallel training: 2 CPU processes (gloo, Lightning's DDP, not ddp_spawn) end
where one process ends with the same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from polymodal.predictor import Predictor
    train, tune, out, devices, batch = sys.argv[1:6]
    p = Predictor(label="label", preset="tiny", fusion="concat", dropout=0.0, seed=0,
                  batch_size=int(batch), max_epochs=3, lr=1e-2, path=out + "-run")
    p.fit(train, tune, devices=int(devices), progress=False)
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        proba = p.predict_proba(tune)
        with open(out, "w") as fh:
            json.dump(proba.to_numpy().tolist(), fh)
""")


@pytest.fixture()
def sixteen_rows(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        red = i % 2 == 0
        colour = (200 + int(rng.integers(50)), 0, 0) if red else (0, 0, 200)
        Image.new("RGB", (8, 8), colour).save(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "text": "warm" if red else "cold",
                     "label": "red" if red else "blue"})
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(rows[:6]).to_csv(tmp_path / "tune.csv", index=False)
    (tmp_path / "ddp_script.py").write_text(SCRIPT)
    return tmp_path


def _run(folder, devices: int, batch: int) -> np.ndarray:
    out = folder / f"proba-{devices}.json"
    result = subprocess.run(
        [sys.executable, str(folder / "ddp_script.py"), str(folder / "train.csv"),
         str(folder / "tune.csv"), str(out), str(devices), str(batch)],
        capture_output=True, text=True, timeout=600, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.asarray(json.loads(out.read_text()))


def test_two_processes_match_one_with_the_same_global_batch(sixteen_rows):
    one = _run(sixteen_rows, devices=1, batch=16)
    two = _run(sixteen_rows, devices=2, batch=8)  # 2 x 8 = one batch of 16 per step
    np.testing.assert_allclose(two, one, atol=1e-4)
    assert not np.allclose(one, 0.5, atol=1e-3)  # it did learn something


GATHER = textwrap.dedent("""
    import json, os, sys
    import torch, torch.distributed as dist
    from polymodal.objectives import ContrastiveLoss
    rank, world, port, out = int(sys.argv[1]), 2, sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(8, 4), dim=-1)
    b = torch.nn.functional.normalize(a + 0.3 * torch.randn(8, 4), dim=-1)
    groups = {"a": torch.arange(8.0) % 6, "b": torch.arange(8.0) % 6}  # rows 6, 7 repeat
    y = a.clone().requires_grad_(True)  # the whole batch in one process: the reference
    ref, _ = ContrastiveLoss(["a", "b"], 4)(
        {"a": y, "b": b}, {c: torch.ones(8, dtype=torch.bool) for c in "ab"}, groups)
    ref.backward()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    mine = slice(4 * rank, 4 * rank + 4)
    x = a[mine].clone().requires_grad_(True)
    loss = ContrastiveLoss(["a", "b"], 4)
    present = {c: torch.ones(4, dtype=torch.bool) for c in "ab"}
    value, _ = loss({"a": x, "b": b[mine]}, present, {c: g[mine] for c, g in groups.items()})
    value.backward()
    if rank == 0:
        json.dump({"loss": value.item(), "ref": ref.item(), "grad": x.grad.tolist(),
                   "ref_grad": y.grad[:4].tolist()}, open(out, "w"))
    dist.destroy_process_group()
""")


def test_contrastive_loss_gathers_negatives_across_processes(tmp_path):
    """Two processes with half the batch each compute the loss of the whole batch
    (negatives gathered, duplicates masked across processes), and each process's
    gradient flows through its own rows."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "gather.py"
    script.write_text(GATHER)
    out = tmp_path / "out.json"
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(port), str(out)])
             for r in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    r = json.loads(out.read_text())
    assert r["loss"] == pytest.approx(r["ref"], rel=1e-5)
    # each process computes the global loss, so its rows get exactly the single-process
    # gradient of those rows (DDP's average over processes then scales parameter
    # gradients by 1/2, a constant that Adam does not see)
    np.testing.assert_allclose(np.array(r["grad"]), np.array(r["ref_grad"]), rtol=1e-4,
                               atol=1e-6)
