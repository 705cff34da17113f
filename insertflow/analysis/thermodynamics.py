"""Finite-temperature voltage from a cluster expansion: semi-grand-canonical Monte Carlo (mchammer).

The expansion gives the formation energy against the end-member line, so the Monte Carlo chemical
potential ``dmu`` (eV per working ion, ion against vacancy) is measured from that line's slope s:
mu_ion = s + dmu, and V = -(mu_ion - E_ion) / z = V_ref - dmu / z, with V_ref the average voltage
between the end members. Each SGC point starts from the last configuration of its neighbour.

SGC gives x(mu); across a two-phase region it jumps. A jump is refined by halving its mu interval
and kept when it stays larger than an ideal solution, of slope kT / (z c (1 - c)), could change
over the final interval. Variance-constrained SGC (VCSGC, Sadigh and Erhart 2012) samples every x
on a grid, gaps included, and returns dF/dc: V(x) is continuous through a gap, and the mean VCSGC
voltage inside a jump is the plateau voltage (an SGC sweep jumps late, out of a metastable phase). An order-disorder
transition is scanned on heating at the chemical potential in the middle of a 0 K vertex's stability
window, from that vertex's ordering repeated to about the supercell's size. Its long-range order parameter eta (the
ordering's superlattice peaks of the structure factor, 1 when perfect) falls through T_c, where the
order-parameter susceptibility N (<eta^2> - <eta>^2) / kT peaks; the heat-capacity peak is kept beside it.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
from ase import Atoms

from insertflow.analysis.cluster_expansion import VACANCY, ActiveLattice

K_B = 8.617333262e-5  # eV/K


@dataclass
class MonteCarloSettings:
    """Supercell (repeats of the enumeration cell) and sweeps; one sweep = one trial per active site."""

    supercell: list[int]
    equilibration: int = 200
    production: int = 400
    kappa: float = 200.0  # VCSGC variance constraint
    seed: int = 0


@dataclass
class MonteCarloPoint:
    """One Monte Carlo run: its ensemble, T, chemical potential and what it sampled."""

    ensemble: str  # sgc, sgc refinement (inside a jump) or vcsgc
    temperature: float
    dmu: float  # eV per ion, against the end-member line
    x: float
    x_error: float  # standard error of the mean x (block averages)
    voltage: float
    heat_capacity: float  # k_B per active site, from the fluctuation of E - dmu N (SGC)
    acceptance: float
    equilibrated: bool
    drift: float  # |<x> first half - <x> second half| of production
    target_x: float | None = None  # VCSGC
    order: tuple[float, float] | None = None  # (<eta>, <eta^2>) of a transition scan's ordering

    def as_dict(self) -> dict:
        """Plain dictionary (for documents)."""
        return asdict(self)


@dataclass
class PlateauRegion:
    """A two-phase region at one temperature: the x range and the plateau voltage."""

    temperature: float
    x_low: float
    x_high: float
    voltage: float  # mean VCSGC voltage inside (else the refined SGC jump's)
    voltage_error: float  # V: standard error of that mean
    voltage_sgc: float  # V where the SGC sweep jumped (late when a phase stays metastable)
    points: int  # VCSGC points inside


@dataclass
class TransitionScan:
    """Order parameter and heat capacity against T at the middle of a 0 K vertex's stability window."""

    x: float
    voltage: float
    temperatures: list[float]
    heat_capacity: list[float]
    x_mean: list[float]
    critical_temperature: float | None  # susceptibility peak (else the heat-capacity peak); None at a scan end
    note: str = ""
    method: str = "heat capacity"  # what critical_temperature comes from: order parameter or heat capacity
    order_parameter: list[float] = field(default_factory=list)  # <eta> per T (1 = the perfect 0 K ordering)
    susceptibility: list[float] = field(default_factory=list)  # N (<eta^2> - <eta>^2) / kT per T, 1/eV
    heat_capacity_peak: float | None = None  # K: interior peak of C, kept beside the order-parameter T_c
    start: str = "full cell"  # the 0 K ordering repeated (order parameter), or the full Monte Carlo cell


