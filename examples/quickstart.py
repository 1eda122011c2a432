"""Fit, evaluate, save and load a fused classifier on the bundled av-digits dataset.

    python examples/quickstart.py [--epochs 12]

Makes av-digits (handwritten digits, spoken digits, text records) if it is not there,
trains gated fusion of the three on the train split, and prints the test metrics and
the modality report (what each column contributes).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from polymodal import Manifest, Predictor
from polymodal.data.bundled import make_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "quickstart")
    parser.add_argument("--limit", type=int, default=None,
                        help="a small dataset (rows per class and split), for a smoke test")
    args = parser.parse_args()

    manifest = make_dataset("av-digits", limit=args.limit)  # a CSV of media paths
    test = Manifest.read(manifest).split("test")
    predictor = Predictor(label="label", fusion="gated", max_epochs=args.epochs,
                          path=args.out / "run").fit(manifest)  # its train and val splits
    print(predictor.evaluate(test))
    print(predictor.modality_report(test).to_string(index=False))
    saved = predictor.save(args.out / "model")
    print(Predictor.load(saved).predict(test).head())
    print(f"model saved to {saved}")


if __name__ == "__main__":
    main()
