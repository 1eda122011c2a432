"""Build ``builtin:general`` into ``polymodal/models/`` (``make model``)::

    python -m polymodal.library.general.build            # name vectors + model folder
    python -m polymodal.library.general.build --untrained  # the bridge alone, as before
    python -m polymodal.library.general.build --choose   # the bridge's temperature grid

    python -m polymodal.library.general.build --sounds-only  # the clip head alone

The model: the concept bridge (:mod:`polymodal.encoders.bridge`, with EfficientNet-
Lite0's pooled features) for pictures, MiniLM for captions, and for a clip what Whisper
hears said (-> MiniLM) and how it sounds (``speech-and-sound``), each put into the
bridge's 385-d space by a linear head: the residual heads of :mod:`.heads`, trained
here on the whole picture corpus (:mod:`.sources`, every source but the tuxpaint test
split), and the clip head of :mod:`.sound_head` (the caption head on the transcript
beside a map of the sound trained on :mod:`.sound_sources`). ``--untrained``: the fixed
heads (identity for the bridge, MiniLM's 384 axes plus a 0 on the "nothing" axis for
the words, speech through ``speech-text``). What is shipped: the MiniLM vectors of the
ImageNet names (1.5 MB) and the heads (safetensors).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from polymodal.encoders.audio_heard import SPEECH_AT, SPEECH_FROM
from polymodal.encoders.bridge import (
    CONFIDENT_AT,
    N_CONCEPTS,
    PROMPTS,
    SHIPPED,
    TEMPERATURE,
    TOP_K,
    _text_model_id,
    embed_names,
    imagenet_class_names,
    vectors_key,
    write_vectors,
)
from polymodal.library.answer import CALIBRATION
from polymodal.library.general.heads import HeadSettings
from polymodal.library.general.sound_head import SoundHeadSettings

#: the shipped model folder (package data)
MODEL_FOLDER = SHIPPED.parent / "general"
#: cosine from which the general model calls a hit close: scikit-image's sample photos
#: score 0.42 to 0.67 with their words, a blank or grey page under 0.1, Gaussian noise
#: 0.24, sentences about unrelated things mostly under 0.3 (docs/general-model.md)
CLOSE_SCORE = 0.3
#: the model's columns and roles: a picture, its caption, a clip (speech or a sound)
ROLES: dict[str, dict[str, str]] = {
    "caption": {"role": "text", "source": "inline"},
    "image": {"role": "image", "source": "path"},
    "speech": {"role": "audio", "source": "path"},
}
_BRIDGE = {"top_k": TOP_K, "temperature": TEMPERATURE, "confident_at": CONFIDENT_AT,
           "prompts": list(PROMPTS)}
#: the untrained model's towers (``--untrained``)
ENCODERS: dict[str, dict[str, Any]] = {
    "caption": {"name": "minilm", "options": {}},
    # the bridge's settings written out, so that a change of them is a new model folder
    "image": {"name": "imagenet-bridge", "options": _BRIDGE},
    "speech": {"name": "speech-text", "options": {"text_encoder": "minilm"}},
}
#: the trained model's: the bridge also gives its pooled features to the picture head;
#: a clip is heard for its words and its sound (:mod:`polymodal.encoders.audio_heard`)
TRAINED_ENCODERS: dict[str, dict[str, Any]] = {
    **ENCODERS, "image": {"name": "imagenet-bridge", "options": {**_BRIDGE, "pooled": True}},
    "speech": {"name": "speech-and-sound", "options": {
        "text_encoder": "minilm", "speech_from": SPEECH_FROM, "speech_at": SPEECH_AT}}}
#: the shipped heads' training settings: chosen on training-only sources (breeze and
#: numix left out; ``loso.choose_settings``, in the general-model benchmark)
SHIPPED_SETTINGS = HeadSettings(epochs=10, anchor=0.1, pooled=True)
#: the shipped audio head's: chosen on the training-only sound sources 0ad and minetest
#: (``sound_loso.choose_sound_settings``, in the general-sounds benchmark)
SHIPPED_SOUND_SETTINGS = SoundHeadSettings(steps=100, decay=1e-2, pooling="mean+std")


def build_vectors(path: Path = SHIPPED) -> Path:
    """The ImageNet names' MiniLM vectors for the default prompts, written to ``path``."""
    names = imagenet_class_names()
    vectors = embed_names(names, PROMPTS)
    assert vectors.shape[0] == N_CONCEPTS
    out = write_vectors(path, vectors, vectors_key(names, PROMPTS, _text_model_id()))
    out.chmod(0o644)
    return out


def fixed_heads(dim_in_text: int = 384) -> dict[str, torch.Tensor]:
    """The heads' weights: identity on the bridge's 385 axes; MiniLM's 384 axes copied
    and 0 on the "nothing" axis for the caption and the speech."""
    out = dim_in_text + 1
    text = torch.zeros(out, dim_in_text)
    text[:dim_in_text] = torch.eye(dim_in_text)
    return {"caption": text, "image": torch.eye(out), "speech": text.clone()}


