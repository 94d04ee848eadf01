"""Name-keyed registries for pluggable parts (losses, augmenters, mapping strategies).

Configs name parts by registry key, never by import path. An unknown key raises an error that
lists the known keys, so a config arriving over HTTP can be validated before any job exists.
This module imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from models.errors import UnknownKeyError

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from a string key to a registered object (usually a class or factory).

    Args:
        kind: What the registry holds, used in error messages (e.g. ``"intermediate loss"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        """Decorator that registers an object under ``key``.

        Raises:
            ValueError: If ``key`` is already registered.
        """

        def deco(obj: T) -> T:
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def get(self, key: str) -> T:
        """Return the object registered under ``key``.

        Raises:
            UnknownKeyError: If the key is unknown; the message lists the known keys.
        """
        try:
            return self._items[key]
        except KeyError:
            raise UnknownKeyError(self.kind, key, sorted(self._items)) from None

    def keys(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())
