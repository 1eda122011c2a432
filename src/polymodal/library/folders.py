"""Where libraries live and what a library folder holds by name: the library home,
library names, ``library.yaml`` read safely, the list of libraries."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

CONFIG = "library.yaml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def library_home() -> Path:
    """Where libraries live: ``$POLYMODAL_LIBRARIES``, else
    ``~/.local/share/polymodal/libraries``."""
    env = os.environ.get("POLYMODAL_LIBRARIES")
    return Path(env) if env else Path.home() / ".local" / "share" / "polymodal" / "libraries"


def list_libraries(root: str | os.PathLike[str] | None = None
                   ) -> list[tuple[str, dict[str, Any], Path]]:
    """(name, settings, folder) of every library in ``root``, by name."""
    home = Path(root or library_home())
    found = []
    for config in sorted(home.glob(f"*/{CONFIG}")):
        try:
            found.append((config.parent.name, read_config(config), config.parent))
        except ValueError:
            found.append((config.parent.name, {"model": "(damaged library.yaml)"},
                          config.parent))
    return found


def check_name(name: str) -> str:
    """A library name is one path component of letters, digits, ``_ . -``."""
    if not NAME.match(name or "") or name in (".", "..") or ".." in name:
        raise ValueError(f"invalid library name {name!r}: use letters, digits, '_', '.', "
                         "'-' (no '/' or '..', at most 64 characters)")
    return name


def read_config(path: Path) -> dict[str, Any]:
    """A library's settings; a damaged file (half-written, edited by hand) is a clear
    error, not a crash later."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is damaged and cannot be read ({exc}); re-create the "
                         "library or restore the file") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str) or \
            config.get("backend") not in ("lancedb", "milvus"):
        raise ValueError(f"{path} is damaged: it does not name the library's model and "
                         "backend; re-create the library or restore the file")
    return config
