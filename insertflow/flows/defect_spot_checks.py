"""DFT spot checks of a defect study: statics on the ML geometries of the defects that decide it.

What decides a defect study is the lowest configuration of each kind at each x (its energy sets the
concentration and the class) and the migrated TM the hysteresis runs on. A spot check computes a
static with another calculator (GPAW here, VASP on HPC) on each of those ML-relaxed defect cells
and on the pristine host each is measured from. Where the defect changes the composition it also
computes the competing phases, the working-ion metal and every verified pristine host. So the
DFT energy gets the DFT chemical potentials: the host's stability region against the same phases,
with mu_ion(x) from the DFT voltage profile. The ML potentials never enter it. Each static is
content-keyed and reused. Geometry from the ML potential, energy from DFT: every row says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobflow import Flow, OnMissing, Response, job
from monty.json import MSONable
from pymatgen.core import Composition

from insertflow import progress
from insertflow.analysis.chemical_potentials import named_limit, stability_region, with_impurities
from insertflow.analysis.defects import defect_energy, ion_chemical_potential
from insertflow.analysis.energy_scale import energy_scale, mixes_scales
from insertflow.analysis.profile import voltage_profile
from insertflow.analysis.voltage import framework_unit
from insertflow.calculators.base import Calculator, as_structure
from insertflow.flows.calculation import CalculationMaker
from insertflow.schemas import CalculationRecord, DefectStudyDoc

STAGE = "spot checks"

#: Kinds whose energy is a plain difference of two cells of one composition: no chemical potentials.
SAME_COMPOSITION = ("migration", "exchange")


@dataclass
class DefectSpotCheckSettings(MSONable):
    """How many defect configurations get a DFT static (the migrated TM of the hysteresis always does)."""

    max_points: int = 12
    max_atoms: int | None = None  # only defect cells of at most this many atoms


def chosen_defects(doc: dict, settings: DefectSpotCheckSettings) -> list[dict]:
    """The defect rows that decide the study: the lowest counted one per kind and x, and the migrated TM.

    Beyond ``max_points`` the rows whose energy lies farthest from zero (whose sign no plausible
    error flips) are dropped first; the migrated TM is always kept.
    """
    lowest: dict[tuple[str, float], dict] = {}
    for row in doc.get("defects", []):
        if row.get("energy") is None or not row.get("counted", True) or row.get("status") != "ok":
            continue
        if settings.max_atoms is not None and row["n_atoms"] > settings.max_atoms:
            continue
        key = (row["kind"], round(row["x"], 6))
        if key not in lowest or row["energy"] < lowest[key]["energy"]:
            lowest[key] = row
    migrated = (doc.get("hysteresis") or {}).get("migrated_label")
    small = settings.max_atoms is None or any(
        r["n_atoms"] <= settings.max_atoms for r in doc.get("defects", []) if r["label"] == migrated
    )
    must = [r for r in doc.get("defects", []) if small and r["label"] == migrated and r.get("energy") is not None]
    rest = sorted((r for r in lowest.values() if r not in must), key=lambda r: abs(r["energy"]))
    chosen = must + rest[: max(0, settings.max_points - len(must))]
    return sorted(chosen, key=lambda r: (r["x"], r["kind"], r["label"]))


def with_defect_spot_checks(
    defects: Flow, calculator: Calculator, settings: DefectSpotCheckSettings, study: str, fixed_mu: dict[str, float]
) -> Flow:
    """The defect flow, then the job that plans and runs the spot checks on its document.

    ``fixed_mu``: the chemical potentials the recipe holds fixed (eV/atom), held fixed for DFT too.
    """
    plan = plan_defect_spot_checks(defects.output, calculator, settings, study, fixed_mu)
    plan.name = f"plan spot checks {study}"
    plan.config.on_missing_references = OnMissing.NONE
    return Flow([defects, plan], output=plan.output, name=f"{study} with spot checks")


def _needed(doc: dict, points: list[dict], records: dict) -> list[str]:
    """Labels of the ML records that need a DFT static: the points, their hosts and, if mu enters, the rest."""
    labels = [p["label"] for p in points] + sorted({p["reference_label"] for p in points if p.get("reference_label")})
    if any(p["kind"] not in SAME_COMPOSITION for p in points):
        kept = [p["label"] for p in doc.get("pristine", []) if p.get("status") == "ok" and p.get("geometry") == "kept"]
        labels += [*kept, "working_ion", *sorted(label for label in records if label.startswith("competing "))]
    unique = list(dict.fromkeys(labels))
    return [label for label in unique if records.get(label, {}).get("status") == "ok"]


@job
def plan_defect_spot_checks(
    doc_raw, calculator: Calculator, settings: DefectSpotCheckSettings, study: str, fixed_mu: dict[str, float]
):
    """One static per chosen defect, its host and (where mu enters) every phase it needs; then the comparison."""
    if doc_raw is None:
        return None
    doc = doc_raw if isinstance(doc_raw, dict) else doc_raw.model_dump()
    records = {r["label"]: r for r in doc.get("calculations", [])}
    points = [p for p in chosen_defects(doc, settings) if p["label"] in records]
    labels = _needed(doc, points, records)
    jobs = []
    for label in labels:
        structure = as_structure(CalculationRecord.model_validate(records[label]).entry.structure)
        maker = CalculationMaker(calculator=calculator, label=f"spot check {label}", task="static", study=study)
        jobs.append(maker.make(structure))
    progress.add_to_plan("calculations", len(jobs))
    final = compare_defect_spot_checks(
        doc, [j.output for j in jobs], labels, [p["label"] for p in points], calculator.identity(), fixed_mu
    )
    final.name = f"spot checks {study}"
    final.config.on_missing_references = OnMissing.NONE
    final.metadata["insertflow"] = {"kind": "study", "study": study}
    return Response(replace=Flow([*jobs, final], output=final.output))


def dft_chemical_potentials(
    doc: dict, dft: dict[str, CalculationRecord], fixed_mu: dict[str, float]
) -> tuple[dict, dict[float, float], list[str]]:
    """The DFT competing phases (label -> composition, energy), mu_ion per x from the DFT profile, and what failed."""
    ion = doc["host"]["working_ion"]
    problems = []
    phases = {}
    if "working_ion" in dft:
        phases[ion] = (dft["working_ion"].entry.composition, dft["working_ion"].entry.energy)
    for label, record in dft.items():
        if label.startswith("competing "):
            phases[label.removeprefix("competing ")] = (record.entry.composition, record.entry.energy)
    hosts = [(p["label"], p["x"]) for p in doc.get("pristine", []) if p["label"] in dft]
    mu_ion: dict[float, float] = {}
    if ion in phases and len({round(x, 6) for _, x in hosts}) >= 2:
        framework = framework_unit(doc["host"]["formula"], ion)
        profile = voltage_profile(
            [(label, dft[label].computed_entry()) for label, _ in hosts],
            dft["working_ion"].computed_entry(),
            ion,
            framework,
        )
        low, high = profile.x_range
        mu_ion = {x: ion_chemical_potential(profile, x) for _, x in hosts if low - 1e-9 <= x <= high + 1e-9}
    elif ion not in fixed_mu:
        problems.append("no DFT voltage profile (the metal or two pristine compositions): mu_ion is not bounded")
    return phases, mu_ion, problems


def dft_defect_energy(
    row: dict, dft: dict[str, CalculationRecord], phases: dict, mu_ion: dict[float, float], fixed_mu: dict, doc: dict
) -> tuple[float | None, str | None]:
    """The DFT energy of one defect row at the study's limit, from DFT energies only; or None and why."""
    e_defect, host = dft[row["label"]].entry.energy, dft.get(row["reference_label"])
    if host is None:
        return None, f"its host {row['reference_label']} has no DFT static"
    if row["kind"] in SAME_COMPOSITION:
        return e_defect - host.entry.energy, None
    ion = doc["host"]["working_ion"]
    fixed = dict(fixed_mu)
    if row["x"] in mu_ion:
        fixed[ion] = mu_ion[row["x"]]
    try:
        region = stability_region(host.entry.composition, host.entry.energy, phases, fixed)
    except ValueError as exc:
        return None, f"no DFT stability region: {exc}"
    limit = named_limit(region, doc.get("chemical_potential_limit") or "")
    if limit is None:
        return None, f"the DFT region has no limit '{doc.get('chemical_potential_limit')}'"
    mu, unbounded = with_impurities(limit.mu, {el for el, n in row["change"].items() if n}, phases)
    if unbounded:
        return None, unbounded[0]
    return defect_energy(e_defect, host.entry.energy, row["change"], mu), None


