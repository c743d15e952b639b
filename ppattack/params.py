"""Parameters given as ``K=V`` strings and their checked application to components."""
from __future__ import annotations

import inspect
import json
from typing import Any

from .errors import ParameterError


def parse_assignments(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["block_size=16", "mode=shared"]`` -> ``{"block_size": 16, "mode": "shared"}``.

    Values are read as JSON when they parse (numbers, true/false, null, lists), else as strings.
    A name given twice is an error (the intended value would be a guess); so is a number too
    long to convert.
    """
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ParameterError(f"parameter {item!r} must look like NAME=VALUE, e.g. block_size=16")
        if name in params:
            raise ParameterError(f"parameter '{name}' is given twice: give it once")
        try:
            params[name] = json.loads(text)
        except json.JSONDecodeError:
            params[name] = text
        except ValueError:  # an integer beyond Python's conversion limit (thousands of digits)
            raise ParameterError(f"parameter '{name}' is a number of {len(text)} characters: "
                                 "give a value of a sensible size") from None
    return params


def accepted_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``cls(...)`` accepts, by name: those of ``cls.__init__`` and, while
    a constructor forwards ``**kwargs``, those of its base classes' constructors; the base
    classes' first, each in signature order (a name a subclass declares again keeps its place
    and takes the subclass's declaration), annotations evaluated.

    The one reader of constructor signatures: :meth:`ppattack.Attack.declared_params` and the
    checks of ``K=V`` parameters both read it.
    """
    signatures = []  # the constructors whose parameters cls accepts, the class's own first
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        parameters = list(inspect.signature(klass.__init__, eval_str=True).parameters.values())
        signatures.append(parameters)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    accepted: dict[str, inspect.Parameter] = {}
    for parameters in reversed(signatures):
        for p in parameters:
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                accepted[p.name] = p
    return accepted


def instantiate(cls: type, kind: str, name: str, params: dict[str, Any]) -> Any:
    """``cls(**params)`` with unknown parameter names, and values a constructor cannot take
    (a TypeError or ValueError from converting them), reported as a :class:`ParameterError`."""
    accepted = accepted_parameters(cls)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        listing = ", ".join(accepted) or "none"
        raise ParameterError(f"{kind} '{name}' has no parameter '{unknown[0]}' (parameters: {listing})")
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        given = ", ".join(f"{k}={v!r}" for k, v in params.items() if k not in ("seed", "device"))
        raise ParameterError(f"{kind} '{name}' cannot take {given}: {e}") from None