class OrderParameter:
    """Long-range order of one ordering and its symmetry variants, from their superlattice peaks.

    eta^2 = sum_q |sum_i (n_i - <n>) e^{i q.r_i}|^2 over the star of the perfect ordering's peaks
    (its peaks turned by every point-group rotation of the host, where the supercell admits them),
    divided by the same sum for the perfect ordering. So eta is 1 for the ordering, for any
    translation of it and for any rotated variant the supercell holds, and small (of order
    sqrt(q-points / sites)) when disordered. The q are the reciprocal lattice points of the
    ordering's cell in two zones of the primitive cell's, so orderings inside one primitive cell of a
    multi-site sublattice show up too.
    """

    def __init__(
        self,
        occupied: np.ndarray,
        positions: np.ndarray,
        ordering_cell: np.ndarray,
        primitive_cell: np.ndarray,
        supercell_cell: np.ndarray,
        rotations: list[np.ndarray] | None = None,
    ):
        exact = ordering_cell @ np.linalg.inv(primitive_cell)  # the ordering's cell = M x the primitive one
        matrix = np.round(exact).astype(int)
        if not np.allclose(exact, matrix, atol=1e-6):
            raise ValueError("the ordering's cell is not an integer supercell of the lattice's (another frame?)")
        to_cartesian = 2 * np.pi * np.linalg.inv(primitive_cell).T
        bound = 2 * int(np.abs(matrix).sum(axis=1).max())
        box = np.array(list(itertools.product(range(-bound, bound + 1), repeat=3)))
        fractional = box @ np.linalg.inv(matrix).T  # in the primitive reciprocal basis
        inside = np.all((fractional > -1e-9) & (fractional < 2 - 1e-9), axis=1) & np.any(box != 0, axis=1)
        qs = fractional[inside] @ to_cartesian
        amplitude = np.abs(np.exp(1j * positions @ qs.T).T @ (occupied - occupied.mean())) ** 2
        peaks = qs[amplitude > 1e-6 * max(float(amplitude.max()), 1e-12)]
        star = _star(peaks, rotations or [np.eye(3)], primitive_cell, supercell_cell)
        self.phases = np.exp(1j * positions @ star.T).T  # (q, site)
        self.norm = float((np.abs(self.phases @ (occupied - occupied.mean())) ** 2).sum())
        self.peaks = len(peaks)
        self.star = len(star)

    def __call__(self, occupied: np.ndarray) -> float:
        """The eta of one occupation (True/1 where the active site holds the ion)."""
        if self.norm <= 0:
            return 0.0
        amplitude = np.abs(self.phases @ (occupied - occupied.mean())) ** 2
        return math.sqrt(float(amplitude.sum()) / self.norm)


def _star(peaks: np.ndarray, rotations, primitive_cell: np.ndarray, supercell_cell: np.ndarray) -> np.ndarray:
    """The peaks turned by every rotation, kept where commensurate with the supercell, once each (two zones)."""
    if len(peaks) == 0:
        return peaks
    seen, kept = set(), []
    for rotation in rotations:
        for q in peaks @ np.asarray(rotation).T:
            on_supercell = supercell_cell @ q / (2 * np.pi)
            if not np.allclose(on_supercell, np.round(on_supercell), atol=1e-6):
                continue  # this variant does not fit the supercell
            fractional = primitive_cell @ q / (2 * np.pi)
            key = tuple(np.round(np.mod(fractional + 1e-9, 2.0), 6))
            if key not in seen:
                seen.add(key)
                kept.append(q)
    return np.array(kept)


def scan_supercell(ordering: Atoms, active_per_cell: int, target_sites: int) -> tuple[int, int, int]:
    """Repeats of ``ordering``'s cell, about equal in length, holding at least ``target_sites`` active sites."""
    lengths = np.linalg.norm(ordering.cell.array, axis=1)
    scale = max(lengths)
    while True:
        repeats = tuple(max(1, round(scale / length)) for length in lengths)
        if int(np.prod(repeats)) * active_per_cell >= target_sites:
            return repeats
        scale *= 1.1


