"""Recipes: the YAML a user runs (``insertflow run RECIPE.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from insertflow.errors import RecipeError
from insertflow.resources import shipped_dir
from insertflow.sampling.defects import default_rattle_seed

#: K: the default heat-capacity scan of a finite-temperature study.
TRANSITION_TEMPERATURES = (25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 800.0)


class CalculatorSpec(BaseModel):
    """Which calculator and its settings (see ``insertflow.calculators``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Registered calculator name: chgnet, sevennet, gpaw, mock, vasp, xtb")
    settings: dict = Field(default_factory=dict, description="Calculator fields, e.g. fmax, steps")


class LayerGuardSpec(BaseModel):
    """What to do when layers drift apart during a relaxation."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["flag", "constrain", "off"] = Field(
        "constrain", description="constrain (re-relax with the spacing fixed), flag (leave out), off"
    )
    max_gap_growth: float = Field(1.0, gt=0, description="A the widest empty slab may grow by")


class ScreenSpec(BaseModel):
    """Cheap single points between the Ewald ranking and the relaxations."""

    model_config = ConfigDict(extra="forbid")

    calculator: CalculatorSpec | None = Field(None, description="Screening calculator; default: the recipe's")
    keep: int = Field(4, ge=1, description="Orderings per x that go on to relax")
    window: float = Field(0.0, ge=0, description="meV/atom: also relax orderings this close to the lowest")


class LevelsSpec(BaseModel):
    """Which orderings an insertion-levels study enumerates and keeps (see insertflow.sampling.orderings)."""

    model_config = ConfigDict(extra="forbid")

    max_size: int = Field(4, ge=1, description="Supercells of 1..max_size primitive cells")
    supercell: list | None = Field(None, description="Instead: every ordering in this supercell of the host cell")
    active_sites: list[str] | None = Field(None, description="Wyckoff labels of sublattices to vary; default all")
    x: list[float] | None = Field(None, description="Only these x (end members always kept); default all")
    ewald_keep: int = Field(8, ge=1, description="Lowest-Ewald orderings kept per x")
    screen: ScreenSpec | None = Field(None, description="Single-point re-ranking tier; off when absent")
    max_active_sites: int = Field(18, ge=1, description="Refuse cells with more active sites than this")
    max_enumerated: int = Field(50_000, ge=1, description="Cap on enumerated structures; larger cells skipped")


class DefectsSpec(BaseModel):
    """Which defects at which x, in which supercell (see insertflow.sampling.defects)."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[str] = Field(
        ["V_TM", "migration", "exchange"], description="V_TM, TM_Li, Li_TM, F_O, migration, exchange"
    )
    x: list[float] | None = Field(None, description="x of the pristine hosts; default every x the supercell allows")
    supercell: list | None = Field(None, description="Of the host cell; default the smallest diagonal one")
    min_image_distance: float = Field(4.5, gt=0, description="A between a defect and its periodic images")
    active_sites: list[str] | None = Field(None, description="Working-ion sublattices that empty on charge")
    orderings_per_x: int = Field(
        2, ge=1, description="Lowest-Ewald pristine orderings per x; the lowest relaxed one is the reference"
    )
    defect_hosts_per_x: int = Field(1, ge=1, description="Of those orderings, the lowest-Ewald ones with defects")
    tetrahedral: bool = Field(False, description="Also migrate TMs into empty tetrahedral sites")
    rattle: float = Field(0.05, ge=0, description="A of seeded random displacement breaking symmetry")
    rattle_seed: int = Field(
        default_factory=default_rattle_seed, description="Seed of the rattle (default INSERTFLOW_RATTLE_SEED or 0)"
    )
    chemical_potentials: dict[str, float] = Field(
        default_factory=dict, description="eV/atom held fixed in the stability region (else computed)"
    )
    limit: str | None = Field(None, description="Limit energies use, e.g. O-rich, Co-rich; default <anion>-rich")
    competing_phases: dict[str, str] = Field(
        default_factory=dict, description="Extra competing phases: label -> structure file relative to the recipe"
    )
    synthesis_temperature: float = Field(1000.0, gt=0, description="K: the as-made population is quenched from it")
    operating_temperature: float = Field(300.0, gt=0, description="K: a coupled defect follows x at this T")
    oxygen_pressure: float = Field(0.21, gt=0, description="atm of O2 at synthesis: the quenched population's mu_O")
    discharge_orderings: int = Field(1, ge=1, description="Re-lithiated orderings per x on the discharge branch")
    charge_states: dict[str, list[int]] | Literal["auto"] | None = Field(
        None, description="Charges per kind (e.g. F_O: [-1, 0, 1]) or auto (from oxidation states); gpaw, vasp"
    )
    dielectric: float | list[float] | None = Field(
        None, description="Static dielectric constant (or 3 diagonal values) for the Freysoldt correction"
    )
    max_active_sites: int = Field(18, ge=1, description="Refuse supercells with more active sites than this")
    migration_barriers: bool = Field(
        False, description="NEB (oct -> tet -> oct) of the lowest migrated TM at each x; gates the hysteresis loop"
    )
    neb_images: int = Field(5, ge=1, description="With migration_barriers: NEB images between the endpoints")
    neb_fmax: float = Field(0.05, gt=0, description="With migration_barriers: eV/A NEB convergence")
    neb_steps: int = Field(500, ge=1, description="With migration_barriers: NEB optimiser steps")
    attempt_frequency: float = Field(1e13, gt=0, description="Hz: the kinetic limit at the operating temperature")
    time_scale: float = Field(3600.0, gt=0, description="s: a migration must happen within it (e.g. one charge)")


