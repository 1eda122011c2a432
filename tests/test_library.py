"""Ask a library: index (incremental, resumable, deletions), search by words, picture or
sound, ask, bad names and queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.library import LanceStore, Library, check_name, compose_answer
from polymodal.library.results import Hit


@pytest.fixture()
def model_dir(colour_model, tmp_path_factory):
    return colour_model.save(tmp_path_factory.mktemp("model") / "m")


@pytest.fixture()
def collection(colours, tmp_path) -> pd.DataFrame:
    """The colour pictures as a user's collection: a manifest in its own folder."""
    table = colours.drop(columns=["split"]).copy()
    table.to_csv(tmp_path / "photos.csv", index=False)
    return table


@pytest.mark.parametrize("backend", ["lancedb", "milvus"])
def test_index_then_search_by_words_and_by_picture(model_dir, collection, tmp_path, backend):
    """The same library API on LanceDB and on Milvus (milvus-lite here)."""
    lib = Library.create("photos", model_dir, root=tmp_path / "libs", backend=backend)
    report = lib.index(tmp_path / "photos.csv", progress=False)
    assert report.added == 2 * len(collection) and not report.problems  # image + caption
    assert len(lib) == 2 * len(collection)
    hits = lib.search("red", k=5, modality="image")
    assert len(hits) == 5 and hits[0].score >= hits[-1].score
    assert sum(h.metadata["colour"] == "red" for h in hits) >= 4, [h.metadata for h in hits]
    assert all(h.modality == "image" and h.thumbnail for h in hits)
    assert lib.file(hits[0].thumbnail).stat().st_size > 0
    blue = Image.new("RGB", (16, 16), (30, 40, 220))
    by_picture = lib.search(blue, k=3, modality="image")
    assert all(h.metadata["colour"] == "blue" for h in by_picture)
    # an item found through its picture and its caption counts once
    both = lib.search("a green square", k=10)
    assert len({h.item for h in both}) == len(both)


@pytest.mark.parametrize("backend", ["lancedb", "milvus"])
def test_index_is_incremental_notices_changes_and_deletions(model_dir, collection, tmp_path,
                                                             backend):
    lib = Library.create("photos", model_dir, root=tmp_path / "libs", backend=backend)
    lib.index(tmp_path / "photos.csv", progress=False)
    again = lib.index(tmp_path / "photos.csv", progress=False)
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)
    assert again.unchanged == 2 * len(collection)
    changed = collection.copy()
    changed.loc[0, "caption"] = "a completely new caption"
    changed = changed.drop(index=[1, 2])
    changed.to_csv(tmp_path / "photos.csv", index=False)
    third = lib.index(tmp_path / "photos.csv", progress=False)
    assert third.updated == 1 and third.deleted == 4 and third.added == 0
    assert len(lib) == 2 * len(changed)