class Sampler:
    """Monte Carlo on one supercell of the lattice with one expansion."""

    def __init__(
        self,
        expansion,
        lattice: ActiveLattice,
        settings: MonteCarloSettings,
        voltage_ref: float,
        z: int,
        start: Atoms | None = None,
    ):
        from mchammer.calculators import ClusterExpansionCalculator

        self.expansion = expansion
        self.lattice = lattice
        self.settings = settings
        self.voltage_ref = voltage_ref
        self.z = z
        # the supercell: ``settings.supercell`` repeats of the lattice's cell, or ``start`` (any supercell of it)
        self.start = start if start is not None else lattice.atoms().repeat(tuple(settings.supercell))
        self.cells = round(len(self.start) / lattice.sites)
        self.active_indices = _active_indices(self.start, lattice)
        self.active_sites = len(self.active_indices)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.calculator = ClusterExpansionCalculator(self.start, expansion)
        self._seed = settings.seed
        self.runs = 0
        self.trials = 0
        self._spawned = 0

    def on(self, start: Atoms) -> Sampler:
        """A sampler with the same expansion and settings on another supercell ``start``."""
        other = Sampler(self.expansion, self.lattice, self.settings, self.voltage_ref, self.z, start)
        self._spawned += 1
        other._seed = self._seed + 1000 * self._spawned  # each scan its own random numbers
        return other

    def voltage(self, dmu: float) -> float:
        """V of the chemical potential ``dmu``."""
        return self.voltage_ref - dmu / self.z

    def dmu(self, voltage: float) -> float:
        """The chemical potential of ``voltage``."""
        return (self.voltage_ref - voltage) * self.z

    def x_of_count(self, ion_count: np.ndarray) -> np.ndarray:
        """The x of each sample, from the total working-ion count (inert ions included)."""
        return ion_count / (self.lattice.formula_units * self.cells)

    def concentration(self, x: float) -> float:
        """Fraction of active sites holding an ion at ``x``."""
        ions = x * self.lattice.formula_units - self.lattice.inert_ions
        return ions / len(self.lattice.active)

    def occupied(self, atoms: Atoms) -> np.ndarray:
        """1.0 on each active site of ``atoms`` (a supercell configuration) that holds the ion, else 0.0."""
        symbols = np.asarray(atoms.get_chemical_symbols())[self.active_indices]
        return (symbols == self.lattice.working_ion).astype(float)

    def order_parameter(self, ordering: Atoms, ordering_cell: np.ndarray) -> OrderParameter:
        """The order parameter of ``ordering`` with the periodicity ``ordering_cell``.

        ``ordering`` is a configuration of this sampler's supercell (its atoms in the order of
        ``self.start``); its symmetry variants are those of the host's point group.
        """
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        positions = self.start.positions[self.active_indices]
        operations = SpacegroupAnalyzer(self.lattice.primitive, symprec=0.01).get_point_group_operations(cartesian=True)
        return OrderParameter(
            self.occupied(ordering),
            positions,
            ordering_cell,
            self.lattice.primitive.lattice.matrix,
            self.start.cell.array,
            [op.rotation_matrix for op in operations],
        )

    def sgc(
        self, temperature: float, dmu: float, atoms: Atoms | None = None, order: OrderParameter | None = None
    ) -> tuple[MonteCarloPoint, Atoms]:
        """One SGC run at ``dmu``; returns the point and the last configuration (``point.order``: <eta>, <eta^2>)."""
        from mchammer.ensembles import SemiGrandCanonicalEnsemble

        ensemble = self._ensemble(
            SemiGrandCanonicalEnsemble,
            atoms,
            temperature,
            chemical_potentials={self.lattice.working_ion: dmu, VACANCY: 0.0},
        )
        tags = ["potential"]
        if order is not None:
            ensemble.attach_observer(order_observer(self, order, self.active_sites))
            tags.append("order_parameter")
        counts, values, acceptance = self._run(ensemble, tags)
        grand = values[0] - dmu * (counts - self.lattice.inert_ions * self.cells)
        heat = float(np.var(grand) / (K_B * temperature) ** 2 / self.active_sites)
        point = self._point("sgc", temperature, dmu, counts, heat, acceptance)
        if order is not None:
            point.order = (float(np.mean(values[1])), float(np.mean(values[1] ** 2)))
        return point, ensemble.structure

    def vcsgc(self, temperature: float, x: float, atoms: Atoms | None = None) -> tuple[MonteCarloPoint, Atoms]:
        """One VCSGC run constrained near ``x``; its dmu is the mean free-energy derivative dF/dc."""
        from mchammer.ensembles import VCSGCEnsemble

        ensemble = self._ensemble(
            VCSGCEnsemble,
            atoms,
            temperature,
            phis={self.lattice.working_ion: -2.0 * self.concentration(x)},
            kappa=self.settings.kappa,
        )
        counts, (derivative,), acceptance = self._run(ensemble, [f"free_energy_derivative_{self.lattice.working_ion}"])
        point = self._point("vcsgc", temperature, float(np.mean(derivative)), counts, math.nan, acceptance)
        point.target_x = x
        return point, ensemble.structure

    def _ensemble(self, kind, atoms, temperature, **parameters):
        self._seed += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return kind(
                structure=(atoms if atoms is not None else self.start).copy(),
                calculator=self.calculator,
                temperature=temperature,
                random_seed=self._seed,
                ensemble_data_write_interval=self.active_sites,
                **parameters,
            )

    def _run(self, ensemble, tags: list[str]):
        sweeps = self.settings.equilibration + self.settings.production
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ensemble.run(sweeps * self.active_sites)
        self.runs += 1
        self.trials += sweeps * self.active_sites
        data = ensemble.data_container
        start = self.settings.equilibration * self.active_sites
        counts = np.asarray(data.get(f"{self.lattice.working_ion}_count", start=start), dtype=float)
        values = [np.asarray(data.get(tag, start=start), dtype=float) for tag in tags]
        acceptance = float(np.mean(data.get("acceptance_ratio", start=start)))
        return counts, values, acceptance

    def _point(self, ensemble, temperature, dmu, counts, heat, acceptance) -> MonteCarloPoint:
        xs = self.x_of_count(counts)
        error, drift, settled = equilibration_check(xs, 1.0 / (self.lattice.formula_units * self.cells))
        return MonteCarloPoint(
            ensemble=ensemble,
            temperature=temperature,
            dmu=dmu,
            x=float(np.mean(xs)),
            x_error=error,
            voltage=self.voltage(dmu),
            heat_capacity=heat,
            acceptance=acceptance,
            equilibrated=settled,
            drift=drift,
        )


