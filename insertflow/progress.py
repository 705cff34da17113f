"""Progress of a running study: which stage, how many of how many.

Jobs call ``emit``; when a run is local (``insertflow run``), an active reporter prints
each event as ``[stage i/n] item: status``. On a remote worker nothing is active and
events go to the log. The same module collects exception messages of failed jobs in
local runs so failure records can say why (remote engines keep their own tracebacks).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

logger = logging.getLogger("insertflow")

_active: ProgressReporter | None = None
_job_errors: dict[str, str] = {}


class ProgressReporter:
    """Counts finished items per stage against the planned totals and prints them."""

    def __init__(self, plan: dict[str, int], stream: TextIO | None = None):
        """``plan`` maps each stage name to the number of items it will finish."""
        self.plan = dict(plan)
        self.done: Counter[str] = Counter()
        self.stream = stream or sys.stderr

    def update(self, stage: str, item: str, status: str) -> None:
        """Record and print one event; ``status`` ending in '...' means started, not finished."""
        started = status.endswith("...")
        if not started:
            self.done[stage] += 1
        number = self.done[stage] + (1 if started else 0)
        total = self.plan.get(stage)
        count = f"{number}/{total}" if total else str(number)
        print(f"[{stage} {count}] {item}: {status}", file=self.stream, flush=True)


def emit(stage: str, item: str, status: str) -> None:
    """Report an event to the active reporter, or to the log."""
    if _active is not None:
        _active.update(stage, item, status)
    else:
        logger.info("[%s] %s: %s", stage, item, status)


def add_to_plan(stage: str, count: int) -> None:
    """A job that learns at run time how many items a stage gets (spot checks, discharge relaxations) adds them."""
    if _active is not None and count:
        _active.plan[stage] = _active.plan.get(stage, 0) + count


@contextmanager
def reporting(reporter: ProgressReporter) -> Iterator[ProgressReporter]:
    """Make ``reporter`` receive events (and collect job exceptions) inside the block."""
    global _active
    previous, _active = _active, reporter
    _job_errors.clear()  # messages belong to one run; a stale one must not explain a later failure
    handler = _JobErrorHandler()
    jobflow_logger = logging.getLogger("jobflow.managers.local")
    jobflow_logger.addHandler(handler)
    old_level = jobflow_logger.level
    jobflow_logger.setLevel(logging.INFO)
    try:
        yield reporter
    finally:
        _active = previous
        _job_errors.clear()
        jobflow_logger.removeHandler(handler)
        jobflow_logger.setLevel(old_level)


def job_error(job_name: str) -> str | None:
    """Last line of the exception a job of this name raised in this process, if any."""
    return _job_errors.get(job_name)


class _JobErrorHandler(logging.Handler):
    """Keeps the final line of jobflow's '<name> failed with exception' messages."""

    marker = " failed with exception:"

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.marker in message:
            name, _, trace = message.partition(self.marker)
            lines = [line for line in trace.strip().splitlines() if line.strip()]
            _job_errors[name] = lines[-1].strip() if lines else "unknown error"
