"""``python -m benchmarks [--quick] [--only NAME]``: run benchmarks, update
docs/benchmarks.md."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    ann_search,
    apps,
    audio_features,
    audio_towers,
    captioning,
    captioning_answers,
    cli,
    data_loading,
    encoders,
    fusion,
    gan,
    general_library,
    general_model,
    general_sounds,
    http_search,
    library,
    media_cache,
    onnx_speed,
    pretraining,
    real_data,
    recommend,
    robustness,
    scale,
    scale_runs,
    training,
    tuxpaint,
    vqa,
)
from benchmarks.report import DOCS, RESULTS, Section, write_section

BENCHMARKS: dict[str, Callable[[bool], Section]] = {
    "data-loading": data_loading.run,
    "media-cache": media_cache.run,
    "audio-features": audio_features.run,
    "audio-towers": audio_towers.run,
    "real-data": real_data.run,
    "feature-cache": encoders.run_cache,
    "embed-memory": encoders.run_memory,
    "training-overhead": training.run,
    "fusion-accuracy": fusion.run,
    "robustness": robustness.run,
    "tuxpaint-fusion": tuxpaint.run,
    "pretrain-retrieval": pretraining.retrieval,
    "label-efficiency": pretraining.label_efficiency,
    "pretrain-throughput": pretraining.throughput,
    "library-index": library.index_and_answers,
    "library-search": ann_search.run,
    "library-http": library.http_load,
    "library-http-search": http_search.run,
    "onnx-speed": onnx_speed.run,
    "vqa-sort-of-clevr": vqa.run,
    "recommend-tuxpaint": recommend.run,
    "av-snr": apps.run_av_snr,
    "image-text": apps.run_image_text,
    "cli-startup": cli.run,
    "captioning": captioning.run,
    "captioning-answers": captioning_answers.run,
    "gan": gan.run,
    "general-model": general_model.run,
    "general-sounds": general_sounds.run,
    "general-library": general_library.run,
    "scale-stream": scale.run_stream,
    "scale-cache": scale.run_cache,
    "scale-pretrain": scale_runs.run_pretrain,
    "scale-processes": scale_runs.run_processes,
}

RESUMABLE = {"fusion-accuracy": fusion.run, "robustness": robustness.run,
             "pretrain-retrieval": pretraining.retrieval,
             "label-efficiency": pretraining.label_efficiency,
             "vqa-sort-of-clevr": vqa.run, "av-snr": apps.run_av_snr,
             "image-text": apps.run_image_text}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI-sized data")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument("--out", type=Path, default=None,
                        help="the report (default docs/benchmarks.md; with --quick, "
                             "bench-results/quick-report.md, never the docs)")
    parser.add_argument("--report-only", action="store_true",
                        help="resumable benchmarks: report the results so far, train nothing")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS / "quick-report.md" if args.quick else DOCS / "benchmarks.md"
    for name in args.only or list(BENCHMARKS):
        if args.report_only and name in RESUMABLE:
            section = RESUMABLE[name](args.quick, train=False)
        else:
            section = BENCHMARKS[name](args.quick)
        path = write_section(section, args.out, order=list(BENCHMARKS))
        print(section.render())
        print(f"-> {path}")


if __name__ == "__main__":
    main()