def build_model(folder: Path = MODEL_FOLDER, trained: dict[str, torch.Tensor] | None = None,
                encoders: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write the ``builtin:general`` folder (a saved Pretrainer that loads offline): the
    fixed heads, or the ``trained`` picture, caption and clip heads (:mod:`.heads`,
    :mod:`.sound_head`: the clip head is the caption head on the transcript beside
    the trained map of the sound); ``encoders`` overrides the towers (a benchmark's
    variant)."""
    from polymodal.pretraining import Pretrainer

    encoders = encoders or (ENCODERS if trained is None else TRAINED_ENCODERS)
    pre = Pretrainer(modalities=sorted(ROLES), preset="pretrained", projection="linear",
                     dim=385, seed=0,
                     encoders={c: (e["name"], e["options"]) for c, e in encoders.items()})
    fitted = {"columns": sorted(ROLES), "roles": ROLES, "dim": 385, "anchor": None,
              "batch_size": 64, "encoders": encoders}
    pre._restore(fitted)  # the load path's own: what a fit would have learnt
    pre.encoder_specs_ = {c: (e["name"], e["options"]) for c, e in encoders.items()}
    from polymodal.checkpoint import build_encoders

    pre._encoders = build_encoders(pre.encoder_specs_, {})
    pre._cache_loaders = {}
    pre.model_ = pre._make_model()
    with torch.no_grad():
        heads = fixed_heads()
        if trained is not None:
            heads = {c: trained[c] for c in ("image", "caption", "speech")}
        for column, weight in heads.items():
            linear = pre.model_.heads[column].net
            linear.weight.copy_(weight)
            linear.bias.zero_()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pre.save(tmp)
    (tmp / CALIBRATION).write_text(yaml.safe_dump({"close_score": CLOSE_SCORE}))
    for f in tmp.iterdir():
        f.chmod(0o644)  # package data: readable by every user
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def read_heads(folder: Path = MODEL_FOLDER) -> dict[str, torch.Tensor]:
    """The picture, caption and clip heads' weights of a saved ``builtin:general``
    folder."""
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    return {c: state[f"heads.{c}.net.weight"] for c in ("image", "caption", "speech")}


def trained_heads(cache: Path) -> dict[str, torch.Tensor]:
    """The picture and caption heads trained on the whole picture corpus (its tower
    outputs kept in ``cache``: the first run encodes about 34,000 pictures, about an
    hour on two cores with ``POLYMODAL_ENCODE_PROCESSES=2``)."""
    from polymodal.library.general.loso import load_all, shipped_weights

    return shipped_weights(load_all(cache), SHIPPED_SETTINGS)


def clip_head(cache: Path, caption_head: torch.Tensor) -> torch.Tensor:
    """The clip head: the caption head on the transcript beside the audio map trained
    on every sound source (:mod:`.sound_head`; their features kept in ``cache``: about
    20 minutes on two cores the first time, Whisper transcribing 1,050 clips)."""
    from polymodal.library.general.sound_features import concat_sounds
    from polymodal.library.general.sound_head import train_sound_head
    from polymodal.library.general.sound_loso import load_sounds

    sounds = concat_sounds(list(load_sounds(cache).values()))
    head = train_sound_head(sounds, caption_head, SHIPPED_SOUND_SETTINGS)
    return head.linear(caption_head)


def main(argv: list[str] | None = None) -> None:
    """``make model``: the name vectors, then the model folder; ``--choose``: print the
    bridge's temperature grid instead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choose", action="store_true",
                        help="print the temperature / top-k grid on the non-held-out "
                             "sources instead of building")
    parser.add_argument("--untrained", action="store_true",
                        help="the bridge alone, with fixed heads (nothing trained)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the corpus's tower outputs are kept (default: "
                             "$POLYMODAL_MODELS/general-corpus)")
    parser.add_argument("--sounds-only", action="store_true",
                        help="train the clip head only; keep the shipped folder's picture "
                             "and caption heads (as the last full build trained them)")
    args = parser.parse_args(argv)
    if args.choose:
        from polymodal.library.general.tuning import print_grid

        print_grid()
        return
    torch.set_num_threads(1)  # one thread: the same sums, whatever the cores
    if not args.sounds_only:
        print(f"name vectors -> {build_vectors()}")
    if args.untrained:
        print(f"builtin:general (untrained) -> {build_model()}")
        return
    from polymodal.library.builtin import models_home

    cache = args.cache or models_home() / "general-corpus"
    heads = read_heads() if args.sounds_only else trained_heads(cache)
    heads["speech"] = clip_head(cache, heads["caption"])
    print(f"builtin:general -> {build_model(trained=heads)}")


if __name__ == "__main__":
    main()
