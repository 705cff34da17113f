"""Defects across x, static/coupled classification and the hysteresis loop they open.

At flow-build time: one supercell, the lowest-Ewald pristine orderings at each x in it, and
every requested defect of each ordering (``insertflow.sampling.defects``). Each structure is
a reuse-aware relaxation. ``analyse_defects`` then computes defect energies and classes and,
if TM migration is favourable at the lowest x, re-lithiates the lowest-energy migrated host
at each x (new relaxations) before ``defect_study`` builds the hysteresis loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from jobflow import Flow, Maker, OnMissing, Response, job
from pymatgen.core import Composition, Structure

from insertflow import progress
from insertflow.analysis.alignment import locate_defect
from insertflow.analysis.barriers import (
    DEFAULT_ATTEMPT_FREQUENCY,
    DEFAULT_TIME_SCALE,
    MigrationGate,
    kinetic_limit,
    migration_gate,
)
from insertflow.analysis.charged import (
    ChargeState,
    charged_summary,
    freysoldt_correction,
    guess_charge_states,
    on_grid,
)
from insertflow.analysis.chemical_potentials import (
    Limit,
    named_limit,
    oxygen_shift,
    stability_region,
    with_impurities,
)
from insertflow.analysis.concentrations import (
    DEFAULT_OPERATING_TEMPERATURE,
    DEFAULT_SYNTHESIS_TEMPERATURE,
    concentration,
    exclusive_concentration,
)
from insertflow.analysis.defects import DefectPoint, classify, defect_energy, group_points, ion_chemical_potential
from insertflow.analysis.energy_scale import energy_scale, mixes_scales
from insertflow.analysis.fermi import CM3_PER_A3, ChargedDefect, carrier_densities, self_consistent_fermi_level
from insertflow.analysis.geometry import (
    ANIONS,
    bond_cutoff,
    classify_moved_tm,
    describe_changes,
    face_sharing_cations,
    minimum_image,
    parent_sites,
    same_atom_order,
    site_changes,
)
from insertflow.analysis.hysteresis import cycles, hysteresis_loop
from insertflow.analysis.profile import voltage_profile
from insertflow.analysis.voltage import framework_unit, units_of
from insertflow.calculators.base import (
    Calculator,
    NebSettings,
    as_structure,
    fixed_cell,
    supports_charge,
    supports_neb,
    with_charge,
)
from insertflow.competing import competing_phases, elemental_reference, task_for
from insertflow.errors import CalculatorError, InsertflowError, RecipeError
from insertflow.flows.calculation import CalculationMaker, LayerGuard
from insertflow.flows.compose import ComposableMaker
from insertflow.flows.kinetics import neb_from_endpoints
from insertflow.hosts import Host
from insertflow.references import working_ion_reference
from insertflow.sampling.defects import (
    DefectCandidate,
    DefectSettings,
    check_host_can_have,
    choose_supercell,
    generate_defects,
    pristine_orderings,
    rattled,
)
from insertflow.sampling.hops import tetrahedral_site_between
from insertflow.sampling.orderings import OrderingSettings, select_orderings
from insertflow.sampling.sublattices import working_ion_sublattices
from insertflow.schemas import (
    CalculationRecord,
    DefectClassDoc,
    DefectResult,
    DefectStudyDoc,
    FailedCalculation,
    HysteresisDoc,
    NebRecord,
    StepDoc,
)

ANALYSIS_STAGE = "analysis"
#: A re-inserted ion must be at least this far (A) from every atom of the migrated host.
REINSERT_CLEARANCE = 1.5


@dataclass
class DefectStudyMaker(ComposableMaker, Maker):
    """Relax pristine and defective hosts at each x; classify defects; build the hysteresis."""

    study_kind = "defects"

    name: str = "defects and hysteresis"
    calculator: Calculator | None = None
    settings: DefectSettings = field(default_factory=DefectSettings)
    chemical_potentials: dict[str, float] = field(default_factory=dict)  # eV/atom, held fixed in the region
    limit: str | None = None  # limit of the stability region energies use; None: "<anion>-rich" (e.g. O-rich)
    extra_phases: dict[str, Structure] = field(default_factory=dict)  # competing phases beyond the built-in ones
    synthesis_temperature: float = DEFAULT_SYNTHESIS_TEMPERATURE  # K: the as-made population is quenched from it
    operating_temperature: float = DEFAULT_OPERATING_TEMPERATURE  # K: coupled defects follow x at this T
    oxygen_pressure: float = 0.21  # atm of O2 at synthesis (air): the synthesis point of the region
    discharge_orderings: int = 1  # re-lithiated orderings per x on the discharge branch
    charge_states: dict[str, list[int]] | str | None = None  # per kind, or "auto" (from oxidation states)
    dielectric: float | list[float] | None = None  # the host's static dielectric constant (Freysoldt)
    migration_barriers: NebSettings | None = None  # oct -> tet -> oct NEBs of the TMs that stayed; gates the loop
    attempt_frequency: float = DEFAULT_ATTEMPT_FREQUENCY  # Hz, for the kinetic limit at the operating T
    time_scale: float = DEFAULT_TIME_SCALE  # s a migration has to happen in
    guard: LayerGuard = field(default_factory=LayerGuard)
    study: str = "study"

    def charges_of(self, host: Host, candidate: DefectCandidate) -> list[int]:
        """The non-zero charge states computed for ``candidate`` (moved TMs stay neutral)."""
        if not self.charge_states or candidate.kind in ("migration", "exchange"):
            return []
        if self.charge_states == "auto":
            states = guess_charge_states(candidate.change, host.oxidation_states)
        else:
            states = list(self.charge_states.get(candidate.kind, []))
        return [int(q) for q in states if q]

    def check_charges(self) -> None:
        """Charge states need a calculator with electrons and a dielectric constant: one line if not."""
        if not self.charge_states:
            return
        if isinstance(self.charge_states, str) and self.charge_states != "auto":
            raise RecipeError(
                f"defects.charge_states: 'auto' or a mapping kind -> charges (got {self.charge_states!r})"
            )
        with_charge(self.calculator, 1)  # CalculatorError naming the calculator when it has no electrons
        if self.dielectric is None:
            raise RecipeError(
                "defects.charge_states needs defects.dielectric: the host's static dielectric constant "
                "(a number or three diagonal values) for the Freysoldt correction"
            )

    def plan(self, host: Host) -> tuple[list[list[int]], list, list[DefectCandidate], list[str]]:
        """Supercell, pristine orderings and defect candidates (no calculator involved)."""
        if self.calculator is None:
            raise CalculatorError("DefectStudyMaker needs a calculator")
        self.check_charges()
        if self.migration_barriers is not None and not supports_neb(self.calculator):
            raise CalculatorError(
                f"defects.migration_barriers needs NEBs; {self.calculator.name} does not run them here "
                "(use chgnet, gpaw or vasp)"
            )
        check_host_can_have(host, self.settings.kinds)
        matrix = choose_supercell(host, self.settings)
        pristine = pristine_orderings(host, matrix, self.settings)
        candidates, notes = [], []
        for ordering in pristine:
            if ordering.ewald_rank > self.settings.defect_hosts_per_x:
                continue  # a reference only: the lowest relaxed ordering at x is what energies are measured from
            made, skipped = generate_defects(host, matrix, ordering, self.settings)
            candidates += made
            notes += skipped
        return matrix, pristine, candidates, notes

    def make_for_host(self, host: Host) -> Flow:
        """The study flow; its output is a ``DefectStudyDoc``."""
        matrix, pristine, candidates, notes = self.plan(host)
        return self.make_from_plan(host, matrix, pristine, candidates, notes)

    def phases_needed(self, host: Host, candidates: list[DefectCandidate]) -> dict[str, Structure]:
        """Competing phases of the host's chemistry and of what the defects add (the working-ion metal apart).

        Every element whose chemical potential is not given needs an elemental phase; one without
        (P, S: no built-in reference) is refused here with what to give instead.
        """
        elements = {el.symbol for el in host.structure.composition.elements}
        elements |= {el for c in candidates for el, n in c.change.items() if n}
        unbounded = sorted(
            el
            for el in elements
            if el not in self.chemical_potentials
            and elemental_reference(el) is None
            and not any(s.composition.is_element and el in s.composition for s in self.extra_phases.values())
        )
        if unbounded:
            raise RecipeError(
                f"no elemental phase of {', '.join(unbounded)} to bound its chemical potential; give its structure "
                "in defects.competing_phases or its value in defects.chemical_potentials"
            )
        phases = {**competing_phases(elements), **self.extra_phases}
        phases.pop(host.working_ion, None)  # the working-ion reference job is that phase
        return phases

    def chosen_limit(self, host: Host) -> str:
        """The limit of the stability region that energies and classes use."""
        if self.limit:
            return self.limit
        anion = max(host.structure.composition.elements, key=lambda el: el.X).symbol
        return f"{anion}-rich"

    def make_from_plan(self, host, matrix, pristine, candidates, notes) -> Flow:
        """The flow for an already generated plan (see ``plan``)."""
        calc = self.calculator

        def relax(label: str, structure: Structure, task: str = "relax"):
            maker = CalculationMaker(calculator=calc, label=label, task=task, study=self.study, guard=self.guard)
            return maker.make(structure)

        ion_job = relax("working_ion", working_ion_reference(host.working_ion))
        reference_jobs = {
            label: relax(f"competing {label}", structure, task_for(label))
            for label, structure in self.phases_needed(host, candidates).items()
        }
        pristine_inputs = [rattled(o.structure, self.settings.rattle, self.settings.rattle_seed) for o in pristine]
        pristine_jobs = [relax(f"pristine {o.label}", s) for o, s in zip(pristine, pristine_inputs, strict=True)]
        defect_jobs = [relax(c.label, c.structure) for c in candidates]
        charged = [(c, q) for c in candidates for q in self.charges_of(host, c)]
        charged_jobs = [
            CalculationMaker(
                calculator=with_charge(calc, q), label=f"{c.label} q={q:+d}", study=self.study, guard=self.guard
            ).make(c.structure)
            for c, q in charged
        ]
        full = host.structure.copy()
        full.make_supercell(matrix)
        context = {
            "study": self.study,
            "host": host.summary(),
            "supercell": matrix,
            "supercell_atoms": len(full),
            "settings": {k: v for k, v in asdict(self.settings).items() if not k.startswith("@")},
            "chemical_potentials": dict(self.chemical_potentials),
            "limit": self.chosen_limit(host),
            "synthesis_temperature": self.synthesis_temperature,
            "operating_temperature": self.operating_temperature,
            "oxygen_pressure": self.oxygen_pressure,
            "discharge_orderings": self.discharge_orderings,
            "notes": notes,
            "pristine": [
                {"label": f"pristine {o.label}", "x": o.x, "ordering": o.label, "structure": s.as_dict()}
                for o, s in zip(pristine, pristine_inputs, strict=True)
            ],
            "candidates": [_candidate_meta(c) for c in candidates],
            "full_supercell": full.as_dict(),
            "charged": [{"candidate": c.label, "charge": q, "label": f"{c.label} q={q:+d}"} for c, q in charged],
            "dielectric": self.dielectric,
            "migration_barriers": None if self.migration_barriers is None else asdict(self.migration_barriers),
            "kinetic_limit": kinetic_limit(self.operating_temperature, self.attempt_frequency, self.time_scale),
        }
        analysis = analyse_defects(
            [j.output for j in pristine_jobs],
            [j.output for j in defect_jobs],
            {el: j.output for el, j in reference_jobs.items()},
            ion_job.output,
            calc,
            self.guard,
            context,
            [j.output for j in charged_jobs],
        )
        analysis.name = f"defect analysis {host.formula}"
        analysis.config.on_missing_references = OnMissing.NONE
        analysis.metadata["insertflow"] = {"kind": "defect_analysis", "study": self.study}
        jobs = [ion_job, *reference_jobs.values(), *pristine_jobs, *defect_jobs, *charged_jobs, analysis]
        return Flow(jobs, output=analysis.output, name=f"{self.study}: {self.name}")


def _candidate_meta(candidate: DefectCandidate) -> dict:
    fields = ("kind", "label", "x", "host_label", "change", "site", "hop_distance", "destination", "multiplicity")
    meta = {k: getattr(candidate, k) for k in (*fields, "moved_index", "origin", "target")}
    meta["n_atoms"] = len(candidate.structure)
    meta["structure"] = candidate.structure.as_dict()  # what went in: the relaxed cell is checked against it
    return meta


def _parse(raw) -> CalculationRecord | None:
    return None if raw is None else CalculationRecord.model_validate(raw)


def _new_document(context: dict, calculator: Calculator) -> DefectStudyDoc:
    """The study document before any result: host, calculator, supercell, settings and energy scale."""
    host = context["host"]
    doc = DefectStudyDoc(
        study=context["study"],
        host=host,
        calculator=calculator.identity(),
        supercell=context["supercell"],
        supercell_atoms=context["supercell_atoms"],
        settings=context["settings"],
        notes=list(context["notes"]),
        energy_scale=energy_scale(calculator.identity()),
    )
    if mixes_scales(calculator.identity(), {el.symbol for el in Composition(host["formula"]).elements}):
        doc.notes.append(
            f"{doc.energy_scale['calculator']} energies carry no MP2020-style correction: its oxides (with U) and "
            "metals (without) are on different scales, so limits bounded by a TM metal mix the two"
        )
    return doc


@job
def analyse_defects(
    pristine_records: list,
    defect_records: list,
    reference_records: dict,
    ion_record,
    calculator: Calculator,
    guard: LayerGuard,
    context: dict,
    charged_records: list | None = None,
) -> Response:
    """Defect energies and classes; then the discharge relaxations (if coupled) and the final document."""
    host = context["host"]
    ion = host["working_ion"]
    framework = framework_unit(host["formula"], ion)
    doc = _new_document(context, calculator)
    ion_rec = _parse(ion_record)
    records: dict[str, CalculationRecord | None] = {}
    for meta, raw in zip(context["pristine"], pristine_records, strict=True):
        records[meta["label"]] = _parse(raw)
    for meta, raw in zip(context["candidates"], defect_records, strict=True):
        records[meta["label"]] = _parse(raw)
    references = {label: _parse(raw) for label, raw in reference_records.items()}
    charged = {
        m["label"]: _parse(raw) for m, raw in zip(context.get("charged", []), charged_records or [], strict=True)
    }
    everything = {**records, **charged, "working_ion": ion_rec}
    everything |= {f"competing {k}": v for k, v in references.items()}
    _note_failures(doc, everything)
    doc.calculations = [r for r in everything.values() if r is not None]

    ok = {label: r for label, r in records.items() if r is not None and r.status == "ok"}
    full = as_structure(context["full_supercell"])
    cations = {el.symbol for el in full.composition.elements} - set(ANIONS)
    verified, reference_of = _verified_pristine(context, records, ok, full, cations, doc)
    charge = None
    if ion_rec is None or ion_rec.status != "ok":
        doc.missing.append(f"working-ion reference ({ion}): no usable result; no chemical potential or voltages")
    elif len({round(m["x"], 6) for m, _ in verified}) >= 2:
        charge = voltage_profile(
            [(m["label"], r.computed_entry()) for m, r in verified], ion_rec.computed_entry(), ion, framework
        )
        doc.pristine_steps = [StepDoc(**asdict(s)) for s in charge.steps]
    else:
        doc.missing.append(
            "fewer than two pristine compositions relaxed and kept their map: no voltages, no hysteresis"
        )

    phases = _competing_energies(references, ion_rec, ion, doc)
    regions, synthesis = _stability_regions(context, verified, phases, charge, ion, doc)
    rows = _defect_rows(context, records, ok, verified, reference_of, (regions, synthesis), phases, doc)
    _check_defect_geometry(rows, context, ok, full, cations)
    classes = _classify_all(rows, context, doc)
    _charged_states(rows, context, ok, charged_records or [], verified, (regions, synthesis), phases, calculator, doc)
    doc.f_o_reduction = _f_o_reduction(rows, ok, context)

    migrated = _coupled_migration(rows, classes, doc)
    discharge_jobs, labels = _discharge_jobs(migrated, charge, context, calculator, guard, doc)
    endpoint_jobs, neb_jobs, barrier_points = _migration_barrier_jobs(
        rows, ok, verified, context, calculator, guard, doc
    )
    final = defect_study(
        doc.model_dump(),
        [j.output for j in discharge_jobs],
        labels,
        None if migrated is None else migrated.model_dump(),
        None if migrated is None else ok[migrated.label].model_dump(),
        ion_record,
        [m for m, _ in verified],
        [r.model_dump() for _, r in verified],
        context["study"],
        [j.output for j in neb_jobs],
        barrier_points,
        context.get("kinetic_limit"),
        [j.output for j in endpoint_jobs],
    )
    final.name = f"defect study {host['formula']}"
    final.config.on_missing_references = OnMissing.NONE
    final.metadata["insertflow"] = {"kind": "study", "study": context["study"]}
    return Response(replace=Flow([*discharge_jobs, *endpoint_jobs, *neb_jobs, final], output=final.output))


def _discharge_jobs(migrated, charge, context, calculator, guard, doc) -> tuple[list, list[str]]:
    """Relaxations of the re-lithiated migrated host along the discharge branch, if a TM migrated."""
    jobs, labels = [], []
    if migrated is None or charge is None:
        return jobs, labels
    try:
        structures = _relithiated(migrated, context, charge, doc)
    except InsertflowError as exc:  # a discharge branch that cannot be built must not lose the defects
        doc.missing.append(f"discharge branch: {exc}")
        structures = []
    for label, structure in structures:
        maker = CalculationMaker(calculator=calculator, label=label, task="relax", study=context["study"], guard=guard)
        jobs.append(maker.make(structure))
        labels.append(label)
    progress.add_to_plan("calculations", len(jobs))  # the plan could not know the discharge branch
    return jobs, labels


def _apply_gate(result: DefectStudyDoc, loop, charge, gate: MigrationGate) -> None:
    """Replace the energies-only loop when the barriers keep the TM home; keep it (and say so) without a verdict."""
    if not gate.determined:
        result.missing.append(f"TM migration gate undetermined: {gate.reason}")
        result.hysteresis.definition += f"; not gated: {gate.reason}"
    elif gate.onset_x is None and loop.coupled:  # migration is downhill but cannot happen
        result.hysteresis_ungated = result.hysteresis
        result.hysteresis = _hysteresis_doc(hysteresis_loop(charge, None), None)
        result.hysteresis.definition += f"; gated: no TM migration ({gate.reason})"
    elif loop.coupled:
        result.hysteresis.definition += f"; gated: the TM migrates ({gate.reason})"


def _add_cycles(result: DefectStudyDoc, charge, discharge, gate: MigrationGate | None, migrated: dict) -> None:
    """First and second cycles through the hosts the TM leaves: where it migrates, where it goes back."""
    determined = gate is not None and gate.determined
    onset = gate.onset_x if determined else migrated["x"]
    returns = gate.returns_at if determined else None
    found = cycles(charge, discharge, onset, returns)
    kept = result.hysteresis.definition
    result.hysteresis = _hysteresis_doc(found.first, migrated["label"])
    back = (
        "throughout (the TM stays)" if returns is None else f"up to x={returns:.3f}, pristine above (the TM goes back)"
    )
    result.hysteresis.definition = (
        f"{kept}; first cycle: charge on the pristine host down to x={onset:.3f} (the TM migrates there), on the "
        f"migrated host below; discharge on the migrated host {back}"
    )
    result.second_cycle = _hysteresis_doc(found.second, migrated["label"])
    result.second_cycle.definition = "second cycle, from the state the first discharge ended in: " + (
        "the first cycle again (the TM went back)" if returns is not None else "both branches on the migrated host"
    )
    result.voltage_fade = round(found.voltage_fade, 6)
    result.tm_returns_at = returns


def _endpoint_records(result: DefectStudyDoc, raws: list) -> list[CalculationRecord]:
    """The migrated cells relaxed on their host's cell, as records; the failed ones listed as failed."""
    records = [record for record in map(_parse, raws) if record is not None]
    _note_failures(result, {record.label: record for record in records})
    return records


