"""JSON schemas of the files ppattack writes, and a small validator for them.

``result.schema.json`` describes a run's result.json and ``bench.schema.json`` a bench's
bench.json. The validator covers the JSON Schema keywords these files use (type, enum, const,
properties, required, additionalProperties, items, minItems, maxItems, minimum, maximum,
anyOf, oneOf, $ref to ``#/$defs/...`` or to another schema file here)::

    from ppattack.schemas import validate
    errors = validate(document, "result")      # [] when valid, else "at /path: message" lines
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from ..errors import DataError

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


@functools.lru_cache(maxsize=None)
def _load(file: str) -> str:
    try:
        return resources.files(__name__).joinpath(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"no schema file {file} in ppattack.schemas") from None


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (``"result"``, ``"bench"``) or file name (``"result.schema.json"``)."""
    return json.loads(_load(name if name.endswith(".json") else f"{name}.schema.json"))


def validate(instance: Any, schema: str | dict[str, Any]) -> list[str]:
    """Every violation of ``schema`` (a name or a schema dict) by ``instance``; empty if valid."""
    root = load_schema(schema) if isinstance(schema, str) else schema
    errors: list[str] = []
    _check(instance, root, root, "", errors)
    return errors


def _resolve(ref: str, root: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    file, _, pointer = ref.partition("#")
    if file:
        root = load_schema(file)
    node: Any = root
    for part in filter(None, pointer.split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, root


def _check(value: Any, schema: dict[str, Any] | bool, root: dict[str, Any], where: str,
           errors: list[str]) -> None:
    at = where or "/"
    if schema is True:
        return
    if schema is False:
        errors.append(f"at {at}: not allowed")
        return
    if "$ref" in schema:
        target, target_root = _resolve(schema["$ref"], root)
        _check(value, target, target_root, where, errors)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            errors.append(f"at {at}: expected {' or '.join(types)}, got {type(value).__name__} {_short(value)}")
            return
    if "const" in schema and value != schema["const"]:
        errors.append(f"at {at}: expected {schema['const']!r}, got {_short(value)}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"at {at}: {_short(value)} is not one of {schema['enum']}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"at {at}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"at {at}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"at {at}: missing required field '{name}'")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], root, f"{where}/{name}", errors)
            elif extra is False:
                errors.append(f"at {at}: unexpected field '{name}'")
            elif isinstance(extra, dict):
                _check(item, extra, root, f"{where}/{name}", errors)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"at {at}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"at {at}: more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                _check(item, schema["items"], root, f"{where}/{index}", errors)
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            failures = []
            for option in schema[keyword]:
                sub: list[str] = []
                _check(value, option, root, where, sub)
                failures.append(sub)
            passing = sum(not sub for sub in failures)
            if passing == 0:  # report the closest alternative: right type here, fewest errors
                errors.extend(min(failures, key=lambda sub: (
                    any(e.startswith(f"at {at}: expected") for e in sub), len(sub))))
            elif keyword == "oneOf" and passing > 1:
                errors.append(f"at {at}: matches {passing} of the oneOf alternatives, not exactly one")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
