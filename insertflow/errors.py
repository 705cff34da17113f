"""One error type per failure family; each message says what was wrong and what to do."""

from __future__ import annotations


class InsertflowError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class HostError(InsertflowError):
    """The host structure is missing, malformed or not a valid insertion host."""


class RecipeError(InsertflowError):
    """The recipe YAML is missing, malformed or has unknown or invalid keys."""


class CalculatorError(InsertflowError):
    """A calculator is unknown, not installed, misconfigured, or a calculation failed."""


class StoreError(InsertflowError):
    """The store cannot be opened, reached or written."""
