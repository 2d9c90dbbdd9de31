"""Deprecated spellings: one helper so every renamed argument warns and resolves the same way."""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

T = TypeVar("T")


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
