"""JSON schemas of the files ppattack writes, validated with the ``jsonschema`` package.

``result.schema.json`` describes a run's result.json, ``bench.schema.json`` a bench's
bench.json and ``audit.schema.json`` an audit's audit.json (JSON Schema draft 2020-12; a
``$ref`` may name another schema file here). Where a schema lists the metrics, its files name
only the schema of each (the keyword ``x-ppattack-metrics``): :func:`load_schema` adds a property
per metric of :data:`ppattack.metrics.METRICS`, so that a metric is added in one place::

    from ppattack.schemas import validate
    errors = validate(document, "result")      # [] when valid, else "at /path: message" lines
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ..metrics import METRICS

if TYPE_CHECKING:
    from jsonschema import ValidationError

SCHEMA_FILES = ("result.schema.json", "bench.schema.json", "audit.schema.json")
#: The keyword of an object schema whose properties include one per metric: its value is the
#: schema of each.
METRICS_KEYWORD = "x-ppattack-metrics"


@functools.lru_cache(maxsize=None)
def _load(file: str) -> str:
    try:
        return resources.files(__name__).joinpath(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"no schema file {file} in ppattack.schemas") from None


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (``"result"``, ``"bench"``, ``"audit"``) or file name
    (``"result.schema.json"``), with its metric properties (:func:`with_metrics`)."""
    return with_metrics(json.loads(_load(name if name.endswith(".json") else f"{name}.schema.json")))


def with_metrics(node: Any) -> Any:
    """``node`` (a schema, or a part of one) where every object schema that has the keyword
    :data:`METRICS_KEYWORD` also has a property per metric of :data:`ppattack.metrics.METRICS`:
    the keyword's schema, described by the metric's label and direction."""
    if isinstance(node, list):
        return [with_metrics(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: with_metrics(value) for key, value in node.items()}
    if METRICS_KEYWORD in node:
        each = node[METRICS_KEYWORD]
        metrics = {metric.name: {**each, "description": f"{metric.heading()} "
                                 f"({'higher' if metric.higher_is_better else 'lower'} is better)"}
                   for metric in METRICS}
        node["properties"] = {**metrics, **node.get("properties", {})}
    return node


@functools.lru_cache(maxsize=None)
def _registry():
    """Every schema here under its ``$id``, so that one file's ``$ref`` reaches another."""
    from referencing import Registry, Resource

    schemas = [load_schema(file) for file in SCHEMA_FILES]
    return Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas)


def schema_errors(instance: Any, schema: str | dict[str, Any]) -> list[ValidationError]:
    """Every violation of ``schema`` (a name or a schema dict) by ``instance``, as jsonschema's
    errors sorted by path; empty if valid."""
    from jsonschema import Draft202012Validator

    root = load_schema(schema) if isinstance(schema, str) else schema
    validator = Draft202012Validator(root, registry=_registry())
    return sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])


def validate(instance: Any, schema: str | dict[str, Any]) -> list[str]:
    """Every violation of ``schema`` (a name or a schema dict) by ``instance``, as
    ``"at /path: message"`` lines sorted by path; empty if valid."""
    return [f"at /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
            for error in schema_errors(instance, schema)]