class ElectronicSpec(BaseModel):
    """Electronic structure along x (see insertflow.flows.electronic)."""

    model_config = ConfigDict(extra="forbid")

    calculator: CalculatorSpec | None = Field(
        None, description="Static + DOS calculator (gpaw, vasp, xtb); default: energy_calculator, else gpaw"
    )
    x: list[float] | None = Field(None, description="Compositions; end members are always included")
    max_size: int = Field(2, ge=1, description="Supercells of 1..max_size primitive cells for intermediate x")
    defects: list[str] | None = Field(None, description="Also these defect kinds (F_O, V_TM, ...) with their E_F shift")
    supercell: list | None = Field(None, description="With defects: the supercell of the host cell for every structure")
    min_image_distance: float = Field(4.5, gt=0, description="With defects: A between periodic images")
    active_sites: list[str] | None = Field(None, description="With defects: sublattices that empty on charge")


class BarriersSpec(BaseModel):
    """Working-ion migration barriers by NEB (see insertflow.flows.kinetics)."""

    model_config = ConfigDict(extra="forbid")

    max_hop_length: float = Field(5.0, gt=0, description="A between working-ion sites that count as a hop")
    hops: list[int] | None = Field(None, description="Which distinct hops (0 = shortest); default all")
    modes: list[Literal["vacancy", "divacancy"]] = Field(
        ["vacancy"], description="vacancy: one empty site; divacancy: a second one, path via the tetrahedral site"
    )
    supercell: list[int] | None = Field(None, description="Multiples of the host cell; default: min_image_distance")
    min_image_distance: float = Field(8.0, gt=0, description="A: smallest supercell length when supercell is unset")
    images: int = Field(5, ge=1, description="NEB images between the endpoints")
    spring: float = Field(5.0, gt=0, description="NEB spring constant, eV/A^2")
    climb: bool = Field(True, description="Climbing image")
    fmax: float = Field(0.05, gt=0, description="eV/A: NEB convergence")
    steps: int = Field(500, ge=1, description="NEB optimiser steps (FIRE)")
    temperature: float = Field(300.0, gt=0, description="K: rates, diffusivities, kinetic limit")
    attempt_frequency: float = Field(1e13, gt=0, description="Hz")
    time_scale: float = Field(3600.0, gt=0, description="s: a hop must happen at least once in it")
    particle_size: float = Field(100.0, gt=0, description="nm: the ion must cross it in time_scale (D tau >= L^2)")


