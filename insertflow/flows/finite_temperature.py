"""Finite temperature after an insertion-levels study: cluster expansion, ground-state loop, Monte Carlo.

``fit_expansion`` fits icet ECIs to the study's relaxed orderings (no new calculation), searches the
expansion for ground states in larger cells, and when it finds one the study did not compute it
relaxes it with the study's calculator (a content-keyed ``CalculationMaker`` job, reused on a rerun)
and replaces itself with those relaxations and a refit, up to ``ground_state_iterations`` rounds.
``monte_carlo`` then runs SGC sweeps (refined across jumps), VCSGC on an x grid and heat-capacity
scans, and attaches the expansion and V(x, T) to the levels document. The Monte Carlo result is content-keyed on the
expansion and every setting, so a rerun reuses it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms
from jobflow import CURRENT_JOB, Flow, OnMissing, Response, job
from monty.json import MSONable
from pymatgen.core import Structure

from insertflow import progress
from insertflow.analysis.cluster_expansion import (
    ActiveLattice,
    FitError,
    TrainingPoint,
    calculator_hull,
    cluster_space,
    fit_cluster_expansion,
    ground_states,
    hull_steps,
    mapped_point,
    without_vacancies,
)
from insertflow.analysis.profile import per_formula_unit
from insertflow.analysis.thermodynamics import (
    MonteCarloSettings,
    Sampler,
    plateaus,
    sgc_sweep,
    step_checks,
    transition_scan,
    vcsgc_grid,
    voltage_curve,
)
from insertflow.analysis.voltage import framework_unit, ion_charge
from insertflow.calculators.base import Calculator, as_structure
from insertflow.flows.calculation import CalculationMaker, LayerGuard
from insertflow.recipe import TRANSITION_TEMPERATURES
from insertflow.sampling.orderings import tight_matcher
from insertflow.schemas import CalculationRecord, ClusterExpansionDoc, FiniteTemperatureDoc, InsertionLevelsDoc

#: Part of the Monte Carlo's content key: raised when what it computes from the same inputs changes.
MONTE_CARLO_VERSION = 5
FIT_STAGE = "cluster expansion"
MC_STAGE = "monte carlo"


@dataclass
class FiniteTemperatureSettings(MSONable):
    """Cluster space, fit, ground-state loop and Monte Carlo of a finite-temperature profile."""

    cutoffs: list[float] = field(default_factory=lambda: [6.0])  # A: pairs (then triplets, ...)
    fit_method: str = "least-squares"  # trainstation: least-squares, ardr, lasso, ...
    n_splits: int = 5  # k-fold cross validation
    max_drift: float = 1.0  # A: a relaxed ordering whose atoms moved further is left out
    max_cv_rmse: float = 5.0  # meV per site: beyond it the fit is warned about (and stored)
    ground_state_cells: int = 8  # the search enumerates supercells of up to this many cells
    ground_state_iterations: int = 2  # rounds of relaxing new ground states and refitting
    max_new_per_iteration: int = 4
    temperatures: list[float] = field(default_factory=lambda: [50.0, 300.0, 600.0])
    n_mu: int = 30  # SGC chemical potentials per temperature
    voltage_margin: float = 0.3  # V beyond the 0 K steps that the SGC grid spans
    supercell: list[int] | None = None  # repeats of the enumeration cell; default >= 200 active sites
    equilibration: int = 200  # sweeps
    production: int = 400  # sweeps
    kappa: float = 200.0
    seed: int = 0
    n_x: int = 25  # VCSGC compositions per temperature, evenly inside the x range
    gap_min: float = 0.1  # fraction of the x range: smaller SGC jumps are not two-phase regions
    transition_temperatures: list[float] = field(default_factory=lambda: list(TRANSITION_TEMPERATURES))
    transitions: list[float] | None = None  # x of the 0 K vertices to scan; default the levels hull's interior ones


def default_supercell(active_per_cell: int, target: int = 200) -> list[int]:
    """The smallest even n with n^3 cells holding at least ``target`` active sites."""
    n = 2
    while n**3 * active_per_cell < target:
        n += 2
    return [n, n, n]


def with_finite_temperature(
    levels: Flow,
    lattice: ActiveLattice,
    calculator: Calculator,
    guard: LayerGuard,
    settings: FiniteTemperatureSettings,
    study: str,
) -> Flow:
    """The levels flow, then the fit (with its ground-state loop) and the Monte Carlo on its document."""
    fit = fit_expansion(levels.output, _lattice_dict(lattice), calculator, guard, settings, study)
    fit.name = f"cluster expansion {study}"
    fit.config.on_missing_references = OnMissing.NONE
    return Flow([levels, fit], output=fit.output, name=f"{study} with finite temperature")


def _lattice_dict(lattice: ActiveLattice) -> dict:
    return {
        "primitive": lattice.primitive.as_dict(),
        "active": list(lattice.active),
        "working_ion": lattice.working_ion,
        "framework": lattice.framework.formula,
    }


def lattice_from_dict(data: dict) -> ActiveLattice:
    """The lattice a ``ClusterExpansionDoc`` stores."""
    from pymatgen.core import Composition

    primitive = data["primitive"]  # jobflow hands MSON dicts over as the objects they encode
    return ActiveLattice(
        primitive if isinstance(primitive, Structure) else Structure.from_dict(primitive),
        list(data["active"]),
        data["working_ion"],
        Composition(data["framework"]),
    )


def expansion_from_doc(doc: dict):
    """The icet ClusterExpansion rebuilt from a stored ``ClusterExpansionDoc`` (same cluster space, same ECIs)."""
    from icet import ClusterExpansion

    space = cluster_space(lattice_from_dict(doc["lattice"]), doc["cutoffs"])
    return ClusterExpansion(space, np.array(doc["parameters"]))


def _end_line(doc: dict) -> tuple[float, float, float, float]:
    """(x_low, E_low, x_high, E_high) per framework unit: the hull's end members."""
    hull = sorted((o for o in doc["orderings"] if o.get("on_hull")), key=lambda o: o["x"])
    return hull[0]["x"], hull[0]["energy_per_fu"], hull[-1]["x"], hull[-1]["energy_per_fu"]


