"""A pydantic base for simlib's YAML schemas: unknown fields are errors, and numbers must be written as numbers
(pydantic would otherwise read ``true`` as 1 or the string '16' as 16), finite, and booleans as true or false."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value, info):
        annotation = str(cls.model_fields[info.field_name].annotation)
        numeric = ("float" in annotation or "int" in annotation) and "str" not in annotation
        if numeric and isinstance(value, (bool, str)):
            raise ValueError(f"expected a number, got {value!r}")
        if annotation == "<class 'bool'>" and not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
