"""Libraries and applications: ``index``, ``search``, ``ask``, ``serve``,
``recommend``, ``library list`` / ``library delete``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from polymodal.cli.app import app, library_app
from polymodal.cli.common import (
    handled,
    out,
    parse_roles,
    print_frame,
    print_table,
    resolve_model_said,
)

ROOT_HELP = "where libraries live"
ROOT_DEFAULT = "$POLYMODAL_LIBRARIES or ~/.local/share/polymodal/libraries"


def _default_model() -> str:
    from polymodal.library.builtin import DEFAULT_MODEL

    return DEFAULT_MODEL


@app.command("index")
def index_cmd(
    source: Annotated[str, typer.Argument(help="a folder of media or a manifest")],
    library: Annotated[str, typer.Option(help="the library's name")],
    model: Annotated[str | None, typer.Option(
        help="a pretrained checkpoint (polymodal pretrain) or builtin:NAME; a new "
             "library gets the builtin model, an empty one may be given another",
        show_default="builtin:general (shipped, nothing trained) for a new library")
    ] = None,
    backend: Annotated[str, typer.Option(help="lancedb (local) or milvus")] = "lancedb",
    uri: Annotated[str | None, typer.Option(help="Milvus: a file (milvus-lite) or a "
                                                  "server address")] = None,
    root: Annotated[Path | None, typer.Option(help=ROOT_HELP,
                                              show_default=ROOT_DEFAULT)] = None,
    role: Annotated[list[str] | None, typer.Option(
        help="override a column's role: COLUMN=ROLE (repeatable)")] = None,
    vqa: Annotated[str | None, typer.Option(
        help="a saved VQA Predictor (picture + question -> answer) for `ask`")] = None,
    generator: Annotated[str | None, typer.Option(
        help="a text-generation model (Hugging Face name or folder) for `ask`")] = None,
    processes: Annotated[int, typer.Option(
        help="decode and embed in N worker processes")] = 1,
) -> None:
    """Embed every new or changed item of SOURCE into a library (deleted ones are
    forgotten); an interrupted run resumes where it stopped.

    Example: polymodal index ~/Pictures/stamps --library stamps
    """
    from polymodal.library import Library
    from polymodal.library.folders import library_home

    with handled():
        if not Path(source).expanduser().exists():
            raise FileNotFoundError(f"{source} does not exist (a folder of media or a "
                                    "manifest file)")
        exists = (Path(root or library_home()) / library / "library.yaml").exists()
        if model is not None or not exists:
            lib = Library.create(library, model or _default_model(), root=root,
                                 backend=backend, uri=uri)
        else:
            lib = Library(library, root)
        out.print(f"library {library}: model {lib.config.get('model_name') or lib.config['model']}")
        if vqa is not None:
            lib.attach_vqa(vqa)
        if generator is not None:
            lib.attach_generator(generator)
        report = lib.index(source, roles=parse_roles(role), processes=processes)
    out.print(f"{library}: {report.added:,} added, {report.updated:,} updated, "
              f"{report.unchanged:,} unchanged, {report.deleted:,} deleted; "
              f"{len(lib):,} facets stored")
    for line in report.left_out_lines():
        out.print(f"[yellow]left out:[/] {line}")
    for problem in report.problems[:20]:
        out.print(f"[yellow]skipped:[/] {problem}")
    if len(report.problems) > 20:
        out.print(f"... and {len(report.problems) - 20} more")
    if len(report.skipped):
        out.print(f"every row left out, with its reason: {lib.folder / 'skipped_rows.csv'}")


def _open_library(library: str, root: Path | None) -> Any:
    from polymodal.library import Library

    with handled():
        return Library(library, root)


def _model_of(lib: Any) -> tuple[str, float | None]:
    """The name of the model a library searches with (``builtin:general``, or its
    folder), and the score from which that model calls a hit close, if it says."""
    from polymodal.library.answer import close_score

    return (lib.config.get("model_name") or lib.config["model"],
            close_score(lib.config["model"]))


def _looks_like_a_file(query: str) -> bool:
    """Whether a query is meant as a file: a media suffix, or a path separator with no
    space (``photos/cow.jpg``, ``./x``); words are searched as words."""
    from polymodal.data.schema import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS

    suffix = Path(query).suffix.lower()
    return (suffix in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS | {".svg"}) or \
        ((query.startswith(("/", "./", "../", "~")) or "/" in query) and " " not in query)


def _check_query(query: str) -> None:
    """A query that looks like a file and is not one is a mistake, not words (an unknown
    modality is refused by ``Library.search``)."""
    if _looks_like_a_file(query) and not Path(query).expanduser().is_file():
        raise FileNotFoundError(f"{query} looks like a file and does not exist (to search "
                                "for these words, put a space in the query or quote a "
                                "sentence)")


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="words, or a picture or sound file")],
    library: Annotated[str, typer.Option(help="the library's name")],
    k: Annotated[int, typer.Option(help="how many items")] = 10,
    modality: Annotated[str | None, typer.Option(help="only image, audio or text")] = None,
    root: Annotated[Path | None, typer.Option(help=ROOT_HELP,
                                              show_default=ROOT_DEFAULT)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The items of a library nearest to QUERY, with scores.

    Example: polymodal search "a red bird" --library stamps --k 5
    """
    with handled():
        _check_query(query)
        lib = _open_library(library, root)
        model, close = _model_of(lib)
        hits = lib.search(str(Path(query).expanduser()) if _looks_like_a_file(query)
                          else query, k, modality)
    if json_out:
        print(json.dumps([h.to_dict() for h in hits], indent=2, default=str))
        return
    table = Table(title=f"{query} in {library} (model {model})")
    for col in ("score", "item", "found by", "text", "path"):
        table.add_column(col, overflow="fold")
    for h in hits:
        table.add_row(f"{h.score:.3f}", h.item, h.column, h.text, h.path)
    print_table(table)
    from polymodal.library.answer import nothing_close

    if nothing_close(hits, close):
        out.print(f"[yellow]nothing close:[/] no item reaches similarity {close:.2f}, "
                  "from which this library's model calls a match close")


