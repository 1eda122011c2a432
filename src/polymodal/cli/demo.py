"""``polymodal demo``: the whole pipeline on the bundled data (what ``make demo``
runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from polymodal.cli.app import app
from polymodal.cli.common import out


@app.command("demo")
def demo(
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="where the demo writes",
        show_default="$POLYMODAL_DATA/demo or ~/.cache/polymodal/datasets/demo")] = None,
    quick: Annotated[bool, typer.Option(help="tiny data, one epoch (a smoke test)")] = False,
    root: Annotated[Path | None, typer.Option(
        help="where the library goes",
        show_default="$POLYMODAL_LIBRARIES or ~/.local/share/polymodal/libraries")] = None,
) -> None:
    """The whole pipeline on the bundled data with the embedded defaults (what `make
    demo` runs): datasets, pretraining, fine-tuning with few labels, evaluation with
    plots, a library of tuxpaint and questions answered from it.

    Example: polymodal demo --quick
    """
    from polymodal.data.bundled import data_home
    from polymodal.demo import run_demo

    out.rule("polymodal demo")
    run_demo(out_dir or data_home() / "demo", console=out, quick=quick, library_root=root)
