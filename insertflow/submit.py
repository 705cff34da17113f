"""Submit a recipe's study to a workflow engine (FireWorks, jobflow-remote); never a home-made scheduler.

FireWorks: the study flow becomes a FireWorks workflow through jobflow's ``flow_to_workflow``
and goes to the LaunchPad in the user's ``my_launchpad.yaml``; workers run it with
``rlaunch``/``qlaunch``. An embedded store is embedded in the workflow (its path only); a
MongoDB store is not (credentials must not land in the LaunchPad), so workers use the store
of their jobflow configuration (``JOBFLOW_CONFIG_FILE``), which must be the same database.
jobflow-remote: ``jobflow_remote.submit_flow`` with a project and worker name.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from insertflow.errors import InsertflowError
from insertflow.recipe import Recipe
from insertflow.runner import build_study
from insertflow.store import StoreConfig, open_store

ENGINES = ("fireworks", "jobflow-remote")


class SubmitError(InsertflowError):
    """The workflow engine could not take the study."""


def submit(
    recipe: Recipe,
    config: StoreConfig,
    engine: str = "fireworks",
    launchpad: str | None = None,
    project: str | None = None,
    worker: str | None = None,
) -> str:
    """Build the study flow and hand it to ``engine``; return a one-line description of what was done."""
    _check_target(engine, config)
    _, flow, plan = build_study(recipe)
    return submit_flow(flow, config, engine, launchpad, project, worker, plan)


def submit_flow(
    flow,
    config: StoreConfig,
    engine: str = "fireworks",
    launchpad: str | None = None,
    project: str | None = None,
    worker: str | None = None,
    plan: dict | None = None,
) -> str:
    """Hand any jobflow Flow (a recipe's, or one composed in Python) to ``engine``; one line back."""
    _check_target(engine, config)
    if engine == "fireworks":
        return _to_fireworks(flow, config, launchpad, plan or {})
    return _to_jobflow_remote(flow, project, worker, plan or {})


def _check_target(engine: str, config: StoreConfig) -> None:
    """Refuse, before building anything, an unknown engine or a store workers cannot write to."""
    if engine not in ENGINES:
        raise SubmitError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
    if config.type == "memory":
        raise SubmitError(
            "an in-memory store cannot collect results from workers; submit with an embedded or MongoDB store"
        )


def load_launchpad(path: str | None = None):
    """The user's LaunchPad, with clear errors for a missing, malformed or unreachable one."""
    from fireworks import LaunchPad
    from fireworks.fw_config import LAUNCHPAD_LOC

    location = Path(path or LAUNCHPAD_LOC or Path.home() / ".fireworks" / "my_launchpad.yaml").expanduser()
    if not location.exists():
        raise SubmitError(
            f"LaunchPad file {location} does not exist; give --launchpad my_launchpad.yaml "
            "(see docs/hpc.md for a template)"
        )
    try:
        settings = yaml.safe_load(location.read_text())
    except yaml.YAMLError as exc:
        raise SubmitError(f"LaunchPad file {location} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(settings, dict) or not ({"host", "uri_mode"} & set(settings)):
        raise SubmitError(f"LaunchPad file {location} needs at least 'host' and 'name' (see docs/hpc.md)")
    kwargs = settings.setdefault("mongoclient_kwargs", {}) or {}
    kwargs.setdefault("serverSelectionTimeoutMS", 5000)  # an unreachable server fails in seconds, not minutes
    settings["mongoclient_kwargs"] = kwargs
    try:
        pad = LaunchPad.from_dict(settings)
        pad.fireworks.find_one({}, {"fw_id": 1})  # touch the database now: fail here, not after building
    except Exception as exc:  # pymongo raises many types (ServerSelectionTimeoutError, ConfigurationError ...)
        reason = str(exc).splitlines()[0][:200]
        raise SubmitError(f"cannot reach the LaunchPad in {location}: {type(exc).__name__}: {reason}") from exc
    return pad


def _to_fireworks(flow, config: StoreConfig, launchpad: str | None, plan: dict) -> str:
    from jobflow.managers.fireworks import flow_to_workflow

    pad = load_launchpad(launchpad)
    store = open_store(config) if config.type == "embedded" else None
    workflow = flow_to_workflow(flow, store=store)
    try:
        mapping = pad.add_wf(workflow)
    except ValueError as exc:  # FireWorks' message for a LaunchPad that was never reset
        if "next FW id" in str(exc):
            raise SubmitError(
                f"the LaunchPad {pad.host}/{pad.name} is not initialised: run `lpad reset` once, then submit again"
            ) from exc
        raise
    where = f"{pad.host}/{pad.name}"
    worker_store = "the embedded store in the workflow" if store else "the workers' JOBFLOW_CONFIG_FILE store"
    return (
        f"submitted '{flow.name}' to the LaunchPad {where}: {len(mapping)} fireworks "
        f"({plan.get('calculations', '?')} calculations planned); results go to {worker_store}. "
        "Run them with `rlaunch rapidfire` or `qlaunch rapidfire`"
    )


def _to_jobflow_remote(flow, project: str | None, worker: str | None, plan: dict) -> str:
    try:
        from jobflow_remote import submit_flow
    except ImportError as exc:
        raise SubmitError(
            "the jobflow-remote engine needs jobflow-remote: pip install jobflow-remote, then "
            "`jf project generate` (docs/hpc.md has a SLURM project template)"
        ) from exc
    if not worker:
        raise SubmitError("--worker is required for jobflow-remote (a worker name from your project file)")
    project = project or os.environ.get("JFREMOTE_PROJECT")
    ids = submit_flow(flow, worker=worker, project=project)
    return (
        f"submitted '{flow.name}' to jobflow-remote project {project or '(default)'}, worker {worker}: "
        f"{len(ids) if ids else '?'} jobs ({plan.get('calculations', '?')} calculations planned); "
        "follow it with `jf job list`"
    )