def _hysteresis_doc(loop, migrated_label: str | None) -> HysteresisDoc:
    return HysteresisDoc(
        definition=loop.definition,
        coupled=loop.coupled,
        migrated_label=migrated_label,
        charge=[StepDoc(**asdict(s)) for s in loop.charge],
        discharge=[StepDoc(**asdict(s)) for s in loop.discharge],
        segments=[
            {"x_low": a, "x_high": b, "v_charge": vc, "v_discharge": vd, "dv": vc - vd}
            for a, b, vc, vd in loop.segments
        ],
        average_hysteresis=loop.average_hysteresis,
        energy_lost=loop.energy_lost,
        x_range=list(loop.x_range),
    )


def _gate_by_barriers(result: DefectStudyDoc, records: list, points: list[dict], limit: float) -> MigrationGate:
    """Store the TM barriers per x and decide from them whether the migration happens on charge."""
    by_label = {}
    for raw in records:
        record = None if raw is None else NebRecord.model_validate(raw)
        if record is not None:
            by_label[record.label] = record
    gate_points = []
    for point in points:
        record = by_label.get(point["neb_label"])
        ok = record is not None and record.status == "ok"
        entry = {
            "x": point["x"],
            "label": point["label"],
            "migration_energy": point["energy"],
            "forward_barrier": record.forward_barrier if ok else None,
            "reverse_barrier": record.reverse_barrier if ok else None,
            "status": "failed" if record is None else record.status,
            "reason": "the NEB did not finish" if record is None else record.reason,
            "neb_key": None if record is None else record.content_key,
            "path": [] if not ok else [round(e - record.energies[0], 6) for e in record.energies],
            "reaction_energy": record.reaction_energy if ok else None,
        }
        if ok and (record.reaction_energy < 0) != (point["energy"] < 0):
            result.notes.append(
                f"{point['label']}: on its host's cell the migration is {record.reaction_energy:+.3f} eV, against "
                f"{point['energy']:+.3f} eV relaxed in its own cell: the cell relaxation decides its sign"
            )
        entry["within_kinetic_limit"] = ok and record.forward_barrier <= limit
        result.migration_barriers.append(entry)
        if record is not None:
            result.nebs.append(record)
        gate_points.append((point["x"], point["energy"], entry["forward_barrier"], entry["reverse_barrier"]))
    gate = migration_gate(gate_points, limit)
    result.kinetic_limit = limit
    result.migration_onset_x = gate.onset_x
    result.notes.append(f"TM migration gate: {gate.reason}")
    if gate.returns_at is not None:
        result.notes.append(
            f"on discharge the TM can go back at x={gate.returns_at:.3f} (uphill to stay, reverse barrier below the "
            "limit); the discharge branch runs on the pristine host from there"
        )
    return gate


