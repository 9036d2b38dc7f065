"""Turn a pydantic ValidationError into one SimlibInputError naming the field and what was expected."""
from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError

from simlib.errors import SimlibInputError
from simlib.strict_schema import NestedValueError

INTERNAL_FIELDS = {"source_file"}       # set by the loaders from the file's path, not written in the YAML
UNION_MEMBERS = {"int", "float", "str", "bool", "list", "dict", "none"}


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names allowed at the parent of ``loc``, followed through nested models where possible."""
    current: type | None = model
    for part in loc[:-1]:
        if current is None or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            continue  # dict key or list index: stay with the value type
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [name for name in current.model_fields if name not in INTERNAL_FIELDS]
    return []


def _model_in(annotation) -> type | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def raise_for_validation(source: str, model: type[BaseModel], exc: ValidationError) -> None:
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # pydantic names the member of a union it tried (ranks.N.int); the user's field is the path without it
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (p in UNION_MEMBERS or "[" in p)))
    nested = (err.get("ctx") or {}).get("error")
    if isinstance(nested, NestedValueError):      # a value inside the field: name the path down to it
        loc = (*loc, *nested.path)
    field = ".".join(str(p) for p in loc) or None
    if err["type"] == "extra_forbidden":
        allowed = _allowed_fields(model, loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        expected = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        raise SimlibInputError(source, field, f"unknown field{expected}{hint}") from None
    if err["type"] == "missing":
        raise SimlibInputError(source, field, "required field is missing") from None
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    # a whole-model check names its own fields; the input is then the whole file, too long to repeat
    shown = "" if not loc or "got" in msg else f" (got {err.get('input')!r})"
    raise SimlibInputError(source, field, f"{msg}{shown}") from None
