"""Run a recipe locally with jobflow and return the stored study document."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from jobflow import Flow, JobStore, run_locally

from insertflow.calculators import get_calculator
from insertflow.db import latest_study
from insertflow.errors import InsertflowError
from insertflow.flows.calculation import LayerGuard
from insertflow.flows.end_members import EndMemberVoltageMaker
from insertflow.hosts import Host, load_host
from insertflow.progress import ProgressReporter, reporting
from insertflow.recipe import Recipe
from insertflow.store import open_store, resolve_store_config


def build_study(recipe: Recipe) -> tuple[Host, Flow, dict[str, int]]:
    """Validate host and calculator and build the study flow (no store touched yet)."""
    host = load_host(
        recipe.host,
        working_ion=recipe.working_ion,
        relative_to=recipe.folder,
        check_oxidation_states=recipe.check_oxidation_states,
    )
    calculator = get_calculator(recipe.calculator.name, recipe.calculator.settings)
    guard = LayerGuard(policy=recipe.layer_guard.policy, max_gap_growth=recipe.layer_guard.max_gap_growth)
    maker = EndMemberVoltageMaker(calculator=calculator, guard=guard, study=recipe.name)
    flow = maker.make(host)
    return host, flow, {"calculations": 3, "analysis": 1}


def run_recipe(
    recipe: Recipe,
    store: JobStore | None = None,
    store_override: str | None = None,
    stream: TextIO | None = None,
    verbose: bool = False,
) -> dict:
    """Run ``recipe`` on this machine; return the study document as stored."""
    _, flow, plan = build_study(recipe)
    store = store or open_store(resolve_store_config(recipe.store, store_override, recipe.folder))
    with _workdir(recipe.workdir) as root, reporting(ProgressReporter(plan, stream)), _quiet_libraries():
        run_locally(flow, store=store, root_dir=root, create_folders=True, log=verbose)
    doc = latest_study(store, recipe.name)
    if doc is None:
        raise InsertflowError(f"study '{recipe.name}' did not finish; run again with --verbose to see the job log")
    return doc


@contextlib.contextmanager
def _workdir(path: str | None) -> Iterator[Path]:
    if path:
        folder = Path(path).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix="insertflow-") as tmp:
            yield Path(tmp)


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Hide third-party deprecation chatter during a run; our own messages still print."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield
