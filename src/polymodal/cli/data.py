"""Data and features: ``validate``, ``schema``, ``datasets``, ``encoders``, ``embed``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polymodal.cli.app import app, datasets_app, encoders_app
from polymodal.cli.common import (
    handled,
    out,
    parse_options,
    parse_roles,
    print_report,
    print_schema,
    print_table,
)

MANIFEST_HELP = "CSV, TSV, Parquet, JSONL or a folder"


@app.command("validate")
def validate_cmd(
    manifest: Annotated[Path, typer.Argument(help=MANIFEST_HELP)],
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
    """Decode every cell of MANIFEST and report each bad row; exit 1 if any is bad.

    Example: polymodal validate photos.csv --label category --report bad.csv
    """
    from polymodal.data.manifest import Manifest
    from polymodal.data.validation import validate

    with handled():
        m = Manifest.read(manifest, label=label, roles=parse_roles(role))
        if not json_out:
            print_schema(m)
        result = validate(m, require=require or (), workers=workers,
                          show_progress=not json_out)
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
    manifest: Annotated[Path, typer.Argument(help=MANIFEST_HELP)],
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
    role: Annotated[list[str] | None, typer.Option(help="COLUMN=ROLE override")] = None,
) -> None:
    """Print the role inferred for each column of MANIFEST (nothing is decoded).

    Example: polymodal schema photos.csv --role notes=text
    """
    from polymodal.data.manifest import Manifest

    with handled():
        print_schema(Manifest.read(manifest, label=label, roles=parse_roles(role)))


@datasets_app.command("list")
def datasets_list() -> None:
    """List the bundled datasets and whether they can be made here.

    Example: polymodal datasets list
    """
    from polymodal.data.bundled import data_home, list_datasets
    from polymodal.data.bundled.registry import missing_requirements

    table = Table(title=f"bundled datasets (made under {data_home()})")
    for name in ("name", "description", "licence", "can be made here"):
        table.add_column(name, overflow="fold")
    for spec in list_datasets():
        missing = missing_requirements(spec)
        table.add_row(spec.name, spec.description, spec.licence,
                      "yes" if not missing else "no: needs " + ", ".join(missing))
    print_table(table)


@datasets_app.command("make")
def datasets_make(
    name: Annotated[str, typer.Argument(help="a name from `polymodal datasets list`")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="target folder",
        show_default="$POLYMODAL_DATA/NAME or ~/.cache/polymodal/datasets/NAME")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of every random choice")] = 0,
    limit: Annotated[int | None, typer.Option(
        help="a small version: this many items per class (per split for sort-of-clevr)")
    ] = None,
    force: Annotated[bool, typer.Option(help="make again even if complete")] = False,
    check: Annotated[bool, typer.Option(help="validate the result")] = True,
) -> None:
    """Make a bundled dataset reproducibly and print where it is.

    Example: polymodal datasets make av-digits --limit 20
    """
    from polymodal.data.bundled import make_dataset
    from polymodal.data.bundled.registry import CARD_NAME
    from polymodal.data.manifest import Manifest
    from polymodal.data.validation import validate

    with handled():
        path = make_dataset(name, out_dir, seed=seed, limit=limit, force=force)
    out.print(f"[bold]{name}[/]: manifest {path}\n  data card {path.parent / CARD_NAME}")
    if check:
        result = validate(Manifest.read(path))
        print_report(result)
        if not result.ok:
            raise typer.Exit(1)


@encoders_app.command("list")
def encoders_list(
    modality: Annotated[str | None, typer.Option(help="text, image or audio")] = None,
) -> None:
    """List the encoders: output size, pretrained or not, and whether they run offline.

    Example: polymodal encoders list --modality audio
    """
    from polymodal.encoders import list_encoders

    table = Table(title="encoders")
    for name in ("name", "modality", "output", "pretrained", "offline here", "description"):
        table.add_column(name, overflow="fold")
    for info in list_encoders(modality):
        dim = str(info.output_dim)
        offline = "yes" if info.offline() else f"with {info.needs}" if info.needs else "no"
        table.add_row(info.name, info.modality, dim, "yes" if info.pretrained else "no",
                      offline, info.description)
    print_table(table)


@app.command("embed")
def embed_cmd(
    manifest: Annotated[Path, typer.Argument(help=MANIFEST_HELP)],
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
    role: Annotated[list[str] | None, typer.Option(
        help="override a column's role: COLUMN=ROLE (repeatable)")] = None,
    processes: Annotated[int, typer.Option(
        help="embed a share of the rows in each of N processes")] = 1,
    milvus: Annotated[str | None, typer.Option(
        help="also upsert the vectors into Milvus: a milvus-lite file or a server URI")
    ] = None,
    collection: Annotated[str, typer.Option(help="the Milvus collection")] = "embeddings",
    token: Annotated[str | None, typer.Option(help="the Milvus token (a cluster's)")] = None,
) -> None:
    """Write one embedding per row of MANIFEST (a manifest or a shard folder) with its
    id to --out.

    Example: polymodal embed photos.csv --encoder efficientnet-lite0 --out photos.parquet
    """
    from polymodal.data.rows import read_rows
    from polymodal.encoders import build_encoder, embed_manifest

    with handled():
        enc = build_encoder(encoder, **parse_options(option))
        rows = read_rows(manifest, on_error, label=label,  # type: ignore[arg-type]
                         roles=parse_roles(role))
        result = embed_manifest(rows, enc, out_file, column=column, batch_size=batch_size,
                                num_workers=workers, cache_dir=cache, processes=processes,
                                on_error=on_error)  # type: ignore[arg-type]
        if milvus is not None:
            from polymodal.encoders.embed_parallel import write_to_milvus

            written = write_to_milvus(result.path, milvus, collection, token=token)
            out.print(f"{written:,} vectors upserted into {milvus} ({collection})")
    out.print(f"{result.embedded:,} of {result.rows:,} rows embedded ({result.dim}-d), "
              f"{result.missing:,} lack the modality, {result.skipped:,} skipped -> "
              f"{result.path}")
    if result.skip_report:
        out.print(f"skipped rows and reasons: {result.skip_report}")
