"""Parsing of ``--set name=value`` options."""
from __future__ import annotations

from simlib.errors import SimlibInputError


def parse_value(text: str):
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            value = convert(text)
        except ValueError:
            continue
        if convert is float and value.is_integer() and "e" in lowered:
            return int(value)
        return value
    if "," in text:
        return [parse_value(part) for part in text.split(",")]
    return text.strip()


def parse_settings(settings: list[str] | None) -> dict:
    parsed: dict = {}
    for item in settings or []:
        if "=" not in item:
            raise SimlibInputError("--set", item, "expected name=value, e.g. --set M=8192")
        name, value = item.split("=", 1)
        name = name.strip()
        if not name:
            raise SimlibInputError("--set", item, "expected a parameter name before '='")
        if name in parsed:
            raise SimlibInputError("--set", name, "given twice; expected each parameter once")
        parsed[name] = parse_value(value)
    return parsed


def with_defaults(model: str, defaults: dict, settings: dict, aliases: dict[str, tuple[str, ...]] | None = None) -> dict:
    """A model's parameters: its defaults overridden by ``--set`` values; an alias sets several parameters at
    once (``seq`` sets ``seq_q`` and ``seq_kv``); an unknown name is an input error listing the known ones."""
    aliases = aliases or {}
    params = dict(defaults)
    for alias, targets in aliases.items():
        both = [t for t in targets if alias in settings and t in settings]
        if both:
            raise SimlibInputError("--set", both[0], f"given twice: '{alias}' already sets "
                                                     f"{' and '.join(targets)}; give one or the other")
    for name, value in settings.items():
        if name in aliases:
            params.update({target: value for target in aliases[name]})
        elif name in params:
            params[name] = value
        else:
            known = ", ".join([*aliases, *defaults])
            raise SimlibInputError("--set", name, f"{model} has no parameter '{name}' (expected one of: {known})")
    return params


def check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SimlibInputError("--set", name, f"expected a positive integer, got {value!r}")
