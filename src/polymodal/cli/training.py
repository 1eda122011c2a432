"""Models: ``train``, ``evaluate``, ``predict``, ``pretrain``, ``evaluate-retrieval``,
``zero-shot``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from polymodal.cli.app import app
from polymodal.cli.common import (
    handled,
    out,
    parse_options,
    parse_roles,
    print_frame,
    print_schema,
    print_table,
    resolve_model_said,
)

#: the run folder (checkpoints, logs) inside the output folder, unless ``path`` is set:
#: ``--resume`` finds the interrupted run there
RUN_FOLDER = "run"
FUSIONS = "concat, late, gated, attention, tensor, lowrank, relation"
PRESETS = "fast, tiny, pretrained"
ROLE_HELP = "override a column's role: COLUMN=ROLE (repeatable), e.g. sample=id"


def load_train_config(config: Path | None, overrides: dict[str, object], *,
                      target: type | None = None) -> Any:
    """A :class:`~polymodal.config.RunConfig` from a YAML file and the command's flags
    (a flag not given is None and leaves the file's setting; ``roles`` from ``--role``
    add to the file's): :func:`polymodal.config.load_config` for ``target``'s settings
    (default: the Predictor's). Unknown keys are refused with the nearest valid name."""
    from polymodal.config import ConfigError, load_config

    if target is None:
        from polymodal.predictor import Predictor

        target = Predictor
    overrides = dict(overrides)
    roles = overrides.pop("roles", None) or {}
    overrides.update({f"roles.{c}": r for c, r in roles.items()})  # type: ignore[union-attr]
    run = load_config(config, overrides, kind=target.config_class)
    if run.fit.train is None:
        raise ConfigError("the config needs 'train' (or pass --train)")
    return run


def _fit_from_config(target: type, config: Path | None, overrides: dict[str, object],
                     default_out: str) -> tuple[Any, Path]:
    """Build ``target`` (Predictor, Pretrainer) from a config and flags, say which role
    each column was given, and fit it; its run folder is ``OUT/run`` unless the config
    sets ``path``."""
    from polymodal.data.manifest import Manifest

    with handled("on_error: skip goes on and reports such rows"):
        run = load_train_config(config, overrides, target=target)
        settings, fit = run.estimator, run.fit
        save_to = Path(str(fit.save or default_out))
        if settings.path is None:
            settings.path = str(save_to / RUN_FOLDER)
        model = target.from_config(settings)
        train = fit.train
        if not isinstance(train, Manifest):
            from polymodal.data.rows import read_rows

            m = read_rows(train, label=getattr(settings, "label", None),
                          roles=settings.roles or None)
            print_schema(m, title=f"columns of {train} (change with --role COLUMN=ROLE)")
            unused = [f"{c} ({spec.role.value})" for c, spec in m.schema.columns.items()
                      if spec.role.value in ("numeric", "categorical")]
            if unused:
                out.print(f"not used as features: {', '.join(unused)}; models learn from "
                          "text, image and audio columns (--role COLUMN=text reads a "
                          "column as words)")
        fit_args: dict[str, Any] = {"time_limit": fit.time_limit, "on_error": fit.on_error,
                                    "resume": fit.resume, "workers": int(fit.workers),
                                    "devices": fit.devices, "num_nodes": int(fit.num_nodes)}
        if fit.init_from is not None:
            fit_args["init_from"] = fit.init_from
        model.fit(train, fit.tuning, **fit_args)
    if getattr(model, "ended_", "") == "time limit":
        out.print(f"[yellow]stopped at the time limit[/] ({fit.time_limit} s); "
                  "kept the best finished epoch")
    return model, save_to


@app.command("train")
def train_cmd(
    config: Annotated[Path | None, typer.Argument(help="a YAML training config")] = None,
    train: Annotated[str | None, typer.Option(help="training manifest")] = None,
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
    tuning: Annotated[str | None, typer.Option(help="tuning manifest")] = None,
    fusion: Annotated[str | None, typer.Option(help=f"fusion method: {FUSIONS}",
                                               show_default="attention")] = None,
    preset: Annotated[str | None, typer.Option(
        help=f"preset: {PRESETS}; auto tries several recipes and keeps the best",
        show_default="auto")] = None,
    save: Annotated[str | None, typer.Option("--out", help="where to save the model",
                                             show_default="model")] = None,
    init_from: Annotated[str | None, typer.Option(
        help="start the encoders from a pretrained checkpoint (polymodal pretrain)")] = None,
    freeze_encoders: Annotated[bool | None, typer.Option(
        "--freeze-encoders", help="keep the encoders fixed (probe pretrained features)")
    ] = None,
    role: Annotated[list[str] | None, typer.Option(help=ROLE_HELP)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="continue the interrupted run in --out's run folder")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any Predictor setting KEY=VALUE (repeatable), e.g. max_epochs=5, "
                        "fusion_options.heads=2")
    ] = None,
) -> None:
    """Train a Predictor from a YAML config and/or flags, then save it.

    Example: polymodal train --train av-digits/manifest.csv --label label --fusion gated
    --set max_epochs=5 --out model/
    """
    from polymodal.predictor import Predictor

    predictor, save_to = _fit_from_config(Predictor, config, {
        "train": train, "label": label, "tuning": tuning, "fusion": fusion,
        "preset": preset, "save": save, "init_from": init_from,
        "freeze_encoders": freeze_encoders, "roles": parse_roles(role),
        "resume": resume or None, **parse_options(set_)}, "model")
    if predictor.is_auto:
        print_leaderboard(predictor.leaderboard(), predictor.auto_.describe())
    with handled():
        predictor.save(save_to)
    out.print(f"trained in {predictor.fit_seconds_:.0f}s; model saved to {save_to}; "
              f"run folder (checkpoints, logs) {predictor.run_dir_}")


