"""The library on a folder of mixed media a user might have
(:mod:`polymodal.library.general.mixed`): index time, and per kind of answer hit@1 /
hit@10 for each builtin model, the folder indexed cold and each answer's caption asked
with ``search`` (k 10)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from benchmarks.report import RESULTS, Section

CACHE = RESULTS / "runs" / "general-model"  # the folder and libraries: ignored by git


def library_rows(quick: bool, models: tuple[str, ...] = ("general", "lit-tuxpaint")
                 ) -> tuple[list[list[str]], int]:
    """Per builtin model (of ``models``) and kind of answer: questions, hit@1, hit@10,
    hit@10 over chance and (on the "all" row) the index time; and the folder's item
    count."""
    from polymodal.library.builtin import builtin_model
    from polymodal.library.general.mixed import hits, make_folder
    from polymodal.library.library import Library

    folder = CACHE / "mixed-folder"
    questions = make_folder(folder, per_theme=3 if quick else 100)
    if quick:
        questions = questions.groupby("kind").head(3).reset_index(drop=True)
    items = len(list(folder.iterdir()))
    root = CACHE / "libraries"
    shutil.rmtree(root, ignore_errors=True)  # a cold index each run
    rows = []
    for name in models:
        model = builtin_model(name, root=RESULTS / "pretrained", quick=quick)
        lib = Library.create(f"mixed-{name}", model, root=root)
        start = time.perf_counter()
        report = lib.index(folder, progress=False)
        seconds = time.perf_counter() - start
        found = [[Path(h.path).name for h in lib.search(q, k=10)]
                 for q in questions["question"]]
        for kind, r in hits(found, questions).iterrows():
            rows.append([f"builtin:{name}", str(kind), f"{r['questions']:.0f}",
                         f"{r['hit1']:.3f}", f"{r['hit10']:.3f}",
                         f"{r['hit10'] / min(1.0, 10 / items):.1f}x",
                         f"{seconds:.0f} s ({report.added} facets)" if kind == "all" else ""])
    return rows, items


def run(quick: bool = False) -> Section:
    rows, items = library_rows(quick)
    notes = (f"{items} files: scikit-image's sample photos, the tuxpaint test split's "
             "stamps, sound effects and spoken descriptions, 100 icons of each of four icon "
             "themes no corpus source reads (Yaru, Moka, Suru, nuoveXT2); "
             "polymodal.library.general.mixed. Files are renamed so no answer's words are "
             "in its file name; indexed cold; each answer's caption asked with `search` "
             "(k 10). 'x chance' is hit@10 over 10 / files. builtin:lit-tuxpaint has no "
             "audio tower: its library leaves the sounds out.")
    return Section(key="general-library",
                   title="builtin:general: the library on a folder of mixed media",
                   command="python -m benchmarks --only general-library" +
                           (" --quick" if quick else ""),
                   columns=["model", "answer kind", "questions", "hit@1", "hit@10",
                            "hit@10 / chance", "index time"],
                   rows=rows, notes=notes)
