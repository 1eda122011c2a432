"""The HTTP API and web page: search by words, picture and sound uploads, ask, predict,
health, OpenAPI; bad uploads, paths and keys refused with a 4xx and nothing read or
written outside the library."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from PIL import Image

from polymodal.serve import create_app
from polymodal.serve.app import serve


@pytest.fixture(scope="module")
def served(colour_library):
    return colour_library


@pytest.fixture()
def client(served):
    return TestClient(create_app("photos", served))


def _png(colour=(30, 40, 220)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buf, "PNG")
    return buf.getvalue()


def test_health_page_and_openapi(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["facets"] > 0
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/search/image", "/api/search/audio", "/api/ask",
            "/api/predict"} <= set(paths)


def test_search_by_words_and_picture_with_thumbnails(client):
    body = client.get("/api/search", params={"q": "red", "k": 4, "modality": "image"}).json()
    assert len(body["hits"]) == 4
    assert sum(h["metadata"]["colour"] == "red" for h in body["hits"]) >= 3
    thumb = client.get(body["hits"][0]["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    media = client.get(body["hits"][0]["media_url"])
    assert media.status_code == 200 and media.content[:4] == b"\x89PNG"
    up = client.post("/api/search/image", files={"file": ("q.png", _png(), "image/png")},
                     data={"k": "3", "modality": "image"}).json()
    assert [h["metadata"]["colour"] for h in up["hits"]] == ["blue"] * 3


def test_ask_returns_answer_and_evidence(client):
    body = client.get("/api/ask", params={"q": "yellow"}).json()
    assert body["answer"] and body["evidence"] and body["method"] == "retrieval"


def test_bad_requests_are_4xx(client, served, tmp_path):
    assert client.get("/api/search", params={"q": "  "}).status_code == 400
    liar = client.post("/api/search/image",
                       files={"file": ("cat.png", b"this is not a picture", "image/png")})
    assert liar.status_code == 415 and "cat.png" in liar.json()["detail"]
    big = TestClient(create_app("photos", served, max_upload_bytes=20))
    over = big.post("/api/search/image", files={"file": ("q.png", _png(), "image/png")})
    assert over.status_code == 413
    huge = big.post("/api/search/image", content=b"x" * (200 * 1024),
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert huge.status_code == 413 and "over the limit" in huge.json()["detail"]
    wav = io.BytesIO()
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000, format="WAV")
    no_tower = client.post("/api/search/audio",
                           files={"file": ("q.wav", wav.getvalue(), "audio/wav")})
    assert no_tower.status_code == 400  # this library's model has no audio tower
    before = sorted(p.name for p in served.rglob("*"))
    for url in ("/api/thumbnail/../library.yaml", "/api/thumbnail/thumbnails/../../x",
                "/api/media?key=/etc/passwd", "/api/thumbnail/%2e%2e/library.yaml"):
        assert client.get(url).status_code == 404, url
    assert sorted(p.name for p in served.rglob("*")) == before  # nothing written
    with pytest.raises(ValueError, match="invalid library name"):
        create_app("../photos", served)
    assert client.post("/api/predict", data={"image": "x"}).status_code == 404


def test_api_key_protects_the_api(served):
    locked = TestClient(create_app("photos", served, api_key="s3cret"))
    assert locked.get("/api/search", params={"q": "red"}).status_code == 401
    ok = locked.get("/api/search", params={"q": "red"}, headers={"X-API-Key": "s3cret"})
    assert ok.status_code == 200
    assert locked.get("/health").status_code == 200  # health stays open for probes
    with pytest.raises(ValueError, match="API key"):
        serve("photos", served, host="0.0.0.0")


def test_predict_with_a_saved_predictor(served, colours, tmp_path):
    from polymodal.predictor import Predictor

    p = Predictor(label="colour", preset="tiny", fusion="concat", modalities=["image"],
                  path=tmp_path / "run", max_epochs=2).fit(colours, progress=False)
    saved = p.save(tmp_path / "model")
    app = TestClient(create_app("photos", served, predictor=str(saved)))
    r = app.post("/api/predict", files={"image": ("x.png", _png(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prediction"] in p.classes_
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    bad = app.post("/api/predict", data={"colour_name": "red"})
    assert bad.status_code == 422 and "unknown columns" in bad.json()["detail"]
