"""Documents insertflow stores. Voltage results embed emmet-core's ``InsertionElectrodeDoc``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from emmet.core.electrode import InsertionElectrodeDoc
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymatgen.entries.computed_entries import ComputedStructureEntry

Status = Literal["ok", "failed", "flagged"]


def utcnow() -> datetime:
    """Timezone-aware now, for document timestamps."""
    return datetime.now(tz=UTC)


class CalculationRecord(BaseModel):
    """One calculation as the analysis sees it: entry or the reason there is none."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    label: str = Field(description="Role in the study, e.g. 'discharged', 'charged', 'working_ion'")
    formula: str = Field(description="Reduced formula of the input structure")
    task: str = Field(description="'relax' or 'static'")
    content_key: str = Field(description="SHA-256 of structure + calculator identity + task")
    calculator: dict = Field(description="Calculator identity: name, version, settings")
    status: Status
    reason: str | None = Field(None, description="Why the record is failed or flagged, and what to do")
    reused: bool = Field(False, description="True when taken from an earlier run with the same content key")
    entry: ComputedStructureEntry | None = Field(None, description="Entry of the final structure")
    energy_per_atom: float | None = Field(None, description="eV/atom")
    converged: bool | None = None
    n_steps: int | None = None
    wall_time_s: float | None = None
    magmoms: list[float] | None = Field(None, description="Final per-site magnetic moments (muB), if predicted")
    layer_gap_growth: float | None = Field(None, description="Growth of the widest interlayer slab on relaxing (A)")
    constrained: bool = Field(False, description="Relaxed with the drifting stacking spacing held fixed")
    job_uuid: str | None = Field(None, description="uuid of the job that ran the calculation")
    descriptors: dict | None = Field(None, description="Band descriptors, when the calculator gave a projected DOS")
    site_potentials: list[float] | None = Field(
        None, description="Electrostatic potential energy of an electron at each site (eV), for defect alignment"
    )
    planar_potential: dict[str, list[float]] | None = Field(
        None, description="Electrostatic potential (eV) averaged over planes along each cell vector, for Freysoldt"
    )
    band_edges: list[float] | None = Field(None, description="(gap, CBM, VBM) in eV from the eigenvalues")
    total_dos: dict | None = Field(
        None, description="Total DOS, spins summed (efermi, energies, densities per cell): free carriers for E_F"
    )

    def computed_entry(self) -> ComputedStructureEntry | None:
        """A copy of the pymatgen entry (None for failed records), safe to annotate."""
        return None if self.entry is None else ComputedStructureEntry.from_dict(self.entry.as_dict())

    @field_validator("entry", mode="before")
    @classmethod
    def _entry_from_dict(cls, value):
        return ComputedStructureEntry.from_dict(value) if isinstance(value, dict) else value


class FailedCalculation(BaseModel):
    """A calculation the analysis could not use."""

    label: str
    formula: str
    status: Status
    reason: str