def training_points(doc: dict, extra: list[dict], lattice: ActiveLattice, max_drift: float) -> list[TrainingPoint]:
    """Every relaxed ordering of the study, and the ground states the loop relaxed, mapped onto the lattice."""
    records = {r["label"]: r for r in doc.get("calculations", [])}
    points = []
    for row in doc["orderings"]:
        if row.get("status") != "ok" or row.get("formation_energy") is None or row["label"] not in records:
            continue
        structure = as_structure(CalculationRecord.model_validate(records[row["label"]]).entry.structure)
        points.append(mapped_point(lattice, row["label"], structure, row["formation_energy"], max_drift))
    x_low, e_low, x_high, e_high = _end_line(doc)
    framework = framework_unit(doc["host"]["formula"], lattice.working_ion)
    for raw in extra:
        if raw is None:
            continue
        record = CalculationRecord.model_validate(raw)
        if record.status != "ok":
            points.append(
                TrainingPoint(record.label, math.nan, math.nan, reason=f"relaxation {record.status}: {record.reason}")
            )
            continue
        x, energy, _ = per_formula_unit(record.computed_entry(), framework, lattice.working_ion)
        formation = energy - (e_low + (x - x_low) * (e_high - e_low) / (x_high - x_low))
        structure = as_structure(record.entry.structure)
        points.append(
            mapped_point(lattice, record.label, structure, formation, max_drift, source="ground-state search")
        )
    return points


def _is_known(candidate: Structure, x: float, known: list[tuple[float, Structure]]) -> bool:
    """Whether an ordering at ``x`` is one of the ``known`` (x, structure) ones (same decoration of the lattice)."""
    matcher = tight_matcher()
    return any(abs(kx - x) <= 1e-6 and matcher.fit(candidate, structure) for kx, structure in known)