def _active_indices(atoms: Atoms, lattice: ActiveLattice, tolerance: float = 1e-3) -> np.ndarray:
    """Indices of the sites of ``atoms`` (a supercell of the lattice) that fall on an active primitive site."""
    cell = lattice.primitive.lattice.matrix
    delta = lattice.primitive.frac_coords[None, :, :] - (atoms.positions @ np.linalg.inv(cell))[:, None, :]
    delta -= np.round(delta)
    distance = np.linalg.norm(delta @ cell, axis=2)  # (supercell site, primitive site), minimum image
    nearest = np.argmin(distance, axis=1)
    stray = np.flatnonzero(distance[np.arange(len(atoms)), nearest] > tolerance)
    if len(stray):
        raise ValueError(f"site {int(stray[0])} of the supercell is not a site of the lattice")
    return np.flatnonzero(np.isin(nearest, lattice.active))


@functools.cache
def _order_observer_class():
    from mchammer.observers.base_observer import BaseObserver

    class OrderObserver(BaseObserver):
        """The eta of the current configuration, once per sweep."""

        def __init__(self, sampler: Sampler, order: OrderParameter, interval: int):
            super().__init__(return_type=float, interval=interval, tag="order_parameter")
            self.sampler, self.order = sampler, order

        def get_observable(self, structure: Atoms) -> float:
            return self.order(self.sampler.occupied(structure))

    return OrderObserver


def order_observer(sampler: Sampler, order: OrderParameter, interval: int):
    """An mchammer observer of eta (mchammer is imported only when a scan runs)."""
    return _order_observer_class()(sampler, order, interval)


def equilibration_check(series: np.ndarray, quantum: float, blocks: int = 10) -> tuple[float, float, bool]:
    """(standard error of the mean, drift between halves, settled?) of a production series.

    Settled: the halves' means differ by less than 4 combined standard errors plus one ``quantum``
    (one ion of the supercell, the resolution of x).
    """
    n = len(series) // blocks * blocks
    if n < blocks:
        return math.nan, math.nan, False
    means = series[:n].reshape(blocks, -1).mean(axis=1)
    error = float(np.std(means, ddof=1) / math.sqrt(blocks))
    half = blocks // 2
    first, second = means[:half], means[half:]
    drift = float(abs(first.mean() - second.mean()))
    spread = math.sqrt(np.var(first, ddof=1) / half + np.var(second, ddof=1) / (blocks - half))
    return error, drift, drift <= 4 * spread + quantum