def _migration_barrier_jobs(rows, ok, verified, context, calculator, guard, doc) -> tuple[list, list, list[dict]]:
    """One oct -> tet -> oct NEB per x: the lowest-energy migrated TM that stayed, from its own host.

    The migrated cell is put on its host's relaxed cell and relaxed there with the cell held, so
    both endpoints share one cell; the path starts through the tetrahedral site between the two
    polyhedra (``tetrahedral_site_between``).
    """
    if not context.get("migration_barriers"):
        return [], [], []
    settings = NebSettings(**context["migration_barriers"])
    hosts = {m["label"]: r for m, r in verified}
    lowest: dict[float, DefectResult] = {}
    for row in rows:
        if row.kind != "migration" or not row.counted or row.energy is None or row.reference_label not in hosts:
            continue
        if row.x not in lowest or row.energy < lowest[row.x].energy:
            lowest[row.x] = row
    endpoints, nebs, points = [], [], []
    fixed = fixed_cell(calculator)
    for x, row in sorted(lowest.items(), reverse=True):
        host = hosts[row.reference_label].entry.structure
        migrated = ok[row.label].entry.structure
        if not same_atom_order(host, migrated):
            doc.notes.append(f"{row.label}: its atoms are not in its host's order: no barrier")
            continue
        end = Structure(host.lattice, migrated.species, migrated.frac_coords)  # on the host's cell
        shifts = minimum_image(end.frac_coords - host.frac_coords)
        moving = int(np.argmax(np.linalg.norm(host.lattice.get_cartesian_coords(shifts), axis=1)))
        waypoint = tetrahedral_site_between(host, moving, end[moving].frac_coords)
        if waypoint is None:
            doc.notes.append(
                f"{row.label}: no tetrahedral site between the two polyhedra (they do not share one edge): "
                "its NEB starts on the straight line"
            )
        relax_end = CalculationMaker(
            calculator=fixed, label=f"{row.label} on its host's cell", study=context["study"], guard=guard
        ).make(end)
        label = f"TM hop {row.label}"
        run = neb_from_endpoints(
            hosts[row.reference_label].model_dump(), relax_end.output, moving, waypoint, calculator, settings, label
        )
        run.name = f"NEB {label}"
        run.config.on_missing_references = OnMissing.NONE
        run.config.expose_store = True
        endpoints.append(relax_end)
        nebs.append(run)
        points.append({"x": x, "label": row.label, "energy": row.energy, "neb_label": label})
    return endpoints, nebs, points


