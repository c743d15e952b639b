"""JSON of frozen dataclass records, generic over :func:`dataclasses.fields`: one key per field,
in the fields' order, so that a record's JSON keys are its fields.

A field tells how its JSON value is read back in its metadata (:func:`read_as`, :func:`read_each`,
:func:`read_values`, :func:`read_with`; without one the JSON value is kept as it is); a field of
one value per metric (:func:`per_metric`, :func:`spread`) is written among the record's keys, a key
per metric, not under its own name; an optional field (:func:`omitted_if_none`) has no key when
it is None.

    @dataclass(frozen=True)
    class Row:
        cipher: str
        accuracy: Accuracy | None = field(metadata=read_as(Accuracy))

    to_json(Row("plain", None)) == {"cipher": "plain", "accuracy": None}
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, Callable, Mapping

from . import metrics

#: The metadata key of a field's reader: JSON value -> field value.
READ = "read"
#: The metadata key of a field whose mapping is written among the record's own keys.
SPREAD = "spread"
#: The metadata key of a field whose key is left out when its value is None.
OMIT_NONE = "omit_none"


def to_json(record: Any) -> dict[str, Any]:
    """``record``'s JSON object: each field's :func:`json_value` under its name, in field order
    (a :func:`spread` field's entries in its place; an :func:`omitted_if_none` field that is None
    left out)."""
    document: dict[str, Any] = {}
    for item in fields(record):
        value = json_value(getattr(record, item.name))
        if value is None and item.metadata.get(OMIT_NONE):
            continue
        if item.metadata.get(SPREAD):
            document.update(value)
        else:
            document[item.name] = value
    return document


def json_value(value: Any) -> Any:
    """A field's value as JSON: a record by its own ``to_json()``, mappings and sequences item by
    item, anything else as it is."""
    if is_dataclass(value):
        return value.to_json()
    if isinstance(value, Mapping):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    return value


def from_json(cls: type, document: Mapping[str, Any]) -> Any:
    """A ``cls`` record from its JSON object: each field read by its reader; a key the document
    lacks leaves the field's default (an older file)."""
    values = {}
    for item in fields(cls):
        read: Callable[[Any], Any] = item.metadata.get(READ, _as_is)
        if item.metadata.get(SPREAD):
            values[item.name] = read(document)
        elif item.name in document:
            values[item.name] = read(document[item.name])
    return cls(**values)


def _as_is(value: Any) -> Any:
    return value


def read_as(record: type) -> dict[str, Any]:
    """Field metadata: the value is a ``record`` (its ``from_json``) or null."""
    return {READ: lambda value: None if value is None else record.from_json(value)}


def read_each(record: type | None = None) -> dict[str, Any]:
    """Field metadata: the value is a list (a tuple in the record) of ``record`` (None: of plain
    JSON values)."""
    return {READ: lambda values: tuple(item if record is None else record.from_json(item) for item in values)}


def read_values(record: type) -> dict[str, Any]:
    """Field metadata: the value is an object of ``record`` values by name."""
    return {READ: lambda values: {name: record.from_json(item) for name, item in values.items()}}


def read_with(read: Callable[[Any], Any]) -> dict[str, Any]:
    """Field metadata: the JSON value is read by ``read`` (JSON value -> field value)."""
    return {READ: read}


def omitted_if_none(read: Callable[[Any], Any] = _as_is) -> dict[str, Any]:
    """Field metadata: no key when the value is None (a key the document lacks leaves the
    field's default); ``read`` reads the JSON value when there is one."""
    return {OMIT_NONE: True, READ: read}


def spread(read: Callable[[Mapping[str, Any]], Any]) -> dict[str, Any]:
    """Field metadata: a mapping written among the record's own keys, not under the field's name;
    ``read`` reads it back from the record's whole JSON object."""
    return {SPREAD: True, READ: read}


def per_metric() -> dict[str, Any]:
    """Field metadata: a mapping of metric name -> mean, written among the record's keys, one per
    metric of :data:`ppattack.metrics.METRICS` (a metric the document lacks reads None)."""
    return spread(lambda document: {metric.name: document.get(metric.name) for metric in metrics.METRICS})
