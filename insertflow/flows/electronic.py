"""Electronic structure along x: relax with one calculator, then static + DOS with another.

The intended cheap protocol is "relax with CHGNet, electronic structure with xTB (or VASP
on HPC)". Each composition is the lowest-Ewald ordering at that x; both steps are
reuse-aware calculations; descriptors are computed when the static record is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Flow, Maker, OnMissing, Response, job

from insertflow import progress
from insertflow.analysis.alignment import aligned_fermi_shift, locate_defect, moment_changes, potential_alignment
from insertflow.analysis.descriptors import fermi_shift_from
from insertflow.analysis.magnetism import oxidation_census
from insertflow.calculators.base import Calculator
from insertflow.errors import CalculatorError
from insertflow.flows.calculation import CalculationMaker, LayerGuard
from insertflow.flows.compose import ComposableMaker
from insertflow.hosts import Host
from insertflow.sampling.defects import (
    DefectSettings,
    check_host_can_have,
    choose_supercell,
    generate_defects,
    pristine_orderings,
    rattled,
)
from insertflow.sampling.orderings import OrderingSettings, select_orderings
from insertflow.schemas import CalculationRecord, ElectronicPoint, ElectronicStudyDoc, FailedCalculation

ANALYSIS_STAGE = "analysis"
#: Spread (eV) of the far-site potential difference above which a defect's E_F shift carries a warning.
#: Measured with GPAW in 31-32 atom LiCoO2 cells: 0.03-0.38 eV; in a 15-atom V_Co cell: 0.88 eV.
ALIGNMENT_SPREAD_WARNING = 0.25


@dataclass
class ElectronicStructureMaker(ComposableMaker, Maker):
    """Relax the lowest-Ewald ordering at each x, then its electronic structure."""

    study_kind = "electronic_structure"

    name: str = "electronic structure"
    calculator: Calculator | None = None
    electronic_calculator: Calculator | None = None
    orderings: OrderingSettings = field(default_factory=lambda: OrderingSettings(max_size=2, ewald_keep=1))
    defects: DefectSettings | None = None  # also these defects, all in one supercell, with their E_F shift
    guard: LayerGuard = field(default_factory=LayerGuard)
    study: str = "study"

    def points(self, host: Host) -> list[tuple[dict, object]]:
        """(point description, structure to relax): pristine orderings, then defects if asked."""
        if self.defects is None:
            orderings, _ = select_orderings(host, self.orderings)
            return [({"label": o.label, "x": o.x, "kind": "pristine"}, o.structure) for o in orderings]
        check_host_can_have(host, self.defects.kinds)
        matrix = choose_supercell(host, self.defects)
        chosen = []
        for ordering in pristine_orderings(host, matrix, self.defects, section="electronic", keep_end_members=True):
            pristine = {"label": ordering.label, "x": ordering.x, "kind": "pristine"}
            chosen.append((pristine, rattled(ordering.structure, self.defects.rattle, self.defects.rattle_seed)))
            candidates, _ = generate_defects(host, matrix, ordering, self.defects)
            for candidate in candidates:
                meta = {
                    "label": candidate.label,
                    "x": candidate.x,
                    "kind": candidate.kind,
                    "site": candidate.site,
                    "host_label": ordering.label,
                }
                chosen.append((meta, candidate.structure))
        return chosen

    def make_for_host(self, host: Host) -> Flow:
        """The study flow; its output is an ``ElectronicStudyDoc``."""
        if self.calculator is None or self.electronic_calculator is None:
            raise CalculatorError("ElectronicStructureMaker needs a relaxation and an electronic calculator")
        points = self.points(host)
        relax = [
            CalculationMaker(
                calculator=self.calculator,
                label=f"relax {p['label']}",
                task="relax",
                study=self.study,
                guard=self.guard,
            ).make(structure)
            for p, structure in points
        ]
        statics = electronic_statics(
            [j.output for j in relax],
            [p for p, _ in points],
            self.electronic_calculator,
            {"study": self.study, "host": host.summary(), "calculator": self.calculator.identity()},
        )
        statics.name = f"electronic structure of {len(points)} structures"
        statics.config.on_missing_references = OnMissing.NONE
        statics.metadata["insertflow"] = {"kind": "electronic_statics", "study": self.study}
        return Flow([*relax, statics], output=statics.output, name=f"{self.study}: {self.name}")


@job
def electronic_statics(records: list, points: list[dict], electronic: Calculator, context: dict) -> Response:
    """Static + DOS of every relaxed structure, then the document."""
    jobs, kept = [], []
    for point, raw in zip(points, records, strict=True):
        record = None if raw is None else CalculationRecord.model_validate(raw)
        if record is None or record.status != "ok":
            continue
        static = CalculationMaker(
            calculator=electronic, label=f"electronic {point['label']}", task="static", study=context["study"]
        ).make(record.entry.structure)
        jobs.append(static)
        kept.append(point["label"])
    final = electronic_study(records, points, [j.output for j in jobs], kept, electronic.identity(), context)
    final.name = f"electronic study {context['host']['formula']}"
    final.config.on_missing_references = OnMissing.NONE
    final.metadata["insertflow"] = {"kind": "study", "study": context["study"]}
    return Response(replace=Flow([*jobs, final], output=final.output))


@job
def electronic_study(
    relax_records: list, points: list[dict], static_records: list, static_labels: list[str], electronic: dict, context
) -> ElectronicStudyDoc:
    """Moments, implied oxidation states and band descriptors per x."""
    host = context["host"]
    doc = ElectronicStudyDoc(
        study=context["study"], host=host, calculator=context["calculator"], electronic_calculator=electronic
    )
    statics = {
        label: (None if raw is None else CalculationRecord.model_validate(raw))
        for label, raw in zip(static_labels, static_records, strict=True)
    }
    for point, raw in zip(points, relax_records, strict=True):
        relaxed = None if raw is None else CalculationRecord.model_validate(raw)
        static = statics.get(point["label"])
        row = ElectronicPoint(
            label=point["label"],
            x=point["x"],
            formula="?" if relaxed is None else relaxed.formula,
            kind=point.get("kind", "pristine"),
            site=point.get("site"),
            host_label=point.get("host_label"),
        )
        for record in (relaxed, static):
            if record is None:
                continue
            doc.calculations.append(record)
            if record.status != "ok":
                doc.failed.append(
                    FailedCalculation(
                        label=record.label, formula=record.formula, status=record.status, reason=record.reason or ""
                    )
                )
        row.relax_status = None if relaxed is None else relaxed.status
        row.static_status = None if static is None else static.status
        moments = _moment_source(relaxed, static)
        if moments is not None:
            symbols = [site.specie.symbol for site in moments.entry.structure]
            tms = host["redox_elements"]
            row.moments_from = moments.calculator["name"]
            row.tm_moments = {
                el: [round(m, 3) for s, m in zip(symbols, moments.magmoms, strict=True) if s == el] for el in tms
            }
            row.implied_oxidation = oxidation_census(symbols, moments.magmoms, tms)
        if static is not None and static.status == "ok":
            row.descriptors = static.descriptors
            if static.descriptors is None:
                doc.missing.append(f"{point['label']}: {static.reason or 'the calculator gave no projected DOS'}")
        elif relaxed is None or relaxed.status != "ok":
            doc.missing.append(f"x={point['x']:.3f}: no electronic structure: the relaxation did not succeed")
        else:
            reason = "did not finish (see the workflow manager's log)" if static is None else static.reason
            doc.missing.append(f"x={point['x']:.3f}: no electronic structure: the static calculation {reason}")
        doc.points.append(row)
    pristine = {p.label: p for p in doc.points if p.kind == "pristine"}
    for point in doc.points:
        host_point = pristine.get(point.host_label or "")
        if point.kind == "pristine" or host_point is None:
            continue
        _compare_with_pristine(point, statics.get(point.label), statics.get(host_point.label), host_point, host)
    doc.new_calculations = sum(1 for r in doc.calculations if not r.reused)
    doc.reused_calculations = sum(1 for r in doc.calculations if r.reused)
    summary = "; ".join(
        f"x={p.x:.2f} gap {p.descriptors['band_gap']:.2f} eV, O-2p {p.descriptors['anion_p_centre']:.2f} eV"
        for p in doc.points
        if p.descriptors and p.kind == "pristine"
    )
    progress.emit(ANALYSIS_STAGE, f"electronic structure {host['formula']}", summary or "no descriptors")
    return doc


def _moment_source(relaxed: CalculationRecord | None, static: CalculationRecord | None) -> CalculationRecord | None:
    """The record whose moments describe a point: the electronic static's if it has them, else the relaxation's."""
    for record in (static, relaxed):
        if record is not None and record.status == "ok" and record.magmoms:
            return record
    return None


def _compare_with_pristine(
    point: ElectronicPoint,
    static: CalculationRecord | None,
    pristine_static: CalculationRecord | None,
    pristine_point: ElectronicPoint,
    host: dict,
) -> None:
    """A defect's E_F shift (electrostatically aligned when both statics have site potentials) and moment changes."""
    both_descriptors = bool(point.descriptors and pristine_point.descriptors)
    if both_descriptors:
        point.fermi_shift_anion_p = fermi_shift_from(point.descriptors, pristine_point.descriptors)
        point.fermi_shift, point.fermi_shift_reference = point.fermi_shift_anion_p, "anion_p_centre"
    if not all(r is not None and r.status == "ok" and r.entry is not None for r in (static, pristine_static)):
        return
    align = both_descriptors and bool(static.site_potentials and pristine_static.site_potentials)
    compare_moments = bool(static.magmoms and pristine_static.magmoms)
    if not (align or compare_moments):
        return
    defect, pristine = static.entry.structure, pristine_static.entry.structure
    try:
        site = locate_defect(defect, pristine)  # one matching of the two cells serves both
        if align:
            alignment = potential_alignment(
                defect, static.site_potentials, pristine, pristine_static.site_potentials, site=site
            )
            point.potential_alignment = alignment.as_dict()
            point.fermi_shift = round(
                aligned_fermi_shift(point.descriptors["efermi"], pristine_point.descriptors["efermi"], alignment), 4
            )
            point.fermi_shift_reference = "electrostatic"
            if alignment.spread > ALIGNMENT_SPREAD_WARNING:
                point.reason = (
                    f"the far-site potential difference spreads by {alignment.spread:.2f} eV over "
                    f"{alignment.n_sites} sites: the cell is small for this E_F shift; a larger supercell settles it"
                )
        if compare_moments:
            point.moment_changes = moment_changes(
                defect, static.magmoms, pristine, pristine_static.magmoms, host["redox_elements"], site=site
            )
    except ValueError as exc:  # sites that cannot be matched: say so, keep the rest of the point
        point.reason = f"{point.reason + '; ' if point.reason else ''}no comparison with {pristine_point.label}: {exc}"