def _verified_pristine(context, records, ok, full, cations, doc) -> tuple[list, dict]:
    """Pristine orderings that relaxed and kept their map, and the reference (the lowest of them) at each x."""
    geometry = {m["label"]: _pristine_geometry(m, ok.get(m["label"]), full, cations) for m in context["pristine"]}
    verified = [(m, ok[m["label"]]) for m in context["pristine"] if geometry[m["label"]] == "kept"]
    for m in context["pristine"]:
        if m["label"] in ok and geometry[m["label"]] != "kept":
            doc.notes.append(
                f"{m['label']} changed during relaxation ({geometry[m['label']]}): not used as a reference"
            )
    reference_of = _references(verified)
    for m in context["pristine"]:
        lowest = reference_of.get(m["x"])
        if m["label"] not in ok or geometry[m["label"]] == "kept" or lowest is None:
            continue
        below = lowest[1].entry.energy - ok[m["label"]].entry.energy
        if below > 1e-6:
            doc.notes.append(
                f"{m['label']} relaxed into another arrangement {below:.3f} eV below the reference "
                f"{lowest[0]['label']}: the ordering it became may be the ground state at x"
            )
    doc.pristine = [
        {
            "label": m["label"],
            "x": m["x"],
            "status": None if records[m["label"]] is None else records[m["label"]].status,
            "energy": ok[m["label"]].entry.energy if m["label"] in ok else None,
            "geometry": geometry[m["label"]],
            "reference": m["x"] in reference_of and reference_of[m["x"]][0]["label"] == m["label"],
        }
        for m in context["pristine"]
    ]
    return verified, reference_of


def _references(verified: list) -> dict[float, tuple[dict, CalculationRecord]]:
    """The pristine reference at each x: the lowest-energy relaxed ordering that kept its map."""
    best: dict[float, tuple[dict, CalculationRecord]] = {}
    for meta, record in verified:
        if meta["x"] not in best or record.entry.energy < best[meta["x"]][1].entry.energy:
            best[meta["x"]] = (meta, record)
    return best


