"""The ``polymodal`` command: one Typer app, a module per stage of the pipeline
(:mod:`~polymodal.cli.data`, :mod:`~polymodal.cli.training`,
:mod:`~polymodal.cli.library`), one error handler (:func:`~polymodal.cli.common.handled`).
Model libraries (torch, Lightning) load inside the commands that need them."""

from __future__ import annotations

from polymodal.cli import (  # noqa: F401  (they add the commands)
    data,
    export,
    generate,
    library,
    shard,
    training,
)
from polymodal.cli.app import app
from polymodal.cli.common import print_report, print_schema
from polymodal.cli.demo import demo
from polymodal.cli.training import load_train_config


def main() -> None:
    """Console entry point."""
    app()


__all__ = ["app", "demo", "load_train_config", "main", "print_report", "print_schema"]
