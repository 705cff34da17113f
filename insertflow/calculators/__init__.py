"""Calculators behind one protocol, chosen by name from a recipe."""

from __future__ import annotations

import dataclasses
import typing
from importlib import import_module

from pydantic import TypeAdapter, ValidationError

from insertflow.calculators.base import CalculationOutcome, Calculator
from insertflow.errors import CalculatorError

#: name -> "module:class"; imported only when chosen (chgnet pulls in torch).
REGISTRY = {
    "mock": "insertflow.calculators.mock:MockCalculator",
    "chgnet": "insertflow.calculators.chgnet:CHGNetCalculator",
    "sevennet": "insertflow.calculators.sevennet:SevenNetCalculator",
    "vasp": "insertflow.calculators.vasp:VaspCalculator",
    "xtb": "insertflow.calculators.xtb:XTBCalculator",
    "gpaw": "insertflow.calculators.gpaw:GPAWCalculator",
}


def get_calculator(name: str, settings: dict | None = None) -> Calculator:
    """Build the calculator ``name`` with ``settings``; clear errors for unknown names or keys."""
    if name not in REGISTRY:
        raise CalculatorError(f"unknown calculator '{name}'; choose one of: {', '.join(sorted(REGISTRY))}")
    module_name, class_name = REGISTRY[name].split(":")
    cls = getattr(import_module(module_name), class_name)
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings or {}) - allowed)
    if unknown:
        raise CalculatorError(
            f"calculator '{name}' has no setting(s) {', '.join(unknown)}; "
            f"its settings are: {', '.join(sorted(allowed))}"
        )
    checked = _typed(cls, name, settings or {})
    try:
        return cls(**checked)
    except TypeError as exc:
        raise CalculatorError(f"bad settings for calculator '{name}': {exc}") from exc


def _typed(cls: type, name: str, settings: dict) -> dict:
    """Settings validated against the calculator's field types (``voltage: high`` is refused, not run)."""
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, value in settings.items():
        try:
            checked[key] = TypeAdapter(hints[key]).validate_python(value)
        except ValidationError as exc:
            reason, expected = exc.errors()[0]["msg"], _type_name(hints[key])
            raise CalculatorError(
                f"calculator '{name}' setting '{key}' = {value!r} is not valid: {reason} (expected {expected})"
            ) from exc
    return checked


def _type_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


__all__ = ["REGISTRY", "CalculationOutcome", "Calculator", "get_calculator"]
