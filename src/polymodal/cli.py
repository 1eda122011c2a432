"""The ``polymodal`` command: one entry point, sub-commands per pipeline stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from polymodal.data import Manifest, ManifestError, ValidationReport, validate
from polymodal.data.bundled import DatasetUnavailable, data_home, list_datasets, make_dataset
from polymodal.data.bundled.registry import CARD_NAME, missing_requirements

app = typer.Typer(help="polymodal: multimodal learning for text, images and audio.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
datasets_app = typer.Typer(help="The bundled benchmark datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
encoders_app = typer.Typer(help="Feature extractors by name.", no_args_is_help=True)
app.add_typer(encoders_app, name="encoders")
out = Console()
MAX_PROBLEMS_SHOWN = 50


def _parse_roles(pairs: list[str] | None) -> dict[str, str]:
    roles = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r}: write COLUMN=ROLE, e.g. notes=ignore")
        col, role = pair.split("=", 1)
        roles[col.strip()] = role.strip()
    return roles


def print_schema(manifest: Manifest) -> None:
    """Print the inferred roles of a manifest's columns."""
    table = Table(title=f"columns of {manifest.source} ({len(manifest):,} rows)")
    for name in ("column", "role", "source", "why"):
        table.add_column(name)
    for spec in manifest.schema.columns.values():
        table.add_row(spec.name, spec.role.value, spec.source, spec.reason)
    out.print(table)


def print_report(report: ValidationReport, report_file: Path | None = None) -> None:
    """Print the problems table (first ones) and the summary of a validation."""
    if report.problems:
        table = Table(title=f"problems ({len(report.problems):,} in "
                            f"{len(report.bad_rows):,} rows)")
        for name in ("row", "column", "kind", "reason", "file"):
            table.add_column(name, overflow="fold")
        for p in report.problems[:MAX_PROBLEMS_SHOWN]:
            table.add_row(str(p.row) if p.row is not None else "", p.column or "", p.kind,
                          p.reason, p.path or "")
        out.print(table)
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            where = f"; all of them are in {report_file}" if report_file else \
                "; pass --report FILE to write all of them"
            out.print(f"... {len(report.problems) - MAX_PROBLEMS_SHOWN:,} more{where}")
    summary = Table(title="summary")
    for name in ("column", "role", "present", "empty (row lacks it)", "bad"):
        summary.add_column(name)
    for c in report.columns.values():
        summary.add_row(c.column, c.role, f"{c.present:,}", f"{c.empty:,}", f"{c.bad:,}")
    out.print(summary)
    if report.label_column:
        counts = ", ".join(f"{k}: {v}" for k, v in list(report.label_counts.items())[:20])
        more = " ..." if len(report.label_counts) > 20 else ""
        out.print(f"label [bold]{report.label_column}[/]: {len(report.label_counts)} "
                  f"classes ({counts}{more})")
    if report.rows_without_modality:
        out.print(f"{report.rows_without_modality:,} rows have no modality at all")
    verdict = "[green]OK[/]" if report.ok else f"[red]{len(report.bad_rows):,} bad rows[/]"
    out.print(f"{report.n_rows:,} rows: {verdict}")