def print_leaderboard(board: Any, kept: str) -> None:
    """The candidates of an auto fit as a table, and what it kept."""
    metric = next(c for c in board.columns if c.startswith("val_") and c != "val_loss")
    table = Table(title=f"candidates ({kept})")
    for name in ("model", metric, "fit s", "feature s", "predict rows/s", "weight",
                 "status"):
        table.add_column(name, justify="left" if name in ("model", "status") else "right")
    for r in board.itertuples(index=False):
        row = r._asdict()

        def num(v: Any, fmt: str) -> str:
            return "" if v is None or v != v else format(v, fmt)
        table.add_row(row["model"], num(row[metric], ".4f"), num(row["fit_s"], ".1f"),
                      num(row["feature_s"], ".1f"), num(row["predict_rows_s"], ".0f"),
                      num(row["weight"], ".2f"), str(row["status"])[:60])
    print_table(table)


def _rows_to_score(predictor: Any, manifest: Path, split: str) -> tuple[Any, str]:
    """The rows ``evaluate`` scores: the test split when the manifest has one (``split``
    "auto"), a named split, or every row ("all"); and a line that says which."""
    from polymodal.data.manifest import Manifest

    m = Manifest.read(manifest).with_roles(predictor.roles_)
    if split == "all" or (split == "auto" and m.schema.split is None):
        return m, f"scored all {len(m):,} rows"
    part = m.split("test" if split == "auto" else split)
    if split == "auto" and not len(part):
        return m, f"scored all {len(m):,} rows (the split column has no test rows)"
    if not len(part):
        raise ValueError(f"{manifest}: no row of split {split!r}")
    return part, (f"scored the {len(part):,} rows of split "
                  f"{'test' if split == 'auto' else split!r} of {len(m):,} (--split all "
                  "scores every row)")


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    manifest: Annotated[Path, typer.Argument(help="labelled rows to evaluate on")],
    split: Annotated[str, typer.Option(
        help="auto: the test split when there is a split column, else every row; "
             "all; or a split name")] = "auto",
    plots: Annotated[Path | None, typer.Option(help="write PNG plots to this folder")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print metrics as JSON")] = False,
) -> None:
    """Metrics of a saved model on MANIFEST, and its modality report.

    Example: polymodal evaluate model/ av-digits/manifest.csv --plots plots/
    """
    from polymodal.predictor import Predictor

    with handled():
        predictor = Predictor.load(model)
        rows, scored = _rows_to_score(predictor, manifest, split)
        metrics = predictor.evaluate(rows)
    if json_out:
        print(json.dumps(metrics, indent=2))
        return
    out.print(f"{model} on {manifest}: {scored}")
    table = Table(title="metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    print_table(table)
    out.print(predictor.modality_report(rows).to_string(index=False))
    if plots is not None:
        for path in predictor.plot(rows, plots):
            out.print(f"plot: {path}")


@app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    manifest: Annotated[Path, typer.Argument(help="rows to predict")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV of predictions")],
    proba: Annotated[bool, typer.Option(help="add class probabilities")] = False,
) -> None:
    """Write a CSV with each row's id and prediction (and probabilities).

    Example: polymodal predict model/ new.csv --out predictions.csv --proba
    """
    import pandas as pd

    from polymodal.predictor import Predictor

    with handled():
        predictor = Predictor.load(model)
        pred = predictor.predict(manifest)
        frame = pd.DataFrame({"id": pred.index, "prediction": pred.values})
        if proba and predictor.task_.has_classes:
            probs = predictor.predict_proba(manifest).reset_index(drop=True)
            frame = pd.concat([frame, probs.add_prefix("p_")], axis=1)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_file, index=False)
    out.print(f"{len(frame):,} predictions -> {out_file}")


