"""Formation-energy hull along x and the 0 K voltage profile: pure functions on entries.

For Li_x H (x working ions per framework unit H) with energies E(x) per framework unit:

* formation energy  E_f(x) = E(x) - [(1 - t) E(x_min) + t E(x_max)],  t = (x - x_min) / (x_max - x_min);
* hull: the lower convex hull of (x, E(x)); only its vertices are stable compositions;
* step between adjacent hull vertices x1 < x2:
  V = -[E(x2) - E(x1) - (x2 - x1) E_ion] / ((x2 - x1) z e),  E_ion per atom of the elemental ion;
* energy above hull of any ordering: E(x) minus the hull at x (eV per framework unit, and per atom);
* capacity between x1 and x2: (x2 - x1) z F / M(discharged host at x_max), in mAh/g.

pymatgen's ``InsertionElectrode`` finds the same hull through a phase diagram with
artificial elemental energies; the 1D hull here keeps x, per-formula-unit energies and
degenerate orderings explicit, and the tests check both agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry

from insertflow.analysis.voltage import framework_of, ion_charge, units_of
from insertflow.errors import InsertflowError

#: Faraday constant in mAh/mol.
FARADAY_MAH_PER_MOL = 96485.33212 / 3.6
#: Points closer than this to a hull segment (eV per formula unit) are not extra vertices.
HULL_TOLERANCE = 1e-6


@dataclass
class ProfilePoint:
    """One computed ordering placed on the hull diagram."""

    label: str
    x: float
    energy_per_fu: float  # eV per framework unit
    atoms_per_fu: float
    formation_energy: float = 0.0  # eV per framework unit, vs the end members
    e_above_hull: float = 0.0  # eV per framework unit
    on_hull: bool = False

    @property
    def e_above_hull_per_atom(self) -> float:
        """Energy above hull in eV/atom."""
        return self.e_above_hull / self.atoms_per_fu


@dataclass
class VoltageStep:
    """A plateau between two adjacent hull compositions."""

    x_low: float
    x_high: float
    voltage: float  # V vs the working-ion metal
    capacity_grav: float  # mAh/g of the discharged host
    label_low: str = ""
    label_high: str = ""


@dataclass
class VoltageProfile:
    """Hull, steps and averages of one host with one calculator."""

    framework: str
    working_ion: str
    points: list[ProfilePoint]
    hull: list[ProfilePoint]
    steps: list[VoltageStep]
    ion_energy_per_atom: float
    discharged_mass: float  # g/mol of Li_xmax H
    notes: list[str] = field(default_factory=list)

    @property
    def x_range(self) -> tuple[float, float]:
        """(x_min, x_max) of the hull."""
        return self.hull[0].x, self.hull[-1].x

    @property
    def average_voltage(self) -> float:
        """Capacity-weighted mean of the steps: the end-member voltage over the same x range."""
        span = sum(s.x_high - s.x_low for s in self.steps)
        return sum(s.voltage * (s.x_high - s.x_low) for s in self.steps) / span

    @property
    def capacity_grav(self) -> float:
        """mAh/g over the whole x range."""
        return sum(s.capacity_grav for s in self.steps)

    @property
    def energy_grav(self) -> float:
        """Wh/kg over the whole x range."""
        return sum(s.capacity_grav * s.voltage for s in self.steps)

    def capacity_at(self, x: float) -> float:
        """Capacity (mAh/g) delivered on going from x_max down to ``x``."""
        charge = ion_charge(self.working_ion)
        return (self.x_range[1] - x) * charge * FARADAY_MAH_PER_MOL / self.discharged_mass


def per_formula_unit(entry: ComputedEntry, framework: Composition, working_ion: str) -> tuple[float, float, float]:
    """(x, energy per framework unit in eV, atoms per framework unit) of ``entry``."""
    comp = entry.composition.element_composition
    units = units_of(comp, framework, working_ion)
    x = comp[working_ion] / units if working_ion in comp else 0.0
    return x, entry.energy / units, comp.num_atoms / units


def lower_hull(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the lower convex hull vertices of (x, y) points, by increasing x.

    Among points at the same x only the lowest can be a vertex; points on a hull
    segment (within ``HULL_TOLERANCE``) are not vertices.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    lowest: list[int] = []
    for i in order:
        if lowest and abs(points[lowest[-1]][0] - points[i][0]) < 1e-9:
            continue  # same x, higher energy
        lowest.append(i)
    hull: list[int] = []
    for i in lowest:
        while len(hull) >= 2:
            (x1, y1), (x2, y2), (x3, y3) = points[hull[-2]], points[hull[-1]], points[i]
            # drop the middle point unless it lies strictly below the chord from 1 to 3
            chord = y1 + (y3 - y1) * (x2 - x1) / (x3 - x1)
            if y2 < chord - HULL_TOLERANCE:
                break
            hull.pop()
        hull.append(i)
    return hull


def hull_energy_at(hull: list[tuple[float, float]], x: float) -> float:
    """Linear interpolation of the hull at ``x`` (must lie within the hull's x range)."""
    for (x1, y1), (x2, y2) in pairwise(hull):
        if x1 - 1e-9 <= x <= x2 + 1e-9:
            return y1 + (y2 - y1) * (x - x1) / (x2 - x1)
    if len(hull) == 1 and abs(hull[0][0] - x) < 1e-9:
        return hull[0][1]
    raise InsertflowError(f"x={x:g} lies outside the hull range {hull[0][0]:g}-{hull[-1][0]:g}")


def voltage_profile(
    labelled_entries: list[tuple[str, ComputedEntry]],
    ion_reference: ComputedEntry,
    working_ion: str,
    framework: Composition | None = None,
) -> VoltageProfile:
    """Hull, energies above hull and voltage steps from entries of one framework.

    ``labelled_entries``: (label, entry) pairs of Li_x H at any x and in any supercell;
    ``ion_reference``: the elemental working ion from the same calculator and settings;
    ``framework``: the formula unit H that x counts against (see ``framework_unit``;
    default: the reduced framework of the first entry).
    """
    if not labelled_entries:
        raise InsertflowError("no entries to build a voltage profile from")
    elemental = [label for label, e in labelled_entries if not framework_of(e.composition, working_ion).num_atoms]
    if elemental:
        raise InsertflowError(
            f"{', '.join(elemental)}: the elemental {working_ion} is the reference (ion_reference), "
            "not a host composition; leave it out of the entries"
        )
    if framework is None:
        framework = framework_of(labelled_entries[0][1].composition, working_ion).reduced_composition
    points = []
    for label, entry in labelled_entries:
        x, energy, atoms = per_formula_unit(entry, framework, working_ion)
        points.append(ProfilePoint(label=label, x=x, energy_per_fu=energy, atoms_per_fu=atoms))
    xs = sorted({round(p.x, 9) for p in points})
    if len(xs) < 2:
        raise InsertflowError(f"entries span a single composition (x={xs[0]:g}); a profile needs two or more")

    vertex_indices = lower_hull([(p.x, p.energy_per_fu) for p in points])
    hull = [points[i] for i in vertex_indices]
    for p in hull:
        p.on_hull = True
    hull_xy = [(p.x, p.energy_per_fu) for p in hull]
    low, high = hull[0], hull[-1]
    for p in points:
        t = (p.x - low.x) / (high.x - low.x)
        p.formation_energy = p.energy_per_fu - ((1 - t) * low.energy_per_fu + t * high.energy_per_fu)
        p.e_above_hull = max(0.0, p.energy_per_fu - hull_energy_at(hull_xy, p.x))

    e_ion = ion_reference.energy / ion_reference.composition.num_atoms
    charge = ion_charge(working_ion)
    discharged_mass = (framework + Composition({working_ion: high.x})).weight
    steps = []
    for a, b in pairwise(hull):
        dx = b.x - a.x
        voltage = -(b.energy_per_fu - a.energy_per_fu - dx * e_ion) / (dx * charge)
        capacity = dx * charge * FARADAY_MAH_PER_MOL / discharged_mass
        steps.append(VoltageStep(a.x, b.x, voltage, capacity, label_low=a.label, label_high=b.label))
    return VoltageProfile(
        framework=framework.reduced_formula,
        working_ion=working_ion,
        points=points,
        hull=hull,
        steps=steps,
        ion_energy_per_atom=e_ion,
        discharged_mass=float(discharged_mass),
    )
