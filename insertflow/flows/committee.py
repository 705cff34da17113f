"""A committee of calculators as one jobflow DAG: the same study per member, then one job that compares them.

Each member is an ordinary study under its own name (``<study> [<member>]``), so its calculations
are content-keyed per calculator and reused by any later study with that calculator; the
committee job only reads the members' documents.
"""

from __future__ import annotations

from jobflow import Flow, OnMissing, job

from insertflow import progress
from insertflow.analysis.committee import (
    barrier_spreads,
    defect_energies,
    hull_membership,
    lowest_per_kind,
    mean_and_spread,
    step_verdicts,
    voltage_segments,
)
from insertflow.schemas import CommitteeDoc

STAGE = "analysis"


def member_label(name: str, settings: dict) -> str:
    """``chgnet``, ``sevennet 7net-mf-0``, ``mock voltage=3.8``: the calculator and its model or settings."""
    if settings.get("model") is not None:
        return f"{name} {settings['model']}"
    if settings:
        return name + " " + ",".join(f"{key}={value}" for key, value in sorted(settings.items()))
    return name


def committee_flow(members: list[tuple[str, str, Flow]], study: str, study_type: str, host: dict) -> Flow:
    """The members' flows (label, study name, flow) and the committee job on their outputs."""
    final = committee_study(
        [flow.output for _, _, flow in members],
        [{"label": label, "study": name} for label, name, _ in members],
        study,
        study_type,
        host,
    )
    final.name = f"committee {study}"
    final.config.on_missing_references = OnMissing.NONE
    final.metadata["insertflow"] = {"kind": "study", "study": study}
    return Flow([*(flow for _, _, flow in members), final], output=final.output, name=f"committee {study}")


@job
def committee_study(docs: list, members: list[dict], study: str, study_type: str, host: dict) -> CommitteeDoc:
    """Means and spreads of the members' voltages and energies above hull; what each member failed on."""
    result = CommitteeDoc(study=study, study_type=study_type, host=host)
    finished = {}
    for member, raw in zip(members, docs, strict=True):
        doc = raw if raw is None or isinstance(raw, dict) else raw.model_dump()
        label = member["label"]
        result.members.append({**member, "calculator": None if doc is None else doc.get("calculator")})
        if doc is None:
            result.missing.append(f"{label}: its study did not finish")
            continue
        result.new_calculations += doc.get("new_calculations", 0)
        result.reused_calculations += doc.get("reused_calculations", 0)
        failed = [f["label"] for f in doc.get("failed", [])]
        if failed:
            result.failed_by_member[label] = failed
        result.missing += [f"{label}: {m}" for m in doc.get("missing", [])]
        finished[label] = doc
        if doc.get("spot_checks") and result.spot_checks is None:
            result.spot_checks = {"member": label, **doc["spot_checks"]}
    voltages = [d["average_voltage"] for d in finished.values() if d.get("average_voltage") is not None]
    if len(voltages) == len(members):
        result.average_voltage = mean_and_spread(voltages)
    if study_type == "insertion_levels" and len(finished) == len(members):
        result.segments = voltage_segments({label: d.get("steps", []) for label, d in finished.items()})
        result.steps = step_verdicts(result.segments)
        rows = {
            label: {o["label"]: o for o in d.get("orderings", []) if o.get("e_above_hull") is not None}
            for label, d in finished.items()
        }
        result.orderings = hull_membership(rows)
    if study_type == "defects" and len(finished) == len(members):
        _compare_defects(result, finished)
    if study_type == "barriers" and len(finished) == len(members):
        _compare_hops(result, finished)
    _report(result)
    return result


def _by_label(rows: list[dict]) -> dict[str, dict]:
    return {row["label"]: row for row in rows}


def _compare_defects(result: CommitteeDoc, docs: dict[str, dict]) -> None:
    """Defect energies, lowest configurations, classifications, TM barriers, onset and loop across the members."""
    defects = {label: _by_label(d.get("defects", [])) for label, d in docs.items()}
    result.defects = defect_energies(defects)
    result.lowest_defects = lowest_per_kind(defects)
    kinds = {}
    for label, d in docs.items():
        for cls in d.get("classes", []):
            kinds.setdefault(cls["kind"], {})[label] = cls["classification"]
    result.classes = [
        {"kind": kind, "classification": by, "agree": len(set(by.values())) == 1}
        for kind, by in kinds.items()
        if len(by) == len(docs)
    ]
    first = next(iter(docs.values()))
    temperatures = {c.get("operating_temperature") for c in first.get("classes", [])} - {None}
    result.temperature = temperatures.pop() if len(temperatures) == 1 else None
    result.kinetic_limit = first.get("kinetic_limit")
    barriers = {label: _by_label(d.get("migration_barriers", [])) for label, d in docs.items()}
    if result.temperature is not None:
        result.barriers = barrier_spreads(barriers, result.kinetic_limit, result.temperature)
    if any(d.get("migration_barriers") for d in docs.values()):
        result.migration_onset_x = {label: d.get("migration_onset_x") for label, d in docs.items()}
    loops = [(d.get("hysteresis") or {}).get("average_hysteresis") for d in docs.values()]
    if all(v is not None for v in loops):
        result.hysteresis = mean_and_spread(loops)


def _compare_hops(result: CommitteeDoc, docs: dict[str, dict]) -> None:
    """Working-ion barriers per hop and mode across the members, against the study's kinetic limit."""
    first = next(iter(docs.values()))
    result.temperature = first.get("temperature")
    result.kinetic_limit = first.get("kinetic_limit")
    hops = {label: _by_label(d.get("hops", [])) for label, d in docs.items()}
    result.barriers = barrier_spreads(hops, result.kinetic_limit, result.temperature)


def _report(result: CommitteeDoc) -> None:
    if result.study_type in ("defects", "barriers"):
        undecided = [d for d in result.defects if d["verdict"] == "undecided"]
        summary = (
            f"{len(result.defects)} defect energies ({len(undecided)} undecided in sign), "
            f"{len(result.barriers)} barriers over {len(result.members)} members"
        )
        if result.barriers:
            summary += f", largest barrier spread {max(b['spread'] for b in result.barriers):.3f} eV"
    elif result.average_voltage is None:
        summary = "no committee voltage (a member has none)"
    else:
        summary = (
            f"average voltage {result.average_voltage['mean']:.3f} +- {result.average_voltage['spread']:.3f} V "
            f"over {len(result.members)} members"
        )
    if result.steps:
        resolved = sum(1 for s in result.steps if s["resolved"])
        summary += f"; {resolved} of {len(result.steps)} steps resolved beyond the spread"
    progress.emit(STAGE, f"committee {result.study}", summary)