def sgc_sweep(sampler: Sampler, temperature: float, dmus: list[float]) -> list[MonteCarloPoint]:
    """SGC at every chemical potential, in increasing order, each from its neighbour's last configuration."""
    points, atoms = [], None
    for dmu in sorted(dmus):
        point, atoms = sampler.sgc(temperature, dmu, atoms)
        points.append(point)
    return points


def ideal_slope(sampler: Sampler, temperature: float, x: float) -> float:
    """|dV/dx| of an ideal solution on the active sites at ``x`` (V per unit x)."""
    c = min(max(sampler.concentration(x), 1e-3), 1 - 1e-3)
    per_c = K_B * temperature / (sampler.z * c * (1 - c))
    return per_c * sampler.lattice.formula_units / len(sampler.lattice.active)


def vcsgc_grid(sampler: Sampler, temperature: float, xs: list[float]) -> list[MonteCarloPoint]:
    """VCSGC at every x of ``xs`` (increasing), each from its neighbour's last configuration."""
    points, atoms = [], None
    for x in sorted(xs):
        point, atoms = sampler.vcsgc(temperature, x, atoms)
        points.append(point)
    return points


def plateaus(
    sampler: Sampler,
    temperature: float,
    sweep: list[MonteCarloPoint],
    grid: list[MonteCarloPoint],
    gap_min: float,
    refinements: int = 5,
) -> tuple[list[PlateauRegion], list[MonteCarloPoint]]:
    """Two-phase regions: x jumps of the SGC sweep that survive ``refinements`` halvings of the mu interval.

    A jump is kept when it exceeds ``gap_min`` and four times what an ideal solution would change over
    the final interval. The plateau voltage is the mean VCSGC voltage inside the jump (SGC jumps late
    out of a metastable phase; VCSGC does not), or the refined jump's midpoint when no VCSGC point lies
    inside. Returns the regions and the extra SGC points of the refinement.
    """
    regions, extra = [], []
    ordered = sorted(sweep, key=lambda p: p.dmu)
    for low, high in itertools.pairwise(ordered):
        if high.x - low.x <= gap_min:
            continue
        a, b = low, high
        for _ in range(refinements):
            middle, _atoms = sampler.sgc(temperature, 0.5 * (a.dmu + b.dmu))  # from the full cell
            middle.ensemble = "sgc refinement"
            extra.append(middle)
            a, b = (a, middle) if middle.x - a.x > b.x - middle.x else (middle, b)
        ideal = abs(b.voltage - a.voltage) / ideal_slope(sampler, temperature, 0.5 * (a.x + b.x))
        if b.x - a.x <= max(gap_min, 4 * ideal):
            continue
        margin = 0.1 * (b.x - a.x)
        inside = [p.voltage for p in grid if a.x + margin < p.x < b.x - margin]
        voltage = float(np.mean(inside)) if inside else 0.5 * (a.voltage + b.voltage)
        error = float(np.std(inside) / math.sqrt(len(inside))) if len(inside) > 1 else abs(b.voltage - a.voltage) / 2
        regions.append(
            PlateauRegion(
                temperature=temperature,
                x_low=a.x,
                x_high=b.x,
                voltage=voltage,
                voltage_error=error,
                voltage_sgc=0.5 * (a.voltage + b.voltage),
                points=len(inside),
            )
        )
    return regions, extra