class VoltageStudyDoc(BaseModel):
    """Average voltage between the fully discharged and fully charged host.

    ``electrode`` is emmet-core's ``InsertionElectrodeDoc`` built from our entries: its
    ``average_voltage``, ``capacity_grav``, ``energy_grav``, ``fracA_charge`` ... mean what
    they mean in the Materials Project.
    """

    study: str = Field(description="Recipe name")
    kind: Literal["end_member_voltage"] = "end_member_voltage"
    host: dict = Field(description="Host summary: name, formula, working ion, redox elements, source")
    calculator: dict = Field(description="Calculator identity used for every entry")
    average_voltage: float | None = Field(None, description="V vs the working-ion metal")
    capacity_grav: float | None = Field(None, description="mAh/g")
    energy_grav: float | None = Field(None, description="Wh/kg")
    electrode: InsertionElectrodeDoc | None = None
    calculations: list[CalculationRecord] = Field(default_factory=list)
    failed: list[FailedCalculation] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list, description="What the voltage could not be computed without")
    new_calculations: int = 0
    reused_calculations: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class OrderingResult(BaseModel):
    """One working-ion/vacancy ordering through the tiers: Ewald, screening, relaxation, hull."""

    label: str = Field(description="'x=0.500 #1': x and Ewald rank at that x")
    x: float = Field(description="Working ions per framework formula unit")
    cells: int = Field(description="Supercell size in enumeration cells")
    formula: str
    n_atoms: int
    ewald_per_fu: float = Field(description="Ewald energy, eV per framework unit")
    ewald_rank: int = Field(description="1 = lowest Ewald energy at this x")
    screen_energy_per_fu: float | None = Field(None, description="Single-point screening energy, eV per framework unit")
    screen_rank: int | None = Field(None, description="1 = lowest screening energy at this x")
    relaxed: bool = Field(False, description="Passed the screening and was relaxed (or tried)")
    status: Status | None = Field(None, description="Status of its relaxation record, if relaxed")
    reason: str | None = None
    content_key: str | None = None
    reused: bool = False
    energy_per_fu: float | None = Field(None, description="Relaxed energy, eV per framework unit")
    energy_per_atom: float | None = Field(None, description="Relaxed energy, eV/atom")
    formation_energy: float | None = Field(None, description="eV per framework unit vs the hull end members")
    formation_energy_per_atom: float | None = Field(None, description="eV/atom vs the hull end members")
    e_above_hull: float | None = Field(None, description="eV per framework unit")
    e_above_hull_per_atom: float | None = Field(None, description="eV/atom")
    on_hull: bool = False
    spacegroup_initial: str | None = None
    spacegroup_final: str | None = Field(None, description="Space group of the relaxed structure (symprec 0.1 A)")
    layer_gap_growth: float | None = Field(None, description="Growth of the widest interlayer slab on relaxing (A)")


class TierCounts(BaseModel):
    """How many orderings each tier kept at one x."""

    x: float
    enumerated: int
    kept_ewald: int
    kept_screen: int
    relaxed_ok: int = Field(description="Relaxations that finished and entered the hull")


class StepDoc(BaseModel):
    """A voltage plateau between adjacent hull compositions."""

    x_low: float
    x_high: float
    voltage: float = Field(description="V vs the working-ion metal")
    capacity_grav: float = Field(description="mAh/g of the discharged host")
    label_low: str
    label_high: str


class ClusterExpansionDoc(BaseModel):
    """A cluster expansion fitted to an insertion-levels study's relaxed orderings (icet + trainstation)."""

    study: str
    kind: Literal["cluster_expansion"] = "cluster_expansion"
    calculator: dict = Field(description="Identity of the calculator whose relaxations were fitted")
    lattice: dict = Field(description="primitive (pymatgen Structure dict), active (site indices), working_ion")
    cutoffs: list[float] = Field(description="A: pair, triplet, ... cutoffs of the cluster space")
    fit_method: str
    property: str = "formation energy against the study's end members, eV per lattice site (vacancies counted)"
    parameters: list[float] = Field(description="ECIs times multiplicity as icet stores them, one per orbit")
    orbits: list[dict] = Field(default_factory=list, description="order, radius (A), multiplicity per parameter")
    n_structures: int
    n_parameters: int
    n_nonzero: int
    cv_rmse: float = Field(description="meV per site, k-fold cross validation")
    train_rmse: float = Field(description="meV per site")
    training: list[dict] = Field(
        default_factory=list, description="label, x, source, drift (A), used, reason, residual (meV/site) per ordering"
    )
    ground_states: list[dict] = Field(
        default_factory=list, description="x, formation energy (eV per framework unit), cells, in_training"
    )
    ground_state_cells: int = Field(description="Orderings in supercells of up to this many cells were searched")
    searched: int = Field(0, description="Orderings the ground-state search evaluated")
    levels_hull_x: list[float] = Field(default_factory=list)
    calculator_hull_x: list[float] = Field(
        default_factory=list, description="Hull of the calculator's energies of every fitted ordering"
    )
    ground_states_agree: bool = Field(
        description="The expansion's ground states in the study's x range are the calculator hull of the fitted set"
    )
    matches_levels_hull: bool = Field(False, description="... and the levels study's hull (searched in fewer cells)")
    levels_cells: int = Field(0, description="The largest supercell (in cells) the levels study enumerated")
    levels_cells_ground_state_x: list[float] = Field(
        default_factory=list, description="The expansion's ground states searched only in the levels study's cells"
    )
    matches_levels_hull_in_levels_cells: bool = Field(
        False, description="Those ground states are the levels hull: like against like, the same cells searched"
    )
    expansion_steps: list[dict] = Field(
        default_factory=list, description="x_low, x_high, voltage: the 0 K profile of the expansion's ground states"
    )
    iterations: int = Field(0, description="Ground-state rounds that relaxed new orderings and refitted")
    added: list[str] = Field(default_factory=list, description="Labels of the orderings the search relaxed")
    added_new: int = Field(0, description="Of those, relaxations computed in this run")
    added_reused: int = Field(0, description="Of those, relaxations reused from the store")
    cap_reached: bool = False
    warnings: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)


