"""DFT spot checks of an insertion-levels study: statics on the ML geometries of what decides its answer.

The points that decide a hull and a profile are its vertices and the orderings just above it.
A spot check computes a static, with another calculator (GPAW here, VASP on HPC), on each of those
ML-relaxed structures and on the working-ion metal. Every static is content-keyed and reused. It
reports ML against DFT per point (formation energies against the end members, each on its own
calculator, and hull membership), and rebuilds the profile from the DFT energies on the ML
geometries. Geometry from the ML potential, energy from DFT: every row says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from jobflow import Flow, OnMissing, Response, job
from monty.json import MSONable

from insertflow import progress
from insertflow.analysis.profile import voltage_profile
from insertflow.analysis.voltage import framework_unit
from insertflow.calculators.base import Calculator, as_structure
from insertflow.flows.calculation import CalculationMaker
from insertflow.references import working_ion_reference
from insertflow.schemas import CalculationRecord, InsertionLevelsDoc, StepDoc

STAGE = "spot checks"


@dataclass
class SpotCheckSettings(MSONable):
    """Which orderings get a DFT static: the hull and what lies within ``window`` of it."""

    window: float = 0.005  # eV per framework unit above the hull
    max_points: int = 12  # at most this many orderings (end members always), smallest cells first
    max_atoms: int | None = None  # only cells of at most this many atoms


def chosen_points(doc: dict, settings: SpotCheckSettings) -> list[dict]:
    """The ordering rows that decide the answer: end members, hull vertices, near-hull orderings.

    Near-hull orderings beyond ``max_points`` are dropped largest cell first; the end members and
    vertices are always kept. Cells above ``max_atoms`` are never chosen (not even the vertices).
    """
    rows = [o for o in doc.get("orderings", []) if o.get("e_above_hull") is not None and o.get("status") == "ok"]
    if settings.max_atoms is not None:
        rows = [o for o in rows if o["n_atoms"] <= settings.max_atoms]
    if not rows:
        return []
    low, high = min(o["x"] for o in rows), max(o["x"] for o in rows)
    must = [o for o in rows if o.get("on_hull") or o["x"] in (low, high)]
    near = [o for o in rows if o not in must and o["e_above_hull"] <= settings.window]
    near.sort(key=lambda o: (o["n_atoms"], o["e_above_hull"]))
    room = max(0, settings.max_points - len(must))
    chosen = must + near[:room]
    return sorted(chosen, key=lambda o: (o["x"], o["label"]))


def with_spot_checks(levels: Flow, calculator: Calculator, settings: SpotCheckSettings, study: str) -> Flow:
    """The levels flow, then the job that plans and runs the spot checks on its document."""
    plan = plan_spot_checks(levels.output, calculator, settings, study)
    plan.name = f"plan spot checks {study}"
    plan.config.on_missing_references = OnMissing.NONE
    return Flow([levels, plan], output=plan.output, name=f"{study} with spot checks")


@job
def plan_spot_checks(doc_raw, calculator: Calculator, settings: SpotCheckSettings, study: str):
    """One static per chosen ordering and one of the working-ion metal, then the comparison."""
    if doc_raw is None:
        return None
    doc = doc_raw if isinstance(doc_raw, dict) else doc_raw.model_dump()
    records = {r["label"]: r for r in doc.get("calculations", [])}
    points = [p for p in chosen_points(doc, settings) if p["label"] in records]
    jobs, labels = [], []
    for point in points:
        structure = as_structure(CalculationRecord.model_validate(records[point["label"]]).entry.structure)
        maker = CalculationMaker(
            calculator=calculator, label=f"spot check {point['label']}", task="static", study=study
        )
        jobs.append(maker.make(structure))
        labels.append(point["label"])
    ion = doc["host"]["working_ion"]
    metal = records.get("working_ion")  # the metal the ML potential relaxed; else the reference cell as built
    ion_structure = (
        as_structure(CalculationRecord.model_validate(metal).entry.structure)
        if metal is not None and metal.get("status") == "ok"
        else working_ion_reference(ion)
    )
    ion_job = CalculationMaker(calculator=calculator, label="spot check working_ion", task="static", study=study).make(
        ion_structure
    )
    progress.add_to_plan("calculations", len(jobs) + 1)
    final = compare_spot_checks(
        doc, [j.output for j in jobs], labels, ion_job.output, calculator.identity(), _skipped(doc, settings)
    )
    final.name = f"spot checks {study}"
    final.config.on_missing_references = OnMissing.NONE
    final.metadata["insertflow"] = {"kind": "study", "study": study}
    return Response(replace=Flow([*jobs, ion_job, final], output=final.output))


def _skipped(doc: dict, settings: SpotCheckSettings) -> list[str]:
    """Hull vertices left out because their cells exceed ``max_atoms``."""
    if settings.max_atoms is None:
        return []
    return [
        f"{o['label']} ({o['n_atoms']} atoms > {settings.max_atoms})"
        for o in doc.get("orderings", [])
        if o.get("on_hull") and o["n_atoms"] > settings.max_atoms
    ]


@job
def compare_spot_checks(
    doc: dict, raws: list, labels: list[str], ion_raw, identity: dict, skipped: list[str] | None = None
) -> InsertionLevelsDoc:
    """ML against DFT per point, and the profile rebuilt from DFT energies on the ML geometries."""
    result = InsertionLevelsDoc.model_validate(doc)
    host = result.host
    ion = host["working_ion"]
    framework = framework_unit(host["formula"], ion)
    by_label = {o.label: o for o in result.orderings}
    records = [None if raw is None else CalculationRecord.model_validate(raw) for raw in raws]
    ion_record = None if ion_raw is None else CalculationRecord.model_validate(ion_raw)
    usable = [(label, r) for label, r in zip(labels, records, strict=True) if r is not None and r.status == "ok"]
    report: dict = {
        "calculator": identity,
        "geometry_from": result.calculator,
        "points": [],
        "failed": [
            f"{label}: {'did not finish' if r is None else r.reason}"
            for label, r in zip(labels, records, strict=True)
            if r is None or r.status != "ok"
        ],
        "naive_relaxations": sum(1 for o in result.orderings if o.relaxed),
        "skipped_vertices": list(skipped or []),
    }
    report["statics"] = len(labels) + 1
    if ion_record is None or ion_record.status != "ok" or len({round(by_label[lb].x, 6) for lb, _ in usable}) < 2:
        report["failed"].append("no DFT profile: the working-ion metal or two compositions are missing")
        result.spot_checks = report
        return result
    profile = voltage_profile(
        [(lb, r.computed_entry()) for lb, r in usable], ion_record.computed_entry(), ion, framework
    )
    dft_points = {p.label: p for p in profile.points}
    for label, record in usable:
        ml, dft = by_label[label], dft_points[label]
        report["points"].append(
            {
                "label": label,
                "x": ml.x,
                "n_atoms": ml.n_atoms,
                "formation_energy_ml": ml.formation_energy,
                "formation_energy_dft": dft.formation_energy,
                "difference": dft.formation_energy - (ml.formation_energy or 0.0),
                "on_hull_ml": ml.on_hull,
                "on_hull_dft": dft.on_hull,
                "content_key": record.content_key,
                "reused": record.reused,
            }
        )
    report["steps"] = [StepDoc(**asdict(s)).model_dump() for s in profile.steps]
    low, high = profile.x_range
    report["average_voltage"] = sum((s.x_high - s.x_low) * s.voltage for s in profile.steps) / (high - low)
    report["hull_agrees"] = all(p["on_hull_ml"] == p["on_hull_dft"] for p in report["points"])
    result.spot_checks = report
    flips = [p["label"] for p in report["points"] if p["on_hull_ml"] != p["on_hull_dft"]]
    progress.emit(
        STAGE,
        f"spot checks {result.study}",
        f"{len(report['points'])} points with {identity['name']}; DFT average {report['average_voltage']:.3f} V"
        + (f"; hull differs at {', '.join(flips)}" if flips else "; same hull"),
    )
    return result
