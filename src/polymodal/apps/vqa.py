"""Visual question answering over pictures: the recipe of a model that answers a
question about a picture (question + picture -> answer class), as trained on
sort-of-clevr: the paper's CNN with a hypercolumn, the question as a bag of words, a
Relation Network. Attach the trained model to a library (``Library.attach_vqa``) and
``ask`` answers from the picture it finds::

    p = train_vqa(make_dataset("sort-of-clevr"), fusion="relation", epochs=12)
    p.save("vqa-model/")

The benchmark that trains and scores both fusions with it is ``benchmarks/vqa.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from polymodal.data import Manifest
from polymodal.predictor import Predictor

#: the VQA model: the paper's CNN (four stride-2 conv layers) on the picture at 64 px,
#: whose 4 x 4 grid gives 16 objects and 256 pairs (the paper's 75 px gives 25 and 625, a
#: Relation Network step 3 times as slow on a CPU), and the question as a bag of words:
#: the paper feeds an 11-bit code (colour, question kind), which a bag of words of the
#: templated question carries too. With a BiLSTM over the words the Relation Network
#: stuck at 0.64 (left/right at chance: the colour word, one of ten, barely moves its mean)
#: The CNN also hands each cell its second block's output averaged over the cell
#: (``hypercolumn=2``): trained on this task, the plain CNN's last two blocks dropped
#: the objects' colour (a linear probe read it off the object tokens at chance), and a
#: question names its object by colour, so neither fusion could find that object.
ENCODERS = {"image": ("strided-cnn", {"image_size": 64, "dim": 64, "hypercolumn": 2}),
            "text": ("bow", {})}
#: the Relation Network layer-normalises objects and question before g: in 60,000
#: questions x 2 epochs it reached train accuracy 0.505 (val 0.567) with it against
#: 0.47 (0.50, the answer priors) without
FUSION_OPTIONS: dict[str, dict[str, Any]] = {"relation": {"norm": True}}
#: the paper's learning rate. At 1e-3 the Relation Network sat at the answer priors for
#: all of 6 epochs (it had not even learned to count); the reference PyTorch
#: reimplementation trains at 1e-4 and leaves its plateau only after 8 to 12 epochs
LR = 2.5e-4
#: the rate is held after the warm-up (the reference reimplementation holds 1e-4): a
#: cosine decay brings it to zero around the epochs where the Relation Network leaves
#: its plateau
SCHEDULE = "constant"


def fast_precision() -> str | None:
    """bf16 mixed precision where the CPU multiplies bf16 in hardware (AMX: the
    Relation Network's step is about 1.8 times as fast), else the trainer's default."""
    import torch

    if torch.cuda.is_available():
        return None
    try:
        return "bf16-mixed" if torch._C._cpu._init_amx() else None
    except (AttributeError, RuntimeError):
        return None


def vqa_predictor(fusion: str = "relation", *, seed: int = 0, epochs: int = 12,
                  path: str | os.PathLike[str] | None = None, lr: float = LR,
                  schedule: str = SCHEDULE) -> Predictor:
    """The VQA Predictor of the recipe (label "answer", columns "image" and
    "question"), not fitted. Early stopping is off: on this task a Relation Network's
    validation loss stays flat for epochs before it learns."""
    return Predictor(label="answer", modalities=["image", "question"], fusion=fusion,
                     encoders=ENCODERS, preset="fast", seed=seed, max_epochs=epochs,
                     batch_size=64, lr=lr, path=path, patience=0, schedule=schedule,
                     fusion_options=FUSION_OPTIONS.get(fusion), precision=fast_precision())


def train_vqa(manifest: Manifest, fusion: str = "relation", seed: int = 0,
              epochs: int = 12, path: str | Path | None = None, rows: int | None = None,
              progress: bool = False, tune_on_train: bool = False, resume: bool = False,
              lr: float = LR, schedule: str = SCHEDULE,
              callbacks: list[Any] | None = None) -> Predictor:
    """A VQA Predictor fitted on ``manifest``'s train split (its first ``rows``
    questions if given), tuned on val (or on train, for data too small for val to hold
    only answers seen in training). ``resume`` continues an interrupted run in ``path``
    from its last checkpoint."""
    train = manifest.split("train")
    if rows is not None:
        train = train.subset(list(range(min(rows, len(train)))))
    p = vqa_predictor(fusion, seed=seed, epochs=epochs, path=path, lr=lr, schedule=schedule)
    return p.fit(train, train if tune_on_train else manifest.split("val"), progress=progress,
                 resume=resume, callbacks=callbacks)