class FiniteTemperatureDoc(BaseModel):
    """V(x, T) from Monte Carlo on a cluster expansion: SGC sweeps, VCSGC inside gaps, plateaus, T_c."""

    study: str
    kind: Literal["finite_temperature"] = "finite_temperature"
    key: str = Field(description="Content key: the expansion's parameters and lattice and every setting below")
    settings: dict
    supercell: list[int]
    active_sites: int = Field(description="Active sites of the Monte Carlo supercell")
    voltage_reference: float = Field(description="V of the end-member line: V = V_ref - dmu / z")
    x_range: list[float]
    points: list[dict] = Field(default_factory=list, description="Every Monte Carlo run (ensemble, T, dmu, x, V, ...)")
    curves: list[dict] = Field(default_factory=list, description="temperature, x, voltage: V(x) per T")
    plateaus: list[dict] = Field(default_factory=list, description="Two-phase regions: T, x_low, x_high, voltage")
    transitions: list[dict] = Field(
        default_factory=list, description="Per interior 0 K vertex: heat capacity vs T and T_c (its peak)"
    )
    step_checks: list[dict] = Field(
        default_factory=list, description="The levels' 0 K steps against the lowest-T VCSGC voltages inside them"
    )
    expansion_step_checks: list[dict] = Field(
        default_factory=list, description="The expansion's own 0 K steps against the same (the Monte Carlo's check)"
    )
    not_equilibrated: list[str] = Field(default_factory=list, description="Runs whose halves disagree")
    runs: int = 0
    trials: int = 0
    seconds: float = 0.0
    reused: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class InsertionLevelsDoc(BaseModel):
    """Orderings at every x, the formation-energy hull and the 0 K voltage profile.

    ``electrode`` is emmet-core's ``InsertionElectrodeDoc`` built from every usable
    relaxed ordering (unstable ones carry their energy above hull), so MP users read
    ``average_voltage``, ``capacity_grav``, ``adj_pairs`` as usual.
    """

    study: str
    kind: Literal["insertion_levels"] = "insertion_levels"
    host: dict
    calculator: dict = Field(description="Identity of the relaxation calculator")
    screen_calculator: dict | None = Field(None, description="Identity of the single-point screening calculator")
    enumeration: dict = Field(default_factory=dict, description="Cell, active sites, sizes, notes, seconds")
    tiers: list[TierCounts] = Field(default_factory=list)
    orderings: list[OrderingResult] = Field(default_factory=list)
    hull_x: list[float] = Field(default_factory=list, description="x of the hull compositions")
    steps: list[StepDoc] = Field(default_factory=list)
    average_voltage: float | None = Field(None, description="V, capacity-weighted over the hull's x range")
    x_range: list[float] | None = None
    capacity_grav: float | None = Field(None, description="mAh/g over the hull's x range")
    energy_grav: float | None = Field(None, description="Wh/kg over the hull's x range")
    electrode: InsertionElectrodeDoc | None = None
    spot_checks: dict | None = Field(
        None,
        description="DFT statics on the ML geometries of the hull and near-hull orderings: ML vs DFT formation "
        "energies and hull membership per point, and the profile from the DFT energies",
    )
    cluster_expansion: ClusterExpansionDoc | None = Field(None, description="With finite_temperature: the fit")
    finite_temperature: FiniteTemperatureDoc | None = Field(None, description="With finite_temperature: V(x, T)")
    calculations: list[CalculationRecord] = Field(default_factory=list, description="Relaxation records, ion last")
    failed: list[FailedCalculation] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list, description="Compositions or references the profile lacks")
    new_calculations: int = 0
    reused_calculations: int = 0
    screening_reused: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class FailedStudyDoc(BaseModel):
    """A study whose planning job could not use its input (not a structure, no working ion, ...)."""

    study: str
    kind: str = Field(description="The study type that was asked for (insertion_levels, defects, ...)")
    status: Literal["failed"] = "failed"
    error: str = Field(description="Why, in one line")
    source: dict = Field(default_factory=dict, description="uuid and attributes of the upstream output, if any")
    created_at: datetime = Field(default_factory=utcnow)


