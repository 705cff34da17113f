"""Insertion levels: orderings at every x -> Ewald -> (ML single points) -> relax -> hull and profile.

The enumeration and Ewald ranking run when the flow is made (seconds, no calculator, bad
input fails before anything is submitted). With a screening calculator, ``screen_orderings``
ranks the Ewald survivors by single-point energies at run time and replaces itself with
the relaxations of the best ``keep`` per x plus the profile job; without one, those
relaxations are in the flow from the start. Every relaxation is a reuse-aware
``CalculationMaker`` job, so a rerun computes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from jobflow import CURRENT_JOB, Flow, Maker, OnMissing, Response, job
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from insertflow import progress
from insertflow.analysis.profile import voltage_profile
from insertflow.analysis.voltage import electrode_document, framework_unit
from insertflow.calculators.base import Calculator, SinglePoint, SinglePointScreener
from insertflow.errors import CalculatorError, InsertflowError, RecipeError
from insertflow.flows.calculation import CalculationMaker, LayerGuard
from insertflow.flows.compose import ComposableMaker
from insertflow.flows.end_members import material_id
from insertflow.hosts import Host
from insertflow.keys import content_key
from insertflow.references import working_ion_reference
from insertflow.sampling.orderings import EnumerationSummary, Ordering, OrderingSettings, select_orderings, x_key
from insertflow.schemas import (
    CalculationRecord,
    FailedCalculation,
    InsertionLevelsDoc,
    OrderingResult,
    StepDoc,
    TierCounts,
)

SCREEN_STAGE = "screening"
ANALYSIS_STAGE = "analysis"


@dataclass
class InsertionLevelsMaker(ComposableMaker, Maker):
    """Relax the lowest-energy orderings at every x and build the hull and voltage profile."""

    study_kind = "insertion_levels"

    name: str = "insertion levels"
    calculator: Calculator | None = None
    screen_calculator: Calculator | None = None  # single points between Ewald and relaxation
    screen_keep: int = 4  # orderings per x that go on to relax after screening
    screen_window: float = 0.0  # meV/atom: also relax any ordering this close to the lowest single point
    orderings: OrderingSettings = field(default_factory=OrderingSettings)
    guard: LayerGuard = field(default_factory=LayerGuard)
    study: str = "study"

    def make_for_host(self, host: Host) -> Flow:
        """Enumerate and rank the orderings of ``host`` and return the study flow."""
        orderings, summary = select_orderings(host, self.orderings)
        return self.make_from_orderings(host, orderings, summary)

    def planned_relaxations(self, orderings: list[Ordering]) -> int:
        """How many orderings will be relaxed (before reuse)."""
        if self.screen_calculator is None or self.screen_window > 0:
            return len(orderings)  # an upper bound when a window decides
        per_x: dict[str, int] = defaultdict(int)
        for ordering in orderings:
            per_x[x_key(ordering.x)] += 1
        return sum(min(n, self.screen_keep) for n in per_x.values())

    def make_from_orderings(self, host: Host, orderings: list[Ordering], summary: EnumerationSummary) -> Flow:
        """The study flow for orderings already selected (see ``select_orderings``)."""
        if self.calculator is None:
            raise CalculatorError("InsertionLevelsMaker needs a calculator")
        if self.screen_calculator is not None:
            if not isinstance(self.screen_calculator, SinglePointScreener):
                raise RecipeError(
                    f"calculator '{self.screen_calculator.name}' cannot screen (no in-process single points); "
                    "use chgnet or mock for levels.screen"
                )
            if self.screen_keep < 1:
                raise RecipeError(f"levels.screen.keep must be at least 1 (got {self.screen_keep})")
        ion_job = CalculationMaker(
            calculator=self.calculator, label="working_ion", task="relax", study=self.study, guard=self.guard
        ).make(working_ion_reference(host.working_ion))
        context = {
            "host": host.summary(),
            "enumeration": _enumeration_dict(summary),
            "study": self.study,
        }
        if self.screen_calculator is None:
            results = [_ordering_result(o, relaxed=True) for o in orderings]
            inner = _relax_and_profile(
                orderings, results, self.calculator, None, False, self.guard, ion_job.output, context
            )
            return Flow([ion_job, inner], output=inner.output, name=f"{self.study}: {self.name}")
        screen = screen_orderings(
            orderings,
            self.screen_calculator,
            self.screen_keep,
            self.calculator,
            self.guard,
            ion_job.output,
            context,
            self.screen_window,
        )
        screen.name = f"screen {len(orderings)} orderings ({self.screen_calculator.name} single points)"
        screen.config.expose_store = True
        # set directly: update_metadata is dynamic and would relabel the replacement's jobs too
        screen.metadata["insertflow"] = {"kind": "screen", "study": self.study}
        return Flow([ion_job, screen], output=screen.output, name=f"{self.study}: {self.name}")


def _enumeration_dict(summary: EnumerationSummary) -> dict:
    data = summary.as_dict()
    for key in ("@module", "@class", "@version"):
        data.pop(key, None)
    return data


def _ordering_result(ordering: Ordering, relaxed: bool, energy: float | None = None, rank: int | None = None):
    structure = ordering.structure
    return OrderingResult(
        label=ordering.label,
        x=ordering.x,
        cells=ordering.cells,
        formula=structure.composition.reduced_formula,
        n_atoms=len(structure),
        ewald_per_fu=ordering.ewald_per_fu,
        ewald_rank=ordering.ewald_rank,
        screen_energy_per_fu=energy,
        screen_rank=rank,
        relaxed=relaxed,
        spacegroup_initial=_spacegroup(structure),
    )


def screening_key(orderings: list[Ordering], identity: dict) -> str:
    """Content key of a whole screening: the structures' keys and the screening calculator."""
    keys = sorted(content_key(o.structure, identity, "static") for o in orderings)
    return hashlib.sha256(json.dumps([identity, keys], sort_keys=True, default=str).encode()).hexdigest()


