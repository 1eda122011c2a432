"""Image + text recognition: a scan with its record.

On tuxpaint (a stamp's picture and caption) and on fashion-mnist with short noisy text
records, trains the picture alone, the text alone and the two fused (gated), and
reports the fused model's modality report::

    python examples/image_text_recognition.py --quick        # a minute or two
    python examples/image_text_recognition.py --out image-text/

Writes ``image_text.csv``, ``image_text.json``, ``image_text.png`` and, per dataset, the
modality report and plots (learning curves, confusion matrix, modality contribution) to
``--out``; an interrupted run resumes from ``--out/results.jsonl``. Everything goes
through the public API: :class:`polymodal.Predictor` and the bundled datasets (see
:mod:`benchmarks.studies.image_text`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

# the study lives in the repository's benchmarks/ (not installed): found from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.studies.image_text import ImageTextSettings, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small samples, 3 epochs")
    parser.add_argument("--out", type=Path, default=Path("image-text-results"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--datasets", nargs="+", choices=["tuxpaint", "fashion-mnist"],
                        default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--tuxpaint-epochs", type=int, default=None)
    parser.add_argument("--fashion-epochs", type=int, default=None)
    parser.add_argument("--tuxpaint-limit", type=int, default=None,
                        help="stamps per category (a small version; tests)")
    parser.add_argument("--tuxpaint-preset", default=None,
                        help="Predictor preset for tuxpaint (pretrained)")
    parser.add_argument("--fashion-per-class", type=int, nargs=3, default=None,
                        metavar=("TRAIN", "VAL", "TEST"),
                        help="fashion-mnist pictures per class and split")
    parser.add_argument("--tuxpaint-data", type=Path, default=None,
                        help="a tuxpaint manifest (default: made under $POLYMODAL_DATA)")
    parser.add_argument("--fashion-data", type=Path, default=None,
                        help="a fashion-mnist manifest (default: made under $POLYMODAL_DATA)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="feature cache (default: $POLYMODAL_DATA/feature-cache)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> ImageTextSettings:
    settings = ImageTextSettings.quick() if args.quick else ImageTextSettings()
    per_class = args.fashion_per_class
    changes = {"datasets": tuple(args.datasets) if args.datasets else None,
               "seeds": tuple(args.seeds) if args.seeds else None,
               "tuxpaint_epochs": args.tuxpaint_epochs, "fashion_epochs": args.fashion_epochs,
               "tuxpaint_limit": args.tuxpaint_limit, "tuxpaint_preset": args.tuxpaint_preset,
               "fashion_per_class": dict(zip(("train", "val", "test"), per_class, strict=True))
               if per_class else None,
               "cache_dir": str(args.cache) if args.cache else None}
    return dataclasses.replace(settings, **{k: v for k, v in changes.items()
                                            if v is not None})


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    data = {k: v for k, v in {"tuxpaint": args.tuxpaint_data,
                              "fashion-mnist": args.fashion_data}.items() if v}
    summary = run(args.out, settings_from(args), data=data)
    print(f"\n{'dataset':<15}{'setting':<28}{'accuracy':>10}{'macro-F1':>10}")
    for r in summary["rows"]:
        print(f"{r['dataset']:<15}{r['setting']:<28}{r['accuracy_mean']:>10.3f}"
              f"{r['macro_f1_mean']:>10.3f}")
    for dataset, report in summary["modality_report"].items():
        print(f"\nmodality report, {dataset} (fused model):")
        metric = next(k for k in report[0] if k != "setting")
        for row in report:
            print(f"  {row['setting']:<28}{row[metric]:.3f}")
    print(f"\nresults: {args.out / 'image_text.csv'}, {args.out / 'image_text.json'}; "
          f"plot: {summary.get('plot')}")
    return summary


if __name__ == "__main__":
    main()