def _defect_rows(context, records, ok, verified, reference_of, found, phases, doc) -> list[DefectResult]:
    """One result per candidate, measured from its own (verified) host ordering, at every limit of its region.

    A defect is built in one ordering; measuring it from another would add that ordering's energy
    above the lowest one (a whole-supercell term, not a defect property), so that difference is
    reported on the row (``host_above_reference``) instead.
    """
    limit = context["limit"]
    regions, synthesis = found
    hosts = {m["ordering"]: (m, r) for m, r in verified}
    rows = []
    for meta in context["candidates"]:
        record = records[meta["label"]]
        row = DefectResult(**{k: meta[k] for k in DefectResult.model_fields if k in meta})
        if record is not None:
            row.status, row.reason = record.status, record.reason
            row.content_key, row.reused = record.content_key, record.reused
        host = hosts.get(meta["host_label"])
        reference = reference_of.get(meta["x"])
        if meta["label"] in ok and host is None:
            row.counted = False
            row.geometry = "its host ordering did not relax or changed its map: no reference"
        if meta["label"] in ok and host is not None:
            host_meta, host_record = host
            row.reference_label = host_meta["label"]
            row.host_above_reference = round(host_record.entry.energy - reference[1].entry.energy, 6)
            e_defect, base = ok[meta["label"]].entry.energy, host_record.entry.energy
            row.raw_difference = e_defect - base
            if row.kind in ("migration", "exchange"):
                row.energy = row.raw_difference
            else:
                region = regions.get(host_meta["ordering"])
                _energies_at_limits(row, e_defect, base, region, phases, limit, doc)
                point = synthesis.get(host_meta["ordering"])
                if point is not None and row.energies_at_limits:
                    mu, unbounded = with_impurities(point.mu, {el for el, n in row.change.items() if n}, phases)
                    if not unbounded:
                        row.energy_synthesis = round(defect_energy(e_defect, base, row.change, mu), 6)
                        row.energies_at_limits[point.name] = row.energy_synthesis
        rows.append(row)
    above = sorted(
        {(r.x, r.reference_label, r.host_above_reference) for r in rows if (r.host_above_reference or 0) > 1e-3}
    )
    for x, label, gap in above:
        doc.notes.append(
            f"defects at x={x:.3f} are made in {label}, {gap:.3f} eV (per supercell) above the lowest ordering "
            "there; their energies are measured from their own host"
        )
    doc.defects = rows
    doc.chemical_potential_limit = limit
    doc.chemical_potentials = {}
    used = sorted({(r.x, r.reference_label) for r in rows if r.reference_label})
    per_x = {x: sum(1 for xx, _ in used if xx == x) for x, _ in used}
    for x, label in used:  # the mu each defect's energy used: its own host's region
        meta, _ = next((m, r) for m, r in verified if m["label"] == label)
        region = regions.get(meta["ordering"])
        chosen = None if region is None else named_limit(region, limit)
        if chosen is None:
            continue
        added = {el for c in context["candidates"] for el, n in c["change"].items() if n > 0}
        mu, _ = with_impurities(chosen.mu, added, phases)  # an unbounded one is reported per defect
        tag = f"x={x:.3f}" if per_x[x] == 1 else f"x={x:.3f} {meta['ordering']}"
        doc.chemical_potentials |= {f"{el}({tag})": round(v, 6) for el, v in sorted(mu.items())}
    return rows


def _pristine_geometry(meta: dict, record: CalculationRecord | None, full: Structure, cations: set[str]) -> str:
    """'kept', or which cations left their sites during the relaxation of a pristine ordering."""
    if record is None:
        return "not relaxed"
    start, relaxed = as_structure(meta["structure"]), record.entry.structure
    if not same_atom_order(start, relaxed):
        return "not checked: the relaxed cell lists its atoms in another order"
    changes = site_changes(start, relaxed, parent_sites(full, start, cations), cations)
    return "kept" if not changes else "changed: " + describe_changes(changes)


def _check_defect_geometry(rows: list[DefectResult], context: dict, ok: dict, full: Structure, cations) -> None:
    """Map each relaxed defect cell back onto the supercell; a moved TM must have stayed to count."""
    meta_of = {m["label"]: m for m in context["candidates"]}
    for row in rows:
        if row.label not in ok:
            continue
        meta = meta_of[row.label]
        start, relaxed = as_structure(meta["structure"]), ok[row.label].entry.structure
        if not same_atom_order(start, relaxed):
            row.geometry = "not checked: the relaxed cell lists its atoms in another order"
            row.counted = False
            continue
        parents = parent_sites(full, start, cations)
        moved = meta.get("moved_index")
        if meta.get("target") is not None:
            parents.append(("the moved TM's destination", np.asarray(meta["target"])))
        changes = [c for c in site_changes(start, relaxed, parents, cations) if c.index != moved]
        outcome = None
        if moved is not None:
            outcome = classify_moved_tm(start, relaxed, moved, np.asarray(meta["origin"]), np.asarray(meta["target"]))
        parts = []
        if outcome is not None:
            parts.append(f"{start[moved].specie.symbol} {outcome.describe()}")
        if changes:
            parts.append("changed: " + describe_changes(changes))
        row.geometry = "; ".join(parts) or "kept"
        row.counted = row.counted and not changes and (outcome is None or outcome.migrated)


def _charged_states(rows, context, ok, charged_records, verified, found, phases, calculator, doc) -> None:
    """Formation energy vs E_F, with the Freysoldt correction, for the defects computed in several charges."""
    if not context.get("charged"):
        doc.charge_treatment = f"neutral only: {calculator.identity()['name']} was not asked for charge states"
        if not supports_charge(calculator):
            doc.charge_treatment = (
                f"neutral only: {calculator.identity()['name']} has no electrons to add or remove (ML or xTB)"
            )
        return
    dielectric = context["dielectric"]
    doc.charge_treatment = (
        f"charge states from {calculator.identity()['name']}, Freysoldt correction (pymatgen-analysis-defects) with "
        f"dielectric {dielectric}; E_F from the host's VBM; classes use the neutral energies"
    )
    regions, synthesis = found
    hosts = {m["label"]: r for m, r in verified}
    by_candidate: dict[str, list[tuple[int, CalculationRecord | None, str]]] = {}
    for meta, raw in zip(context["charged"], charged_records, strict=True):
        by_candidate.setdefault(meta["candidate"], []).append((meta["charge"], _parse(raw), meta["label"]))
    for row in rows:
        if row.label not in by_candidate or row.label not in ok or row.reference_label not in hosts:
            continue
        host = hosts[row.reference_label]
        if host.band_edges is None or host.planar_potential is None:
            doc.missing.append(f"{row.label}: its host has no band edges or planar potential: no charged energies")
            continue
        gap, _, vbm = host.band_edges
        bulk_planar = {int(k): np.asarray(v) for k, v in host.planar_potential.items()}
        states = [ChargeState(0, ok[row.label].entry.energy)]
        for charge, record, label in sorted(by_candidate[row.label], key=lambda item: item[0]):
            entry = {"charge": charge, "label": label, "status": None if record is None else record.status}
            if record is None or record.status != "ok" or record.planar_potential is None:
                entry["reason"] = "did not finish" if record is None else (record.reason or "no planar potential")
                row.charge_states.append(entry)
                continue
            relaxed = record.entry.structure
            centre = locate_defect(relaxed, host.entry.structure).centre
            defect_planar = on_grid({int(k): np.asarray(v) for k, v in record.planar_potential.items()}, bulk_planar)
            correction, parts = freysoldt_correction(
                charge, dielectric, defect_planar, bulk_planar, host.entry.structure.lattice, centre
            )
            states.append(ChargeState(charge, record.entry.energy, correction))
            entry |= {"energy": record.entry.energy, "correction": round(correction, 6)}
            entry |= {k: round(v, 6) for k, v in parts.items() if k in ("electrostatic", "alignment")}
            row.charge_states.append(entry)
        ordering = next(m["ordering"] for m, _ in verified if m["label"] == row.reference_label)
        region = regions.get(ordering)
        if region is None:
            continue
        points = [*region.limits, *([synthesis[ordering]] if ordering in synthesis else [])]
        mu_by_limit = {}
        for chosen in points:
            mu, unbounded = with_impurities(chosen.mu, {el for el, n in row.change.items() if n}, phases)
            if not unbounded:
                mu_by_limit[chosen.name] = mu
        row.charged = charged_summary(states, host.entry.energy, row.change, mu_by_limit, vbm, gap)
    _fermi_level_at_synthesis(rows, context, verified, synthesis, doc)


