"""JSON schemas of the files ppattack writes, validated with the ``jsonschema`` package.

``result.schema.json`` describes a run's result.json, ``bench.schema.json`` a bench's
bench.json and ``audit.schema.json`` an audit's audit.json (JSON Schema draft 2020-12; a
``$ref`` may name another schema file here)::

    from ppattack.schemas import validate
    errors = validate(document, "result")      # [] when valid, else "at /path: message" lines
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from ..errors import DataError

SCHEMA_FILES = ("result.schema.json", "bench.schema.json", "audit.schema.json")


@functools.lru_cache(maxsize=None)
def _load(file: str) -> str:
    try:
        return resources.files(__name__).joinpath(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"no schema file {file} in ppattack.schemas") from None


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (``"result"``, ``"bench"``, ``"audit"``) or file name (``"result.schema.json"``)."""
    return json.loads(_load(name if name.endswith(".json") else f"{name}.schema.json"))


@functools.lru_cache(maxsize=None)
def _registry():
    """Every schema here under its ``$id``, so that one file's ``$ref`` reaches another."""
    from referencing import Registry, Resource

    schemas = [load_schema(file) for file in SCHEMA_FILES]
    return Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas)


def validate(instance: Any, schema: str | dict[str, Any]) -> list[str]:
    """Every violation of ``schema`` (a name or a schema dict) by ``instance``, as
    ``"at /path: message"`` lines sorted by path; empty if valid."""
    from jsonschema import Draft202012Validator

    root = load_schema(schema) if isinstance(schema, str) else schema
    validator = Draft202012Validator(root, registry=_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"at /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}" for error in errors]