class CommitteeDoc(BaseModel):
    """One study run with several calculators: every voltage and energy above hull with its mean and spread."""

    study: str
    kind: Literal["committee"] = "committee"
    study_type: str = Field(description="The members' study: end_member_voltage, insertion_levels, defects or barriers")
    host: dict
    members: list[dict] = Field(default_factory=list, description="label, study name and calculator identity each")
    spread_definition: str = "population standard deviation over the members (half the difference for two)"
    average_voltage: dict | None = Field(None, description="mean, spread (V) and the members' values")
    segments: list[dict] = Field(
        default_factory=list, description="x_low, x_high, mean and spread (V), per member: the profiles cut together"
    )
    steps: list[dict] = Field(
        default_factory=list, description="x, jump of the mean (V), summed spread, resolved: each voltage step"
    )
    orderings: list[dict] = Field(
        default_factory=list,
        description="label, x, e_above_hull per member (eV per framework unit), mean, spread, on_hull, "
        "possibly_on_hull",
    )
    defects: list[dict] = Field(
        default_factory=list,
        description="Defects: label, kind, x, energy per member (eV, each at its own limit), mean, spread, verdict "
        "(favourable / unfavourable / undecided), concentration_decades",
    )
    lowest_defects: list[dict] = Field(
        default_factory=list, description="Defects: kind, x, each member's lowest configuration, same_configuration"
    )
    classes: list[dict] = Field(
        default_factory=list, description="Defects: kind, classification per member, whether the members agree"
    )
    barriers: list[dict] = Field(
        default_factory=list,
        description="TM migrations (defects) or working-ion hops (barriers): label, x, forward_barrier per member "
        "(eV), mean, spread, rate_factor, verdict against the kinetic limit",
    )
    temperature: float | None = Field(None, description="K: the rates and the kinetic limit of the barriers")
    kinetic_limit: float | None = Field(None, description="eV: kT ln(nu tau), the same for every member")
    migration_onset_x: dict[str, float | None] = Field(
        default_factory=dict, description="Defects: each member's gated onset of TM migration on charge"
    )
    hysteresis: dict | None = Field(None, description="Defects: mean, spread (V) and values of the average hysteresis")
    failed_by_member: dict[str, list[str]] = Field(
        default_factory=dict, description="Labels of the calculations each member could not use"
    )
    spot_checks: dict | None = Field(None, description="The first member's DFT spot checks")
    missing: list[str] = Field(default_factory=list)
    new_calculations: int = 0
    reused_calculations: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class StudyRecords(BaseModel):
    """What every study document ends with: its calculations and what went wrong."""

    calculations: list[CalculationRecord] = Field(default_factory=list)
    failed: list[FailedCalculation] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    new_calculations: int = 0
    reused_calculations: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class DefectResult(BaseModel):
    """One defect (or migration pair) in one pristine ordering at one x."""

    label: str
    kind: str = Field(description="V_TM, TM_Li, Li_TM, F_O, migration (TM into an empty site) or exchange (Li/TM)")
    x: float
    host_label: str = Field(description="The pristine ordering it was made from")
    site: str = Field(description="What changed, e.g. 'Co(b) -> empty Li 3a site (2.85 A)'")
    destination: str | None = Field(None, description="Migration: sublattice label of the site the TM went to")
    hop_distance: float | None = Field(None, description="Migration: A the TM moved")
    change: dict[str, int] = Field(default_factory=dict, description="Atoms added (+) / removed (-)")
    n_atoms: int
    status: Status | None = None
    reason: str | None = None
    content_key: str | None = None
    reused: bool = False
    raw_difference: float | None = Field(None, description="E(defect) - E(pristine), eV")
    energy: float | None = Field(
        None, description="Defect energy at the study's chemical-potential limit (migration: dE_mig), eV"
    )
    energies_at_limits: dict[str, float] = Field(
        default_factory=dict, description="Defect energy (eV) at each limit of the host's stability region at x"
    )
    energy_synthesis: float | None = Field(
        None,
        description="eV, at the synthesis point (O2 at the synthesis T and pressure): sets the quenched population",
    )
    reference_label: str | None = Field(
        None, description="The pristine ordering the energy is measured from: the one the defect was made in"
    )
    host_above_reference: float | None = Field(
        None, description="eV per supercell that host ordering lies above the lowest verified ordering at x"
    )
    multiplicity: float = Field(1.0, description="Equivalent configurations per framework formula unit")
    concentration_operating: float | None = Field(
        None, description="Per formula unit at the operating temperature, m / (1 + exp(E/kT))"
    )
    concentration_synthesis: float | None = Field(None, description="Per formula unit at the synthesis temperature")
    geometry: str | None = Field(
        None, description="What the relaxed cell became: 'kept', the sites that changed, or where the moved TM ended"
    )
    counted: bool = Field(
        True, description="False: the relaxed cell is not the defect it was built as; left out of classification"
    )
    charge_states: list[dict] = Field(
        default_factory=list,
        description="Charged calculations: charge, energy, Freysoldt correction and its parts (eV), status",
    )
    charged: dict = Field(
        default_factory=dict,
        description="Per limit: lines (q, E_f at the VBM), transition levels (E_F, E_f) and E_f at both band edges",
    )