def _fermi_level_at_synthesis(rows, context, verified, synthesis, doc) -> None:
    """Charge neutrality of the as-made host: its charged defects and free carriers at the synthesis point and T."""
    for meta, host in verified:
        point = synthesis.get(meta["ordering"])
        if point is None:
            continue
        charged = [r for r in rows if r.reference_label == meta["label"] and r.charged and point.name in r.charged]
        if not charged:
            continue
        if host.total_dos is None or host.band_edges is None:
            doc.missing.append(f"{meta['label']}: no total DOS: no self-consistent Fermi level")
            return
        gap, _, vbm = host.band_edges
        cell = host.entry.structure
        ion = context["host"]["working_ion"]
        formula_units = units_of(cell.composition, framework_unit(context["host"]["formula"], ion), ion)
        per_cm3 = formula_units / (cell.volume * CM3_PER_A3)  # multiplicities are per framework unit
        defects = [
            ChargedDefect(
                r.label,
                tuple((float(q), float(b)) for q, b in r.charged[point.name]["lines"]),
                r.multiplicity * per_cm3,
            )
            for r in charged
        ]
        temperature = context["synthesis_temperature"]
        carriers = carrier_densities(host.total_dos, cell.volume, vbm, gap)
        solution = self_consistent_fermi_level(defects, carriers, gap, temperature)
        doc.fermi_level = {
            "point": point.name,
            "host": meta["label"],
            "temperature": temperature,
            "fermi_level": round(solution.fermi_level, 4),
            "pinned": solution.pinned,
            "band_gap": round(gap, 4),
            "electrons": solution.electrons,
            "holes": solution.holes,
            "defects": solution.defects,
            "note": "only the defects computed in several charge states enter the balance; degeneracies taken as 1",
        }
        return  # one as-made host


def _energies_at_limits(row, e_defect, e_pristine, region, phases, limit, doc) -> None:
    """The defect's energy at each limit of its host's region (impurities at their solubility limit)."""
    if region is None:
        doc.missing.append(f"{row.label}: its host has no stability region: no chemical potentials")
        return
    for chosen in region.limits:
        mu, unbounded = with_impurities(chosen.mu, {el for el, n in row.change.items() if n}, phases)
        if unbounded:
            doc.missing.append(f"{row.label}: {unbounded[0]}")
            return
        row.energies_at_limits[chosen.name] = round(defect_energy(e_defect, e_pristine, row.change, mu), 6)
    named = named_limit(region, limit)
    if named is None:
        doc.missing.append(f"{row.label}: the region at x={row.x:.3f} has no limit '{limit}'")
        return
    row.energy = row.energies_at_limits[named.name]


def _classify_all(rows: list[DefectResult], context: dict, doc: DefectStudyDoc) -> dict:
    """Concentrations per row and the class of each kind, from the rows whose geometry counts."""
    synthesis_t, operating_t = context["synthesis_temperature"], context["operating_temperature"]
    ion = context["host"]["working_ion"]
    unit = framework_unit(context["host"]["formula"], ion)
    tms_per_fu = sum(unit[el] for el in context["host"]["redox_elements"])
    for row in rows:
        if row.energy is None:
            continue
        at_synthesis = row.energy if row.energy_synthesis is None else row.energy_synthesis
        if row.kind in ("migration", "exchange"):  # one state per TM
            row.concentration_operating = exclusive_concentration(
                [(row.energy, row.multiplicity)], tms_per_fu, operating_t
            )
            row.concentration_synthesis = exclusive_concentration(
                [(at_synthesis, row.multiplicity)], tms_per_fu, synthesis_t
            )
        else:
            row.concentration_operating = concentration(row.energy, row.multiplicity, operating_t)
            row.concentration_synthesis = concentration(at_synthesis, row.multiplicity, synthesis_t)
    synthesis_x = max(m["x"] for m in context["pristine"])
    counted = [r.model_dump() for r in rows if r.counted]
    left_out = [r for r in rows if not r.counted]
    classes = {}
    for kind, points in group_points(counted).items():
        built_at = {m["x"] for m in context["candidates"] if m["kind"] == kind}
        # a TM cannot move into an empty site of the as-made host when it has none: none was built there
        absent = (synthesis_x,) if kind == "migration" and synthesis_x not in built_at else ()
        moved_tm = kind in ("migration", "exchange")
        changed = {el for m in context["candidates"] if m["kind"] == kind for el, n in m["change"].items() if n}
        result = classify(
            kind,
            points,
            synthesis_x,
            synthesis_t,
            operating_t,
            absent_at=absent,
            hosts=tms_per_fu if moved_tm else None,
            reservoir_bound=bool(changed - {ion}),
            synthesis_points=[
                DefectPoint(r.x, r.energy_synthesis, r.site, r.multiplicity)
                for r in rows
                if r.kind == kind and r.counted and r.x == synthesis_x and r.energy_synthesis is not None
            ],
        )
        dropped = [r.label for r in left_out if r.kind == kind and r.energy is not None]
        for x, lowest in result.energies.items():
            below = [r for r in left_out if r.kind == kind and r.x == x and r.energy is not None and r.energy < lowest]
            for r in below:
                result.notes.append(
                    f"{r.label} ({r.geometry}) lies {lowest - r.energy:.3f} eV below every counted one at x={x:.3f}: "
                    "what it became is a candidate in its own right"
                )
        if dropped:
            result.notes.append(f"left out, the relaxed cell is not what was built: {', '.join(dropped)}")
        classes[kind] = result
        doc.classes.append(
            DefectClassDoc(
                kind=kind,
                classification=result.classification,
                energies=sorted(result.energies.items()),
                sites=sorted(result.sites.items()),
                concentrations=sorted(result.concentrations.items()),
                quenched_concentration=result.quenched,
                span_decades=min(result.span_decades, 999.0),
                synthesis_temperature=synthesis_t,
                operating_temperature=operating_t,
                onset_x=result.onset_x,
                onset_site=result.onset_site,
                lowest_x_site=result.lowest_x_site,
                favourable_x=result.favourable_x,
                notes=result.notes,
            )
        )
    return classes


def _note_failures(doc: DefectStudyDoc, records: dict) -> None:
    for label, record in records.items():
        if record is None:
            doc.failed.append(
                FailedCalculation(
                    label=label, formula="?", status="failed", reason="its job did not finish (see the manager's log)"
                )
            )
        elif record.status != "ok":
            doc.failed.append(
                FailedCalculation(label=label, formula=record.formula, status=record.status, reason=record.reason or "")
            )


