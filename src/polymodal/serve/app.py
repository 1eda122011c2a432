"""The HTTP API and the web page of a library (FastAPI): search by words, by a picture
upload or by a sound upload; ask; predict with a saved Predictor; health; OpenAPI docs
at ``/docs``. Uploads are bounded and checked by decoding them; files are served only
by the key of an indexed item (its thumbnail, its original file), never by a path
from the URL. With an API key set, every ``/api`` call must send it as ``X-API-Key``.

Searches, questions and predictions run in a bounded pool of worker threads, off the
event loop (:mod:`polymodal.serve.pool`): more wait in a bounded queue, past which a
request is answered 503 with ``Retry-After``; identical searches in flight at the same
time are embedded and searched once."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse

from polymodal import __version__
from polymodal.data.errors import MediaError
from polymodal.library import Library
from polymodal.serve.guard import (
    BODY_TIMEOUT_S,
    FORM_OVERHEAD_BYTES,
    MAX_BODIES_IN_FLIGHT,
    MAX_UPLOAD_BYTES,
    GuardMiddleware,
)
from polymodal.serve.pool import (
    MAX_WAITING,
    PoolFull,
    QueryPool,
    default_workers,
    limit_torch_threads,
)

STATIC = Path(__file__).parent / "static"


def _sniff_kind(data: bytes) -> str:
    """What an upload's bytes are, by their signature (never by its name)."""
    head = data[:64]
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")) or \
            (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[:4] in (b"II*\x00",
                                                                           b"MM\x00*"):
        return "image"
    if (head[:4] == b"RIFF" and head[8:12] == b"WAVE") or head.startswith(
            (b"fLaC", b"OggS", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")):
        return "audio"
    return "other"


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{upload.filename}: over the upload limit of "
                                 f"{limit // 2**20} MB")
    if not data:
        raise HTTPException(400, f"{upload.filename}: the file is empty")
    return data


def _decode_file(path: str | Path, kind: str, name: str | None) -> Any:
    """A saved upload decoded as a picture (PIL) or a sound (16 kHz mono array) by the
    data layer's code; a file that is not what it claims is a 415."""
    from polymodal.data.media import decode_audio, decode_image

    try:
        return decode_image(path) if kind == "image" else decode_audio(path)
    except (MediaError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise HTTPException(415, f"{name}: not a readable {kind} ({reason})") from None


def _decode_upload(data: bytes, kind: str, name: str | None) -> Any:
    """An uploaded picture or sound, decoded (see :func:`_decode_file`). It is judged by
    its bytes: the name the client gave is not used (a picture named ``.wav`` is a
    picture; text named ``.png`` is refused)."""
    sniffed = _sniff_kind(data)
    if sniffed != "other" and sniffed != kind:
        raise HTTPException(415, f"{name}: the file's content is {sniffed}, not {kind}")
    with tempfile.NamedTemporaryFile(suffix=".upload") as tmp:
        tmp.write(data)
        tmp.flush()
        return _decode_file(tmp.name, kind, name)


def create_app(library: str, root: str | Path | None = None, *, predictor: str | None = None,
               api_key: str | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               body_timeout: float = BODY_TIMEOUT_S,
               max_bodies: int = MAX_BODIES_IN_FLIGHT, workers: int | None = None,
               max_waiting: int = MAX_WAITING, dedup: bool = True) -> FastAPI:
    """The app of library ``library`` (in ``root``), optionally with a saved Predictor
    for ``/api/predict`` and an API key; request bodies bounded in size, arrival time
    and number in flight (:class:`GuardMiddleware`).

    Searches, questions and predictions run in ``workers`` threads (default
    ``min(4, cores)``), with up to ``max_waiting`` more waiting (then 503 with
    ``Retry-After``); with ``dedup``, identical searches and questions in flight at the
    same time share one embedding and search (:class:`~polymodal.serve.pool.QueryPool`,
    ``app.state.pool``)."""
    lib = Library(library, root)
    # not shut down with the app's lifespan: an app may be started and stopped more
    # than once (test clients do); idle workers cost nothing, and exit with the process
    pool = QueryPool(workers or default_workers(), max_waiting, dedup=dedup)
    app = FastAPI(title=f"polymodal: {library}", version=__version__,
                  description="Search and ask a multimodal library.")
    app.state.pool = pool
    app.add_middleware(GuardMiddleware, limit=max_upload_bytes + FORM_OVERHEAD_BYTES,
                       api_key=api_key, body_timeout=body_timeout, max_bodies=max_bodies)
    model: dict[str, Any] = {}
    loading = threading.Lock()

    async def check_key(request: Request) -> None:
        if api_key and not secrets.compare_digest(request.headers.get("x-api-key", ""),
                                                  api_key):
            raise HTTPException(401, "missing or wrong X-API-Key")

    guarded = [Depends(check_key)]  # also checked by GuardMiddleware, before the body

    async def pooled(key: Hashable | None, job: Callable[[], Any]) -> Any:
        """``job()`` run in the pool (shared with the job in flight under ``key``); a
        ValueError of the library is a 400, a full queue a 503 with Retry-After."""
        try:
            return await pool.run(key, job)
        except PoolFull as full:
            raise HTTPException(503, "the server is busy: every worker is taken and the "
                                     "queue is full; try again shortly",
                                headers={"Retry-After": str(full.retry_after)}) from None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness, and what the page needs before a key is typed: the library's name,
        what its model can be searched with, whether a key is required (all cheap: a
        probe calls it often)."""
        return {"status": "ok", "library": library, "facets": len(lib),
                "modalities": lib.modalities(), "key_required": bool(api_key)}

    @app.get("/api/items", dependencies=guarded)
    def items(k: Annotated[int, Query(ge=1, le=100)] = 12) -> dict[str, Any]:
        """A first look at the library: how many items it holds, and up to ``k`` of
        them, pictures first."""
        return {"items": lib.item_count(), "hits": [_hit(h) for h in lib.sample(k)]}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (STATIC / "index.html").read_text(encoding="utf-8")

    @app.get("/api/search", dependencies=guarded)
    async def search(q: Annotated[str, Query(max_length=1000)],
                     k: Annotated[int, Query(ge=1, le=100)] = 10, modality: str | None = None,
                     min_score: Annotated[float | None, Query(ge=-1, le=1)] = None
                     ) -> dict[str, Any]:
        """Items nearest to the words ``q``; with ``min_score``, only hits above it
        (an empty list says nothing is close)."""
        hits = await pooled(("search", q, k, modality, min_score), lambda: [
            _hit(h) for h in lib.search(q, k, modality, min_score=min_score)])
        return {"query": q, "hits": hits}

    async def search_upload(kind: str, file: UploadFile, k: int, modality: str | None,
                            min_score: float | None = None) -> dict[str, Any]:
        data = await _read_upload(file, max_upload_bytes)
        modality = modality or None

        def job() -> list[dict[str, Any]]:  # decoding is work too: in the pool
            query = _decode_upload(data, kind, file.filename)
            return [_hit(h) for h in lib.search(query, k, modality, min_score=min_score)]

        # the name is part of the key: a refusal names the file that was sent
        key = ("upload", kind, hashlib.sha256(data).hexdigest(), file.filename, k,
               modality, min_score)
        return {"query": file.filename, "hits": await pooled(key, job)}

    @app.post("/api/search/image", dependencies=guarded)
    async def search_image(file: Annotated[UploadFile, File()],
                           k: Annotated[int, Form(ge=1, le=100)] = 10,
                           modality: Annotated[str | None, Form()] = None,
                           min_score: Annotated[float | None, Form(ge=-1, le=1)] = None
                           ) -> dict[str, Any]:
        """Items nearest to an uploaded picture."""
        return await search_upload("image", file, k, modality, min_score)

    @app.post("/api/search/audio", dependencies=guarded)
    async def search_audio(file: Annotated[UploadFile, File()],
                           k: Annotated[int, Form(ge=1, le=100)] = 10,
                           modality: Annotated[str | None, Form()] = None,
                           min_score: Annotated[float | None, Form(ge=-1, le=1)] = None
                           ) -> dict[str, Any]:
        """Items nearest to an uploaded sound (find the picture of this sound)."""
        return await search_upload("audio", file, k, modality, min_score)

    @app.get("/api/ask", dependencies=guarded)
    async def ask(q: Annotated[str, Query(max_length=1000)],
                  k: Annotated[int, Query(ge=1, le=50)] = 5) -> dict[str, Any]:
        """An answer from the library and the items it rests on."""

        def job() -> dict[str, Any]:
            answer = lib.ask(q, k)
            out = answer.to_dict()
            out["evidence"] = [_hit(h) for h in answer.evidence]
            return out

        return await pooled(("ask", q, k), job)

    @app.get("/api/thumbnail", dependencies=guarded)
    def thumbnail(key: Annotated[str, Query(max_length=4096)]) -> FileResponse:
        """The thumbnail of an indexed facet, by its key (never by a path)."""
        path = lib.thumbnail_path(key)
        if path is None:
            raise HTTPException(404, "no thumbnail has this key")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/api/media", dependencies=guarded)
    def media(key: str) -> FileResponse:
        """The original file of an indexed facet, by its key (never by a path)."""
        path = lib.media_path(key)
        if path is None:
            raise HTTPException(404, "no indexed file has this key")
        return FileResponse(path)

    def loaded_predictor() -> Any:
        with loading:  # the first requests come at once: one worker loads it
            if "p" not in model:
                from polymodal.predictor import Predictor

                model["p"] = Predictor.load(predictor)
        return model["p"]

    @app.post("/api/predict", dependencies=guarded)
    async def predict(request: Request) -> dict[str, Any]:
        """One row (form fields: text columns as text, image and audio columns as
        files) through the saved Predictor: the prediction and class probabilities."""
        if predictor is None:
            raise HTTPException(404, "this server has no Predictor (polymodal serve "
                                     "--predictor MODEL)")
        p = model.get("p") or await pooled(None, loaded_predictor)  # loads on first use
        form = await request.form()
        unknown = [k for k in form if k not in p.columns_]
        if unknown:
            raise HTTPException(422, f"unknown columns {unknown}; the model takes "
                                     f"{p.columns_}")
        return await pooled(None, lambda: _predict_row(p, form, max_upload_bytes))

    return app


def _hit(h: Any) -> dict[str, Any]:
    out = h.to_dict()
    out["thumbnail_url"] = f"/api/thumbnail?key={_quote(h.key)}" if h.thumbnail else None
    out["media_url"] = f"/api/media?key={_quote(h.key)}" if h.path else None
    return out


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _predict_row(p: Any, form: Any, limit: int) -> dict[str, Any]:
    import pandas as pd

    from polymodal.data.schema import Role

    with tempfile.TemporaryDirectory() as folder:
        row: dict[str, Any] = {}
        for column in p.columns_:
            value = form.get(column)
            role = p.roles_[column]["role"]
            if value is None or value == "":
                row[column] = None
            elif hasattr(value, "read"):
                if role not in (Role.IMAGE.value, Role.AUDIO.value):
                    raise HTTPException(422, f"{column} is a text column: send it as text")
                data = value.file.read(limit + 1)
                if len(data) > limit:
                    raise HTTPException(413, f"{value.filename}: over the upload limit")
                path = Path(folder) / f"{column}{Path(value.filename or '').suffix[:10]}"
                path.write_bytes(data)
                _decode_file(path, role, value.filename)  # checked where it was written
                row[column] = str(path)
            else:
                row[column] = str(value)
        try:  # the Predictor applies the roles it was trained with
            proba = p.predict_proba(pd.DataFrame([row]))
        except (MediaError, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
    prediction = p.task_.predictions(proba, p.label).iloc[0]
    if not p.task_.has_classes:
        return {"prediction": float(prediction)}
    probs = {str(c): float(v) for c, v in proba.iloc[0].items()}
    return {"prediction": str(prediction), "probabilities": probs}


def serve(library: str, root: str | Path | None = None, *, host: str = "127.0.0.1",
          port: int = 8000, predictor: str | None = None, api_key: str | None = None,
          workers: int | None = None, dedup: bool = True) -> None:
    """Run the app with uvicorn. Listening beyond loopback needs an API key. Searches
    run in ``workers`` threads (default ``min(4, cores)``); torch's intra-op threads
    are lowered so that ``workers x threads <= cores``."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        raise ValueError(f"listening on {host} exposes the library beyond this machine: "
                         "set an API key (--api-key or POLYMODAL_API_KEY)")
    workers = workers or default_workers()
    app = create_app(library, root, predictor=predictor, api_key=api_key, workers=workers,
                     dedup=dedup)
    limit_torch_threads(workers)
    uvicorn.run(app, host=host, port=port, log_level="info")


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a background thread, for
    benchmarks, screenshots and tests; yields its base URL and stops it on exit."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


__all__ = ["create_app", "serve", "serving"]
