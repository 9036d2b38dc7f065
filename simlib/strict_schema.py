"""A pydantic base for simlib's YAML schemas: unknown fields are errors, and numbers must be written as numbers
(pydantic would otherwise read ``true`` as 1 or the string '16' as 16), finite, and booleans as true or false.

The rule holds at every depth, not only for a model's own fields: a value inside a mapping or list field
(``peak_tflops: {bf16: true}``, ``mesh: [true, "256"]``, ``op_decomposition: {exp: {mac: "6"}}``) is checked
against the type it is declared with, and the error names its path (``peak_tflops.bf16``). A field declared as a
list or mapping and given a single value is told so (``expected a list``), whatever its items are.
"""
from __future__ import annotations

import types
import typing

from pydantic import BaseModel, ConfigDict, field_validator


class NestedValueError(ValueError):
    """A value inside a field of the wrong kind; ``path`` leads from the field to it (keys and list indices), so
    that :func:`simlib.schema_errors.raise_for_validation` can name the whole path."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


def _members(annotation) -> tuple:
    """The members of a union (``float | None``, ``Optional[int]``), or the annotation alone."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _check(annotation, value, path: tuple) -> None:
    """Raise NestedValueError where ``value`` (or a value inside it) is not of the kind ``annotation`` declares:
    a number given as true/false or as text, a boolean given as anything else, a single value where a list or
    mapping is declared. Other mismatches (a string where a Literal is expected, a bad key) are left to pydantic,
    which names them itself."""
    members = [m for m in _members(annotation) if m is not type(None)]
    if value is None and len(members) < len(_members(annotation)):
        return
    if len(members) != 1:                    # int | str and the like: any of them may be meant
        return
    kind = members[0]
    origin = typing.get_origin(kind)
    if kind in (int, float):
        if isinstance(value, (bool, str)):
            raise NestedValueError(path, f"expected a number, got {value!r}")
    elif kind is bool:
        if not isinstance(value, bool):
            raise NestedValueError(path, f"expected true or false, got {value!r}")
    elif origin is list:
        if not isinstance(value, list):
            raise NestedValueError(path, f"expected a list, got {value!r}")
        (item,) = typing.get_args(kind) or (typing.Any,)
        for i, entry in enumerate(value):
            _check(item, entry, (*path, i))
    elif origin is dict:
        if not isinstance(value, dict):
            raise NestedValueError(path, f"expected a mapping, got {value!r}")
        _, item = typing.get_args(kind) or (typing.Any, typing.Any)
        for key, entry in value.items():
            _check(item, entry, (*path, key))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value, info):
        _check(cls.model_fields[info.field_name].annotation, value, ())
        return value
