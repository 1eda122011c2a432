"""``polymodal shard``: a manifest's rows decoded once into WebDataset tar shards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.app import app
from polymodal.cli.common import handled, out, parse_roles, print_report, print_schema


@app.command("shard")
def shard_cmd(
    manifest: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet, JSONL or a folder")],
    out_dir: Annotated[Path, typer.Option("--out", help="the shard folder to write")],
    label: Annotated[str | None, typer.Option(help="the label column")] = None,
    role: Annotated[list[str] | None, typer.Option(
        help="override a column's role: COLUMN=ROLE (repeatable)")] = None,
    require: Annotated[list[str] | None, typer.Option(
        help="a modality or column every row must have (repeatable)")] = None,
    shard_rows: Annotated[int, typer.Option(help="rows per shard")] = 1000,
    image_size: Annotated[int, typer.Option(
        help="fit pictures inside this square (0: keep their size)")] = 256,
    on_error: Annotated[str, typer.Option(
        help="skip: leave bad rows out and report them; raise: stop at the first")] = "skip",
    workers: Annotated[int, typer.Option(help="decoding threads")] = 1,
    overwrite: Annotated[bool, typer.Option(help="replace an existing shard folder")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Decode every row of MANIFEST into tar shards under --out (pictures resized, sounds
    resampled, texts as text) that training and embedding stream; bad rows are left
    out, reported as `validate` reports them and written to OUT/problems.csv.

    Example: polymodal shard pairs.parquet --out shards/ --shard-rows 5000 --workers 4
    """
    from polymodal.data.manifest import Manifest
    from polymodal.data.shards import write_shards

    with handled("--on-error skip writes the good rows and reports the bad ones"):
        m = Manifest.read(manifest, label=label, roles=parse_roles(role))
        if not json_out:
            print_schema(m)
        result = write_shards(m, out_dir, shard_rows=shard_rows,
                              image_size=image_size or None, on_error=on_error,  # type: ignore[arg-type]
                              require=require or (), workers=workers, overwrite=overwrite,
                              show_progress=not json_out)
    problems = out_dir / "problems.csv" if result.problems else None
    if json_out:
        print(json.dumps({**result.summary(), "out": str(out_dir),
                          "rows_written": result.rows_written,
                          "shards": len(result.shards)}, indent=2))
        return
    print_report(result, problems)
    out.print(f"{result.rows_written:,} rows written to {len(result.shards)} shards in "
              f"{out_dir}" + (f"; bad rows listed in {problems}" if problems else ""))
