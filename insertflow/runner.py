"""Run a recipe locally with jobflow and return the stored study document."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from jobflow import Flow, JobStore, run_locally

from insertflow.analysis.cluster_expansion import ActiveLattice
from insertflow.analysis.voltage import framework_unit
from insertflow.calculators import get_calculator
from insertflow.calculators.base import NebSettings
from insertflow.calculators.composite import GeometryThenEnergy
from insertflow.errors import CalculatorError, InsertflowError, RecipeError
from insertflow.flows.calculation import LayerGuard
from insertflow.flows.committee import committee_flow, member_label
from insertflow.flows.defect_spot_checks import DefectSpotCheckSettings, with_defect_spot_checks
from insertflow.flows.defects import DefectStudyMaker
from insertflow.flows.electronic import ElectronicStructureMaker
from insertflow.flows.end_members import EndMemberVoltageMaker
from insertflow.flows.finite_temperature import FiniteTemperatureSettings, with_finite_temperature
from insertflow.flows.kinetics import BarrierSettings, BarrierStudyMaker
from insertflow.flows.levels import InsertionLevelsMaker
from insertflow.flows.spot_checks import SpotCheckSettings, with_spot_checks
from insertflow.hosts import Host, load_host, read_structure
from insertflow.progress import ProgressReporter, reporting
from insertflow.recipe import BarriersSpec, DefectsSpec, LevelsSpec, Recipe
from insertflow.sampling.defects import DefectSettings
from insertflow.sampling.orderings import OrderingSettings, select_orderings
from insertflow.sampling.sublattices import active_site_indices
from insertflow.store import StoreConfig, open_store, resolve_store_config

#: ``kind`` of every study document a recipe can produce.
STUDY_KINDS = ("end_member_voltage", "insertion_levels", "defects", "electronic_structure", "barriers", "committee")


def build_study(recipe: Recipe) -> tuple[Host, Flow, dict[str, int]]:
    """Validate host and calculator and build the study flow (no store touched yet)."""
    if recipe.committee:
        return _committee_study(recipe)
    host = load_host(
        recipe.host,
        working_ion=recipe.working_ion,
        relative_to=recipe.folder,
        check_oxidation_states=recipe.check_oxidation_states,
    )
    calculator = get_calculator(recipe.calculator.name, recipe.calculator.settings)
    if recipe.energy_calculator is not None and recipe.study != "electronic_structure":
        energy = get_calculator(recipe.energy_calculator.name, recipe.energy_calculator.settings)
        calculator = GeometryThenEnergy(geometry=calculator, energy=energy)
    check_elements(calculator, host)
    relaxer = getattr(calculator, "geometry", calculator)  # the calculator that relaxes
    if hasattr(relaxer, "check_relaxation"):
        relaxer.check_relaxation()
    guard = LayerGuard(policy=recipe.layer_guard.policy, max_gap_growth=recipe.layer_guard.max_gap_growth)
    if recipe.study == "insertion_levels":
        return host, *_levels_flow(recipe, host, calculator, guard)
    if recipe.study == "defects":
        return host, *_defects_flow(recipe, host, calculator, guard)
    if recipe.study == "electronic_structure":
        return host, *_electronic_flow(recipe, host, calculator, guard)
    if recipe.study == "barriers":
        return host, *_barriers_flow(recipe, host, calculator, guard)
    maker = EndMemberVoltageMaker(calculator=calculator, guard=guard, study=recipe.name)
    flow = maker.make(host)
    return host, flow, {"calculations": 3, "analysis": 1}


def _committee_study(recipe: Recipe) -> tuple[Host, Flow, dict[str, int]]:
    """The recipe's calculator and each committee member on the same study, and the job comparing them."""
    specs = [recipe.calculator, *recipe.committee]
    labels = [member_label(spec.name, spec.settings) for spec in specs]
    if len(set(labels)) < len(labels):
        raise RecipeError(f"committee members must differ: {', '.join(labels)}")
    members, plan, host = [], {}, None
    for spec, label in zip(specs, labels, strict=True):
        name = f"{recipe.name} [{label}]"
        spot = recipe.spot_check if not members else None  # DFT spot checks of the recipe's own calculator
        update = {"calculator": spec, "committee": None, "name": name, "spot_check": spot}
        if recipe.levels is not None and recipe.levels.screen is not None and recipe.levels.screen.calculator is None:
            # one screen for all: every member relaxes the same orderings, so each has an energy above hull
            # from every model (screened by its own model, each would keep different orderings)
            screen = recipe.levels.screen.model_copy(update={"calculator": recipe.calculator})
            update["levels"] = recipe.levels.model_copy(update={"screen": screen})
        member = recipe.model_copy(update=update)
        host, flow, member_plan = build_study(member)
        members.append((label, name, flow))
        for stage, count in member_plan.items():
            plan[stage] = plan.get(stage, 0) + count
    summary = {"name": host.name, "formula": host.formula, "working_ion": host.working_ion, "source": host.source}
    plan["analysis"] = plan.get("analysis", 0) + 1
    return host, committee_flow(members, recipe.name, recipe.study, summary), plan