@job
def fit_expansion(
    doc_raw,
    lattice_data: dict,
    calculator: Calculator,
    guard: LayerGuard,
    settings: FiniteTemperatureSettings,
    study: str,
    extra: list | None = None,
    iteration: int = 0,
):
    """Fit, search ground states; relax new ones and refit, or go on to the Monte Carlo."""
    if doc_raw is None:
        return None
    doc = doc_raw if isinstance(doc_raw, dict) else doc_raw.model_dump()
    if doc.get("average_voltage") is None:
        result = InsertionLevelsDoc.model_validate(doc)
        result.missing.append("finite temperature: the levels study has no profile to fit")
        return result
    extra = list(extra or [])
    lattice = lattice_from_dict(lattice_data)
    points = training_points(doc, extra, lattice, settings.max_drift)
    space = cluster_space(lattice, settings.cutoffs)
    item = f"{study} (round {iteration + 1})"
    try:
        fit = fit_cluster_expansion(space, points, lattice, settings.fit_method, settings.n_splits, settings.seed)
    except FitError as exc:
        result = InsertionLevelsDoc.model_validate(doc)
        result.missing.append(f"finite temperature: {exc}")
        progress.emit(FIT_STAGE, item, f"no fit: {exc}")
        return result
    states, searched = ground_states(fit, lattice, settings.ground_state_cells)
    x_low, x_high = doc["x_range"]
    new = []
    known = [(p.x, without_vacancies(p.atoms)) for p in points if p.atoms is not None]
    for state in states:
        structure = state.structure()
        state.in_training = _is_known(structure, state.x, known)
        if not state.in_training and x_low - 1e-6 <= state.x <= x_high + 1e-6:
            new.append((state, structure))
    progress.emit(
        FIT_STAGE,
        item,
        f"{fit.n_structures} orderings, {fit.n_parameters} parameters, CV RMSE {fit.cv_rmse:.2f} meV/site; "
        f"{len(new)} new ground state(s) among {searched} orderings of up to {settings.ground_state_cells} cells",
    )
    if new and iteration < settings.ground_state_iterations:
        new.sort(key=lambda pair: (len(pair[1]), pair[0].x))
        jobs = [
            CalculationMaker(
                calculator=calculator,
                label=f"ce ground state x={state.x:.3f} ({state.cells} cells)",
                task="relax",
                study=study,
                guard=guard,
            ).make(structure)
            for state, structure in new[: settings.max_new_per_iteration]
        ]
        progress.add_to_plan("calculations", len(jobs))
        progress.add_to_plan(FIT_STAGE, 1)
        again = fit_expansion(
            doc, lattice_data, calculator, guard, settings, study, [*extra, *[j.output for j in jobs]], iteration + 1
        )
        again.name = f"cluster expansion {study} (round {iteration + 2})"
        again.config.on_missing_references = OnMissing.NONE
        return Response(replace=Flow([*jobs, again], output=again.output))

    ce_doc = _expansion_doc(doc, study, lattice_data, space, fit, points, states, searched, settings, iteration)
    records = [CalculationRecord.model_validate(raw) for raw in extra if raw is not None]
    ce_doc.added_new = sum(1 for r in records if not r.reused)
    ce_doc.added_reused = sum(1 for r in records if r.reused)
    ce_doc.cap_reached = bool(new)
    if new:
        ce_doc.warnings.append(
            f"the ground-state loop stopped after {iteration} round(s) (finite_temperature.ground_state_iterations) "
            f"with {len(new)} ground state(s) still not computed: "
            + ", ".join(f"x={s.x:.3f} ({s.cells} cells)" for s, _ in new)
        )
    mc = monte_carlo(doc, ce_doc.model_dump(), settings, study)
    mc.name = f"monte carlo {study}"
    mc.config.expose_store = True  # the job looks up a stored result with the same key
    mc.metadata["insertflow"] = {"kind": "study", "study": study}
    return Response(output=ce_doc, replace=Flow([mc], output=mc.output))


