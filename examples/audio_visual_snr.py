"""Audio-visual recognition: speech that is hard to hear, helped by the picture.

Trains audio alone, image alone and the two fused on av-digits, then measures test
accuracy with white noise added to the clips at a sweep of SNRs (clean to -10 dB)::

    python examples/audio_visual_snr.py --quick          # a few minutes, one seed
    python examples/audio_visual_snr.py --out av-snr/    # the full run (3 seeds)

Writes ``av_snr.csv``, ``av_snr.json`` and ``av_snr.png`` to ``--out``; an interrupted
run resumes from ``--out/results.jsonl``. Everything goes through the public API:
:class:`polymodal.Predictor`, the bundled datasets and
:func:`polymodal.data.noise.noisy_snr` (see :mod:`benchmarks.studies.av_snr`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

# the study lives in the repository's benchmarks/ (not installed): found from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.studies.av_snr import AVSNRSettings, run, snr_label


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="one seed, 4 epochs (a few minutes on two cores)")
    parser.add_argument("--out", type=Path, default=Path("av-snr-results"),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None,
                        help="an av-digits manifest (default: made under $POLYMODAL_DATA)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--snrs", type=float, nargs="+", default=None,
                        help="dB; 'inf' for the clean clips (default: inf 20 10 5 0 -5 -10)")
    parser.add_argument("--fusion", default=None, help="fusion of the fused model (gated)")
    parser.add_argument("--drop-modality", type=float, default=None)
    parser.add_argument("--no-augment", action="store_true",
                        help="train on the clean clips only (no noisy copies)")
    parser.add_argument("--limit", type=int, default=None,
                        help="rows per class of av-digits (a small version; tests)")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="evaluate on at most this many test rows")
    parser.add_argument("--preset", default=None, help="Predictor preset (fast)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> AVSNRSettings:
    settings = AVSNRSettings.quick() if args.quick else AVSNRSettings()
    changes = {"seeds": tuple(args.seeds) if args.seeds else None, "epochs": args.epochs,
               "snrs": tuple(args.snrs) if args.snrs else None, "fusion": args.fusion,
               "drop_modality": args.drop_modality, "limit": args.limit,
               "test_limit": args.test_limit, "preset": args.preset,
               "augment_snrs": () if args.no_augment else None}
    return dataclasses.replace(settings, **{k: v for k, v in changes.items()
                                            if v is not None})


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    settings = settings_from(args)
    summary = run(args.out, settings, data=args.data)
    labels = [snr_label(x) for x in settings.snrs]
    print("\ntest accuracy (mean over seeds) against the SNR of the added audio noise")
    print(f"{'setting':<14}" + "".join(f"{lab:>9}" for lab in labels))
    for name in settings.settings:
        mine = {r["snr"]: r["accuracy_mean"] for r in summary["rows"]
                if r["setting"] == name}
        print(f"{name:<14}" + "".join(f"{mine[lab]:>9.3f}" for lab in labels))
    above = summary["fused_above_both_everywhere"]
    print("\nfused above both single modalities at every SNR:", "yes" if above else "NO")
    print(f"results: {args.out / 'av_snr.csv'}, {args.out / 'av_snr.json'}; "
          f"plot: {summary.get('plot')}")
    return summary


if __name__ == "__main__":
    main()