def check_elements(calculator, host: Host) -> None:
    """Refuse, before any job exists, a host with elements the calculator cannot treat."""
    unsupported = getattr(calculator, "unsupported_elements", None)
    if unsupported is None:
        return
    elements = {el.symbol for el in host.structure.composition.elements} | {host.working_ion}
    missing = unsupported(elements)
    if missing:
        raise CalculatorError(
            f"calculator '{calculator.name}' cannot treat {', '.join(missing)} (in host {host.formula}); "
            "choose another calculator for this host"
        )


def _electronic_flow(recipe: Recipe, host: Host, calculator, guard: LayerGuard) -> tuple[Flow, dict[str, int]]:
    spec = recipe.electronic
    defects = None
    if spec.defects:
        defects = DefectSettings(
            kinds=spec.defects,
            x=spec.x,
            supercell=spec.supercell,
            min_image_distance=spec.min_image_distance,
            active_sites=spec.active_sites,
            orderings_per_x=1,  # one host per x: each point is a DFT static
        )
    maker = ElectronicStructureMaker(
        calculator=calculator,
        electronic_calculator=_electronic_calculator(recipe, host),
        orderings=OrderingSettings(max_size=spec.max_size, x=spec.x, ewald_keep=1),
        defects=defects,
        guard=guard,
        study=recipe.name,
    )
    flow = maker.make(host)
    relaxations = len(flow.jobs) - 1  # one relaxation per structure, then the job that adds the statics
    return flow, {"calculations": 2 * relaxations, "analysis": 1}


def _electronic_calculator(recipe: Recipe, host: Host):
    """electronic.calculator, else the recipe's energy_calculator, else GPAW with its defaults."""
    spec = recipe.electronic.calculator or recipe.energy_calculator
    calculator = get_calculator("gpaw") if spec is None else get_calculator(spec.name, spec.settings)
    check_elements(calculator, host)
    return calculator


def _barriers_flow(recipe: Recipe, host: Host, calculator, guard: LayerGuard) -> tuple[Flow, dict[str, int]]:
    spec = recipe.barriers or BarriersSpec()
    neb_fields = {"images", "spring", "climb", "fmax", "steps"}
    maker = BarrierStudyMaker(
        calculator=calculator,
        settings=BarrierSettings(**spec.model_dump(exclude=neb_fields)),
        neb=NebSettings(**spec.model_dump(include=neb_fields)),
        guard=guard,
        study=recipe.name,
    )
    return maker.make(host), maker.planned(host)


def _defects_flow(recipe: Recipe, host: Host, calculator, guard: LayerGuard) -> tuple[Flow, dict[str, int]]:
    spec = recipe.defects or DefectsSpec()
    maker_only = {"chemical_potentials", "limit", "competing_phases", "discharge_orderings"}
    maker_only |= {"synthesis_temperature", "operating_temperature", "oxygen_pressure", "charge_states", "dielectric"}
    maker_only |= {"migration_barriers", "neb_images", "neb_fmax", "neb_steps", "attempt_frequency", "time_scale"}
    settings = DefectSettings(**spec.model_dump(exclude=maker_only))
    neb = None
    if spec.migration_barriers:
        neb = NebSettings(images=spec.neb_images, fmax=spec.neb_fmax, steps=spec.neb_steps)
    maker = DefectStudyMaker(
        calculator=calculator,
        settings=settings,
        chemical_potentials=spec.chemical_potentials,
        limit=spec.limit,
        extra_phases={label: read_structure(path, recipe.folder) for label, path in spec.competing_phases.items()},
        synthesis_temperature=spec.synthesis_temperature,
        operating_temperature=spec.operating_temperature,
        oxygen_pressure=spec.oxygen_pressure,
        charge_states=spec.charge_states,
        dielectric=spec.dielectric,
        migration_barriers=neb,
        attempt_frequency=spec.attempt_frequency,
        time_scale=spec.time_scale,
        discharge_orderings=spec.discharge_orderings,
        guard=guard,
        study=recipe.name,
    )
    matrix, pristine, candidates, notes = maker.plan(host)
    flow = maker.make_from_plan(host, matrix, pristine, candidates, notes)
    if recipe.spot_check is not None:
        checker = get_calculator(recipe.spot_check.calculator.name, recipe.spot_check.calculator.settings)
        settings = DefectSpotCheckSettings(recipe.spot_check.max_points, recipe.spot_check.max_atoms)
        flow = with_defect_spot_checks(flow, checker, settings, recipe.name, dict(spec.chemical_potentials))
    references = len(maker.phases_needed(host, candidates))
    charged = sum(len(maker.charges_of(host, c)) for c in candidates)
    plan = {"calculations": 1 + references + len(pristine) + len(candidates) + charged, "analysis": 1}
    if recipe.spot_check is not None:
        plan["spot checks"] = 1
    if neb is not None:  # at most one TM hop per x: its end relaxed on the host's cell, and its NEB
        hops = len({c.x for c in candidates if c.kind == "migration"})
        plan["calculations"] += hops
        plan["nebs"] = hops
    return flow, plan


