"""A library: a user's images, sounds and texts, embedded by a pretrained polymodal
model into one space and kept in a vector store, to search and ask in words, with a
picture or with a sound::

    lib = Library.create("photos", model="pretrained/")
    lib.index("~/Pictures")                 # incremental: new or changed files only
    lib.search("a red bird")                # items with scores, captions, thumbnails
    lib.ask("which animal says moo?")       # an answer and the items it rests on

The :class:`Library` is the public face; indexing (the scan, the records, the
thumbnails) is in :mod:`polymodal.library.indexing`, the ways of answering a question
in :mod:`polymodal.library.asking`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from polymodal.data.schema import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from polymodal.library.ann import AnnIndex, nearest_items
from polymodal.library.asking import ask, load_vqa, text_generation
from polymodal.library.folders import CONFIG, check_name, library_home, read_config
from polymodal.library.indexing import (
    SKIPPED,
    THUMBNAIL_NAME,
    index_lock,
    index_source,
)
from polymodal.library.indexing import THUMBNAIL_SIZE as THUMBNAIL_SIZE
from polymodal.library.indexing import LibraryBusy as LibraryBusy
from polymodal.library.query_cache import QueryCache
from polymodal.library.results import Answer, Hit, IndexReport
from polymodal.library.store import INDEX_FROM, LanceStore, MilvusStore, VectorStore

#: what a library can be searched by
MODALITIES = ("image", "audio", "text")


class Library:
    """A named library in ``root`` (default :func:`library_home`).

    Open an existing one with ``Library(name)``; make one with :meth:`create`.
    """

    def __init__(self, name: str, root: str | os.PathLike[str] | None = None) -> None:
        self.name = check_name(name)
        self.folder = Path(root or library_home()) / self.name
        config_path = self.folder / CONFIG
        if not config_path.exists():
            raise FileNotFoundError(f"no library {name!r} in {self.folder.parent}; make it "
                                    f"with `polymodal index PATH --library {name} --model "
                                    "MODEL` or Library.create")
        self.config = read_config(config_path)
        self._model: Any = None
        self._store: VectorStore | None = None
        # the model and store load on first use; a server's first requests come at once
        self._loading = threading.RLock()
        self._vqa: Any = None
        self._ann: AnnIndex | None = None
        self._queries = QueryCache()  # a popular search in words is embedded once
        self._generator: Any = None

    def _save_config(self) -> None:
        from polymodal.files import write_atomically

        write_atomically(self.folder / CONFIG, yaml.safe_dump(self.config))

    @classmethod
    def create(cls, name: str, model: str | os.PathLike[str], *,
               root: str | os.PathLike[str] | None = None, backend: str = "lancedb",
               uri: str | None = None) -> Library:
        """Make (or reopen, if it has the same model) library ``name``.

        Args:
            model: a saved Pretrainer (polymodal pretrain) whose space holds the items,
                or ``"builtin:lit-tuxpaint"`` (trained here on first use).
            backend: "lancedb" (local folder, in process) or "milvus".
            uri: Milvus only: a file for milvus-lite (default: in the library folder)
                or a server address.
        """
        from polymodal.library.builtin import resolve_model

        folder = Path(root or library_home()) / check_name(name)
        if backend not in ("lancedb", "milvus"):
            raise ValueError(f"unknown backend {backend!r}; use 'lancedb' or 'milvus'")
        given = str(model)
        model = str(resolve_model(model).resolve())
        config_path = folder / CONFIG
        if config_path.exists():
            config = read_config(config_path)
            if config["model"] == model and config["backend"] == backend:
                return cls(name, root)
            existing = cls(name, root)
            if existing._holds_items():
                raise ValueError(f"library {name!r} exists with model {config['model']} "
                                 f"on {config['backend']} and holds items; choose another "
                                 f"name, or delete it first (`polymodal library delete "
                                 f"{name}`)")
            existing._drop_store()  # an empty library takes the model it is given now
        from polymodal.files import write_atomically

        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(config_path, yaml.safe_dump({"model": model, "backend": backend,
                                                      "uri": uri, "model_name": given}))
        return cls(name, root)

    @classmethod
    def delete(cls, name: str, root: str | os.PathLike[str] | None = None) -> Path:
        """Delete library ``name``: its settings, vectors and thumbnails (never the files
        it indexed). Refused while it is being indexed."""
        import shutil

        lib = cls(name, root)
        with index_lock(lib.folder, lib.name):
            lib._drop_store()
            shutil.rmtree(lib.folder / "thumbnails", ignore_errors=True)
            for leftover in (CONFIG, SKIPPED):
                (lib.folder / leftover).unlink(missing_ok=True)
        shutil.rmtree(lib.folder, ignore_errors=True)
        return lib.folder

    def _holds_items(self) -> bool:
        """Whether anything was indexed (without loading the model when nothing was)."""
        if self.config["backend"] == "lancedb" and not (self.folder / "lance").exists():
            return False
        if self.config["backend"] == "milvus" and not self.config.get("uri") and \
                not (self.folder / "milvus.db").exists():
            return False
        try:
            return len(self) > 0
        except (OSError, ValueError):  # a model that no longer loads: nothing to keep
            return (self.folder / "lance").exists()

    def _drop_store(self) -> None:
        """Remove the local vector store (a Milvus server's collection is dropped)."""
        import shutil

        if self.config["backend"] == "milvus":
            with contextlib.suppress(Exception):  # a model that no longer loads
                self.store.drop()
        shutil.rmtree(self.folder / "lance", ignore_errors=True)
        shutil.rmtree(self.folder / "ann", ignore_errors=True)
        self._ann = None
        (self.folder / "milvus.db").unlink(missing_ok=True)
        self._store = None

    # -- parts ----------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            with self._loading:
                if self._model is None:
                    from polymodal.pretraining import Pretrainer

                    self._model = Pretrainer.load(self.config["model"])
        return self._model

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            with self._loading:
                if self._store is None:
                    dim = self.model.dim_
                    if self.config["backend"] == "milvus":
                        uri = self.config.get("uri") or str(self.folder / "milvus.db")
                        self._store = MilvusStore(uri, dim,
                                                  token=os.environ.get("MILVUS_TOKEN"))
                    else:
                        self._store = LanceStore(self.folder / "lance", dim)
        return self._store

    def tower(self, modality: str) -> str:
        """The model's column that embeds ``modality`` (the first, if several)."""
        for c in self.model.columns_:
            if self.model.roles_[c]["role"] == modality:
                return c
        raise ValueError(f"the library's model embeds {self._modalities()}, not {modality}")

    def _modalities(self) -> list[str]:
        return sorted({self.model.roles_[c]["role"] for c in self.model.columns_})

    # -- indexing -------------------------------------------------------------------
    def index(self, source: str | os.PathLike[str] | Any, *, batch_size: int = 64,
              progress: bool = True, on_error: str = "skip",
              confine: bool | None = None, roles: dict[str, str] | None = None,
              processes: int = 1) -> IndexReport:
        """Embed every item of ``source`` (a folder or a manifest) that is new or
        changed since the last run (by content hash), and forget the items of this
        source that are gone. Each batch is stored as it is embedded, so an interrupted
        run resumes where it stopped, without duplicates. One indexer runs at a time
        per library (a second is refused with a clear error).

        Under ``on_error="skip"`` (the default) a bad cell is left out and reported
        (``IndexReport.problems`` and ``skipped_rows.csv`` in the library folder); the
        row's other cells are indexed. ``confine`` refuses files that lead outside the
        source's folder (``..``, absolute paths, symlinks pointing out) as bad cells of
        kind ``outside_root``; it is on by default for a folder, off for a manifest.
        ``roles`` override the inferred column roles (``{"notes": "text"}``). Columns of
        a modality the model cannot embed are left out, counted in
        ``IndexReport.left_out`` and listed in ``skipped_rows.csv``. ``processes`` > 1
        decodes and embeds the batches in that many worker processes (the store is
        written by this one, in the same order)."""
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        with index_lock(self.folder, self.name):
            report = self._index(source, batch_size=batch_size, progress=progress,
                                 on_error=on_error, confine=confine, roles=roles,
                                 processes=processes)
        skipped = self.folder / SKIPPED
        if len(report.skipped):
            report.skipped.deduplicate().write(skipped)
        else:
            skipped.unlink(missing_ok=True)
        return report

    def _index(self, source: str | os.PathLike[str] | Any, *, batch_size: int,
               progress: bool, on_error: str, confine: bool | None,
               roles: dict[str, str] | None = None, processes: int = 1) -> IndexReport:
        """Index ``source`` (:func:`~polymodal.library.indexing.index_source`; the
        caller holds the index lock), then build the store's ANN index once it holds
        :data:`INDEX_FROM` vectors."""
        report = index_source(self, source, batch_size=batch_size, progress=progress,
                              on_error=on_error, confine=confine, roles=roles,
                              processes=processes)
        store = self.store
        if isinstance(store, LanceStore) and (report.added or report.deleted) and \
                store.count() >= INDEX_FROM:
            store.build_index()  # past INDEX_FROM vectors an exact scan gets slow
        if self.ann is not None:
            self.ann.sync(store)  # the fast path holds exactly the stored rows
        return report

    @property
    def ann(self) -> AnnIndex | None:
        """The FAISS fast path beside a LanceDB store (``ann/``), or None (Milvus)."""
        if self.config["backend"] != "lancedb":
            return None
        if self._ann is None:
            with self._loading:
                if self._ann is None:
                    self._ann = AnnIndex(self.folder / "ann", self.model.dim_)
        return self._ann


    # -- search ---------------------------------------------------------------------
    def embed_query(self, query: str | os.PathLike[str] | Image.Image | np.ndarray
                    ) -> tuple[np.ndarray, str]:
        """A query's vector and its modality: words, a picture (PIL image or file) or a
        sound (16 kHz mono array or file). Embedded on onnxruntime where the model has
        an ONNX export (made on first use; ``POLYMODAL_ONNX=0``: torch); the vectors of
        recent queries in words are kept (:class:`~.query_cache.QueryCache`)."""
        from polymodal.data.media import decode_audio, decode_image
        from polymodal.export.fastpath import embedder

        if isinstance(query, Image.Image):
            return embedder(self).embed_values(self.tower("image"), [query])[0], "image"
        if isinstance(query, np.ndarray):
            return embedder(self).embed_values(self.tower("audio"), [query])[0], "audio"
        if isinstance(query, Path) or (isinstance(query, str) and Path(query).suffix.lower()
                                       in IMAGE_EXTENSIONS | AUDIO_EXTENSIONS
                                       and Path(query).is_file()):
            path = Path(query)
            if path.suffix.lower() in IMAGE_EXTENSIONS or path.suffix.lower() == ".svg":
                return self.embed_query(decode_image(path))
            return self.embed_query(decode_audio(path))
        text = str(query).strip()
        if not text:
            raise ValueError("the query is empty: ask in words, or give a picture or a sound")
        return self._queries.get(text, lambda t: embedder(self).embed_values(
            self.tower("text"), [t])[0]), "text"

    def search(self, query: Any, k: int = 10, modality: str | None = None,
               min_score: float | None = None) -> list[Hit]:
        """The ``k`` items nearest to ``query``, best first; an item found through
        several facets (its picture and its caption) counts once, at its best score.
        ``modality`` restricts the facets searched ("image": pictures only);
        ``min_score`` leaves out hits at or below it (0: nothing less similar than an
        unrelated item), so "nothing close" is an empty list, not the least bad ones."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if modality is not None and modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; use one of {list(MODALITIES)}")
        vector, _kind = self.embed_query(query)
        return [Hit(item=r["item"], key=r["key"], score=r["score"], column=r["column"],
                    modality=r["modality"], path=r["path"], text=r["text"],
                    thumbnail=r["thumbnail"], metadata=r["metadata"])
                for r in nearest_items(self, vector, k, modality, min_score)]

    def attach_vqa(self, predictor: str | os.PathLike[str]) -> None:
        """Answer questions with a visual question answering model: a saved Predictor
        that takes one picture column and one text column (the question) and predicts
        the answer (train one with :func:`polymodal.apps.vqa.train_vqa`)."""
        p = load_vqa(predictor)
        self.config["vqa"] = str(Path(predictor).resolve())
        self._save_config()
        self._vqa = p

    @property
    def vqa(self) -> Any:
        """The library's VQA Predictor, or None."""
        if self.config.get("vqa") and self._vqa is None:
            from polymodal.predictor import Predictor

            self._vqa = Predictor.load(self.config["vqa"])
        return self._vqa

    def attach_generator(self, model: str) -> None:
        """Compose answers with a text-generation model of your own: a Hugging Face
        name (from the local cache; nothing is downloaded unless you allow it) or a
        local folder. Without one, answers are composed from the evidence directly."""
        self._generator = text_generation(model)
        self.config["generator"] = model
        self._save_config()

    @property
    def generator(self) -> Any:
        """The library's text-generation pipeline, or None."""
        if self.config.get("generator") and self._generator is None:
            self._generator = text_generation(self.config["generator"])
        return self._generator

    def ask(self, question: str, k: int = 5, writer: Any = None) -> Answer:
        """Find the items that bear on ``question`` and answer from them.

        With a VQA model attached (:meth:`attach_vqa`), the answer is its answer to the
        question about the best-matching picture (``method="vqa"``); otherwise it is
        composed from the retrieved items' captions and metadata
        (``method="retrieval"``), or written by an attached text-generation model from
        that evidence (``method="generation"``). With ``writer`` (a
        :class:`~polymodal.generate.Captioner` or its folder), the captioner writes about
        the picture that best matches the question (``method="captioner"``). Either way
        it names the items it rests on."""
        return ask(self, question, k, writer)

    def __len__(self) -> int:
        """How many facets the library stores (an item has one per indexed column)."""
        return self.store.count()

    def item_count(self) -> int:
        """How many items (rows of the sources indexed) the library holds."""
        return len({key.rsplit("::", 1)[0] for key in self.store.contents()})

    def modalities(self) -> list[str]:
        """The modalities the library's model embeds, so can be searched with."""
        return self._modalities()

    def sample(self, k: int = 12) -> list[Hit]:
        """Up to ``k`` items of the library, pictures first (score 0: nothing was
        searched), for a first look at what it holds."""
        seen: dict[str, Hit] = {}
        for modality in ("image", "audio", "text"):
            for r in self.store.sample(4 * k, modality):
                item = f"{r['source']}::{r['item']}"
                if item not in seen and len(seen) < k:
                    seen[item] = Hit(item=r["item"], key=r["key"], score=0.0,
                                     column=r["column"], modality=r["modality"],
                                     path=r["path"], text=r["text"],
                                     thumbnail=r["thumbnail"], metadata=r["metadata"])
        return list(seen.values())

    def media_path(self, key: str) -> Path | None:
        """The original file of an indexed facet, looked up by its key (so a URL can
        only reach files the library indexed); None if unknown or gone."""
        record = self.store.get(key)
        if record is None or not record.get("path"):
            return None
        path = Path(record["path"])
        return path if path.is_file() else None

    def file(self, relative: str) -> Path:
        """A thumbnail of the library, by the name a hit carries
        (``thumbnails/ab/<sha1>.jpg``); any other name, a NUL or odd byte, a link or a
        path that resolves outside the thumbnails folder is refused."""
        if isinstance(relative, str) and THUMBNAIL_NAME.fullmatch(relative):
            path = self.folder / relative
            resolved = path.resolve()
            if not path.is_symlink() and resolved.is_file() and \
                    resolved.parent.parent == (self.folder / "thumbnails").resolve():
                return resolved
        raise FileNotFoundError(f"{relative!r} is not a thumbnail of library {self.name!r}")

    def thumbnail_path(self, key: str) -> Path | None:
        """The thumbnail of an indexed facet, looked up by its key (as media are);
        None if the key is unknown or the facet has no thumbnail."""
        record = self.store.get(key)
        if record is None or not record.get("thumbnail"):
            return None
        try:
            return self.file(record["thumbnail"])
        except FileNotFoundError:
            return None