@job
def screen_orderings(
    orderings: list[Ordering],
    screen_calculator: Calculator,
    keep: int,
    calculator: Calculator,
    guard: LayerGuard,
    ion_output: dict | None,
    context: dict,
    window: float = 0.0,
) -> Response:
    """Rank the Ewald survivors by single-point energy; relax the best ``keep`` per x and any within ``window``."""
    identity = screen_calculator.identity()
    key = screening_key(orderings, identity)
    CURRENT_JOB.job.metadata.setdefault("insertflow", {})["screen_key"] = key
    cached = None
    if CURRENT_JOB.store is not None:
        cached = CURRENT_JOB.store.query_one(
            {"output.key": key, "output.kind": "screening"},
            properties=["output"],
            sort={"completed_at": -1},
        )
    item = f"{len(orderings)} orderings ({identity['name']})"
    keys = [content_key(o.structure, identity, "static") for o in orderings]
    if cached is not None:
        by_key = cached["output"]["energies"]
        reasons = cached["output"].get("failures", {})
        points = [SinglePoint(by_key.get(k, math.nan), reasons.get(k)) for k in keys]
        progress.emit(SCREEN_STAGE, item, f"reusing the stored single points (key {key[:10]})...")
    else:
        progress.emit(SCREEN_STAGE, item, "running single points...")
        points = screen_calculator.single_points([o.structure for o in orderings])
    energies = [p.energy for p in points]

    per_fu = [_per_fu(o, e) for o, e in zip(orderings, energies, strict=True)]
    by_x: dict[str, list[int]] = defaultdict(list)
    for index, ordering in enumerate(orderings):
        by_x[x_key(ordering.x)].append(index)
    results: list[OrderingResult] = []
    selected: list[Ordering] = []
    selected_results: list[OrderingResult] = []
    notes = []
    for key_x in sorted(by_x, key=float):
        indices = by_x[key_x]
        ranked = sorted(indices, key=lambda i: (math.isnan(per_fu[i]), per_fu[i], orderings[i].ewald_rank))
        usable = [i for i in ranked if not math.isnan(per_fu[i])]
        if len(usable) < len(ranked):
            why = sorted({points[i].reason or "no reason given" for i in ranked if math.isnan(per_fu[i])})
            notes.append(f"x={float(key_x):.3f}: {len(ranked) - len(usable)} single point(s) failed ({'; '.join(why)})")
        chosen = set((usable or ranked)[:keep])
        if usable and window > 0:
            lowest = per_fu[usable[0]]
            chosen |= {
                i
                for i in usable
                if 1000 * (per_fu[i] - lowest) * orderings[i].formula_units / len(orderings[i].structure) <= window
            }
        for rank, index in enumerate(ranked, start=1):
            energy = None if math.isnan(per_fu[index]) else per_fu[index]
            result = _ordering_result(orderings[index], relaxed=index in chosen, energy=energy, rank=rank)
            if energy is None:
                result.reason = f"single point failed: {points[index].reason or 'no reason given'}"
            results.append(result)
            if index in chosen:
                selected.append(orderings[index])
                selected_results.append(result)
    kept = sum(1 for r in results if r.relaxed)
    progress.emit(
        SCREEN_STAGE,
        item,
        f"kept {kept} of {len(orderings)} ({keep} per x"
        + (f", or within {window:g} meV/atom)" if window else ")")
        + (f"; {'; '.join(notes)}" if notes else ""),
    )
    context = {**context, "screen_calculator": identity, "screen_notes": notes}
    inner = _relax_and_profile(selected, results, calculator, identity, cached is not None, guard, ion_output, context)
    output = {
        "kind": "screening",
        "key": key,
        "calculator": identity,
        "energies": {k: p.energy for k, p in zip(keys, points, strict=True) if p.ok},
        "failures": {k: p.reason or "no reason given" for k, p in zip(keys, points, strict=True) if not p.ok},
        "kept": kept,
    }
    return Response(output=output, replace=inner)


