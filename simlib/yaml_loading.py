"""YAML reading that refuses duplicate keys and reports parse errors as :class:`SimlibInputError`.

PyYAML silently keeps the last of two equal keys; for a rank bound twice that would hide a mistake, so the
loader below raises instead. YAML 1.1 merge keys (``<<: *base``) are kept: the keys written beside a merge
override the merged ones, as the standard says, and only keys written twice in one mapping are an error.
Every other failure (a file that is not UTF-8, a key that is a list or mapping, a value an explicit tag cannot
construct) is an input error naming the file too, never a traceback.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from simlib.errors import SimlibInputError


class _DuplicateKey(Exception):
    def __init__(self, key: str, first_line: int, second_line: int):
        self.key, self.first_line, self.second_line = key, first_line, second_line


class _UnhashableKey(Exception):
    def __init__(self, line: int):
        self.line = line


MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        """The mapping, after checking the keys written in it: each a scalar (a list or mapping as a key cannot
        be looked up), none twice. A merge key (``<<``) is left to PyYAML's flattening, which lets the keys
        written here override the merged ones."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise _UnhashableKey(line) from None
            if key in seen:
                raise _DuplicateKey(str(key), seen[key], line)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats: PyYAML (YAML 1.1) reads 2.039e12 or 8e3 as strings (its exponent needs a sign and its
# mantissa a dot), which a schema would then coerce or refuse; here they are numbers, as in YAML 1.2 and JSON.
_StrictLoader.yaml_implicit_resolvers = {key: list(value)
                                         for key, value in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml_file(path: Path) -> dict:
    """Parse one YAML file into a mapping; every failure becomes a SimlibInputError naming the file."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise SimlibInputError(source, None, f"cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SimlibInputError(source, None, f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                             f"{exc.start}); expected a YAML file saved as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as dup:
        raise SimlibInputError(
            source, dup.key,
            f"given twice (lines {dup.first_line} and {dup.second_line}); expected each key once") from None
    except _UnhashableKey as bad:
        raise SimlibInputError(source, f"line {bad.line}", "a mapping key must be a scalar (a name or a number), "
                                                           "not a list or a mapping") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SimlibInputError(source, None, f"malformed YAML: {where}{problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:   # a tagged or date-like value PyYAML cannot build
        raise SimlibInputError(source, None, f"malformed YAML: {exc}") from None
    if not isinstance(data, dict):
        raise SimlibInputError(source, None, "expected a YAML mapping at the top level")
    return data
