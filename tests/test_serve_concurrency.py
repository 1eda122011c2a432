"""Issue 22, part 3: the server answers while others wait. Searches run in a bounded
pool of worker threads; identical searches in flight at once are embedded once; past
the queue a request gets 503 with Retry-After; nothing is cached beyond the requests in
flight. Real HTTP (uvicorn on loopback); every wait is on an event or a barrier, never
on a clock."""

from __future__ import annotations

import io
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from polymodal.library import Library
from polymodal.serve import create_app, serving
from polymodal.serve.pool import QueryPool, torch_threads_for

WAIT_S = 60  # only a bound on a wait that fails the test; nothing waits for it to pass


def _png(colour=(30, 40, 220)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, "PNG")
    return buf.getvalue()


class Gate:
    """A wrapper of ``Library.embed_query`` that counts its calls and holds each one
    until :attr:`release` is set (``entered`` says the first has arrived)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[object] = []
        self.entered, self.release = threading.Event(), threading.Event()
        real = Library.embed_query

        def held(lib: Library, query: object):
            self.calls.append(query)
            self.entered.set()
            assert self.release.wait(WAIT_S), "the test never released the gate"
            return real(lib, query)

        monkeypatch.setattr(Library, "embed_query", held)


def _scores(body: dict) -> list[tuple[str, float]]:
    return [(h["key"], round(h["score"], 4)) for h in body["hits"]]


@pytest.mark.parametrize("kind", ["words", "picture"])
def test_identical_concurrent_searches_are_embedded_once(colour_library, monkeypatch, kind):
    gate = Gate(monkeypatch)
    app = create_app("photos", colour_library, workers=2)
    pool = app.state.pool
    n = 8

    def send(client: httpx.Client, base: str) -> httpx.Response:
        if kind == "words":
            return client.get(f"{base}/api/search", params={"q": "red", "k": 4})
        return client.post(f"{base}/api/search/image", data={"k": "4"},
                           files={"file": ("q.png", _png(), "image/png")})

    with serving(app) as base, httpx.Client(timeout=WAIT_S) as client, \
            ThreadPoolExecutor(n) as threads:
        pending = [threads.submit(send, client, base) for _ in range(n)]
        assert gate.entered.wait(WAIT_S)  # the first is embedding, held at the gate
        assert pool.wait_until(lambda p: p.joined == n - 1, WAIT_S), pool.stats()
        gate.release.set()
        responses = [f.result() for f in pending]
        assert [r.status_code for r in responses] == [200] * n
        assert len(gate.calls) == 1 and pool.stats()["ran"] == 1
        assert len({r.text for r in responses}) == 1  # one result, shared
        assert len(responses[0].json()["hits"]) == 4
        # nothing is kept once it is answered: the same search again embeds again
        assert send(client, base).json() == responses[0].json()
        assert len(gate.calls) == 2


QUERIES = [("red", 4, None, None), ("a blue square", 3, "image", None),
           ("green", 5, "text", None), ("yellow", 6, None, 0.0),
           ("white", 2, "image", None), ("black", 4, None, 0.1)]


def test_concurrent_different_searches_each_get_their_own_result(colour_library,
                                                                  monkeypatch):
    app = create_app("photos", colour_library, workers=3)
    pool = app.state.pool

    def params(q: str, k: int, modality: str | None, min_score: float | None) -> dict:
        out: dict = {"q": q, "k": k}
        if modality:
            out["modality"] = modality
        if min_score is not None:
            out["min_score"] = min_score
        return out

    with serving(app) as base, httpx.Client(timeout=WAIT_S) as client:
        url = f"{base}/api/search"
        alone = {q: client.get(url, params=params(*q)).json() for q in QUERIES}
        assert all(body["hits"] for body in alone.values())
        # the first three embeddings meet at a barrier: three different searches are
        # surely in the workers at the same time
        barrier = threading.Barrier(3, timeout=WAIT_S)
        count = itertools.count()
        real = Library.embed_query

        def overlapping(lib: Library, query: object):
            if next(count) < 3:
                barrier.wait()
            return real(lib, query)

        monkeypatch.setattr(Library, "embed_query", overlapping)
        asked = QUERIES * 4
        with ThreadPoolExecutor(len(asked)) as threads:
            bodies = list(threads.map(lambda q: client.get(url, params=params(*q)).json(),
                                      asked))
    for q, body in zip(asked, bodies, strict=True):
        assert body["query"] == q[0]
        assert _scores(body) == _scores(alone[q]), q
    assert pool.stats()["refused"] == 0


def test_past_the_queue_a_request_gets_503_with_retry_after(colour_library, monkeypatch):
    gate = Gate(monkeypatch)
    app = create_app("photos", colour_library, workers=1, max_waiting=1)
    pool = app.state.pool

    def search(client: httpx.Client, base: str, q: str) -> httpx.Response:
        return client.get(f"{base}/api/search", params={"q": q, "k": 3})

    with serving(app) as base, httpx.Client(timeout=WAIT_S) as client, \
            ThreadPoolExecutor(3) as threads:
        running = threads.submit(search, client, base, "red")
        assert gate.entered.wait(WAIT_S)  # holds the only worker
        waiting = threads.submit(search, client, base, "green")
        assert pool.wait_until(lambda p: p.admitted == 2, WAIT_S)  # the queue is full
        refused = search(client, base, "blue")
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert "busy" in refused.json()["detail"]
        refused_upload = client.post(f"{base}/api/search/image",
                                     files={"file": ("q.png", _png(), "image/png")})
        assert refused_upload.status_code == 503 and "retry-after" in refused_upload.headers
        assert client.get(f"{base}/api/ask", params={"q": "blue"}).status_code == 503
        # the same search as the running one costs nothing: it joins, it is not refused
        joined = threads.submit(search, client, base, "red")
        assert pool.wait_until(lambda p: p.joined == 1, WAIT_S)
        # the event loop is free while the pool is full: probes and pages still answer
        assert client.get(f"{base}/health").status_code == 200
        assert client.get(f"{base}/").status_code == 200
        gate.release.set()
        assert running.result().status_code == waiting.result().status_code == 200
        assert joined.result().json() == running.result().json()
        assert search(client, base, "blue").status_code == 200  # room again
    assert pool.stats() == {"workers": 1, "max_waiting": 1, "admitted": 0, "running": 0,
                            "joined": 1, "refused": 3, "ran": 3}
    assert len(gate.calls) == 3


def test_a_search_after_an_index_run_sees_the_new_rows(colour_library, colours, tmp_path):
    """No cache beyond the requests in flight: rows indexed (by another Library, as
    `polymodal index` would) while the server runs are found by the next search."""
    model = Library("photos", colour_library).config["model"]
    root, folder = tmp_path / "libs", tmp_path / "data"
    folder.mkdir()
    rows = colours.drop(columns=["split"])
    rows.iloc[:12].to_csv(folder / "photos.csv", index=False)
    Library.create("fresh", model, root=root).index(folder / "photos.csv", progress=False)
    app = create_app("fresh", root, workers=2)
    with serving(app) as base, httpx.Client(timeout=WAIT_S) as client:
        def items() -> set[str]:
            body = client.get(f"{base}/api/search", params={"q": "red", "k": 100}).json()
            return {h["item"] for h in body["hits"]}

        assert items() == set(rows.id.iloc[:12])
        rows.iloc[:24].to_csv(folder / "photos.csv", index=False)
        Library("fresh", root).index(folder / "photos.csv", progress=False)
        assert items() == set(rows.id.iloc[:24])


def test_workers_and_torch_threads():
    assert torch_threads_for(4, cores=16) == 4
    assert torch_threads_for(2, cores=2) == 1
    assert torch_threads_for(4, cores=2) == 1  # never fewer than one
    with pytest.raises(ValueError, match="workers"):
        QueryPool(0)
    with pytest.raises(ValueError, match="max_waiting"):
        QueryPool(1, -1)


def test_serve_takes_workers_from_the_command_line(monkeypatch):
    import polymodal.serve as served
    from polymodal.cli import app

    seen: dict = {}
    monkeypatch.setattr(served, "serve", lambda *a, **kw: seen.update(kw))
    result = CliRunner().invoke(app, ["serve", "--library", "photos", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert seen["workers"] == 3
    refused = CliRunner().invoke(app, ["serve", "--library", "photos", "--workers", "0"])
    assert refused.exit_code == 2