def test_interrupted_index_resumes_without_duplicates(model_dir, collection, tmp_path,
                                                      monkeypatch):
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    real = LanceStore.upsert
    calls = {"n": 0}

    def failing(self, records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(self, records)

    monkeypatch.setattr(LanceStore, "upsert", failing)
    with pytest.raises(KeyboardInterrupt):
        lib.index(tmp_path / "photos.csv", batch_size=16, progress=False)
    stored = len(lib)
    assert 0 < stored < 2 * len(collection)
    monkeypatch.setattr(LanceStore, "upsert", real)
    report = Library("photos", tmp_path / "libs").index(tmp_path / "photos.csv",
                                                        progress=False)
    assert report.unchanged == stored and report.added == 2 * len(collection) - stored
    assert len(lib) == 2 * len(collection)


def test_ask_answers_with_evidence(model_dir, collection, tmp_path):
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    answer = lib.ask("yellow", k=5)
    assert answer.evidence and answer.method == "retrieval"
    assert "yellow" in answer.answer and answer.evidence[0].item in answer.answer
    assert "colour 'yellow'" in answer.answer  # what most of the evidence agrees on


def test_compose_answer_without_support():
    hit = Hit("a", "s::a::image", -0.2, "image", "image", "", "", "", {})
    assert "Nothing" in compose_answer("what?", [hit])


def test_compose_answer_when_a_metadata_key_is_empty_in_every_hit():
    """Found from outside: a key whose value is empty in all hits (tuxpaint's subcategory
    for some stamps) made ``most_common(1)[0]`` an IndexError and /api/ask a 500."""
    hits = [Hit(str(i), f"s::{i}::image", 0.5 - i / 10, "image", "image", "", f"item {i}",
                "", {"category": "", "colour": "red" if i < 2 else ""}) for i in range(3)]
    answer = compose_answer("what?", hits)
    assert "Best match: item 0" in answer and "category" not in answer
    assert "2 of the top 3 items have colour 'red'" in answer
    one = compose_answer("what?", hits[:1])  # a library of one item
    assert "Best match: item 0" in one and "Also close" not in one


def test_bad_names_queries_and_paths_are_refused(model_dir, collection, tmp_path):
    for bad in ("../etc", "a/b", "", "..", "x" * 80):
        with pytest.raises(ValueError, match="invalid library name"):
            check_name(bad)
    with pytest.raises(FileNotFoundError, match="no library"):
        Library("missing", tmp_path / "libs")
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    with pytest.raises(ValueError, match="empty"):
        lib.search("   ")
    with pytest.raises(ValueError, match="not audio"):
        lib.search(np.zeros(16000, dtype=np.float32))  # the model has no audio tower
    with pytest.raises(FileNotFoundError):
        lib.file("../../photos.csv")
    with pytest.raises(ValueError, match="exists with model"):
        Library.create("photos", tmp_path, root=tmp_path / "libs")


def test_cli_index_search_ask(model_dir, collection, tmp_path):
    import json

    from typer.testing import CliRunner

    from polymodal.cli import app

    runner = CliRunner()
    libs = str(tmp_path / "libs")
    res = runner.invoke(app, ["index", str(tmp_path / "photos.csv"), "--library", "photos",
                              "--model", str(model_dir), "--root", libs])
    assert res.exit_code == 0, res.output
    assert f"{2 * len(collection)} added" in res.output.replace(",", "")
    res = runner.invoke(app, ["search", "red", "--library", "photos", "--root", libs,
                              "--k", "3", "--modality", "image", "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)
    assert len(hits) == 3 and hits[0]["metadata"]["colour"] == "red"
    picture = collection.loc[collection.colour == "blue", "image"].iloc[0]
    res = runner.invoke(app, ["search", picture, "--library", "photos", "--root", libs,
                              "--modality", "image", "--k", "1", "--json"])
    assert json.loads(res.output)[0]["metadata"]["colour"] == "blue"
    res = runner.invoke(app, ["ask", "black", "--library", "photos", "--root", libs,
                              "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["evidence"]
    res = runner.invoke(app, ["search", "red", "--library", "../up", "--root", libs])
    assert res.exit_code == 2 and "invalid library name" in res.output


def test_large_library_builds_an_ann_index_and_still_finds(model_dir, collection, tmp_path,
                                                           monkeypatch):
    import polymodal.library.library as library_module

    monkeypatch.setattr(library_module, "INDEX_FROM", 100)  # 144 facets: index them
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    assert lib.store.indexed
    hits = lib.search("red", k=3, modality="image")
    assert len(hits) == 3 and sum(h.metadata["colour"] == "red" for h in hits) >= 2


def test_ask_with_a_vqa_model_answers_about_the_best_picture(model_dir, collection, tmp_path):
    from polymodal.predictor import Predictor

    # a toy VQA set: the question names a colour; the answer is whether the picture has it
    rows = []
    for _, r in collection.iterrows():
        for asked in ("red", "blue"):
            rows.append({"image": r["image"], "question": f"is it {asked}?",
                         "answer": "yes" if r["colour"] == asked else "no"})
    vqa = Predictor(label="answer", preset="tiny", fusion="relation", path=tmp_path / "vqa",
                    max_epochs=1).fit(pd.DataFrame(rows), progress=False)
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    lib.attach_vqa(vqa.save(tmp_path / "vqa-model"))
    answer = Library("photos", tmp_path / "libs").ask("is it red?")
    assert answer.method == "vqa" and answer.evidence
    assert answer.answer.split(" ")[0] in ("yes", "no")
    assert answer.evidence[0].item in answer.answer
    with pytest.raises(ValueError, match="picture and a question"):
        lib.attach_vqa(Predictor(label="colour", preset="tiny", modalities=["image"],
                                 path=tmp_path / "img", max_epochs=1)
                       .fit(collection, progress=False).save(tmp_path / "img-model"))


def test_a_text_generation_model_plugs_in_by_name(model_dir, collection, tmp_path):
    """A tiny GPT-2 made here stands in for the user's own model: the plumbing, not the
    prose, is under test."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "[EOS]", "Answer", "the", "question", "from", "these", "items", ":",
             "red", "blue"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    folder = tmp_path / "tiny-gpt"
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]",
                            pad_token="[EOS]").save_pretrained(folder)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=512, n_embd=8, n_layer=1,
                               n_head=2, bos_token_id=1, eos_token_id=1)
                    ).save_pretrained(folder)
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    lib.attach_generator(str(folder))
    answer = Library("photos", tmp_path / "libs").ask("red", k=3)
    assert answer.method == "generation" and len(answer.evidence) == 3
    assert all(h.item in answer.answer for h in answer.evidence)
    with pytest.raises(ValueError, match="cannot load the text-generation model"):
        lib.attach_generator(str(tmp_path / "no-such-model"))


def test_builtin_model_is_trained_once_then_reused(tmp_path, monkeypatch):
    from polymodal.library import builtin

    monkeypatch.setenv("POLYMODAL_DATA", str(tmp_path / "data"))
    folder = builtin.builtin_model("builtin:lit-tuxpaint", root=tmp_path, quick=True)
    assert (folder / "config.yaml").exists()
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    again = builtin.builtin_model("lit-tuxpaint", root=tmp_path, quick=True)
    assert again == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="no builtin model"):
        builtin.builtin_model("builtin:clip")


def test_bad_files_are_skipped_and_reported_with_their_place(model_dir, collection, tmp_path):
    broken = collection.copy()
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    broken.loc[3, "image"] = str(tmp_path / "broken.png")
    broken.loc[4, "image"] = str(tmp_path / "missing.png")
    broken.to_csv(tmp_path / "broken.csv", index=False)
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    report = lib.index(tmp_path / "broken.csv", progress=False)
    assert len(report.problems) == 2
    assert any("row 4" in p and "image" in p for p in report.problems), report.problems
    assert report.added == 2 * len(collection) - 2  # every other facet is there


def test_a_second_indexer_is_refused_while_one_runs(model_dir, collection, tmp_path):
    import subprocess
    import sys
    import textwrap

    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    holder = textwrap.dedent(f"""
        import fcntl, sys, time
        fh = open({str(lib.folder / 'index.lock')!r}, "a+")
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write("pid 4242"); fh.flush()
        print("locked", flush=True)
        time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match="being indexed by pid 4242"):
            lib.index(tmp_path / "photos.csv", progress=False)
    finally:
        proc.kill()
        proc.wait()
    report = lib.index(tmp_path / "photos.csv", progress=False)  # the lock died with it
    assert report.added == 2 * len(collection)


def test_first_searches_at_once_load_the_model_once(colour_library, monkeypatch):
    """A server's first requests arrive together: the lazily loaded model and store
    are made once, and every search succeeds."""
    from concurrent.futures import ThreadPoolExecutor

    from polymodal.pretraining import Pretrainer

    loads = []
    real_load = Pretrainer.load.__func__

    def counting_load(cls, path):
        loads.append(path)
        return real_load(cls, path)

    monkeypatch.setattr(Pretrainer, "load", classmethod(counting_load))
    lib = Library("photos", colour_library)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda q: lib.search(q, k=3), ["red", "blue", "green"] * 4))
    assert len(loads) == 1
    assert all(len(r) == 3 for r in results)


def test_cells_the_model_cannot_embed_are_reported_not_dropped(model_dir, collection,
                                                                tmp_path):
    """Found from outside: indexing 22 files printed "17 added"; the sounds were dropped
    without a word because the model has no audio tower."""
    import soundfile as sf

    table = collection.copy()
    for i in range(4):
        sf.write(tmp_path / f"s{i}.wav", np.zeros(1600, dtype=np.float32), 16000)
    table["sound"] = [str(tmp_path / f"s{i}.wav") if i < 4 else None
                      for i in range(len(table))]
    table.to_csv(tmp_path / "mixed.csv", index=False)
    lib = Library.create("mixed", model_dir, root=tmp_path / "libs")
    report = lib.index(tmp_path / "mixed.csv", progress=False)
    assert report.left_out == {"sound": ("audio", 4)}
    assert report.left_out_lines() == [
        "4 audio cells of column 'sound': the library's model embeds image and text, "
        "not audio"]
    skipped = pd.read_csv(lib.folder / "skipped_rows.csv")
    assert sorted(skipped.loc[skipped["kind"] == "modality_not_embedded", "row"]) == [0, 1, 2, 3]


def test_an_empty_library_takes_a_new_model_and_a_library_can_be_deleted(
        model_dir, collection, tmp_path, colour_model):
    """Found from outside: a library created with a bad --model could not be repaired."""
    from typer.testing import CliRunner

    from polymodal.cli import app

    other = colour_model.save(tmp_path / "other")
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    again = Library.create("photos", other, root=tmp_path / "libs")  # nothing indexed yet
    assert again.config["model"] == str(other.resolve())
    again.index(tmp_path / "photos.csv", progress=False)
    with pytest.raises(ValueError, match=r"holds items.*library delete photos"):
        Library.create("photos", model_dir, root=tmp_path / "libs")
    runner = CliRunner()
    res = runner.invoke(app, ["library", "list", "--root", str(tmp_path / "libs")])
    assert res.exit_code == 0 and "photos" in res.output
    res = runner.invoke(app, ["library", "delete", "photos", "--root", str(tmp_path / "libs")])
    assert res.exit_code == 0, res.output
    assert not lib.folder.exists() and (tmp_path / "photos.csv").exists()  # files stay
    res = runner.invoke(app, ["library", "delete", "photos", "--root", str(tmp_path / "libs")])
    assert res.exit_code == 2 and "no library" in res.output


def test_a_library_of_one_item_and_rows_that_lack_the_column(model_dir, collection,
                                                             tmp_path, colour_model):
    """Empty lists, one-item libraries and rows without the column reach no index or
    max: search, ask (Python and HTTP, any k) and zero-shot answer."""
    from fastapi.testclient import TestClient

    from polymodal.serve import create_app

    collection.iloc[:1].to_csv(tmp_path / "one.csv", index=False)
    lib = Library.create("one", model_dir, root=tmp_path / "libs")
    empty = lib.ask("anything", k=5)
    assert "Nothing" in empty.answer and empty.evidence == []
    lib.index(tmp_path / "one.csv", progress=False)
    assert len(lib.search("red", k=10)) == 1
    assert lib.ask("red", k=50).evidence
    client = TestClient(create_app("one", tmp_path / "libs"))
    for k in (1, 2, 50):
        assert client.get("/api/ask", params={"q": "0000", "k": k}).status_code == 200
    partial = collection.copy()
    partial.loc[:3, "image"] = None  # four rows lack the picture
    pred = colour_model.zero_shot(partial, "image", ["red", "blue"])
    assert pred.iloc[:4].isna().all() and pred.iloc[4:].notna().all()
    with pytest.raises(ValueError, match="at least one class"):
        colour_model.zero_shot(partial, "image", [])


def test_a_query_in_words_is_embedded_once_and_searches_the_rows_of_now(colour_library,
                                                                        monkeypatch):
    lib = Library("photos", colour_library)
    first = lib.embed_query("a red square")[0]
    calls = []
    real = lib.model.embed_values
    monkeypatch.setattr(lib.model, "embed_values",
                        lambda *a, **kw: calls.append(a) or real(*a, **kw))
    monkeypatch.setenv("POLYMODAL_ONNX", "0")  # the torch path, whose calls are counted
    again = lib.embed_query("a red square")[0]
    assert np.array_equal(first, again) and not calls  # kept: not embedded again
    assert not again.flags.writeable  # shared by every caller, so nobody may change it
    lib.embed_query("a blue square")
    assert len(calls) == 1
    assert (lib._queries.hits, lib._queries.misses) == (1, 2)
