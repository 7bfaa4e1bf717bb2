"""Typed settings schemas: :class:`Key` leaves, their defaults and their validation.

A schema is a nested mapping whose leaves are :class:`Key` and whose inner mappings are sections. The training
config (:mod:`models.config`), the experiment presets (:mod:`experiments.config`) and each registered dataset's
own settings (:mod:`dataset.registry`) are written in it. It lives in ``dataset/`` because that is the lowest
package of the checkout: the dataset registry and the configs above it can all use it without an import circle.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    """One leaf of the schema: its type, default, whether null is allowed, allowed values, meaning."""

    type: type
    default: Any
    doc: str
    nullable: bool = False
    choices: tuple[Any, ...] | None = None
    item_type: type | None = None  # for lists; ``choices`` then apply to every item
    required: bool = False
    minimum: float | None = None  # smallest allowed value (of every item, for lists)
    maximum: float | None = None  # largest allowed value


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of every leaf of ``schema``, as nested dicts (copies: mutating them leaves the schema be)."""
    return {
        name: schema_defaults(entry) if isinstance(entry, Mapping) else copy.deepcopy(entry.default)
        for name, entry in schema.items()
    }


def with_defaults(schema: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` with the defaults of ``schema`` filled in where it has no value, section by section (a copy;
    keys ``schema`` does not know are kept, for :func:`validate` to name them)."""
    filled = schema_defaults(schema)
    for name, value in given.items():
        entry = schema.get(name)
        if isinstance(entry, Mapping) and isinstance(value, Mapping):
            filled[name] = with_defaults(entry, value)
        else:
            filled[name] = copy.deepcopy(value)
    return filled


def validate(config: dict[str, Any], schema: Mapping[str, Any], *, path: str = "") -> None:
    """Checks a complete config (every key of ``schema`` present) against ``schema``, converting values in place
    (ints to floats for float keys, tuples to lists).

    Args:
        config: nested dicts with exactly the keys of ``schema`` (fill defaults first).
        schema: nested mappings of :class:`Key`.
        path: prefix of the key paths in messages (``"data.shapenet."``).

    Raises:
        ValueError: an unknown key, a missing section, a null where none is allowed, a value of the wrong type
            or outside its choices or range; the message names the key path (``data.shapenet.images: must be
            one of ['r2n2', 'yaw'], got 'x'``).
    """
    unknown = sorted(set(config) - set(schema))
    if unknown:
        names = ", ".join(f"{path}{name}" for name in unknown)
        raise ValueError(f"unknown config key(s): {names}; valid keys here: {', '.join(schema)}")
    for name, entry in schema.items():
        key_path = f"{path}{name}"
        if isinstance(entry, Mapping):
            if not isinstance(config[name], dict):
                raise ValueError(f"{key_path}: must be a section (mapping), got {config[name]!r}")
            validate(config[name], entry, path=f"{key_path}.")
        else:
            config[name] = _check_value(key_path, config[name], entry)


def _check_value(key_path: str, value: Any, key: Key) -> Any:
    if value is None:
        if key.required:
            raise ValueError(f"{key_path}: must be set ({key.doc})")
        if not key.nullable:
            raise ValueError(f"{key_path}: must not be null; expected {key.type.__name__} ({key.doc})")
        return None
    value = _coerce(key_path, value, key.type)
    if key.item_type is not None:
        value = [_coerce(f"{key_path}[{i}]", item, key.item_type) for i, item in enumerate(value)]
        for i, item in enumerate(value):
            _check_range(f"{key_path}[{i}]", item, key)
    else:
        _check_range(key_path, value, key)
    return value


def _check_range(key_path: str, value: Any, key: Key) -> None:
    if key.choices is not None and value not in key.choices:
        raise ValueError(f"{key_path}: must be one of {list(key.choices)}, got {value!r}")
    if key.minimum is not None and value < key.minimum:
        raise ValueError(f"{key_path}: must be >= {key.minimum:g}, got {value!r}")
    if key.maximum is not None and value > key.maximum:
        raise ValueError(f"{key_path}: must be <= {key.maximum:g}, got {value!r}")


def _coerce(key_path: str, value: Any, expected: type) -> Any:
    if expected is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is list:
        if isinstance(value, list | tuple):
            return list(value)
    elif isinstance(value, expected) and not (expected is not bool and isinstance(value, bool)):
        return value
    if expected is float and isinstance(value, float):  # NaN or infinite: say so, "expected float" would not
        raise ValueError(f"{key_path}: expected a finite float, got {value!r}")
    raise ValueError(f"{key_path}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
