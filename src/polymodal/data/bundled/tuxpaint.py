"""tuxpaint: real pictures with captions, categories, sound effects and spoken
descriptions, from Debian's ``tuxpaint-stamps-default``.

One row per stamp that has a caption file: image (PNG, or SVG where there is no PNG),
English caption, label (the top-level category folder), subcategory, sound effect
(``NAME.ogg``) and English spoken description (``NAME_desc.ogg``, or the English spoken
name of a number), each where present. A variant stamp (``frog-1``) without its own
sound uses its base stamp's (``frog``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from polymodal.data.bundled.registry import (
    assign_splits,
    register_dataset,
    write_card,
    write_manifest,
)
from polymodal.data.media import decode_text_file
from polymodal.progress import progress_bar

STAMPS = Path("/usr/share/tuxpaint/stamps")
_VARIANT = re.compile(r"^(?P<base>.+?)-\d+$")
_SPEECH_SUFFIXES = ("_desc", "_en_US", "_en_GB", "_en")


def _first(folder: Path, stems: list[str], suffixes: tuple[str, ...], ext: str) -> Path | None:
    for stem in stems:
        for suffix in suffixes:
            p = folder / f"{stem}{suffix}{ext}"
            if p.exists():
                return p
    return None


def find_stamps(stamps: Path = STAMPS) -> list[dict[str, Path | str | None]]:
    """Every captioned stamp under ``stamps`` with its picture and sounds."""
    found = []
    for caption in sorted(stamps.rglob("*.txt")):
        folder, stem = caption.parent, caption.stem
        image = _first(folder, [stem], ("",), ".png") or _first(folder, [stem], ("",), ".svg")
        if image is None:
            continue
        match = _VARIANT.match(stem)
        stems = [stem, match["base"]] if match else [stem]
        rel = folder.relative_to(stamps)
        found.append({
            "stem": stem, "folder": rel, "caption_file": caption, "image": image,
            "sound": _first(folder, stems, ("",), ".ogg"),
            "speech": _first(folder, stems, _SPEECH_SUFFIXES, ".ogg"),
            "label": rel.parts[0],
            "subcategory": "/".join(rel.parts[1:]) or None,
        })
    return found


def english_caption(path: Path) -> str:
    """The first line of a Tux Paint caption file (English)."""
    text = decode_text_file(path)
    return text.splitlines()[0].strip() if text.strip() else ""


@register_dataset(
    "tuxpaint",
    description="~950 Tux Paint stamps: picture, caption, category, sound effect and "
                "spoken description (real media)",
    source="Debian package tuxpaint-stamps-default (Tux Paint stamps collection)",
    licence="GPL-2.0-or-later (the Tux Paint stamps; see /usr/share/doc/"
            "tuxpaint-stamps-default/copyright)",
    debian_packages=("tuxpaint-stamps-default",),
)
def make_tuxpaint(out: Path, *, seed: int, limit: int | None, show_progress: bool) -> None:
    """Copy captioned stamps into ``out``; ``limit`` keeps that many stamps per category."""
    stamps = find_stamps()
    if limit is not None:
        per: dict[str, int] = {}
        kept = []
        for s in stamps:
            per[s["label"]] = per.get(s["label"], 0) + 1
            if per[s["label"]] <= limit:
                kept.append(s)
        stamps = kept
    rows = []
    with progress_bar("making tuxpaint", len(stamps), enabled=show_progress) as advance:
        for s in stamps:
            rel_folder = Path("media") / s["folder"]
            (out / rel_folder).mkdir(parents=True, exist_ok=True)
            row: dict[str, object] = {"id": f"{s['folder'].as_posix()}/{s['stem']}"}
            for col in ("image", "sound", "speech"):
                src = s[col]
                if src is None:
                    row[col] = None
                    continue
                shutil.copyfile(src, out / rel_folder / src.name)
                row[col] = (rel_folder / src.name).as_posix()
            row["caption"] = english_caption(s["caption_file"]) or None
            row["label"] = s["label"]
            row["subcategory"] = s["subcategory"]
            rows.append(row)
            advance(1)
    table = pd.DataFrame(rows)
    table["split"] = assign_splits(table["label"], seed=seed)
    write_manifest(out, table)
    n_svg = int(table["image"].str.endswith(".svg").sum())
    write_card(
        out, title="tuxpaint", label="label", table=table,
        summary="Real drawings with real captions, recorded sound effects and spoken "
                "descriptions: the stamps of the children's drawing program Tux Paint.",
        source="Debian package `tuxpaint-stamps-default`, files under "
               "`/usr/share/tuxpaint/stamps/<category>/<subcategory>/`",
        licence="GPL-2.0-or-later (see the package's copyright file)",
        how_made=(
            f"`polymodal datasets make tuxpaint` (seed {seed}"
            + (f", limit {limit} per category" if limit else "") + "). "
            "One row per stamp with a caption file `NAME.txt`: its English first line is "
            "`caption`; the picture is `NAME.png`, else `NAME.svg` "
            f"({n_svg} rows are SVG, rasterised when decoded); `label` is the top-level "
            "folder, `subcategory` the rest of the path; `sound` is `NAME.ogg` and "
            "`speech` is `NAME_desc.ogg` or the English spoken name (`NAME_en_GB.ogg`), "
            "falling back to the base stamp's file for variants (`frog-1` -> `frog`). "
            "Files are copied unchanged into `media/`. Splits are stratified by label; "
            "categories with fewer than 3 stamps are train only."),
    )
