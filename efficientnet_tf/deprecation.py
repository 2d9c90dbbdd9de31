"""Deprecated spellings: one helper so every renamed argument warns and resolves the same way."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def renamed_argument(
    where: str, old: str, old_value: Any, new: str, new_value: T, new_default: Any = None
) -> T:
    """The value of argument `new` of `where`, taking the deprecated spelling `old` when given.

    Warns (DeprecationWarning) when `old` is used; raises TypeError when both are given (i.e.
    `new` differs from its default `new_default`).
    """
    if old_value is None:
        return new_value
    if new_value != new_default:
        raise TypeError(f"{where}: give {new}= only ({old}= is its deprecated spelling).")
    warnings.warn(
        f"{where}: {old}= is deprecated, use {new}= instead.", DeprecationWarning, stacklevel=3
    )
    return old_value


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Decorator: ``old="new"`` accepts keyword argument `old` as the deprecated spelling of
    `new` (warns with DeprecationWarning; a TypeError when both are given)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{fn.__qualname__}: give {new}= only ({old}= is its "
                                    "deprecated spelling).")
                warnings.warn(f"{fn.__qualname__}: {old}= is deprecated, use {new}= instead.",
                              DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
