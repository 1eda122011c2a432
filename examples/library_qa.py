"""Ask a library of pictures in words: index a folder or a manifest, search it, ask it.

    python examples/library_qa.py                       # tuxpaint's stamps (bundled)
    python examples/library_qa.py ~/Pictures --library photos
    python examples/library_qa.py ... --question "which animal says moo?"

The model is the builtin `builtin:lit-tuxpaint` (locked EfficientNet-Lite0 and MiniLM
towers with heads trained on tuxpaint; trained on first use, offline) unless --model
names a saved Pretrainer. Indexing is incremental: run it again after adding pictures
and only the new ones are embedded. Then `polymodal serve --library NAME` shows the same
library in the browser.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from polymodal.data.bundled import make_dataset
from polymodal.library import Library
from polymodal.library.builtin import builtin_model

QUESTIONS = ["which animal says moo?", "a red sports car", "something sweet to eat",
             "a musical instrument"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", help="a folder of media or a manifest "
                        "(default: the bundled tuxpaint dataset)")
    parser.add_argument("--library", default="tuxpaint-example")
    parser.add_argument("--model", default=None, help="a saved Pretrainer (default: "
                        "builtin:lit-tuxpaint)")
    parser.add_argument("--root", type=Path, default=None, help="where libraries live")
    parser.add_argument("--question", action="append", help="repeatable")
    parser.add_argument("--limit", type=int, default=None,
                        help="with the bundled data: a small version, for a smoke test")
    args = parser.parse_args()

    source = args.source or make_dataset("tuxpaint", limit=args.limit)
    model = args.model or builtin_model("lit-tuxpaint", quick=args.limit is not None)
    lib = Library.create(args.library, model, root=args.root)
    report = lib.index(source)
    print(f"{args.library} (facets: one picture, sound or text of an item each): "
          f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
          f"{report.deleted} deleted; {len(report.problems)} bad cells skipped")
    for problem in report.problems[:10]:
        print("  skipped:", problem)

    for question in args.question or QUESTIONS:
        answer = lib.ask(question, k=5)
        print(f"\nQ: {question}\nA: {answer.answer}  [{answer.method}]")
        for hit in answer.evidence:
            print(f"   {hit.score:.3f}  {hit.item:40s}  {hit.text or ''}")

    # a picture as the query: the items most like the best answer's picture
    best = lib.search(args.question[0] if args.question else QUESTIONS[0], k=1,
                      modality="image")
    picture = lib.media_path(best[0].key) if best else None
    if picture is not None:
        similar = lib.search(picture, k=5, modality="image")
        print(f"\npictures like {best[0].item}: " + ", ".join(h.item for h in similar))
    where = f" --root {args.root}" if args.root else ""
    print(f"\nsee it in the browser: polymodal serve --library {args.library}{where}")


if __name__ == "__main__":
    main()
