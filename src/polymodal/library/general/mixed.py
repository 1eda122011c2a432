"""A folder of mixed media a user might have, with questions whose answers are known:
the library's benchmark (``benchmarks/general_model.py``).

What goes in (none of it in the general model's training corpus): scikit-image's sample
photos (described here in a few words each), the tuxpaint stamps' test split (their
pictures, sound effects and spoken descriptions) and icons of icon themes the corpus
does not read (:data:`USER_THEMES`). Files are renamed ``<kind>-<n>.<ext>``, so no
answer's words are in its file name; each question is the item's caption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from polymodal.library.general.sources import icon_theme, tuxpaint

#: icon themes never read for training (Debian packages), as a user's icon folder
USER_THEMES: dict[str, str] = {"yaru-theme-icon": "/usr/share/icons/Yaru",
                               "moka-icon-theme": "/usr/share/icons/Moka",
                               "suru-icon-theme": "/usr/share/icons/suru",
                               "lxde-icon-theme": "/usr/share/icons/nuoveXT2"}
#: scikit-image's sample photos and the words a user might look for them with
PHOTOS: dict[str, str] = {
    "astronaut.png": "an astronaut in a space suit", "brick.png": "a brick wall",
    "camera.png": "a man with a camera on a tripod", "chelsea.png": "a cat",
    "chessboard_RGB.png": "a chessboard", "coffee.png": "a cup of coffee",
    "coins.png": "old coins", "grass.png": "grass", "gravel.png": "gravel",
    "horse.png": "a horse", "hubble_deep_field.jpg": "galaxies in deep space",
    "moon.png": "the surface of the moon", "motorcycle_left.png": "a motorcycle",
    "page.png": "a page of printed text", "retina.jpg": "the retina of an eye",
    "rocket.jpg": "a rocket on its launch pad"}


def _photo_folder() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def make_folder(dest: Path, per_theme: int = 100, seed: int = 0) -> pd.DataFrame:
    """Fill ``dest`` with the mixed media; returns the questions: ``question``,
    ``answer`` (the file name in ``dest``), ``kind`` (what the answer is)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    items: list[tuple[str, str, str]] = []  # source path, question, kind
    photos = _photo_folder()
    items += [(str(photos / f), q, "photo") for f, q in PHOTOS.items() if (photos / f).exists()]
    stamps = tuxpaint("test")
    for column, kind in (("image", "clip art"), ("sound", "sound effect"),
                         ("speech", "spoken description")):
        if column == "sound":
            stamps = stamps.assign(sound=_sounds(stamps))
        chosen = stamps.dropna(subset=[column]).drop_duplicates(column)
        items += [(p, c, kind) for p, c in zip(chosen[column], chosen["caption"], strict=True)]
    for package, folder in USER_THEMES.items():
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"{folder}: install the Debian package {package}")
        icons = icon_theme(Path(folder))
        icons = icons.sample(min(per_theme, len(icons)), random_state=seed)
        items += [(p, c, "icon") for p, c in zip(icons["image"], icons["caption"], strict=True)]
    rows = []
    for n, (path, question, kind) in enumerate(items):
        name = f"{kind.split()[0]}-{n:04d}{Path(path).suffix.lower()}"
        shutil.copyfile(path, dest / name)
        rows.append({"question": str(question), "answer": name, "kind": kind})
    return pd.DataFrame(rows)


def _sounds(stamps: pd.DataFrame) -> list[str | None]:
    """The stamps' sound effects (the bundled set's ``sound`` column, by path)."""
    from polymodal.data.bundled import make_dataset

    manifest = Path(make_dataset("tuxpaint"))
    table = pd.read_csv(manifest).set_index("image")
    out = []
    for image in stamps["image"]:
        relative = str(Path(image).relative_to(manifest.parent))
        sound = table["sound"].get(relative) if relative in table.index else None
        out.append(str(manifest.parent / sound) if isinstance(sound, str) else None)
    return out


def hits(found: list[list[str]], questions: pd.DataFrame) -> pd.DataFrame:
    """Per kind: questions, hit@1 and hit@10 (the answer among the first 1 / 10 file
    names found for its question)."""
    table = questions.assign(
        hit1=[a in f[:1] for a, f in zip(questions["answer"], found, strict=True)],
        hit10=[a in f[:10] for a, f in zip(questions["answer"], found, strict=True)])
    out = table.groupby("kind").agg(questions=("answer", "size"), hit1=("hit1", "mean"),
                                    hit10=("hit10", "mean"))
    out.loc["all"] = [len(table), table["hit1"].mean(), table["hit10"].mean()]
    return out