def _per_fu(ordering: Ordering, energy: float) -> float:
    """Energy per framework formula unit; NaN for a failed single point."""
    if energy is None or not math.isfinite(energy):
        return math.nan
    return energy / ordering.formula_units


def _relax_and_profile(
    orderings: list[Ordering],
    results: list[OrderingResult],
    calculator: Calculator,
    screen_identity: dict | None,
    screening_reused: bool,
    guard: LayerGuard,
    ion_output,
    context: dict,
) -> Flow:
    study = context["study"]
    jobs = [
        CalculationMaker(calculator=calculator, label=o.label, task="relax", study=study, guard=guard).make(o.structure)
        for o in orderings
    ]
    profile = insertion_profile(
        [j.output for j in jobs],
        [o.label for o in orderings],
        ion_output,
        [r.model_dump() for r in results],
        calculator.identity(),
        screen_identity,
        screening_reused,
        context,
    )
    profile.name = f"voltage profile {context['host']['formula']}"
    profile.config.on_missing_references = OnMissing.NONE
    profile.update_metadata({"insertflow": {"kind": "study", "study": study}})
    return Flow([*jobs, profile], output=profile.output, name=f"relax {len(jobs)} orderings")


@job
def insertion_profile(
    records: list,
    labels: list[str],
    ion_record,
    results: list[dict],
    calculator: dict,
    screen_calculator: dict | None,
    screening_reused: bool,
    context: dict,
) -> InsertionLevelsDoc:
    """Hull, energies above hull and voltage steps from whatever relaxations finished."""
    host = context["host"]
    ion = host["working_ion"]
    rows = {r["label"]: OrderingResult.model_validate(r) for r in results}
    parsed: list[CalculationRecord] = []
    failed: list[FailedCalculation] = []
    missing: list[str] = list(context.get("screen_notes", []))
    usable: dict[str, CalculationRecord] = {}
    for label, raw in zip(labels, records, strict=True):
        row = rows[label]
        if raw is None:
            row.status, row.reason = "failed", "its calculation job did not finish (see the workflow manager's log)"
            failed.append(FailedCalculation(label=label, formula=row.formula, status="failed", reason=row.reason))
            continue
        record = CalculationRecord.model_validate(raw)
        parsed.append(record)
        row.status, row.reason = record.status, record.reason
        row.content_key, row.reused = record.content_key, record.reused
        row.layer_gap_growth = record.layer_gap_growth
        if record.status != "ok":
            failed.append(
                FailedCalculation(label=label, formula=record.formula, status=record.status, reason=record.reason or "")
            )
            continue
        usable[label] = record
        row.spacegroup_final = _spacegroup(record.entry.structure)

    ion_parsed = None if ion_record is None else CalculationRecord.model_validate(ion_record)
    doc = InsertionLevelsDoc(
        study=context["study"],
        host=host,
        calculator=calculator,
        screen_calculator=screen_calculator,
        enumeration=context["enumeration"],
        screening_reused=screening_reused,
    )
    if ion_parsed is None or ion_parsed.status != "ok":
        reason = "its calculation job did not finish" if ion_parsed is None else ion_parsed.reason
        missing.append(f"working-ion reference ({ion}): {reason}")
        if ion_parsed is not None:
            failed.append(
                FailedCalculation(
                    label="working_ion", formula=ion_parsed.formula, status=ion_parsed.status, reason=reason or ""
                )
            )

    missing.extend(_missing_compositions(rows, usable))
    if usable and ion_parsed is not None and ion_parsed.status == "ok":
        _fill_profile(doc, rows, usable, ion_parsed, ion, missing)

    doc.orderings = sorted(rows.values(), key=lambda r: (r.x, r.screen_rank or r.ewald_rank))
    doc.tiers = _tier_counts(doc.orderings, context["enumeration"])
    doc.calculations = [*parsed, *([ion_parsed] if ion_parsed is not None else [])]
    doc.failed = failed
    doc.missing = missing
    doc.new_calculations = sum(1 for r in doc.calculations if not r.reused)
    doc.reused_calculations = sum(1 for r in doc.calculations if r.reused)
    if doc.average_voltage is not None:
        steps = ", ".join(f"{s.x_low:.3f}-{s.x_high:.3f}: {s.voltage:.3f} V" for s in doc.steps)
        status = f"average {doc.average_voltage:.3f} V over x {doc.x_range[0]:g}-{doc.x_range[1]:g}; steps {steps}"
    else:
        status = "no profile: " + "; ".join(missing)
    progress.emit(ANALYSIS_STAGE, f"voltage profile {host['formula']}", status)
    return doc