@job
def compare_defect_spot_checks(
    doc: dict, raws: list, labels: list[str], points: list[str], identity: dict, fixed_mu: dict[str, float]
) -> DefectStudyDoc:
    """ML against DFT per chosen defect: its energy at the study's limit, and whether it forms."""
    result = DefectStudyDoc.model_validate(doc)
    records = [None if raw is None else CalculationRecord.model_validate(raw) for raw in raws]
    dft = {label: r for label, r in zip(labels, records, strict=True) if r is not None and r.status == "ok"}
    report: dict = {
        "calculator": identity,
        "geometry_from": result.calculator,
        "energy_scale": energy_scale(identity),
        "limit": result.chemical_potential_limit,
        "statics": len(labels),
        "naive_relaxations": len(result.calculations),
        "points": [],
        "failed": [
            f"{label}: {'did not finish' if r is None else r.reason}"
            for label, r in zip(labels, records, strict=True)
            if r is None or r.status != "ok"
        ],
        "notes": [],
    }
    if mixes_scales(identity, {el.symbol for el in Composition(doc["host"]["formula"]).elements}):
        report["notes"].append(
            f"{identity['name']} energies carry no MP2020-style correction: limits bounded by a TM metal mix scales"
        )
    phases, mu_ion, problems = dft_chemical_potentials(doc, dft, fixed_mu)
    report["failed"] += problems
    migrated = (doc.get("hysteresis") or {}).get("migrated_label")
    rows = {r["label"]: r for r in doc.get("defects", [])}
    for label in points:
        row = rows[label]
        if label not in dft:
            continue
        energy, why = dft_defect_energy(row, dft, phases, mu_ion, fixed_mu, doc)
        if energy is None:
            report["failed"].append(f"{label}: {why}")
            continue
        report["points"].append(
            {
                "label": label,
                "kind": row["kind"],
                "x": row["x"],
                "n_atoms": row["n_atoms"],
                "energy_ml": row["energy"],
                "energy_dft": round(energy, 6),
                "difference": round(energy - row["energy"], 6),
                "favourable_ml": row["energy"] < 0,
                "favourable_dft": energy < 0,
                "migrated_state": label == migrated,
                "content_key": dft[label].content_key,
                "reused": dft[label].reused,
            }
        )
    report["signs_agree"] = all(p["favourable_ml"] == p["favourable_dft"] for p in report["points"])
    result.spot_checks = report
    flips = [p["label"] for p in report["points"] if p["favourable_ml"] != p["favourable_dft"]]
    progress.emit(
        STAGE,
        f"spot checks {result.study}",
        f"{len(report['points'])} defects with {identity['name']} ({len(labels)} statics)"
        + (f"; DFT flips the sign of {', '.join(flips)}" if flips else "; every sign agrees"),
    )
    return result