def transition_scan(
    sampler: Sampler, x: float, voltage: float, temperatures: list[float], ordering: Atoms | None = None
) -> TransitionScan:
    """Heating at fixed chemical potential from the 0 K ``ordering`` (ions and vacancies on the lattice).

    With an ordering, the scan runs on that ordering repeated to about the sampler's size, and T_c is
    the peak of the order-parameter susceptibility; without one (or when it has no superlattice peak),
    on the sampler's supercell from the full cell, and T_c is the peak of the heat capacity. Interior
    peaks only.
    """
    dmu = sampler.dmu(voltage)
    order, atoms, runner = None, None, sampler
    if ordering is not None:
        active_per_cell = round(len(ordering) / sampler.lattice.sites) * len(sampler.lattice.active)
        repeats = scan_supercell(ordering, active_per_cell, sampler.active_sites)
        runner = sampler.on(ordering.repeat(repeats))
        order = runner.order_parameter(runner.start, ordering.cell.array)
        if order.peaks == 0:  # the ordering has the lattice's own periodicity: nothing to melt
            order, runner = None, sampler
        else:
            atoms = runner.start
    heats, xs, etas, chis = [], [], [], []
    ordered = sorted(temperatures)
    for temperature in ordered:
        point, atoms = runner.sgc(temperature, dmu, atoms, order)
        heats.append(point.heat_capacity)
        xs.append(point.x)
        if point.order is not None:
            mean, square = point.order
            etas.append(mean)
            chis.append(runner.active_sites * max(square - mean**2, 0.0) / (K_B * temperature))
    if runner is not sampler:
        sampler.runs += runner.runs
        sampler.trials += runner.trials
    heat_peak, heat_note = _interior_peak(ordered, heats, "heat capacity")
    scan = TransitionScan(x, voltage, ordered, heats, xs, heat_peak, heat_note, heat_capacity_peak=heat_peak)
    if order is not None:
        scan.order_parameter, scan.susceptibility = etas, chis
        scan.start = (
            f"the 0 K ordering repeated {repeats[0]}x{repeats[1]}x{repeats[2]} ({runner.active_sites} active sites, "
            f"{order.peaks} superlattice peaks, {order.star} with its variants)"
        )
        scan.critical_temperature, scan.note = _interior_peak(ordered, chis, "order-parameter susceptibility")
        scan.method = "order parameter"
        if etas and etas[0] < 0.5:  # above T_c from the start: a later maximum of chi is noise
            scan.critical_temperature = None
            scan.note = f"the ordering is already melted at {ordered[0]:g} K (eta {etas[0]:.2f}): T_c lies below"
    return scan


def _interior_peak(temperatures: list[float], values: list[float], what: str) -> tuple[float | None, str]:
    peak = int(np.argmax(values))
    if 0 < peak < len(temperatures) - 1:
        return float(temperatures[peak]), ""
    if peak == 0:
        return None, f"the {what} falls from the lowest T ({temperatures[0]:g} K): no transition in the range"
    return None, f"the {what} still rises at the highest T ({temperatures[-1]:g} K): T_c lies above the range"


@dataclass
class StepCheck:
    """A 0 K voltage step against the VCSGC voltage inside it at one temperature."""

    x_low: float
    x_high: float
    voltage_0k: float
    voltage_mc: float | None
    temperature: float
    difference: float | None
    points: int = 0  # VCSGC points inside the step


def step_checks(steps: list[dict], points: list[MonteCarloPoint], temperature: float) -> list[StepCheck]:
    """Each 0 K step's voltage against the mean VCSGC voltage at ``temperature`` inside it (its middle 80 %)."""
    checks = []
    at_t = [p for p in points if p.temperature == temperature and p.ensemble == "vcsgc"]
    for step in steps:
        margin = 0.1 * (step["x_high"] - step["x_low"])
        inside = [p.voltage for p in at_t if step["x_low"] + margin < p.x < step["x_high"] - margin]
        voltage = float(np.mean(inside)) if inside else None
        checks.append(
            StepCheck(
                x_low=step["x_low"],
                x_high=step["x_high"],
                voltage_0k=step["voltage"],
                voltage_mc=voltage,
                temperature=temperature,
                difference=None if voltage is None else voltage - step["voltage"],
                points=len(inside),
            )
        )
    return checks


@dataclass
class VoltageCurve:
    """V(x) at one temperature: SGC points and the VCSGC points inside gaps, by x."""

    temperature: float
    x: list[float] = field(default_factory=list)
    voltage: list[float] = field(default_factory=list)


def voltage_curve(temperature: float, points: list[MonteCarloPoint], x_range: tuple[float, float]) -> VoltageCurve:
    """The SGC sweep and VCSGC grid points at ``temperature`` within ``x_range``, sorted by x."""
    low, high = x_range
    chosen = sorted(
        (
            p
            for p in points
            if p.temperature == temperature and p.ensemble in ("sgc", "vcsgc") and low - 1e-6 <= p.x <= high + 1e-6
        ),
        key=lambda p: p.x,
    )
    return VoltageCurve(temperature, [p.x for p in chosen], [p.voltage for p in chosen])
