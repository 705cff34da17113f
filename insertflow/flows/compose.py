"""Study makers that compose like atomate2's: ``make(structure)`` from a Structure or an upstream output.

``maker.make(host)`` with an insertflow ``Host`` plans at once (the CLI's route: bad input fails
before anything is submitted). ``maker.make(structure, working_ion="Li")`` with a pymatgen
``Structure``, its dict, or an ``OutputReference`` to one (``relax.output.structure``) returns a
flow of one planning job instead. When it runs, that job validates the structure as a host, plans
(enumeration, Ewald ranking, defect generation, supercells) and replaces itself with the study flow
the CLI would have built, so content keys and reuse are the same on both routes. A planning job
that cannot use its input stores a ``FailedStudyDoc`` with the reason, in one line.
"""

from __future__ import annotations

from typing import Any

from jobflow import CURRENT_JOB, Flow, Response, job
from jobflow.core.reference import OutputReference
from pymatgen.core import Structure

from insertflow import progress
from insertflow.errors import InsertflowError
from insertflow.hosts import Host, load_host
from insertflow.schemas import FailedStudyDoc

PLAN_STAGE = "planning"


class StudyInputError(InsertflowError):
    """The planning job's input is not a structure."""


class ComposableMaker:
    """Mixin of the study makers: ``make`` takes a Host (plans now) or a structure (plans in a job)."""

    study_kind = "study"  # the kind of the study document (schemas)

    def make(self, structure: Host | Structure | OutputReference | dict, working_ion: str = "Li") -> Flow:
        """The study flow of ``structure``; a ``Host`` is planned now, anything else in the first job."""
        if isinstance(structure, Host):
            return self.make_for_host(structure)
        source = None
        if isinstance(structure, OutputReference):
            source = {"uuid": structure.uuid, "attributes": _attributes(structure)}
        elif not isinstance(structure, (Structure, dict)):
            raise StudyInputError(
                f"{type(self).__name__}.make takes a Structure, its dict or an upstream job's output, "
                f"not {type(structure).__name__}"
            )
        planner = plan_study(self, structure, working_ion, source)
        planner.name = f"plan {self.study}"
        planner.config.expose_store = True  # it names the job that produced a bad input
        # set directly: update_metadata is dynamic and would relabel the replacement's jobs too
        planner.metadata["insertflow"] = {"kind": "study", "study": self.study}
        return Flow([planner], output=planner.output, name=f"{self.study}: {self.name}")

    def make_for_host(self, host: Host) -> Flow:  # pragma: no cover - every maker defines it
        """The study flow of a validated host, planned now."""
        raise NotImplementedError


@job
def plan_study(maker: ComposableMaker, structure: Any, working_ion: str, source: dict | None) -> Response:
    """Validate ``structure`` as a host, plan the study and replace this job with it."""
    study = maker.study
    try:
        host = load_host(_as_structure(structure, source, study), working_ion=working_ion)
        progress.emit(PLAN_STAGE, study, f"host {host.formula} ({len(host.structure)} sites): planning...")
        flow = maker.make_for_host(host)
    except InsertflowError as exc:
        reason = str(exc).splitlines()[0]
        progress.emit(PLAN_STAGE, study, f"refused: {reason}")
        return Response(output=FailedStudyDoc(study=study, kind=maker.study_kind, error=reason, source=source or {}))
    progress.emit(PLAN_STAGE, study, f"{len(flow.jobs)} jobs planned")
    return Response(replace=flow)


def _as_structure(value: Any, source: dict | None, study: str) -> Structure:
    if isinstance(value, Structure):
        return value
    if isinstance(value, dict) and "lattice" in value and "sites" in value:
        try:
            return Structure.from_dict(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise StudyInputError(f"study '{study}': its input dict is not a structure ({exc})") from exc
    what = f"a {type(value).__name__}"
    if source is None:
        raise StudyInputError(f"study '{study}': its input is {what}, not a structure")
    raise StudyInputError(
        f"study '{study}': {_producer(source)} gave {what} at {source['attributes'] or 'output'}, not a structure"
    )


def _producer(source: dict) -> str:
    """The upstream job, by name when the store knows it."""
    name = None
    store = CURRENT_JOB.store
    if store is not None:
        found = store.query_one({"uuid": source["uuid"]}, properties=["name"], sort={"index": -1})
        name = (found or {}).get("name")
    return f"job '{name}' ({source['uuid']})" if name else f"job {source['uuid']}"


def _attributes(reference: OutputReference) -> str:
    parts = ["output"]
    for kind, attribute in reference.attributes:
        parts.append(f".{attribute}" if kind == "a" else f"[{attribute!r}]")
    return "".join(parts)