def _fill_profile(doc, rows, usable, ion_record, ion, missing) -> None:
    labelled = [(label, record.computed_entry()) for label, record in usable.items()]
    try:
        framework = framework_unit(doc.host["formula"], ion)
        profile = voltage_profile(labelled, ion_record.computed_entry(), ion, framework=framework)
    except InsertflowError as exc:
        missing.append(str(exc))
        return
    for point in profile.points:
        row = rows[point.label]
        record = usable[point.label]
        row.energy_per_fu = point.energy_per_fu
        row.energy_per_atom = record.energy_per_atom
        row.formation_energy = point.formation_energy
        row.formation_energy_per_atom = point.formation_energy / point.atoms_per_fu
        row.e_above_hull = point.e_above_hull
        row.e_above_hull_per_atom = point.e_above_hull_per_atom
        row.on_hull = point.on_hull
    doc.hull_x = [p.x for p in profile.hull]
    doc.steps = [StepDoc(**asdict(step)) for step in profile.steps]
    doc.average_voltage = profile.average_voltage
    doc.x_range = list(profile.x_range)
    doc.capacity_grav = profile.capacity_grav
    doc.energy_grav = profile.energy_grav
    entries = []
    for point in profile.points:
        entry = usable[point.label].computed_entry()
        entry.data["material_id"] = material_id(usable[point.label].content_key)
        entries.append(entry)
    ion_entry = ion_record.computed_entry()
    ion_entry.data["material_id"] = material_id(ion_record.content_key)
    try:
        doc.electrode = electrode_document(entries, ion_entry)
    except Exception as exc:  # emmet's builder is strict; the profile above stands without it
        missing.append(f"emmet InsertionElectrodeDoc could not be built: {type(exc).__name__}: {exc}")


def _missing_compositions(rows: dict[str, OrderingResult], usable: dict) -> list[str]:
    """Compositions where every relaxed ordering failed: gaps in the profile."""
    tried: dict[str, list[OrderingResult]] = defaultdict(list)
    for row in rows.values():
        if row.relaxed:
            tried[x_key(row.x)].append(row)
    gaps = []
    for key in sorted(tried, key=float):
        if not any(r.label in usable for r in tried[key]):
            gaps.append(
                f"x={float(key):.3f}: no usable ordering ({len(tried[key])} relaxation(s) failed or flagged); "
                "the profile steps over it"
            )
    return gaps


def _tier_counts(rows: list[OrderingResult], enumeration: dict) -> list[TierCounts]:
    by_x: dict[str, list[OrderingResult]] = defaultdict(list)
    for row in rows:
        by_x[x_key(row.x)].append(row)
    return [
        TierCounts(
            x=group[0].x,
            enumerated=enumeration.get("enumerated", {}).get(key, len(group)),
            kept_ewald=len(group),
            kept_screen=sum(1 for r in group if r.relaxed),
            relaxed_ok=sum(1 for r in group if r.status == "ok"),
        )
        for key, group in sorted(by_x.items(), key=lambda kv: float(kv[0]))
    ]


def _spacegroup(structure) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_symbol()
    except Exception:  # spglib can fail on badly distorted cells; symmetry is a report, not a requirement
        return None