@app.command("validate")
def validate_cmd(
    manifest: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSONL or a folder")],
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
    role: Annotated[list[str] | None, typer.Option(
        help="override a column's role: COLUMN=ROLE (repeatable)")] = None,
    require: Annotated[list[str] | None, typer.Option(
        help="a modality or column every row must have (repeatable)")] = None,
    report: Annotated[Path | None, typer.Option(
        help="write every problem to this CSV file")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    workers: Annotated[int, typer.Option(help="decoding threads (help with big images)")] = 1,
) -> None:
    """Decode every cell of MANIFEST and report each bad row; exit 1 if any is bad."""
    try:
        m = Manifest.read(manifest, label=label, roles=_parse_roles(role))
        if not json_out:
            print_schema(m)
        result = validate(m, require=require or (), workers=workers,
                          show_progress=not json_out)
    except (ManifestError, ValueError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if report is not None:
        result.to_skip_report().write(report)
    if json_out:
        print(json.dumps(result.summary(), indent=2))
    else:
        print_report(result, report)
        if report is not None:
            out.print(f"problems written to {report}")
    raise typer.Exit(0 if result.ok else 1)


@app.command("schema")
def schema_cmd(
    manifest: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSONL or a folder")],
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
    role: Annotated[list[str] | None, typer.Option(help="COLUMN=ROLE override")] = None,
) -> None:
    """Print the role inferred for each column of MANIFEST (nothing is decoded)."""
    try:
        print_schema(Manifest.read(manifest, label=label, roles=_parse_roles(role)))
    except (ManifestError, ValueError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@datasets_app.command("list")
def datasets_list() -> None:
    """List the bundled datasets and whether they can be made here."""
    table = Table(title=f"bundled datasets (made under {data_home()})")
    for name in ("name", "description", "licence", "can be made here"):
        table.add_column(name, overflow="fold")
    for spec in list_datasets():
        missing = missing_requirements(spec)
        table.add_row(spec.name, spec.description, spec.licence,
                      "yes" if not missing else "no: needs " + ", ".join(missing))
    out.print(table)


@datasets_app.command("make")
def datasets_make(
    name: Annotated[str, typer.Argument(help="a name from `polymodal datasets list`")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="target folder")] = None,
    seed: Annotated[int, typer.Option(help="seed of every random choice")] = 0,
    limit: Annotated[int | None, typer.Option(
        help="a small version: this many items per class (per split for sort-of-clevr)")
    ] = None,
    force: Annotated[bool, typer.Option(help="make again even if complete")] = False,
    check: Annotated[bool, typer.Option(help="validate the result")] = True,
) -> None:
    """Make a bundled dataset reproducibly and print where it is."""
    try:
        path = make_dataset(name, out_dir, seed=seed, limit=limit, force=force)
    except (KeyError, DatasetUnavailable, TypeError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.print(f"[bold]{name}[/]: manifest {path}\n  data card {path.parent / CARD_NAME}")
    if check:
        result = validate(Manifest.read(path))
        print_report(result)
        if not result.ok:
            raise typer.Exit(1)


def _parse_options(pairs: list[str] | None) -> dict[str, object]:
    import yaml

    options: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r}: write KEY=VALUE, e.g. dim=256")
        key, value = pair.split("=", 1)
        options[key.strip()] = yaml.safe_load(value)
    return options


@encoders_app.command("list")
def encoders_list(
    modality: Annotated[str | None, typer.Option(help="text, image or audio")] = None,
) -> None:
    """List the encoders: output size, pretrained or not, and whether they run offline."""
    from polymodal.encoders import list_encoders

    table = Table(title="encoders")
    for name in ("name", "modality", "output", "pretrained", "offline here", "description"):
        table.add_column(name, overflow="fold")
    for info in list_encoders(modality):
        dim = str(info.output_dim)
        offline = "yes" if info.offline() else f"with {info.needs}" if info.needs else "no"
        table.add_row(info.name, info.modality, dim, "yes" if info.pretrained else "no",
                      offline, info.description)
    out.print(table)


@app.command("embed")
def embed_cmd(
    manifest: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSONL or a folder")],
    encoder: Annotated[str, typer.Option(help="a name from `polymodal encoders list`")],
    out_file: Annotated[Path, typer.Option("--out", help="FILE.parquet or FILE.npy")],
    column: Annotated[str | None, typer.Option(help="the column to embed")] = None,
    option: Annotated[list[str] | None, typer.Option(
        help="encoder setting KEY=VALUE (repeatable), e.g. model=/path/to/model")] = None,
    batch_size: Annotated[int, typer.Option(help="rows per batch")] = 64,
    workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 0,
    cache: Annotated[Path | None, typer.Option(help="feature cache folder")] = None,
    on_error: Annotated[str, typer.Option(help="raise or skip")] = "raise",
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
) -> None:
    """Write one embedding per row of MANIFEST (with its id) to --out."""
    from polymodal.data import MediaError
    from polymodal.encoders import build_encoder, embed_manifest

    try:
        enc = build_encoder(encoder, **_parse_options(option))
        result = embed_manifest(Manifest.read(manifest, label=label), enc, out_file,
                                column=column, batch_size=batch_size, num_workers=workers,
                                cache_dir=cache, on_error=on_error)  # type: ignore[arg-type]
    except MediaError as exc:
        out.print(f"[red]bad row:[/] {exc}\n(--on-error skip goes on and reports such rows)")
        raise typer.Exit(1) from None
    except (ManifestError, KeyError, ValueError, TypeError, ImportError, OSError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.print(f"{result.embedded:,} of {result.rows:,} rows embedded ({result.dim}-d), "
              f"{result.missing:,} lack the modality, {result.skipped:,} skipped -> "
              f"{result.path}")
    if result.skip_report:
        out.print(f"skipped rows and reasons: {result.skip_report}")


TRAIN_KEYS = {"train", "tuning", "save", "time_limit", "on_error", "init_from"}
PRETRAIN_KEYS = {"train", "tuning", "save", "time_limit", "on_error"}


def load_train_config(config: Path | None, overrides: dict[str, object], *,
                      target: type | None = None, fit_keys: set[str] = TRAIN_KEYS,
                      required: tuple[str, ...] = ("train", "label")) -> dict[str, object]:
    """A training config from YAML and KEY=VALUE overrides; unknown keys are refused.

    ``target`` is the class the settings construct (default: Predictor); ``fit_keys``
    are the settings that go to ``fit`` instead.
    """
    import inspect

    import yaml

    if target is None:
        from polymodal.predictor import Predictor

        target = Predictor
    settings: dict[str, object] = {}
    if config is not None:
        loaded = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config}: a training config is a mapping of settings")
        settings.update(loaded)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    valid = set(inspect.signature(target).parameters) | fit_keys
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; valid settings: {sorted(valid)}")
    for key in required:
        if key not in settings:
            raise ValueError(f"the config needs {key!r} (or pass --{key})")
    return settings


def _fit_from_config(target: type, config: Path | None, overrides: dict[str, object],
                     fit_keys: set[str], required: tuple[str, ...], default_out: str
                     ) -> tuple[Any, Path]:
    """Build ``target`` (Predictor, Pretrainer) from a config and flags and fit it;
    bad input exits with 1 (a bad row) or 2 (a bad setting or manifest)."""
    from polymodal.data import MediaError

    try:
        settings = load_train_config(config, overrides, target=target, fit_keys=fit_keys,
                                     required=required)
        fit_args = {k: settings.pop(k) for k in list(settings) if k in fit_keys}
        save_to = Path(str(fit_args.pop("save", None) or default_out))
        model = target(**settings)
        model.fit(fit_args.pop("train"), fit_args.pop("tuning", None), **fit_args)
    except MediaError as exc:
        out.print(f"[red]bad row:[/] {exc}\n(on_error: skip goes on and reports such rows)")
        raise typer.Exit(1) from None
    except (ManifestError, KeyError, ValueError, TypeError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    return model, save_to


@app.command("train")
def train_cmd(
    config: Annotated[Path | None, typer.Argument(help="a YAML training config")] = None,
    train: Annotated[str | None, typer.Option(help="training manifest")] = None,
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
    tuning: Annotated[str | None, typer.Option(help="tuning manifest")] = None,
    fusion: Annotated[str | None, typer.Option(help="fusion method")] = None,
    preset: Annotated[str | None, typer.Option(help="fast, tiny or pretrained")] = None,
    save: Annotated[str | None, typer.Option("--out", help="where to save the model")] = None,
    init_from: Annotated[str | None, typer.Option(
        help="start the encoders from a pretrained checkpoint (polymodal pretrain)")] = None,
    freeze_encoders: Annotated[bool | None, typer.Option(
        "--freeze-encoders", help="keep the encoders fixed (probe pretrained features)")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any Predictor setting KEY=VALUE (repeatable)")] = None,
) -> None:
    """Train a Predictor from a YAML config and/or flags, then save it."""
    from polymodal.predictor import Predictor

    predictor, save_to = _fit_from_config(Predictor, config, {
        "train": train, "label": label, "tuning": tuning, "fusion": fusion,
        "preset": preset, "save": save, "init_from": init_from,
        "freeze_encoders": freeze_encoders, **_parse_options(set_)}, TRAIN_KEYS,
        ("train", "label"), "model")
    predictor.save(save_to)
    out.print(f"trained in {predictor.fit_seconds_:.0f}s; model saved to {save_to}; "
              f"run folder (checkpoints, logs) {predictor.run_dir_}")


@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    manifest: Annotated[Path, typer.Argument(help="labelled rows to evaluate on")],
    plots: Annotated[Path | None, typer.Option(help="write PNG plots to this folder")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print metrics as JSON")] = False,
) -> None:
    """Metrics of a saved model on MANIFEST, and its modality report."""
    from polymodal.predictor import Predictor

    try:
        predictor = Predictor.load(model)
        metrics = predictor.evaluate(manifest)
    except (ManifestError, ValueError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        print(json.dumps(metrics, indent=2))
        return
    table = Table(title=f"{model} on {manifest}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}")
    out.print(table)
    out.print(predictor.modality_report(manifest).to_string(index=False))
    if plots is not None:
        for path in predictor.plot(manifest, plots):
            out.print(f"plot: {path}")


@app.command("predict")
def predict_cmd(
    model: Annotated[Path, typer.Argument(help="a saved model folder")],
    manifest: Annotated[Path, typer.Argument(help="rows to predict")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV of predictions")],
    proba: Annotated[bool, typer.Option(help="add class probabilities")] = False,
) -> None:
    """Write a CSV with each row's id and prediction (and probabilities)."""
    import pandas as pd

    from polymodal.predictor import Predictor

    try:
        predictor = Predictor.load(model)
        pred = predictor.predict(manifest)
        frame = pd.DataFrame({"id": pred.index, "prediction": pred.values})
        if proba and predictor.problem_type_ != "regression":
            probs = predictor.predict_proba(manifest).reset_index(drop=True)
            frame = pd.concat([frame, probs.add_prefix("p_")], axis=1)
    except (ManifestError, ValueError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out_file.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_file, index=False)
    out.print(f"{len(frame):,} predictions -> {out_file}")


@app.command("pretrain")
def pretrain_cmd(
    config: Annotated[Path | None, typer.Argument(help="a YAML pretraining config")] = None,
    train: Annotated[str | None, typer.Option(help="manifest of unlabelled rows")] = None,
    tuning: Annotated[str | None, typer.Option(help="held-out rows")] = None,
    preset: Annotated[str | None, typer.Option(help="fast, tiny or pretrained")] = None,
    save: Annotated[str | None, typer.Option("--out", help="where to save it")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="any Pretrainer setting KEY=VALUE (repeatable)")] = None,
) -> None:
    """Contrastive pretraining (InfoNCE across modality pairs) on rows without labels;
    fine-tune from the result with `polymodal train --init-from`."""
    from polymodal.pretraining import Pretrainer

    pre, save_to = _fit_from_config(Pretrainer, config, {
        "train": train, "tuning": tuning, "preset": preset, "save": save,
        **_parse_options(set_)}, PRETRAIN_KEYS, ("train",), "pretrained")
    pre.save(save_to)
    out.print(f"pretrained in {pre.fit_seconds_:.0f}s on pairs {pre.pair_rows_}; saved to "
              f"{save_to}; run folder {pre.run_dir_}")


@app.command("evaluate-retrieval")
def evaluate_retrieval_cmd(
    model: Annotated[Path, typer.Argument(help="a pretrained checkpoint folder")],
    manifest: Annotated[Path, typer.Argument(help="held-out rows holding pairs")],
    direction: Annotated[list[str] | None, typer.Option(
        help="QUERY:GALLERY columns, e.g. caption:image (repeatable; default all)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON records")] = False,
) -> None:
    """Recall@1/5/10, median rank and mAP of cross-modal retrieval in each direction."""
    from polymodal.pretraining import Pretrainer

    try:
        pre = Pretrainer.load(model)
        pairs = [tuple(d.split(":", 1)) for d in direction or []]
        if any(len(p) != 2 for p in pairs):
            raise ValueError("--direction takes QUERY:GALLERY, e.g. caption:image")
        table = pre.evaluate_retrieval(manifest, pairs or None)  # type: ignore[arg-type]
    except (ManifestError, ValueError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        print(table.to_json(orient="records", indent=2))
    else:
        out.print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


@app.command("zero-shot")
def zero_shot_cmd(
    model: Annotated[Path, typer.Argument(help="a pretrained checkpoint folder")],
    manifest: Annotated[Path, typer.Argument(help="rows to classify")],
    column: Annotated[str, typer.Option(help="the column to classify (image, audio)")],
    classes: Annotated[str, typer.Option(help="class names, comma-separated")],
    label: Annotated[str | None, typer.Option(help="report accuracy against it")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="CSV of predictions")] = None,
) -> None:
    """Classify rows by the similarity of COLUMN to the class names: no labels."""
    from polymodal.pretraining import Pretrainer

    names = [c.strip() for c in classes.split(",") if c.strip()]
    try:
        pre = Pretrainer.load(model)
        pred = pre.zero_shot(manifest, column, names)
        metrics = pre.evaluate_zero_shot(manifest, column, label, names) if label else None
    except (ManifestError, ValueError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        pred.rename_axis("id").reset_index().to_csv(out_file, index=False)
        out.print(f"{len(pred):,} predictions -> {out_file}")
    if metrics is not None:
        out.print(f"zero-shot accuracy {metrics['accuracy']:.3f} (chance "
                  f"{metrics['chance']:.3f}) on {metrics['rows']:.0f} rows")


@app.command("index")
def index_cmd(
    source: Annotated[str, typer.Argument(help="a folder of media or a manifest")],
    library: Annotated[str, typer.Option(help="the library's name")],
    model: Annotated[str | None, typer.Option(
        help="a pretrained checkpoint (polymodal pretrain) or builtin:lit-tuxpaint; "
             "needed for a new library")] = None,
    backend: Annotated[str, typer.Option(help="lancedb (local) or milvus")] = "lancedb",
    uri: Annotated[str | None, typer.Option(help="Milvus: a file (milvus-lite) or a "
                                                  "server address")] = None,
    root: Annotated[Path | None, typer.Option(help="where libraries live")] = None,
    vqa: Annotated[str | None, typer.Option(
        help="a saved VQA Predictor (picture + question -> answer) for `ask`")] = None,
    generator: Annotated[str | None, typer.Option(
        help="a text-generation model (Hugging Face name or folder) for `ask`")] = None,
) -> None:
    """Embed every new or changed item of SOURCE into a library (deleted ones are
    forgotten); an interrupted run resumes where it stopped."""
    from polymodal.library import Library
    from polymodal.library.library import LibraryBusy

    try:
        if model is not None:
            lib = Library.create(library, model, root=root, backend=backend, uri=uri)
        else:
            lib = Library(library, root)
        if vqa is not None:
            lib.attach_vqa(vqa)
        if generator is not None:
            lib.attach_generator(generator)
        report = lib.index(source)
    except (ManifestError, ValueError, FileNotFoundError, LibraryBusy) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    out.print(f"{library}: {report.added:,} added, {report.updated:,} updated, "
              f"{report.unchanged:,} unchanged, {report.deleted:,} deleted; "
              f"{len(lib):,} facets stored")
    for problem in report.problems[:20]:
        out.print(f"[yellow]skipped:[/] {problem}")
    if len(report.problems) > 20:
        out.print(f"... and {len(report.problems) - 20} more")


def _open_library(library: str, root: Path | None) -> Any:
    from polymodal.library import Library

    try:
        return Library(library, root)
    except (ValueError, FileNotFoundError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="words, or a picture or sound file")],
    library: Annotated[str, typer.Option(help="the library's name")],
    k: Annotated[int, typer.Option(help="how many items")] = 10,
    modality: Annotated[str | None, typer.Option(help="only image, audio or text")] = None,
    root: Annotated[Path | None, typer.Option(help="where libraries live")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The items of a library nearest to QUERY, with scores."""
    lib = _open_library(library, root)
    try:
        hits = lib.search(query, k, modality)
    except ValueError as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        print(json.dumps([h.to_dict() for h in hits], indent=2, default=str))
        return
    table = Table(title=f"{query} in {library}")
    for col in ("score", "item", "found by", "text", "path"):
        table.add_column(col)
    for h in hits:
        table.add_row(f"{h.score:.3f}", h.item, h.column, h.text, h.path)
    out.print(table)


@app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="a question in words")],
    library: Annotated[str, typer.Option(help="the library's name")],
    k: Annotated[int, typer.Option(help="items to answer from")] = 5,
    root: Annotated[Path | None, typer.Option(help="where libraries live")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """An answer from the library, and the items it rests on."""
    lib = _open_library(library, root)
    try:
        answer = lib.ask(question, k)
    except ValueError as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        print(json.dumps(answer.to_dict(), indent=2, default=str))
        return
    out.print(answer.answer)
    for h in answer.evidence:
        out.print(f"  {h.score:.3f}  {h.item}  {h.text}  {h.path}")


@app.command("serve")
def serve_cmd(
    library: Annotated[str, typer.Option(help="the library's name")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    predictor: Annotated[str | None, typer.Option(
        help="a saved Predictor for /api/predict")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="POLYMODAL_API_KEY", help="require X-API-Key (needed beyond loopback)")
    ] = None,
    root: Annotated[Path | None, typer.Option(help="where libraries live")] = None,
) -> None:
    """The HTTP API (OpenAPI docs at /docs) and the web page of a library."""
    from polymodal.serve import serve

    try:
        serve(library, root, host=host, port=port, predictor=predictor, api_key=api_key)
    except (ValueError, FileNotFoundError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command("recommend")
def recommend_cmd(
    items: Annotated[str, typer.Argument(help="the catalogue: a manifest of items")],
    model: Annotated[str, typer.Option(help="a pretrained checkpoint that embeds them")],
    likes: Annotated[str, typer.Option(help="ids of the items the user liked, "
                                            "comma-separated")],
    k: Annotated[int, typer.Option(help="how many items")] = 10,
    interactions: Annotated[Path | None, typer.Option(
        help="CSV of user,item likes to train the two towers on")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recommend catalogue items from the items a user liked (multimodal embeddings;
    two towers trained on --interactions when given)."""
    import pandas as pd

    from polymodal.apps import Recommender

    try:
        rec = Recommender(model).fit(items, pd.read_csv(interactions, dtype=str)
                                     if interactions else None)
        top = rec.recommend([x.strip() for x in likes.split(",") if x.strip()], k)
    except (ManifestError, ValueError, FileNotFoundError) as exc:
        out.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_out:
        print(top.to_json(orient="records", indent=2))
    else:
        out.print(top.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


@app.command("demo")
def demo(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="where the demo writes (default: the data home)")] = None,
    quick: Annotated[bool, typer.Option(help="tiny data, one epoch (a smoke test)")] = False,
    root: Annotated[Path | None, typer.Option(help="where the library goes")] = None,
) -> None:
    """The whole pipeline on the bundled data with the embedded defaults (what `make
    demo` runs): datasets, pretraining, fine-tuning with few labels, evaluation with
    plots, a library of tuxpaint and questions answered from it."""
    from polymodal.demo import run_demo

    out.rule("polymodal demo")
    run_demo(out_dir or data_home() / "demo", console=out, quick=quick, library_root=root)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()