class SpotCheckSpec(BaseModel):
    """DFT statics on the ML geometries of what decides a levels or defects answer."""

    model_config = ConfigDict(extra="forbid")

    calculator: CalculatorSpec = Field(description="The calculator of the statics (gpaw here, vasp on HPC)")
    window: float = Field(
        0.005, ge=0, description="insertion_levels: eV per framework unit above the hull that still gets a check"
    )
    max_points: int = Field(
        12,
        ge=2,
        description="At most this many orderings (end members and vertices always) or defects (the migrated TM always)",
    )
    max_atoms: int | None = Field(
        None,
        ge=1,
        description="Only cells of at most this many atoms (the smallest cells of a costly DFT); skipped listed",
    )


class FiniteTemperatureSpec(BaseModel):
    """Cluster expansion of a levels study and Monte Carlo V(x, T) (see insertflow.flows.finite_temperature)."""

    model_config = ConfigDict(extra="forbid")

    cutoffs: list[float] = Field([6.0], min_length=1, description="A: pair (then triplet, ...) cutoffs")
    fit_method: str = Field("least-squares", description="trainstation fit: least-squares, ardr, lasso, ...")
    n_splits: int = Field(5, ge=2, description="k-fold cross validation")
    max_drift: float = Field(1.0, gt=0, description="A: a relaxed ordering whose atoms moved further is left out")
    max_cv_rmse: float = Field(5.0, gt=0, description="meV/site: a larger CV error is warned about and stored")
    ground_state_cells: int = Field(
        8, ge=1, description="Ground states searched in supercells of up to this many cells"
    )
    ground_state_iterations: int = Field(2, ge=0, description="Rounds of relaxing new ground states and refitting")
    max_new_per_iteration: int = Field(4, ge=1, description="New ground states relaxed per round")
    temperatures: list[float] = Field([50.0, 300.0, 600.0], min_length=1, description="K: the V(x) curves")
    n_mu: int = Field(30, ge=3, description="SGC chemical potentials per temperature")
    voltage_margin: float = Field(0.3, ge=0, description="V beyond the 0 K steps the SGC grid spans")
    supercell: list[int] | None = Field(None, description="Repeats of the enumeration cell; default >= 200 sites")
    equilibration: int = Field(200, ge=1, description="Sweeps discarded per Monte Carlo run")
    production: int = Field(400, ge=10, description="Sweeps averaged per Monte Carlo run")
    kappa: float = Field(200.0, gt=0, description="VCSGC variance constraint")
    seed: int = Field(0, description="Monte Carlo random seed")
    n_x: int = Field(25, ge=2, description="VCSGC compositions per temperature, evenly inside the x range")
    gap_min: float = Field(0.1, gt=0, description="Fraction of the x range: smaller SGC jumps are not two-phase")
    transition_temperatures: list[float] = Field(
        list(TRANSITION_TEMPERATURES), min_length=3, description="K: order-parameter and heat-capacity scan for T_c"
    )
    transitions: list[float] | None = Field(
        None, description="x of the 0 K vertices scanned; default the levels hull's"
    )


