"""``polymodal export``: a saved model's towers to ONNX, each checked against torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from polymodal.cli.app import app
from polymodal.cli.common import handled, out, print_table, resolve_model_said


@app.command("export")
def export_cmd(
    model: Annotated[str, typer.Argument(
        help="a saved Pretrainer or Predictor (folder) or builtin:NAME")],
    out_dir: Annotated[Path, typer.Option("--out", help="the export folder (made, or "
                                                        "replaced if it holds an export)")],
    int8: Annotated[bool, typer.Option(
        "--int8/--no-int8", help="also quantise each tower to int8, kept where it "
                                 "agrees with torch (cosine >= 0.99)")] = True,
) -> None:
    """Export each tower of MODEL (encoder + head) to ONNX in --out, check every graph
    against torch on real inputs, and print per tower the format kept (fp32 or int8),
    the largest difference and the cosine to torch; towers with no ONNX form stay on
    torch, each named with the reason. A library uses its model's export by itself.

    Example: polymodal export pretrained/ --out pretrained/onnx
    """
    with handled():
        from polymodal.export import export_towers

        folder = resolve_model_said(model)
        if not (folder / "config.yaml").is_file():
            raise FileNotFoundError(f"{folder}: not a saved model (no config.yaml)")
        report = export_towers(folder, out_dir, int8="auto" if int8 else False)
    table = Table(title=f"{report.kind} towers exported to {report.folder} "
                        f"({report.seconds:.1f} s)")
    for name in ("column", "modality", "kept", "fp32 max abs diff", "fp32 cosine",
                 "int8 max abs diff / cosine", "note"):
        table.add_column(name, overflow="fold")
    for row in report.rows():
        table.add_row(*row)
    print_table(table)
    for column, why in sorted(report.on_torch.items()):
        out.print(f"left on torch: {column}: {why}", markup=False, highlight=False)
    out.print(f"{len(report.towers)} of {len(report.towers) + len(report.on_torch)} "
              f"towers on ONNX; written {report.folder / 'export.json'}", markup=False,
              highlight=False)
