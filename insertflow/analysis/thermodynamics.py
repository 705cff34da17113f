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
transition is the peak of the SGC heat capacity at the chemical potential in the middle of a 0 K
vertex's stability window.
"""

from __future__ import annotations

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
    """Heat capacity against T at the middle of a 0 K vertex's stability window."""

    x: float
    voltage: float
    temperatures: list[float]
    heat_capacity: list[float]
    x_mean: list[float]
    critical_temperature: float | None  # peak of C; None when the peak is at an end of the scan
    note: str = ""


class Sampler:
    """Monte Carlo on one supercell of the lattice with one expansion."""

    def __init__(self, expansion, lattice: ActiveLattice, settings: MonteCarloSettings, voltage_ref: float, z: int):
        from mchammer.calculators import ClusterExpansionCalculator

        self.lattice = lattice
        self.settings = settings
        self.voltage_ref = voltage_ref
        self.z = z
        self.cells = int(np.prod(settings.supercell))
        self.active_sites = len(lattice.active) * self.cells
        self.start = lattice.atoms().repeat(tuple(settings.supercell))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.calculator = ClusterExpansionCalculator(self.start, expansion)
        self._seed = settings.seed
        self.runs = 0
        self.trials = 0

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

    def sgc(self, temperature: float, dmu: float, atoms: Atoms | None = None) -> tuple[MonteCarloPoint, Atoms]:
        """One SGC run at ``dmu``; returns the point and the last configuration."""
        from mchammer.ensembles import SemiGrandCanonicalEnsemble

        ensemble = self._ensemble(
            SemiGrandCanonicalEnsemble,
            atoms,
            temperature,
            chemical_potentials={self.lattice.working_ion: dmu, VACANCY: 0.0},
        )
        counts, energies, acceptance = self._run(ensemble, ["potential"])
        grand = energies[0] - dmu * (counts - self.lattice.inert_ions * self.cells)
        heat = float(np.var(grand) / (K_B * temperature) ** 2 / self.active_sites)
        return self._point("sgc", temperature, dmu, counts, heat, acceptance), ensemble.structure

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


def transition_scan(sampler: Sampler, x: float, voltage: float, temperatures: list[float]) -> TransitionScan:
    """Heat capacity on heating at fixed chemical potential; T_c at its peak (interior peaks only)."""
    dmu = sampler.dmu(voltage)
    heats, xs, atoms = [], [], None
    for temperature in sorted(temperatures):
        point, atoms = sampler.sgc(temperature, dmu, atoms)
        heats.append(point.heat_capacity)
        xs.append(point.x)
    ordered = sorted(temperatures)
    peak = int(np.argmax(heats))
    critical, note = None, ""
    if 0 < peak < len(ordered) - 1:
        critical = float(ordered[peak])
    elif peak == 0:
        note = f"the heat capacity falls from the lowest T ({ordered[0]:g} K): no transition in the range"
    else:
        note = f"the heat capacity still rises at the highest T ({ordered[-1]:g} K): T_c lies above the range"
    return TransitionScan(x, voltage, ordered, heats, xs, critical, note)


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
