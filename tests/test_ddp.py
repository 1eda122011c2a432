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