class DefectClassDoc(BaseModel):
    """How a defect kind behaves across x, judged from its concentrations at synthesis and operating T."""

    kind: str
    classification: Literal["coupled", "static", "negligible", "host unstable", "undetermined"]
    energies: list[tuple[float, float]] = Field(description="(x, lowest energy in eV) per x")
    sites: list[tuple[float, str]] = Field(description="(x, variant with the largest concentration) per x")
    concentrations: list[tuple[float, float]] = Field(
        default_factory=list, description="(x, defects per formula unit at the operating temperature) per x"
    )
    quenched_concentration: float | None = Field(
        None, description="Per formula unit at the synthesis temperature in the as-made (highest-x) host"
    )
    span_decades: float = Field(0.0, description="log10 of the largest over the smallest concentration across x")
    synthesis_temperature: float | None = None
    operating_temperature: float | None = None
    onset_x: float | None = Field(
        None, description="Coupled: highest x at which it is within 2 decades of its largest concentration"
    )
    onset_site: str | None = None
    lowest_x_site: str | None = None
    favourable_x: list[float] = Field(default_factory=list, description="x at which its lowest energy is below 0")
    notes: list[str] = Field(default_factory=list)


class NebRecord(BaseModel):
    """One nudged-elastic-band path as the analysis sees it: the relaxed path, or why there is none."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    label: str
    content_key: str | None = Field(
        None, description="SHA-256 of the initial path + calculator identity + NEB settings (None: not run)"
    )
    calculator: dict
    settings: dict = Field(description="NEB settings: images, spring, climb, fmax, steps, method")
    status: Status
    reason: str | None = None
    reused: bool = False
    endpoint_keys: list[str] = Field(default_factory=list, description="Content keys of the relaxed endpoints")
    energies: list[float] | None = Field(None, description="eV, total, per image (endpoints included)")
    images: list[Any] | None = Field(None, description="The relaxed path (pymatgen Structures, or their dicts)")
    forward_barrier: float | None = Field(None, description="eV: E(saddle) - E(start)")
    reverse_barrier: float | None = Field(None, description="eV: E(saddle) - E(end)")
    reaction_energy: float | None = Field(None, description="eV: E(end) - E(start)")
    saddle_index: int | None = None
    converged: bool | None = None
    n_steps: int | None = None
    wall_time_s: float | None = None
    job_uuid: str | None = None


class HysteresisDoc(BaseModel):
    """Charge and discharge branches and the loop between them."""

    definition: str
    coupled: bool = Field(description="False: no coupled defect formed, the discharge retraces the charge")
    migrated_label: str | None = Field(None, description="The coupled configuration the discharge keeps")
    charge: list[StepDoc] = Field(default_factory=list)
    discharge: list[StepDoc] = Field(default_factory=list)
    segments: list[dict] = Field(default_factory=list, description="x_low, x_high, v_charge, v_discharge, dv (V)")
    average_hysteresis: float = Field(0.0, description="V, x-average of V_charge - V_discharge")
    energy_lost: float = Field(0.0, description="Wh/kg per cycle: area between the branches")
    x_range: list[float] | None = None


class DefectStudyDoc(StudyRecords):
    """Defects across the state of charge, their classification and the hysteresis they cause."""

    study: str
    kind: Literal["defects"] = "defects"
    host: dict
    calculator: dict
    supercell: list[list[int]] = Field(description="Of the host cell; every structure lives in it")
    supercell_atoms: int
    settings: dict = Field(default_factory=dict)
    chemical_potentials: dict = Field(
        default_factory=dict, description="eV/atom at the study's limit, per element and x ('Co(x=0.500)')"
    )
    chemical_potential_limit: str | None = Field(None, description="The limit energy and classification use")
    stability_regions: list[dict] = Field(
        default_factory=list,
        description="Per pristine host: x, whether it has a region, eV/f.u. above its competing phases, limits",
    )
    competing_phases: list[str] = Field(default_factory=list, description="Phases the regions were computed against")
    energy_scale: dict = Field(
        default_factory=dict, description="Scale of the calculator's energies and what was done about it"
    )
    charge_treatment: str | None = Field(None, description="Neutral only (and why), or how charges were treated")
    migration_barriers: list[dict] = Field(
        default_factory=list,
        description="Per x: the lowest stayed TM migration, its dE, oct->tet->oct barriers both ways and the verdict",
    )
    nebs: list[NebRecord] = Field(default_factory=list, description="The TM-migration NEBs")
    kinetic_limit: float | None = Field(None, description="eV: kT ln(nu tau) at the operating temperature")
    migration_onset_x: float | None = Field(
        None, description="Highest x where TM migration is downhill and below the kinetic limit (gated)"
    )
    hysteresis_ungated: HysteresisDoc | None = Field(
        None, description="The loop from energies alone, when the barriers close the gate"
    )
    second_cycle: HysteresisDoc | None = Field(
        None, description="The cycle after the first, from the state its discharge ended in (TM migrated or back)"
    )
    voltage_fade: float | None = Field(
        None, description="V: first-charge average minus second-charge average on their common x range"
    )
    tm_returns_at: float | None = Field(
        None, description="x at which the migrated TM goes back on discharge (downhill and fast); None: it stays"
    )
    fermi_level: dict | None = Field(
        None,
        description="Self-consistent E_F (eV above the VBM) at the synthesis point and temperature: the "
        "charged defects and free carriers that balance there (cm^-3)",
    )
    pristine: list[dict] = Field(
        default_factory=list,
        description="Pristine orderings: label, x, status, energy, geometry, and whether it is the reference at x",
    )
    pristine_steps: list[StepDoc] = Field(default_factory=list)
    defects: list[DefectResult] = Field(default_factory=list)
    classes: list[DefectClassDoc] = Field(default_factory=list)
    f_o_reduction: list[str] = Field(default_factory=list, description="Which TM the F_O donor electron reduces")
    hysteresis: HysteresisDoc | None = None
    spot_checks: dict | None = Field(
        None,
        description="DFT statics on the ML geometries of the lowest defect per kind and x and the migrated TM: "
        "ML against DFT energy per point, the DFT chemical potentials from DFT phases",
    )
    notes: list[str] = Field(default_factory=list)


class ElectronicPoint(BaseModel):
    """One composition: its relaxed structure's moments and its electronic-structure descriptors."""

    label: str
    x: float
    formula: str
    kind: str = Field("pristine", description="'pristine' or the defect kind (V_TM, F_O, ...)")
    site: str | None = Field(None, description="Defects: what changed")
    host_label: str | None = Field(None, description="Defects: the pristine point at the same x")
    fermi_shift: float | None = Field(
        None,
        description=(
            "Defects: E_F - E_F(pristine) (eV), aligned on the electrostatic potential at sites far from the "
            "defect when both statics give site potentials, else measured from each cell's own O-2p centre"
        ),
    )
    fermi_shift_reference: Literal["electrostatic", "anion_p_centre"] | None = Field(
        None, description="What fermi_shift is aligned on"
    )
    fermi_shift_anion_p: float | None = Field(
        None, description="Defects: the E_F shift measured from each cell's own O-2p centre, for comparison (eV)"
    )
    potential_alignment: dict | None = Field(
        None, description="Defects: Delta V = V(defect) - V(pristine) at far sites (eV), its spread and sites"
    )
    moment_changes: list[dict] = Field(
        default_factory=list,
        description="Defects: TM sites whose moment changed by > 0.25 muB against the pristine cell, nearest first",
    )
    moments_from: str | None = Field(None, description="Calculator whose moments tm_moments are")
    relax_status: Status | None = None
    static_status: Status | None = None
    reason: str | None = None
    tm_moments: dict[str, list[float]] = Field(
        default_factory=dict, description="muB per TM site: the electronic static's, else the relaxation's"
    )
    implied_oxidation: dict[str, dict[str, int]] = Field(default_factory=dict, description="From the moments")
    descriptors: dict | None = Field(None, description="Gap, edges, band centres, O-2p weight near E_F, PDOS")


