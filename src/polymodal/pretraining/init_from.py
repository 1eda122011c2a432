"""Fine-tuning from a saved model: the encoders of a Pretrainer (or Predictor)
checkpoint, with their weights and vocabularies, for the columns of a new fit."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from polymodal.checkpoint import build_encoders, read_saved
from polymodal.data.schema import Role
from polymodal.encoders.base import ModalityEncoder
from polymodal.fusion.base import module_key


def pretrained_encoders(path: str | os.PathLike[str], columns: Sequence[str],
                        roles: Mapping[str, Role],
                        requested: Mapping[str, Any] | None = None
                        ) -> tuple[dict[str, ModalityEncoder], dict[str, tuple[str, dict]]]:
    """The encoders of a saved model (pretrained or supervised) for ``columns``, with
    their weights and vocabularies, to fine-tune from.

    Raises:
        ValueError: the checkpoint lacks one of ``columns``, holds it as another
            modality, or was made with other encoders than ``requested`` names.
    """
    checkpoint = read_saved(path, "checkpoint to initialise from")
    config, state, extra = checkpoint.fitted, checkpoint.state, checkpoint.extra
    saved = config.get("encoders") or {}
    missing = [c for c in columns if c not in saved]
    if missing:
        raise ValueError(f"{path} has encoders for {sorted(saved)}, not for {missing}: "
                         f"choose those columns with modalities=[...], or pretrain on them")
    specs: dict[str, tuple[str, dict]] = {}
    for c in columns:
        name, options = saved[c]["name"], saved[c]["options"]
        saved_role = (config.get("roles") or {}).get(c, {}).get("role")
        if saved_role and saved_role != roles[c].value:
            raise ValueError(f"{path}: column {c!r} was {saved_role} there but is "
                             f"{roles[c].value} here")
        want = (requested or {}).get(c, (requested or {}).get(roles[c].value))
        if want is not None:
            want_name, want_options = (want, {}) if isinstance(want, str) else want
            if want_name != name or (want_options and dict(want_options) != options):
                raise ValueError(f"{path}: column {c!r} was pretrained with encoder {name} "
                                 f"{options}, but encoders= asks for {want_name} "
                                 f"{dict(want_options)}; drop that entry to use the "
                                 "pretrained one, or pretrain with it")
        specs[c] = (name, options)
    encoders = build_encoders(specs, extra)
    for c, enc in encoders.items():
        prefix = f"encoders.{module_key(c)}."
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            missing_keys, unexpected = enc.load_state_dict(sub, strict=False)
        except RuntimeError as exc:  # a shape that does not fit
            raise ValueError(f"{path}: the saved {c!r} encoder does not fit {specs[c]}: "
                             f"{str(exc).splitlines()[0]}") from None
        missing_keys = [k for k in missing_keys if not k.endswith("_extra_state")]
        if unexpected or (missing_keys and not (enc.pretrained and not enc.trainable)):
            raise ValueError(f"{path}: the saved {c!r} encoder does not fit {specs[c]} "
                             f"(missing {missing_keys[:5]}, unexpected {unexpected[:5]})")
    return encoders, specs
