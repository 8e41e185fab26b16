"""A small named registry: extractors, model RDMs, stimulus generators, objectives, probes.

Each kind of pluggable thing has one :class:`Registry`.  Users add their own entries by name,
and musiclens looks entries up by name: no ``if/elif`` chains.

Examples
--------
>>> from musiclens.registry import Registry
>>> shapes = Registry("shape")
>>> @shapes.register("square")
... def square(x: float) -> float:
...     return x * x
>>> shapes.get("square")(3.0)
9.0
>>> "square" in shapes
True
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from musiclens.errors import RegistryError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to objects of one kind.

    Parameters
    ----------
    kind
        What the entries are ("extractor", "model RDM", ...); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    @overload
    def register(self, name: str, obj: T, *, help: str | None = None, overwrite: bool = False) -> T: ...

    @overload
    def register(
        self, name: str, obj: None = None, *, help: str | None = None, overwrite: bool = False
    ) -> Callable[[T], T]: ...

    def register(
        self, name: str, obj: T | None = None, *, help: str | None = None, overwrite: bool = False
    ) -> T | Callable[[T], T]:
        """Add ``obj`` under ``name``; without ``obj``, return a decorator that does.

        Parameters
        ----------
        name
            Lower-case identifier (letters, digits, ``_``, ``-``, ``.``).
        obj
            The object to register.
        help
            One-line description shown by listings; defaults to the first docstring line.
        overwrite
            Replace an existing entry of the same name instead of raising.
        """
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise RegistryError(
                f"invalid {self.kind} name {name!r}: use a non-empty name without spaces"
            )

        def add(o: T) -> T:
            if name in self._entries and not overwrite:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered; "
                    "pass overwrite=True to replace it, or choose another name"
                )
            self._entries[name] = o
            doc = help if help is not None else (getattr(o, "__doc__", None) or "")
            self._help[name] = doc.strip().splitlines()[0] if doc.strip() else ""
            return o

        if obj is None:
            return add
        return add(obj)

    def get(self, name: str) -> T:
        """Return the entry called ``name``; the error lists the valid names and a close match."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{hint} Valid names: {', '.join(sorted(self._entries)) or '(none)'}."
            ) from None

    def unregister(self, name: str) -> None:
        """Remove ``name`` (raises :class:`RegistryError` if absent)."""
        self.get(name)
        del self._entries[name]
        del self._help[name]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """``{name: one-line help}`` for every entry, sorted by name."""
        return {n: self._help[n] for n in self.names()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
