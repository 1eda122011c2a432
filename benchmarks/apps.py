"""The applications of issue 7 as benchmark sections: audio-visual recognition against
audio SNR on av-digits (``av-snr``) and image + text recognition on tuxpaint and
fashion-mnist with noisy records (``image-text``). Both run the code of
``examples/audio_visual_snr.py`` and ``examples/image_text_recognition.py``
(:mod:`benchmarks.studies.av_snr`, :mod:`benchmarks.studies.image_text`) and resume
from their results in ``bench-results/``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks.report import DOCS, RESULTS, Section
from benchmarks.studies import av_snr as av
from benchmarks.studies import image_text as it


def run_av_snr(quick: bool = False, out: Path = RESULTS / "av-snr",
           plot: Path = DOCS / "img" / "av_snr.png", seeds: tuple[int, ...] | None = None,
           train: bool = True) -> Section:
    """Accuracy of audio alone, image alone and the fused model against the SNR of
    white noise added to av-digits' test clips (clean to -10 dB). ``seeds`` replaces
    the default seeds (results of other seeds stay in ``out`` for a later run);
    ``train=False`` reports the results so far."""
    settings = av.AVSNRSettings.quick() if quick else av.AVSNRSettings()
    if seeds is not None:
        settings = dataclasses.replace(settings, seeds=tuple(seeds))
    if quick:
        out, plot = out.with_name(out.name + "-quick"), out.with_name("av-snr-quick.png")
    summary = av.run(out, settings, plot=plot, train=train)
    labels = [av.snr_label(x) for x in settings.snrs]
    section = Section(
        key="av-snr", title="av-digits: accuracy against audio SNR, audio / image / fused",
        command="python -m benchmarks --only av-snr" + (" --quick" if quick else ""),
        columns=["setting", "seeds", *labels, "train s"])
    rows = summary["rows"]
    for name in settings.settings:
        mine = {r["snr"]: r for r in rows if r["setting"] == name}
        if not mine:
            continue
        label = f"fused ({settings.fusion}, dropout {settings.drop_modality})" \
            if name == "fused" else name
        section.rows.append([label, f"{mine[labels[0]]['seeds']}",
                             *[f"{mine[lab]['accuracy_mean']:.3f} ± "
                               f"{mine[lab]['accuracy_std']:.3f}" for lab in labels],
                             f"{mine[labels[0]]['train_seconds_mean']:.0f}"])
    margin = summary["fused_minus_best_single"] or {}
    above = summary["fused_above_both_everywhere"]
    verdict = ("Not every setting has results yet" if above is None else
               "The fused model stays above both single modalities at every SNR" if above else
               "The fused model does NOT stay above both single modalities at: " +
               ", ".join(k for k, v in margin.items() if v <= 0))
    worst = min(margin.items(), key=lambda kv: kv[1]) if margin else None
    section.notes = (
        f"{verdict}" + (f" (smallest margin {worst[1]:+.3f} at {worst[0]})" if worst else "")
        + f". Test split of av-digits ({summary['test_rows']} rows), white Gaussian noise "
        "added to each test clip at the SNR given (`polymodal.data.noise.noisy_snr`: clip "
        "power over added-noise power; the recorded clips already carry noise at -14 to "
        f"-4 dB). `{settings.preset}` preset, {settings.epochs} epochs, mean ± std over "
        f"seeds {list(settings.seeds)}. The models that hear train on the clean training "
        f"clips plus {settings.augment_copies} noisy copy of each at an SNR drawn from "
        f"{list(settings.augment_snrs)} dB; the image-alone model never hears. The fused "
        f"model is `{settings.fusion}` fusion of image and audio with modality dropout "
        f"{settings.drop_modality}. Example and guide: `examples/audio_visual_snr.py`, "
        f"[applications.md](applications.md). Plot: ![av-snr](img/{plot.name})")
    return section


def run_image_text(quick: bool = False, out: Path = RESULTS / "image-text",
               plot: Path = DOCS / "img" / "image_text.png",
               seeds: tuple[int, ...] | None = None, train: bool = True) -> Section:
    """A picture with its text (tuxpaint captions; fashion-mnist with short noisy
    records): image alone, text alone and fused, with the fused model's modality
    report. ``seeds`` replaces the default seeds; ``train=False`` reports the results
    so far."""
    settings = it.ImageTextSettings.quick() if quick else it.ImageTextSettings()
    if seeds is not None:
        settings = dataclasses.replace(settings, seeds=tuple(seeds))
    if quick:
        out, plot = out.with_name(out.name + "-quick"), out.with_name("image-text-quick.png")
    summary = it.run(out, settings, plot=plot, train=train)
    section = Section(
        key="image-text", title="Image + text recognition: tuxpaint and fashion-mnist records",
        command="python -m benchmarks --only image-text" + (" --quick" if quick else ""),
        columns=["dataset", "setting", "seeds", "test accuracy (mean ± std)",
                 "macro-F1 (mean)", "train s (mean)"])
    for r in summary["rows"]:
        section.rows.append([r["dataset"], r["setting"], f"{r['seeds']}",
                             f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f}",
                             f"{r['macro_f1_mean']:.3f}", f"{r['train_seconds_mean']:.0f}"])
    reports = []
    for dataset, report in summary["modality_report"].items():
        metric = next(k for k in report[0] if k != "setting")
        reports.append(f"{dataset}: " + "; ".join(
            f"{x['setting']} {x[metric]:.3f}" for x in report))
    gains = ", ".join(f"{d} {g:+.3f}" for d, g in summary["fused_minus_best_single"].items())
    per_class = settings.fashion_per_class
    section.notes = (
        f"Fused minus the better single modality: {gains}. tuxpaint: picture and caption, "
        f"the category as label, `{settings.tuxpaint_preset}` preset (frozen "
        f"EfficientNet-Lite0 and MiniLM, features cached), {settings.tuxpaint_epochs} "
        f"epochs. fashion-mnist: {per_class['train']} / {per_class['val']} / "
        f"{per_class['test']} pictures per class (train / val / test) drawn from the "
        "bundled set, each with a short noisy record written by "
        "`benchmarks.studies.image_text.fashion_record` (1-2 attributes shared between "
        "classes, 25% replaced by another class's, typos, 15% empty; never the class "
        f"name), `{settings.fashion_preset}` preset, {settings.fashion_epochs} epochs. "
        f"Gated fusion with modality dropout 0.2; seeds {list(settings.seeds)}. Modality "
        "report of the fused model (first seed, accuracy): " + " | ".join(reports)
        + f". Example and guide: `examples/image_text_recognition.py`, "
        f"[applications.md](applications.md). Plot: ![image-text](img/{plot.name})")
    return section