class Recipe(BaseModel):
    """A study: host, calculator, guard and store."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Study name; results are stored and shown under it")
    description: str = Field("", description="Free text, stored with the study")
    study: Literal["end_member_voltage", "insertion_levels", "defects", "electronic_structure", "barriers"] = Field(
        "end_member_voltage",
        description="Which study: end_member_voltage, insertion_levels, defects, electronic_structure, barriers",
    )
    host: str = Field(description="Builtin host name (LiCoO2, ...) or a structure file relative to the recipe")
    working_ion: str = Field("Li", description="The inserted ion (Li, Na, K, Mg, Ca, Zn)")
    check_oxidation_states: bool = Field(True, description="Refuse hosts with no charge-balanced oxidation states")
    calculator: CalculatorSpec = Field(description="The calculator that relaxes (see Calculators)")
    energy_calculator: CalculatorSpec | None = Field(
        None, description="Energies from a static with this calculator on each relaxed structure (e.g. gpaw)"
    )
    committee: list[CalculatorSpec] | None = Field(
        None,
        description="The same study with each of these calculators too (not electronic_structure): means and "
        "spreads of every voltage, energy above hull, defect energy and barrier",
    )
    spot_check: SpotCheckSpec | None = Field(
        None,
        description="DFT statics on the ML geometries: the hull and near-hull orderings (insertion_levels), the "
        "lowest defect per kind and x and the migrated TM (defects)",
    )
    finite_temperature: FiniteTemperatureSpec | None = Field(
        None, description="insertion_levels: cluster expansion of the orderings and Monte Carlo V(x, T)"
    )
    layer_guard: LayerGuardSpec = Field(default_factory=LayerGuardSpec, description="Layers drifting apart on relaxing")
    levels: LevelsSpec | None = Field(None, description="Settings of an insertion_levels study")
    defects: DefectsSpec | None = Field(None, description="Settings of a defects study")
    electronic: ElectronicSpec | None = Field(None, description="Settings of an electronic_structure study")
    barriers: BarriersSpec | None = Field(None, description="Settings of a barriers study")
    store: dict | None = Field(None, description="Store configuration (see insertflow.store); no credentials")
    workdir: str | None = Field(None, description="Where job folders go; a temporary folder if unset")

    #: Folder the recipe was read from; relative host paths resolve against it.
    folder: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _levels_only_for_levels(self) -> Recipe:
        if self.levels is not None and self.study != "insertion_levels":
            raise ValueError("the 'levels' section belongs to study: insertion_levels")
        if self.defects is not None and self.study != "defects":
            raise ValueError("the 'defects' section belongs to study: defects")
        if self.committee is not None and self.study == "electronic_structure":
            raise ValueError("committee: is for study end_member_voltage, insertion_levels, defects or barriers")
        if self.spot_check is not None and self.study not in ("insertion_levels", "defects"):
            raise ValueError("spot_check: is for study insertion_levels or defects")
        if self.finite_temperature is not None and self.study != "insertion_levels":
            raise ValueError("finite_temperature: is for study insertion_levels")
        if self.barriers is not None and self.study != "barriers":
            raise ValueError("the 'barriers' section belongs to study: barriers")
        if (self.electronic is not None) != (self.study == "electronic_structure"):
            raise ValueError("study: electronic_structure needs an 'electronic' section (and only it has one)")
        if self.electronic is not None and self.electronic.calculator and self.energy_calculator:
            raise ValueError(
                "study: electronic_structure takes its static calculator from electronic.calculator or "
                "energy_calculator; give one of them"
            )
        return self


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (or a recipe shipped in ``workflows/`` by name)."""
    path = _locate(Path(path))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError(f"{path} is not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{path} must hold a mapping of recipe keys (name, host, calculator, ...)")
    return recipe_from_dict(data, folder=path.parent, where=str(path))


def recipe_from_dict(data: dict, folder: Path | None = None, where: str = "recipe") -> Recipe:
    """Validate a recipe mapping; unknown or invalid keys give one clear message."""
    try:
        return Recipe(**data, folder=folder or Path.cwd())
    except ValidationError as exc:
        raise RecipeError(f"{where}: {_explain(exc)}") from exc


def _locate(path: Path) -> Path:
    if path.exists():
        if path.is_dir():
            raise RecipeError(f"{path} is a folder; give a recipe YAML file")
        return path
    shipped = shipped_dir("workflows") / path.name
    if not path.suffix:
        shipped = shipped.with_suffix(".yaml")
    if shipped.exists():
        return shipped
    available = ", ".join(p.stem for p in sorted(shipped_dir("workflows").glob("*.yaml")))
    raise RecipeError(f"recipe {path} not found (shipped recipes: {available})")


def _explain(exc: ValidationError) -> str:
    errors = exc.errors()
    # an unknown key first: a typo ('calculater') also makes the real key look missing
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    location = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        model = _model_at(err["loc"][:-1])
        allowed = ", ".join(k for k, f in model.model_fields.items() if not f.exclude)
        return f"unknown key '{location}' (allowed here: {allowed})"
    if err["type"] == "missing":
        return f"missing required key '{location}'"
    return f"'{location}': {err['msg']}"


def _model_at(loc: tuple) -> type[BaseModel]:
    model: type[BaseModel] = Recipe
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        for candidate in (annotation, *get_args(annotation)):  # X or X | None
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
    return model
