"""The vectors of recent queries in words, so that a popular search is embedded once.

A query's vector depends on the model only, never on what the library holds: a search
after an index run still searches the rows stored now. Bounded (least recently used
queries go), thread-safe (a server's workers share it), one per library object."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

#: queries in words kept per library
SIZE = 4096


class QueryCache:
    """text -> vector, the least recently used dropped past ``size``."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, text: str, embed: Callable[[str], np.ndarray]) -> np.ndarray:
        """The vector of ``text``: kept, or ``embed(text)`` (kept from now on)."""
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
                self.hits += 1
                return vector
        vector = embed(text)
        vector.setflags(write=False)  # shared by every caller: nobody may change it
        with self._lock:
            self.misses += 1
            self._vectors[text] = vector
            self._vectors.move_to_end(text)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return vector

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()