def _expansion_doc(doc, study, lattice_data, space, fit, points, states, searched, settings, iteration):
    hull_x = sorted(doc.get("hull_x", []))
    low, high = doc["x_range"]
    inside = [s for s in states if low - 1e-6 <= s.x <= high + 1e-6]
    inside_x = [round(s.x, 6) for s in inside]
    own_x = [round(x, 6) for x, _ in calculator_hull(points)]
    agree = _same_x(inside_x, own_x)
    lattice = lattice_from_dict(lattice_data)
    z = ion_charge(lattice.working_ion)
    # Like against like: the expansion searched only in the cells the levels study enumerated
    levels_cells = max(o["cells"] for o in doc["orderings"])
    small, _ = ground_states(fit, lattice, levels_cells)
    small_x = [round(s.x, 6) for s in small if low - 1e-6 <= s.x <= high + 1e-6]
    steps = hull_steps([(s.x, s.formation_per_fu) for s in inside], doc["average_voltage"], z)
    ce_doc = ClusterExpansionDoc(
        study=study,
        calculator=doc["calculator"],
        lattice=lattice_data,
        cutoffs=fit.cutoffs,
        fit_method=fit.fit_method,
        parameters=[float(p) for p in fit.expansion.parameters],
        orbits=[
            {"order": int(row["order"]), "radius": float(row["radius"]), "multiplicity": int(row["multiplicity"])}
            for row in space.as_list
        ],
        n_structures=fit.n_structures,
        n_parameters=fit.n_parameters,
        n_nonzero=fit.n_nonzero,
        cv_rmse=fit.cv_rmse,
        train_rmse=fit.train_rmse,
        training=[
            {
                "label": p.label,
                "x": p.x,
                "source": p.source,
                "drift": p.drift,
                "used": p.used,
                "reason": p.reason,
                "residual": fit.residuals.get(p.label),
            }
            for p in points
        ],
        ground_states=[
            {
                "x": s.x,
                "formation_energy": s.formation_per_fu,
                "cells": s.cells,
                "in_training": s.in_training,
                "ordering": {
                    "cell": s.atoms.cell.array.tolist(),
                    "positions": s.atoms.positions.tolist(),
                    "symbols": s.atoms.get_chemical_symbols(),
                },
            }
            for s in states
        ],
        ground_state_cells=settings.ground_state_cells,
        searched=searched,
        levels_hull_x=hull_x,
        calculator_hull_x=own_x,
        ground_states_agree=agree,
        matches_levels_hull=_same_x(inside_x, hull_x),
        levels_cells=levels_cells,
        levels_cells_ground_state_x=small_x,
        matches_levels_hull_in_levels_cells=_same_x(small_x, hull_x),
        expansion_steps=steps,
        iterations=iteration,
        added=[p.label for p in points if p.source != "levels"],
    )
    left_out = [f"{p.label}: {p.reason}" for p in points if not p.used]
    if left_out:
        ce_doc.warnings.append(f"{len(left_out)} ordering(s) left out of the fit: " + "; ".join(left_out))
    if fit.cv_rmse > settings.max_cv_rmse:
        ce_doc.warnings.append(
            f"CV RMSE {fit.cv_rmse:.2f} meV/site exceeds finite_temperature.max_cv_rmse {settings.max_cv_rmse:g}: "
            "the Monte Carlo below rests on a poor fit"
        )
    if not agree:
        ce_doc.warnings.append(
            f"the expansion's ground states (x = {_xs(inside_x)}) differ from the hull of the calculator's own "
            f"energies of the fitted orderings (x = {_xs(own_x)})"
        )
    if not ce_doc.matches_levels_hull_in_levels_cells:
        ce_doc.warnings.append(
            f"in the levels study's own cells (up to {levels_cells}) the expansion's ground states "
            f"(x = {_xs(small_x)}) are not the levels hull (x = {_xs(hull_x)})"
        )
    if not ce_doc.matches_levels_hull:
        ce_doc.warnings.append(
            f"the expansion's ground states (x = {_xs(inside_x)}) are not the levels hull (x = {_xs(hull_x)}): "
            f"the levels cells (up to {max(o['cells'] for o in doc['orderings'])} cells) miss orderings that the "
            f"search over {settings.ground_state_cells} cells finds"
        )
    return ce_doc