class ElectronicStudyDoc(StudyRecords):
    """Band descriptors along x: relaxed with one calculator, electronic structure from another."""

    study: str
    kind: Literal["electronic_structure"] = "electronic_structure"
    host: dict
    calculator: dict = Field(description="Relaxation calculator")
    electronic_calculator: dict
    points: list[ElectronicPoint] = Field(default_factory=list)


class HopResult(BaseModel):
    """One working-ion hop at one x: its barrier and what it means at the study's temperature."""

    label: str = Field(description="e.g. 'hop 0 (3.00 A, 1D) vacancy'")
    hop: int = Field(description="Hop label of pymatgen-analysis-diffusion's MigrationGraph")
    mode: str = Field(description="vacancy (one empty site) or divacancy (a second one next to both ends)")
    length: float = Field(description="A between the two sites")
    dimensionality: int = Field(description="Of the network these hops alone make: 1, 2 or 3")
    equivalent: int = Field(description="Hops of this kind leaving one site")
    x: float = Field(description="Working ions per framework unit in the start cell")
    status: Status | None = None
    reason: str | None = None
    forward_barrier: float | None = Field(None, description="eV")
    reverse_barrier: float | None = Field(None, description="eV")
    reaction_energy: float | None = Field(None, description="eV: end minus start")
    saddle_interior: bool | None = Field(None, description="False: the highest image is an endpoint")
    path: list[list[float]] = Field(
        default_factory=list, description="(A along the path, eV above the start) per image"
    )
    rate: float | None = Field(None, description="Hz: nu exp(-E_a/kT) at the study temperature")
    diffusivity: float | None = Field(None, description="cm^2/s: dilute random walk on this hop network")
    within_kinetic_limit: bool | None = Field(None, description="One hop at least within the time scale")
    diffusion_length: float | None = Field(None, description="nm: sqrt(D tau), how far the ion gets in the time scale")
    crosses_particle: bool | None = Field(None, description="D tau >= L^2 for the study's particle size L")
    neb_key: str | None = None
    reused: bool = False


class BarrierStudyDoc(StudyRecords):
    """Migration barriers of the working ion: one NEB per distinct hop and mode, from relaxed endpoints."""

    study: str
    kind: Literal["barriers"] = "barriers"
    host: dict
    calculator: dict
    supercell: list[list[int]]
    supercell_atoms: int
    neb: dict = Field(description="NEB settings")
    temperature: float = Field(description="K: rates, diffusivities and the kinetic limit")
    attempt_frequency: float = Field(description="Hz")
    time_scale: float = Field(description="s: a hop must happen at least once in it")
    kinetic_limit: float = Field(description="eV: kT ln(nu tau)")
    particle_size: float = Field(100.0, description="nm: the ion must cross it in the time scale")
    hops: list[HopResult] = Field(default_factory=list)
    nebs: list[NebRecord] = Field(default_factory=list)
    new_nebs: int = 0
    reused_nebs: int = 0
    notes: list[str] = Field(default_factory=list)