@app.command("ask")
def ask_cmd(
    question: Annotated[str, typer.Argument(help="a question in words")],
    library: Annotated[str, typer.Option(help="the library's name")],
    k: Annotated[int, typer.Option(help="items to answer from")] = 5,
    root: Annotated[Path | None, typer.Option(help=ROOT_HELP,
                                              show_default=ROOT_DEFAULT)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    writer: Annotated[str | None, typer.Option(
        help="a saved Captioner: it writes the answer about the best-matching picture")
    ] = None,
) -> None:
    """An answer from the library, and the items it rests on.

    Example: polymodal ask "which animal says moo?" --library stamps
    """
    with handled():
        lib = _open_library(library, root)
        model, _close = _model_of(lib)
        answer = lib.ask(question, k, writer=writer)
    if json_out:
        print(json.dumps({**answer.to_dict(), "model": model}, indent=2, default=str))
        return
    out.print(answer.answer)
    out.print(f"(model {model})")
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
    root: Annotated[Path | None, typer.Option(help=ROOT_HELP,
                                              show_default=ROOT_DEFAULT)] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="threads that embed and search queries (more wait in a bounded "
                    "queue)", show_default="min(4, cores)")] = None,
) -> None:
    """The HTTP API (OpenAPI docs at /docs) and the web page of a library.

    Example: polymodal serve --library stamps --port 8000
    """
    from polymodal.serve import serve

    with handled():
        serve(library, root, host=host, port=port, predictor=predictor, api_key=api_key,
              workers=workers)


@app.command("recommend")
def recommend_cmd(
    items: Annotated[str, typer.Argument(help="the catalogue: a manifest of items")],
    likes: Annotated[str, typer.Option(help="ids of the items the user liked, "
                                            "comma-separated")],
    model: Annotated[str | None, typer.Option(
        help="a pretrained checkpoint or builtin:NAME that embeds the items",
        show_default="builtin:general")] = None,
    k: Annotated[int, typer.Option(help="how many items")] = 10,
    interactions: Annotated[Path | None, typer.Option(
        help="CSV of user,item likes to train the two towers on")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recommend catalogue items from the items a user liked (multimodal embeddings;
    two towers trained on --interactions when given).

    Example: polymodal recommend items.csv --likes frog,cow --k 5
    """
    import pandas as pd

    from polymodal.apps import Recommender

    with handled():
        folder = resolve_model_said(model or _default_model())
        rec = Recommender(folder).fit(items, pd.read_csv(interactions, dtype=str)
                                      if interactions else None)
        top = rec.recommend([x.strip() for x in likes.split(",") if x.strip()], k)
    print_frame(top, json_out)


@library_app.command("list")
def library_list(
    root: Annotated[Path | None, typer.Option(help=ROOT_HELP,
                                              show_default=ROOT_DEFAULT)] = None,
) -> None:
    """The libraries in ROOT, with their models and backends.

    Example: polymodal library list
    """
    from polymodal.library.folders import list_libraries

    table = Table(title="libraries")
    for col in ("name", "model", "backend", "folder"):
        table.add_column(col, overflow="fold")
    with handled():
        for name, config, folder in list_libraries(root):
            table.add_row(name, str(config.get("model")), str(config.get("backend")),
                          str(folder))
    print_table(table)


@library_app.command("delete")
def library_delete(
    name: Annotated[str, typer.Argument(help="the library's name")],
    root: Annotated[Path | None, typer.Option(help=ROOT_HELP,
                                              show_default=ROOT_DEFAULT)] = None,
) -> None:
    """Delete a library: its settings, vectors and thumbnails (never the files it
    indexed).

    Example: polymodal library delete stamps
    """
    from polymodal.library import Library

    with handled():
        folder = Library.delete(name, root)
    out.print(f"deleted library {name} ({folder})")