def _competing_energies(references: dict, ion_record, ion: str, doc: DefectStudyDoc) -> dict:
    """Composition and total energy of every competing phase that relaxed, by label; the others are named."""
    phases = {}
    if ion_record is not None and ion_record.status == "ok":
        phases[ion] = (ion_record.entry.composition, ion_record.entry.energy)
    for label, record in references.items():
        if record is None or record.status != "ok":
            doc.notes.append(f"competing phase {label} has no usable result: the regions are computed without it")
            continue
        phases[label] = (record.entry.composition, record.entry.energy)
    doc.competing_phases = sorted(phases)
    return phases


def _stability_regions(context, pristine_ok, phases, charge, ion, doc) -> tuple[dict, dict]:
    """The region of each relaxed pristine host, with mu_ion held at the electrode's mu_ion(x); its synthesis point."""
    regions, synthesis = {}, {}
    mu_ion = _ion_mu_table(charge, context)
    synthesis_x = max(m["x"] for m in context["pristine"])
    for meta, record in pristine_ok:
        fixed = dict(context["chemical_potentials"])
        if meta["x"] in mu_ion:
            fixed[ion] = mu_ion[meta["x"]]
        try:
            region = stability_region(record.entry.composition, record.entry.energy, phases, fixed)
        except ValueError as exc:
            doc.missing.append(f"{meta['label']}: no stability region: {exc}")
            continue
        regions[meta["ordering"]] = region
        doc.stability_regions.append(
            {
                "label": meta["label"],
                "x": meta["x"],
                "stable": region.stable,
                "above_competing": round(region.above_competing, 6),
                "limits": [{"name": lim.name, "mu": lim.mu, "bounded_by": lim.bounded_by} for lim in region.limits],
                "notes": region.notes,
            }
        )
        point = None if meta["x"] != synthesis_x else _synthesis_point(context, record, phases, ion)
        if point is not None:
            synthesis[meta["ordering"]] = point
            doc.stability_regions[-1]["synthesis"] = {"name": point.name, "mu": point.mu, "notes": point.bounded_by}
    return regions, synthesis


def _synthesis_point(context, record, phases, ion: str) -> Limit | None:
    """The as-made host in O2 at the synthesis temperature and pressure, at its working-ion-rich end.

    mu_O = E(O2)/2 + Delta mu_O(T, p), with E(O2) the calculator's own molecule (on the MP2020
    scale O2 carries no correction: the oxide correction is fitted against it). The electrode
    does not hold mu_Li during synthesis: with mu_O fixed, the host's region is a segment from
    Li-rich to Li-poor, and syntheses use excess Li (Li2CO3, LiOH), so the Li-rich end is taken.
    A host that lies above its competing phases there says by how much.
    """
    if "O2" not in phases or "O" not in {el.symbol for el in record.entry.composition.elements}:
        return None
    held = dict(context["chemical_potentials"])
    if "O" in held:
        return None  # the recipe holds mu_O: no other O2 point
    temperature, pressure = context["synthesis_temperature"], context["oxygen_pressure"]
    composition, energy = phases["O2"]
    mu_o = energy / composition["O"] + oxygen_shift(temperature, pressure)
    try:
        region = stability_region(record.entry.composition, record.entry.energy, phases, {**held, "O": mu_o})
    except ValueError:
        return None
    rich = [lim for lim in region.limits if f"{ion}-rich" in lim.name.split(" / ")]
    chosen = (rich or region.limits)[0]
    name = (
        f"O2 at {temperature:g} K, {pressure:g} atm, {ion}-rich"
        if rich
        else f"O2 at {temperature:g} K, {pressure:g} atm"
    )
    notes = [f"with {' + '.join(chosen.bounded_by)}"] if chosen.bounded_by else []
    if not region.stable:
        notes.append(f"{region.above_competing:.3f} eV/f.u. above its competing phases there")
    return Limit(name=name, mu=dict(chosen.mu), bounded_by=notes)


def _ion_mu_table(charge, context) -> dict[float, float]:
    if charge is None:
        return {}
    xs = sorted({m["x"] for m in context["pristine"]})
    return {
        x: ion_chemical_potential(charge, x) for x in xs if charge.x_range[0] - 1e-9 <= x <= charge.x_range[1] + 1e-9
    }


def _f_o_reduction(rows: list[DefectResult], ok: dict, context: dict) -> list[str]:
    """Which TM takes the F_O donor electron: the largest drop... or rise of its moment, else the nearest TM."""
    reports = []
    pristine_by_ordering = {m["ordering"]: m["label"] for m in context["pristine"]}
    redox = set(context["host"]["redox_elements"])
    for row in rows:
        if row.kind != "F_O" or row.label not in ok:
            continue
        defect = ok[row.label]
        pristine = ok.get(pristine_by_ordering.get(row.host_label, ""))
        structure = defect.entry.structure
        tm_indices = [i for i, site in enumerate(structure) if site.specie.symbol in redox]
        if (
            pristine is not None
            and defect.magmoms
            and pristine.magmoms
            and len(pristine.magmoms) == len(defect.magmoms)
        ):
            changes = {i: abs(defect.magmoms[i]) - abs(pristine.magmoms[i]) for i in tm_indices}
            index = max(changes, key=lambda i: abs(changes[i]))
            symbol = structure[index].specie.symbol
            reports.append(
                f"{row.label}: {symbol} site {index} moment {abs(pristine.magmoms[index]):.2f} -> "
                f"{abs(defect.magmoms[index]):.2f} muB (the largest change: the reduced {symbol})"
            )
        else:
            fluorine = next(i for i, site in enumerate(structure) if site.specie.symbol == "F")
            nearest = min(tm_indices, key=lambda i: structure.get_distance(fluorine, i))
            reports.append(
                f"{row.label}: no magnetic moments from this calculator; nearest TM to F is "
                f"{structure[nearest].specie.symbol} site {nearest} ({structure.get_distance(fluorine, nearest):.2f} A)"
            )
    return reports


def _coupled_migration(rows: list[DefectResult], classes: dict, doc: DefectStudyDoc) -> DefectResult | None:
    """The lowest-energy migrated configuration at the lowest x, if migration is favourable there."""
    migration = classes.get("migration")
    if migration is None or not migration.energies:
        return None
    lowest_x = min(migration.energies)
    if migration.energies[lowest_x] >= 0:
        doc.notes.append(
            f"TM migration is unfavourable at every computed x (lowest dE_mig at x={lowest_x:.3f}: "
            f"{migration.energies[lowest_x]:+.3f} eV): no coupled defect forms, the discharge retraces the charge"
        )
        return None
    candidates = [r for r in rows if r.kind == "migration" and r.x == lowest_x and r.energy is not None and r.counted]
    return min(candidates, key=lambda r: r.energy)


def faces_a_moved_tm(moved: Structure, full: Structure, frac: np.ndarray, cutoff: float) -> bool:
    """Whether the site at ``frac`` shares a face with more TMs in ``moved`` than in the defect-free ``full``."""

    def tms(structure: Structure) -> int:
        sharing = face_sharing_cations(structure, frac, cutoff)
        return sum(1 for i in sharing if structure[i].specie.is_transition_metal)

    return tms(moved) > tms(full)