@app.command("pretrain")
def pretrain_cmd(
    config: Annotated[Path | None, typer.Argument(help="a YAML pretraining config")] = None,
    train: Annotated[str | None, typer.Option(help="manifest of unlabelled rows")] = None,
    tuning: Annotated[str | None, typer.Option(help="held-out rows")] = None,
    preset: Annotated[str | None, typer.Option(
        help=f"preset: {PRESETS}; auto tries several recipes and keeps the best",
        show_default="auto")] = None,
    save: Annotated[str | None, typer.Option("--out", help="where to save it",
                                             show_default="pretrained")] = None,
    role: Annotated[list[str] | None, typer.Option(help=ROLE_HELP)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="continue the interrupted run in --out's run folder")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any Pretrainer setting KEY=VALUE (repeatable)")] = None,
) -> None:
    """Contrastive pretraining (InfoNCE across modality pairs) on rows without labels;
    fine-tune from the result with `polymodal train --init-from`.

    Example: polymodal pretrain --train tuxpaint/manifest.csv --preset pretrained
    --set modalities=[image,caption] --out pretrained/
    """
    from polymodal.pretraining import Pretrainer

    pre, save_to = _fit_from_config(Pretrainer, config, {
        "train": train, "tuning": tuning, "preset": preset, "save": save,
        "roles": parse_roles(role), "resume": resume or None, **parse_options(set_)},
        "pretrained")
    with handled():
        pre.save(save_to)
    out.print(f"pretrained in {pre.fit_seconds_:.0f}s on pairs {pre.pair_rows_}; saved to "
              f"{save_to}; run folder {pre.run_dir_}")


def load_pretrained(model: str) -> Any:
    """A saved Pretrainer by folder or by builtin name (``builtin:lit-tuxpaint``), as
    every command that takes a model accepts them; says which model it is."""
    from polymodal.pretraining import Pretrainer

    return Pretrainer.load(resolve_model_said(model))


def model_and_rows(model: str, manifest: Path | None) -> tuple[str, Path]:
    """``MODEL MANIFEST``, or a lone ``MANIFEST`` with the default builtin model."""
    if manifest is not None:
        return model, manifest
    from polymodal.library.builtin import DEFAULT_MODEL

    return DEFAULT_MODEL, Path(model)


@app.command("evaluate-retrieval")
def evaluate_retrieval_cmd(
    model: Annotated[str, typer.Argument(
        help="a pretrained checkpoint folder or builtin:NAME (default builtin:general: "
             "give only the manifest)")],
    manifest: Annotated[Path | None, typer.Argument(help="held-out rows holding pairs")] = None,
    direction: Annotated[list[str] | None, typer.Option(
        help="QUERY:GALLERY columns, e.g. caption:image (repeatable; default all)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON records")] = False,
) -> None:
    """Recall@1/5/10, median rank and mAP of cross-modal retrieval in each direction.

    Example: polymodal evaluate-retrieval pretrained/ test.csv --direction caption:image
    """
    model, manifest = model_and_rows(model, manifest)
    with handled():
        pre = load_pretrained(model)
        pairs = [tuple(d.split(":", 1)) for d in direction or []]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("--direction takes QUERY:GALLERY, e.g. caption:image")
        table = pre.evaluate_retrieval(manifest, pairs or None)  # type: ignore[arg-type]
    print_frame(table, json_out)


@app.command("zero-shot")
def zero_shot_cmd(
    model: Annotated[str, typer.Argument(
        help="a pretrained checkpoint folder or builtin:NAME (default builtin:general: "
             "give only the manifest)")],
    column: Annotated[str, typer.Option(help="the column to classify (image, audio)")],
    classes: Annotated[str, typer.Option(help="class names, comma-separated")],
    manifest: Annotated[Path | None, typer.Argument(help="rows to classify")] = None,
    label: Annotated[str | None, typer.Option(help="report accuracy against it")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="CSV of predictions")] = None,
) -> None:
    """Classify rows by the similarity of COLUMN to the class names: no labels.

    Example: polymodal zero-shot builtin:lit-tuxpaint photos.csv --column image
    --classes frog,cow
    """
    names = [c.strip() for c in classes.split(",") if c.strip()]
    model, manifest = model_and_rows(model, manifest)
    with handled():
        if not names:
            raise ValueError("--classes needs at least one class name")
        pre = load_pretrained(model)
        pred = pre.zero_shot(manifest, column, names)
        metrics = pre.evaluate_zero_shot(manifest, column, label, names) if label else None
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        pred.rename_axis("id").reset_index().to_csv(out_file, index=False)
        out.print(f"{len(pred):,} predictions -> {out_file}")
    if metrics is not None:
        out.print(f"zero-shot accuracy {metrics['accuracy']:.3f} (chance "
                  f"{metrics['chance']:.3f}) on {metrics['rows']:.0f} rows")
