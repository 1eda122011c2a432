"""One registry for everything polymodal finds by name (encoders, fusions, tasks,
presets, datasets), and one error for a name it does not know.

A name is registered once (twice is a programming error, refused at import), looked up
with :meth:`Registry.get`, and a name that is not there raises :class:`UnknownName`,
which says what kind of thing was asked for, the nearest known names and all of them::

    FUSIONS = Registry("fusion")

    @FUSIONS.register("concat")
    class ConcatFusion(Fusion): ...

    FUSIONS.get("contact")  # UnknownName: unknown fusion 'contact'; did you mean 'concat'?
"""

from __future__ import annotations

import difflib
import importlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from polymodal.data.errors import PolymodalError

T = TypeVar("T")


class UnknownName(PolymodalError, KeyError, ValueError):
    """A name that no registry entry has; the message names the nearest known ones.

    A ``KeyError`` and a ``ValueError`` both, so that code written against either of
    the errors the registries raised before keeps working."""

    def __init__(self, kind: str, name: object, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(self.message())

    def message(self) -> str:
        near = difflib.get_close_matches(str(self.name), self.known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        return (f"unknown {self.kind} {self.name!r}{hint} "
                f"(known {self.kind}s: {', '.join(self.known) or 'none'})")

    def __str__(self) -> str:  # KeyError would print the message quoted
        return self.message()


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name`` (for "did you mean"), or None."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


class Registry(Generic[T]):
    """Named entries of one kind; ``kind`` is what the error calls them ("fusion").

    ``modules`` (optional) are the builtin modules whose decorators fill the registry,
    imported in that order before the first lookup (so that naming an encoder does not
    import every one of them at ``import polymodal``); ``load`` is any other callable
    that fills it. A builtin module imported first, on its own, registers its entries
    as it runs, and the others load at the first lookup: loading them in the middle of
    its import would hand them its half-run module."""

    def __init__(self, kind: str, load: Callable[[], None] | None = None,
                 modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._modules = tuple(modules)
        if modules and load is None:
            load = self._import_modules
        self._load = load
        self._loading = threading.RLock()  # a server's first lookups come at once
        self._loader: int | None = None  # the thread running ``load``

    def _loaded(self) -> dict[str, T]:
        """The entries, after ``load`` has run once to its end (again after a load
        that failed; the same thread's registrations inside it see the partial set)."""
        if self._load is not None:
            with self._loading:
                if self._load is not None and self._loader is None:
                    self._loader = threading.get_ident()
                    try:
                        self._load()
                        self._load = None
                    finally:
                        self._loader = None
        return self._entries

    def _import_modules(self) -> None:
        for module in self._modules:
            importlib.import_module(module)

    def _builtin_importing(self) -> bool:
        """Whether one of the builtin modules is being imported now (its decorators
        are running)."""
        for module in self._modules:
            spec = getattr(sys.modules.get(module), "__spec__", None)
            if spec is not None and getattr(spec, "_initializing", False):
                return True
        return False

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its target under ``name``."""
        def wrap(entry: T) -> T:
            self.add(name, entry)
            return entry
        return wrap

    def add(self, name: str, entry: T) -> None:
        """Register ``entry`` as ``name`` (refused if the name is taken, the builtin
        entries included: they are loaded first)."""
        if self._load is not None and self._loader != threading.get_ident() \
                and not self._builtin_importing():
            self._loaded()
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            UnknownName: no such entry (the message names the nearest ones).
        """
        entries = self._loaded()
        try:
            return entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name"
            raise UnknownName(self.kind, name, entries) from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._loaded())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, sorted by name."""
        entries = self._loaded()
        return [(n, entries[n]) for n in sorted(entries)]

    def values(self) -> list[T]:
        """The entries, sorted by name."""
        return [e for _, e in self.items()]