def _relithiated(migrated: DefectResult, context: dict, charge, doc: DefectStudyDoc) -> list[tuple[str, Structure]]:
    """Orderings of the migrated host at each higher x of the charge grid (lowest Ewald first)."""
    meta = next(c for c in context["candidates"] if c["label"] == migrated.label)
    base = as_structure(meta["structure"])  # jobflow may hand back the object or its dict
    full = as_structure(context["full_supercell"])
    host = context["host"]
    ion = host["working_ion"]
    settings = context["settings"]
    allowed = set(settings.get("active_sites") or [])
    ion_sites = []
    for sub in working_ion_sublattices(full, ion):
        if allowed and not {sub.label, sub.label.lstrip("0123456789")} & allowed:
            continue
        ion_sites += [full[i].coords for i in sub.indices]
    lithiated = base.copy()
    added, facing = [], 0
    cutoff = bond_cutoff(full)
    for coords in ion_sites:
        frac = lithiated.lattice.get_fractional_coords(coords)
        if lithiated.lattice.get_all_distances(lithiated.frac_coords, [frac]).min() < REINSERT_CLEARANCE:
            continue
        if faces_a_moved_tm(base, full, frac, cutoff):
            facing += 1  # a cation sharing a face with the moved TM: Pauling's third rule keeps it empty
            continue
        lithiated.append(ion, frac)
        added.append(len(lithiated) - 1)
    if facing:
        doc.notes.append(f"discharge branch: {facing} {ion} sites that share a face with the moved TM stay empty")
    if not added:
        doc.notes.append("the migrated host has no free site to take the working ion back: no discharge branch")
        return []
    migrated_host = Host(
        name=f"{host['name']} migrated",
        structure=lithiated,
        working_ion=ion,
        redox_elements=host["redox_elements"],
        oxidation_states=host["oxidation_states"],
    )
    # x against the original host's formula unit (the migrated host's own formula differs)
    unit = framework_unit(host["formula"], ion)
    full_units = units_of(lithiated.composition, unit, ion)
    x_top = lithiated.composition[ion] / full_units
    grid = {round(m["x"], 6) for m in context["pristine"]}
    own_units = units_of(lithiated.composition, framework_unit(lithiated.composition.reduced_formula, ion), ion)

    def on_branch(x_own: float) -> bool:
        x = x_own * own_units / full_units
        return x > migrated.x + 1e-9 and (round(x, 6) in grid or abs(x - x_top) < 1e-9)

    orderings, _ = select_orderings(
        migrated_host,
        OrderingSettings(
            supercell=[[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            ewald_keep=context["discharge_orderings"],
            max_active_sites=settings.get("max_active_sites", 18),
        ),
        active_indices=added,
        only=on_branch,
    )
    true_x = {id(o): o.structure.composition[ion] / full_units for o in orderings}
    doc.notes.append(
        f"discharge branch: {len(added)} {ion} sites re-filled around {migrated.label}; "
        f"x from {migrated.x:.3f} to {x_top:.3f} (the site the TM took stays blocked)"
    )
    return [
        (
            f"discharge x={true_x[id(o)]:.3f} #{o.ewald_rank} [{migrated.label}]",
            rattled(o.structure, settings.get("rattle", 0.0), settings.get("rattle_seed", 0)),
        )
        for o in orderings
    ]


@job
def defect_study(
    doc: dict,
    discharge_records: list,
    discharge_labels: list[str],
    migrated: dict | None,
    migrated_record: dict | None,
    ion_record,
    pristine_meta: list[dict],
    pristine_records: list[dict],
    study: str,
    barrier_records: list | None = None,
    barrier_points: list[dict] | None = None,
    limit: float | None = None,
    barrier_endpoints: list | None = None,
) -> DefectStudyDoc:
    """Add the hysteresis loop (zero when nothing coupled formed), gated by the TM barriers, and finish."""
    result = DefectStudyDoc.model_validate(doc)
    host = result.host
    ion = host["working_ion"]
    framework = framework_unit(host["formula"], ion)
    ion_rec = _parse(ion_record)
    parsed = [CalculationRecord.model_validate(r) for r in pristine_records]
    extra: list[CalculationRecord] = []
    if ion_rec is not None and ion_rec.status == "ok" and len({round(m["x"], 6) for m in pristine_meta}) >= 2:
        charge = voltage_profile(
            [(m["label"], r.computed_entry()) for m, r in zip(pristine_meta, parsed, strict=True)],
            ion_rec.computed_entry(),
            ion,
            framework,
        )
        discharge = None
        if migrated is not None:
            entries = [(migrated["label"], CalculationRecord.model_validate(migrated_record).computed_entry())]
            for label, raw in zip(discharge_labels, discharge_records, strict=True):
                record = _parse(raw)
                if record is not None:
                    extra.append(record)
                if record is None or record.status != "ok":
                    reason = "did not finish" if record is None else record.reason
                    result.failed.append(
                        FailedCalculation(
                            label=label,
                            formula="?" if record is None else record.formula,
                            status="failed" if record is None else record.status,
                            reason=reason or "",
                        )
                    )
                    continue
                entries.append((label, record.computed_entry()))
            try:
                discharge = voltage_profile(entries, ion_rec.computed_entry(), ion, framework)
            except InsertflowError as exc:
                result.missing.append(f"discharge branch: {exc}")
        try:
            loop = hysteresis_loop(charge, discharge)
        except ValueError as exc:
            result.missing.append(f"hysteresis: {exc}")
        else:
            result.hysteresis = _hysteresis_doc(loop, None if migrated is None else migrated["label"])
            gate = None
            if barrier_points:
                gate = _gate_by_barriers(result, barrier_records or [], barrier_points, limit)
                _apply_gate(result, loop, charge, gate)
            if discharge is not None and result.hysteresis.coupled:
                _add_cycles(result, charge, discharge, gate, migrated)
    else:
        result.missing.append("hysteresis: needs the working-ion reference and two pristine compositions")
    if any(c.kind == "migration" for c in result.classes) and result.hysteresis is not None:
        result.hysteresis.definition += f"; migration threshold 0 eV, lowest x {min(m['x'] for m in pristine_meta):.3f}"
    extra += _endpoint_records(result, barrier_endpoints or [])
    result.calculations = [*result.calculations, *extra]
    result.new_calculations = sum(1 for r in result.calculations if not r.reused)
    result.reused_calculations = sum(1 for r in result.calculations if r.reused)
    summary = (
        "no hysteresis"
        if result.hysteresis is None
        else (
            f"hysteresis {result.hysteresis.average_hysteresis:.3f} V "
            f"({'coupled: ' + result.hysteresis.migrated_label if result.hysteresis.coupled else 'no coupled defect'})"
        )
    )
    classes = ", ".join(f"{c.kind} {c.classification}" for c in result.classes)
    progress.emit(ANALYSIS_STAGE, f"defects {host['formula']}", f"{classes}; {summary}")
    return result
