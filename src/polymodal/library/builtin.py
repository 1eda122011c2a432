"""Models a library can use without the user pretraining one: trained here, offline,
from the bundled data on first use and kept in the cache (``builtin:NAME``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PREFIX = "builtin:"
#: the model a new library, ``search``, ``zero-shot`` and ``recommend`` use when none is
#: given
DEFAULT_MODEL = "builtin:lit-tuxpaint"


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


BUILTIN: dict[str, Callable[..., Path]] = {"lit-tuxpaint": _lit_tuxpaint}


def builtin_model(name: str, *, root: str | os.PathLike[str] | None = None,
                  quick: bool = False, progress: bool = False) -> Path:
    """The folder of builtin model ``name``, trained first if it is not there yet (with
    progress bars if ``progress``)."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX):]
    if name not in BUILTIN:
        raise ValueError(f"no builtin model {name!r}; builtin: "
                         f"{[PREFIX + n for n in BUILTIN]}")
    folder = Path(root or models_home()) / (name + ("-quick" if quick else ""))
    if (folder / "config.yaml").exists():
        return folder
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    # two processes that need it at once: one trains, the other waits and reuses it
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if (folder / "config.yaml").exists():
            return folder
        if progress:
            from polymodal.progress import console

            console.print(f"training the builtin model {PREFIX}{name} into {folder} "
                          "(first use only)")
        return BUILTIN[name](folder, quick=quick, progress=progress)


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A model folder, or a builtin model (``builtin:lit-tuxpaint``) made if needed."""
    text = str(model)
    return builtin_model(text, progress=True) if text.startswith(PREFIX) else Path(model)