def _levels_flow(recipe: Recipe, host: Host, calculator, guard: LayerGuard) -> tuple[Flow, dict[str, int]]:
    levels = recipe.levels or LevelsSpec()
    settings = OrderingSettings(**levels.model_dump(exclude={"screen"}))
    screen_calculator, keep, window = None, 0, 0.0
    if levels.screen is not None:
        spec = levels.screen.calculator or recipe.calculator
        screen_calculator, keep = get_calculator(spec.name, spec.settings), levels.screen.keep
        window = levels.screen.window
    maker = InsertionLevelsMaker(
        calculator=calculator,
        screen_calculator=screen_calculator,
        screen_keep=keep or InsertionLevelsMaker.screen_keep,
        screen_window=window,
        orderings=settings,
        guard=guard,
        study=recipe.name,
    )
    orderings, summary = select_orderings(host, settings)
    flow = maker.make_from_orderings(host, orderings, summary)
    plan = {"calculations": maker.planned_relaxations(orderings) + 1, "analysis": 1}
    if screen_calculator is not None:
        plan["screening"] = 1
    if recipe.spot_check is not None:
        spot = recipe.spot_check
        checker = get_calculator(spot.calculator.name, spot.calculator.settings)
        flow = with_spot_checks(
            flow,
            checker,
            SpotCheckSettings(window=spot.window, max_points=spot.max_points, max_atoms=spot.max_atoms),
            recipe.name,
        )
        plan["spot checks"] = 1
    if recipe.finite_temperature is not None:
        primitive = host.structure.get_primitive_structure()
        active = active_site_indices(
            primitive, host.working_ion, levels.active_sites, where=f"host '{host.name}'", section="levels"
        )
        lattice = ActiveLattice(primitive, active, host.working_ion, framework_unit(host.formula, host.working_ion))
        settings = FiniteTemperatureSettings(**recipe.finite_temperature.model_dump())
        flow = with_finite_temperature(flow, lattice, calculator, guard, settings, recipe.name)
        plan["cluster expansion"] = 1
    return flow, plan


def run_recipe(
    recipe: Recipe,
    store: JobStore | StoreConfig | None = None,
    store_override: str | None = None,
    stream: TextIO | None = None,
    verbose: bool = False,
) -> dict:
    """Run ``recipe`` on this machine; return the study document as stored.

    Bad input (recipe, host, calculator, workdir) is refused before the store is opened.
    """
    reporter = ProgressReporter({}, stream)
    with _workdir(recipe.workdir, recipe.folder) as root, reporting(reporter), _quiet_libraries():
        _, flow, plan = build_study(recipe)
        if not isinstance(store, JobStore):
            store = open_store(store or resolve_store_config(recipe.store, store_override, recipe.folder))
        reporter.plan.update(plan)
        responses = run_locally(flow, store=store, root_dir=root, create_folders=True, log=verbose)
    doc = _study_of_this_run(responses, store, recipe.name)
    if doc is None:  # an older document of the same name is not this run's result
        raise InsertflowError(f"study '{recipe.name}' did not finish; run again with --verbose to see the job log")
    return doc


def _study_of_this_run(responses: dict, store: JobStore, name: str) -> dict | None:
    """The stored document of the last study job this run completed (None if it never finished).

    The last by completion time: a study whose document later jobs complete (spot checks, the
    Monte Carlo) stores it more than once, and a replaced job's responses share its uuid.
    """
    found = []
    for uuid, by_index in responses.items():
        for index, response in by_index.items():
            output = getattr(response, "output", None)
            if getattr(output, "study", None) == name and getattr(output, "kind", None) in STUDY_KINDS:
                found.append((uuid, index))
    stored = [store.query_one({"uuid": u, "index": i}, properties=["output", "completed_at"]) for u, i in found]
    stored = [s for s in stored if s is not None]
    if not stored:
        return None
    return max(stored, key=lambda s: str(s.get("completed_at", "")))["output"]


@contextlib.contextmanager
def _workdir(path: str | None, folder: Path) -> Iterator[Path]:
    """The job folder root: ``workdir`` (relative to the recipe, like ``host``) or a temporary folder."""
    if path:
        yield usable_workdir(path, folder)
    else:
        with tempfile.TemporaryDirectory(prefix="insertflow-") as tmp:
            yield Path(tmp)


def usable_workdir(path: str, folder: Path) -> Path:
    """``workdir`` resolved against the recipe's folder, created, and checked writable (one clear error)."""
    target = Path(path).expanduser()
    if not target.is_absolute():
        target = folder / target
    if target.exists() and not target.is_dir():
        raise RecipeError(f"workdir {target} is a file, not a folder; give a folder for the job folders")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecipeError(
            f"workdir {target} cannot be created ({exc.strerror or exc}); give a writable folder"
        ) from exc
    if not os.access(target, os.W_OK | os.X_OK):
        raise RecipeError(f"workdir {target} is not writable; give a writable folder")
    return target


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Hide third-party deprecation chatter during a run; our own messages still print."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        # ASE's FrechetCellFilter calls scipy's logm on near-identity cells at every step
        warnings.filterwarnings("ignore", message="logm result may be inaccurate", category=RuntimeWarning)
        yield
