"""The Typer application and its sub-command groups (commands are added by the stage
modules of this package). Importing it imports no model library: ``polymodal --help``,
``datasets list``, ``schema`` and ``validate`` never load torch."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="polymodal: multimodal learning for text, images and audio.",
                  no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})
datasets_app = typer.Typer(help="The bundled benchmark datasets.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
encoders_app = typer.Typer(help="Feature extractors by name.", no_args_is_help=True)
app.add_typer(encoders_app, name="encoders")
library_app = typer.Typer(help="Manage libraries (list, delete).", no_args_is_help=True)
app.add_typer(library_app, name="library")


def _version(value: bool) -> None:
    if value:
        from polymodal import __version__

        typer.echo(f"polymodal {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="print the version and exit")
        ] = False) -> None:
    """polymodal: multimodal learning for text, images and audio."""
