"""What every command shares: the console, the one error handler that turns a
polymodal error into a message and an exit code, option parsers, and the schema and
validation tables."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from polymodal.data.errors import MediaError, PolymodalError

#: soft_wrap: a message is one line however long (a terminal wraps it; a log keeps a
#: path whole)
out = Console(soft_wrap=True)
MAX_PROBLEMS_SHOWN = 50
#: the width a table is drawn at when the output is no terminal (a log, a pipe): wide
#: enough that no cell is cut, since a saved log must still name every file whole
LOG_WIDTH = 10_000

#: errors that are the user's input, not a bug: a message and exit code 2
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    PolymodalError, ValueError, KeyError, TypeError, FileNotFoundError, ImportError,
    OSError)


@contextlib.contextmanager
def handled(bad_row_hint: str = "--on-error skip goes on and reports such rows"
            ) -> Iterator[None]:
    """The CLI's one error handler: a bad row exits 1 (with ``bad_row_hint``), an
    interrupted fit with its signal's code (130, 143) after saying how to resume, any
    other input error 2; each with a one-line message instead of a traceback."""
    from polymodal.training.interrupt import TrainingInterrupted

    try:
        yield
    except typer.Exit:
        raise
    except TrainingInterrupted as exc:
        out.print(f"[red]interrupted:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    except MediaError as exc:
        out.print(f"[red]bad row:[/] {exc}\n({bad_row_hint})")
        raise typer.Exit(1) from None
    except INPUT_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        out.print(f"[red]error:[/] {message}")
        raise typer.Exit(2) from None


def print_table(table: Table) -> None:
    """A table on stdout: fitted to a terminal, drawn whole (never a cut cell) in a
    log or a pipe."""
    if sys.stdout.isatty():
        out.print(table)
    else:  # a console as wide as any line: rich caps print(width=) at its own width
        Console(file=sys.stdout, width=LOG_WIDTH, soft_wrap=True).print(table)


def print_frame(frame: Any, json_out: bool) -> None:
    """A result table on stdout: JSON records, or text with three decimals."""
    if json_out:
        print(frame.to_json(orient="records", indent=2))
    else:
        out.print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def resolve_model_said(model: str) -> Path:
    """The folder of a model given by folder or builtin name (made if needed), said on
    stderr (stdout stays the result), as every command that takes a model does."""
    from polymodal.library.builtin import resolve_model
    from polymodal.progress import console

    folder = resolve_model(model)
    console.print(f"model: {model}" + (f" ({folder})" if str(folder) != model else ""))
    return folder


def parse_roles(pairs: list[str] | None) -> dict[str, str]:
    """``COLUMN=ROLE`` pairs as a mapping (``--role`` of several commands)."""
    roles = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r}: write COLUMN=ROLE, e.g. notes=ignore")
        col, role = pair.split("=", 1)
        roles[col.strip()] = role.strip()
    return roles


def parse_options(pairs: list[str] | None) -> dict[str, object]:
    """``KEY=VALUE`` pairs, each value read as YAML (``--set``, ``--option``)."""
    import yaml

    options: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r}: write KEY=VALUE, e.g. dim=256")
        key, value = pair.split("=", 1)
        options[key.strip()] = yaml.safe_load(value)
    return options


def print_schema(manifest: Any, title: str | None = None) -> None:
    """Print the inferred roles of a manifest's columns."""
    table = Table(title=title or f"columns of {manifest.source} ({len(manifest):,} rows)")
    for name in ("column", "role", "source", "why"):
        table.add_column(name, overflow="fold")
    for spec in manifest.schema.columns.values():
        table.add_row(spec.name, spec.role.value, spec.source, spec.reason)
    print_table(table)


def print_report(report: Any, report_file: Path | None = None) -> None:
    """Print the problems table (first ones) and the summary of a validation."""
    if report.problems:
        table = Table(title=f"problems ({len(report.problems):,} in "
                            f"{len(report.bad_rows):,} rows)")
        for name in ("row", "column", "kind", "reason", "file"):
            table.add_column(name, overflow="fold")
        for p in report.problems[:MAX_PROBLEMS_SHOWN]:
            table.add_row(str(p.row) if p.row is not None else "", p.column or "", p.kind,
                          p.reason, p.path or "")
        print_table(table)
        if len(report.problems) > MAX_PROBLEMS_SHOWN:
            where = f"; all of them are in {report_file}" if report_file else \
                "; pass --report FILE to write all of them"
            out.print(f"... {len(report.problems) - MAX_PROBLEMS_SHOWN:,} more{where}")
    summary = Table(title="summary")
    for name in ("column", "role", "present", "empty (row lacks it)", "bad"):
        summary.add_column(name, overflow="fold")
    for c in report.columns.values():
        summary.add_row(c.column, c.role, f"{c.present:,}", f"{c.empty:,}", f"{c.bad:,}")
    print_table(summary)
    if report.label_column:
        counts = ", ".join(f"{k}: {v}" for k, v in list(report.label_counts.items())[:20])
        more = " ..." if len(report.label_counts) > 20 else ""
        out.print(f"label [bold]{report.label_column}[/]: {len(report.label_counts)} "
                  f"classes ({counts}{more})")
    if report.rows_without_modality:
        out.print(f"{report.rows_without_modality:,} rows have no modality at all")
    verdict = "[green]OK[/]" if report.ok else f"[red]{len(report.bad_rows):,} bad rows[/]"
    out.print(f"{report.n_rows:,} rows: {verdict}")
