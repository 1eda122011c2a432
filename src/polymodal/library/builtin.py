"""Models a library can use without the user pretraining one (``builtin:NAME``):
``builtin:general``, shipped ready with polymodal (nothing is trained on first use: its
folder is copied from the package into the cache), and ``builtin:lit-tuxpaint``, trained
here, offline, from the bundled tuxpaint stamps on first use and kept in the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PREFIX = "builtin:"
#: the model a new library, ``search``, ``zero-shot`` and ``recommend`` use when none is
#: given
DEFAULT_MODEL = "builtin:general"


def models_home() -> Path:
    """``$POLYMODAL_MODELS``, else ``~/.cache/polymodal/models``."""
    env = os.environ.get("POLYMODAL_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "polymodal" / "models"


def _lit_tuxpaint(folder: Path, quick: bool = False, progress: bool = False) -> Path:
    """Locked EfficientNet-Lite0 and MiniLM towers with heads trained on tuxpaint's
    stamps and captions (train split; a few minutes on a CPU)."""
    from polymodal.data import Manifest
    from polymodal.data.bundled import make_dataset
    from polymodal.data.bundled.registry import data_home
    from polymodal.pretraining import Pretrainer

    m = Manifest.read(make_dataset("tuxpaint", limit=3 if quick else None))
    pre = Pretrainer(modalities=["image", "caption"], preset="pretrained", seed=0,
                     max_epochs=2 if quick else 40, cache_dir=data_home() / "feature-cache",
                     path=folder.parent / f"{folder.name}-run")
    pre.fit(m.split("train"), m.split("val"), progress=progress)
    return pre.save(folder)


def _general(folder: Path, quick: bool = False, progress: bool = False) -> Path:
    """The concept bridge (EfficientNet-Lite0's ImageNet concepts in MiniLM's space) for
    pictures, MiniLM for words, Whisper -> MiniLM for speech: shipped in
    ``polymodal/models/general`` (``make model``), copied, never trained."""
    import shutil

    from polymodal.library.general.build import MODEL_FOLDER

    if not (MODEL_FOLDER / "config.yaml").exists():
        raise FileNotFoundError(f"builtin:general is not shipped in this install "
                                f"({MODEL_FOLDER} is missing): run `make model`")
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(MODEL_FOLDER, tmp)
    tmp.rename(folder)
    return folder


def _general_folder() -> str:
    """``general-<digest>``: a new shipped version goes to a new folder, so a library
    indexed with an older one keeps the model it was indexed with."""
    import hashlib

    from polymodal.library.general.build import MODEL_FOLDER

    config = MODEL_FOLDER / "config.yaml"
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:10] if config.exists() \
        else "missing"
    return f"general-{digest}"


BUILTIN: dict[str, Callable[..., Path]] = {"general": _general,
                                           "lit-tuxpaint": _lit_tuxpaint}
#: builtin models that are shipped (copied on first use), not trained: their folder name
SHIPPED: dict[str, Callable[[], str]] = {"general": _general_folder}


def builtin_model(name: str, *, root: str | os.PathLike[str] | None = None,
                  quick: bool = False, progress: bool = False) -> Path:
    """The folder of builtin model ``name``, trained first if it is not there yet (with
    progress bars if ``progress``)."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if name not in BUILTIN:
        raise ValueError(f"no builtin model {name!r}; builtin: "
                         f"{[PREFIX + n for n in BUILTIN]}")
    shipped = name in SHIPPED
    folder = Path(root or models_home()) / (
        SHIPPED[name]() if shipped else name + ("-quick" if quick else ""))
    if (folder / "config.yaml").exists():
        return folder
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    # two processes that need it at once: one trains, the other waits and reuses it
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if (folder / "config.yaml").exists():
            return folder
        if progress and not shipped:
            from polymodal.progress import console

            console.print(f"training the builtin model {PREFIX}{name} into {folder} "
                          "(first use only)")
        return BUILTIN[name](folder, quick=quick, progress=progress)


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A model folder, or a builtin model (``builtin:general``) made if needed."""
    text = str(model)
    return builtin_model(text, progress=True) if text.startswith(PREFIX) else Path(model)