def _same_x(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(p - q) < 1e-3 for p, q in zip(sorted(a), sorted(b), strict=True))


def _xs(values: list[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in values)


def monte_carlo_key(ce_doc: dict, settings: FiniteTemperatureSettings, doc: dict) -> str:
    """Content key of a Monte Carlo result: the expansion, its lattice, the end-member line and the settings."""
    payload = {
        "version": MONTE_CARLO_VERSION,
        "parameters": [round(p, 10) for p in ce_doc["parameters"]],
        "cutoffs": ce_doc["cutoffs"],
        "lattice": ce_doc["lattice"],
        "voltage_reference": round(doc["average_voltage"], 9),
        "x_range": doc["x_range"],
        "steps": [[round(s["x_low"], 6), round(s["x_high"], 6), round(s["voltage"], 6)] for s in doc["steps"]],
        "settings": _settings_dict(settings),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _settings_dict(settings: FiniteTemperatureSettings) -> dict:
    return {k: v for k, v in settings.as_dict().items() if not k.startswith("@")}


@job
def monte_carlo(doc: dict, ce_doc: dict, settings: FiniteTemperatureSettings, study: str) -> InsertionLevelsDoc:
    """SGC sweeps, a VCSGC grid and heat-capacity scans; V(x, T) attached to the levels document."""
    result = InsertionLevelsDoc.model_validate(doc)
    result.cluster_expansion = ClusterExpansionDoc.model_validate(ce_doc)
    result.new_calculations += result.cluster_expansion.added_new  # the ground states the search relaxed
    result.reused_calculations += result.cluster_expansion.added_reused
    key = monte_carlo_key(ce_doc, settings, doc)
    cached = None
    if CURRENT_JOB.store is not None:
        cached = CURRENT_JOB.store.query_one(
            {"output.finite_temperature.key": key}, properties=["output.finite_temperature"], sort={"completed_at": -1}
        )
    if cached is not None:
        finite = FiniteTemperatureDoc.model_validate(cached["output"]["finite_temperature"])
        finite.reused = True
        progress.add_to_plan(MC_STAGE, 1)
        progress.emit(MC_STAGE, study, f"reusing the stored Monte Carlo (key {key[:10]})")
    else:
        finite = run_monte_carlo(doc, ce_doc, settings, study, key)
    result.finite_temperature = finite
    return result


def run_monte_carlo(doc: dict, ce_doc: dict, settings: FiniteTemperatureSettings, study: str, key: str):
    """The Monte Carlo of one expansion (see the module docstring)."""
    start = time.perf_counter()
    lattice = lattice_from_dict(ce_doc["lattice"])
    supercell = list(settings.supercell or default_supercell(len(lattice.active)))
    mc_settings = MonteCarloSettings(
        supercell, settings.equilibration, settings.production, settings.kappa, settings.seed
    )
    z = ion_charge(lattice.working_ion)
    sampler = Sampler(expansion_from_doc(ce_doc), lattice, mc_settings, doc["average_voltage"], z)
    steps = doc["steps"]
    v_low = min(s["voltage"] for s in steps) - settings.voltage_margin
    v_high = max(s["voltage"] for s in steps) + settings.voltage_margin
    dmus = [sampler.dmu(v) for v in np.linspace(v_high, v_low, settings.n_mu)]
    x_range = tuple(doc["x_range"])
    span = x_range[1] - x_range[0]
    xs = [x_range[0] + span * (k + 1) / (settings.n_x + 1) for k in range(settings.n_x)]
    points, regions = [], []
    temperatures = sorted(settings.temperatures)
    # the stability window of a vertex is the expansion's own (its ground states can split a levels step)
    vertices = _interior_vertices(ce_doc.get("expansion_steps") or steps)
    wanted = settings.transitions if settings.transitions is not None else doc.get("hull_x", [])
    vertices = [v for v in vertices if any(abs(v[0] - x) < 1e-3 for x in wanted)]
    progress.add_to_plan(MC_STAGE, len(temperatures) + len(vertices) + 1)  # + the summary
    for temperature in temperatures:
        where = f"T={temperature:g} K"
        progress.emit(
            MC_STAGE,
            where,
            f"SGC at {len(dmus)} chemical potentials, VCSGC at {len(xs)} x, on {sampler.active_sites} sites...",
        )
        sweep = sgc_sweep(sampler, temperature, dmus)
        grid = vcsgc_grid(sampler, temperature, xs)
        found, refined = plateaus(sampler, temperature, sweep, grid, settings.gap_min * span)
        points += sweep + refined + grid
        regions += found
        text = ", ".join(f"x {r.x_low:.2f}-{r.x_high:.2f} at {r.voltage:.3f} V" for r in found) or "none"
        progress.emit(MC_STAGE, where, f"two-phase regions: {text}")
    scans = []
    for x, voltage in vertices:
        progress.emit(MC_STAGE, f"T_c x={x:.3f}", "heat capacity on heating...")
        scan = transition_scan(sampler, x, voltage, settings.transition_temperatures, _ordering_at(ce_doc, x))
        scans.append(scan)
        found = f"{scan.method} T_c {scan.critical_temperature:g} K" if scan.critical_temperature else scan.note
        progress.emit(MC_STAGE, f"T_c x={x:.3f}", found)
    unsettled = [
        f"{p.ensemble} T={p.temperature:g} K V={p.voltage:.3f}: x drifted {p.drift:.3f} between halves"
        for p in points
        if not p.equilibrated
    ]
    finite = FiniteTemperatureDoc(
        study=study,
        key=key,
        settings=_settings_dict(settings),
        supercell=supercell,
        active_sites=sampler.active_sites,
        voltage_reference=doc["average_voltage"],
        x_range=list(x_range),
        points=[p.as_dict() for p in points],
        curves=[asdict(voltage_curve(t, points, x_range)) for t in temperatures],
        plateaus=[asdict(r) for r in regions],
        transitions=[asdict(s) for s in scans],
        step_checks=[asdict(c) for c in step_checks(steps, points, temperatures[0])],
        expansion_step_checks=[asdict(c) for c in step_checks(ce_doc["expansion_steps"], points, temperatures[0])],
        not_equilibrated=unsettled,
        runs=sampler.runs,
        trials=sampler.trials,
        seconds=round(time.perf_counter() - start, 2),
    )
    tc = ", ".join(
        f"x={s.x:.3f}: {s.critical_temperature:g} K" if s.critical_temperature else f"x={s.x:.3f}: none" for s in scans
    )
    progress.emit(
        MC_STAGE,
        study,
        f"{finite.runs} runs in {finite.seconds:.0f} s ({finite.trials / max(finite.seconds, 1e-9):.0f} trials/s)"
        + (f"; T_c {tc}" if tc else "")
        + (f"; {len(unsettled)} run(s) not equilibrated" if unsettled else ""),
    )
    return finite


def _ordering_at(ce_doc: dict, x: float) -> Atoms | None:
    """The expansion's 0 K ordering at ``x`` (ions and vacancies), or None when it is not stored."""
    for state in ce_doc.get("ground_states", []):
        if abs(state["x"] - x) < 1e-3 and state.get("ordering"):
            data = state["ordering"]
            return Atoms(symbols=data["symbols"], positions=data["positions"], cell=data["cell"], pbc=True)
    return None


def _interior_vertices(steps: list[dict]) -> list[tuple[float, float]]:
    """(x, voltage in the middle of its 0 K stability window) of every interior hull vertex."""
    ordered = sorted(steps, key=lambda s: s["x_low"])
    return [(a["x_high"], 0.5 * (a["voltage"] + b["voltage"])) for a, b in itertools.pairwise(ordered)]
