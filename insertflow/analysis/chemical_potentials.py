"""Chemical potentials from the host's stability region against its competing phases: pure functions.

At a state of charge x the working ion's chemical potential is set by the electrode,
mu_ion(x) = E(ion metal) - z e V(x). The host Li_x M O_y at its hull energy fixes one more
combination, sum_i n_i mu_i = E(host); every competing phase P (elements, binary and ternary
oxides, fluorides, ...) must not be favoured, sum_i n_i(P) mu_i <= E(P). The remaining freedom
is a polytope; its vertices are the limits a defect physicist quotes ("O-rich / Co-poor").
pymatgen's ``PhaseDiagram.getmu_vertices_stability_phase`` solves the same problem when the
host is on the hull of the entries and no chemical potential is held fixed by an electrode; here
mu_ion is fixed and delithiated hosts are often metastable (CoO2 against Co3O4 + O2), so the
region is found by linear programming over the same half-spaces. A metastable host has no
region: it is reported as above its competing phases by the smallest energy that would make it
stable; its chemical potentials keep the host's own energy exact and violate the competing
phases by the least energy per atom (the least-unstable chemical potentials).

Energies must all be on one scale (see ``energy_scale``) and from one calculator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Composition
from scipy.optimize import linprog

#: eV per host formula unit: a host closer than this to its competing phases counts as stable.
STABLE_TOLERANCE = 1e-6


@dataclass
class Limit:
    """One vertex of the stability region: absolute chemical potentials (eV/atom)."""

    name: str  # e.g. "O-rich / Co-poor"
    mu: dict[str, float]
    bounded_by: list[str]  # competing phases in equilibrium with the host at this limit


@dataclass
class StabilityRegion:
    """The host's chemical-potential region at one state of charge."""

    host: str
    fixed: dict[str, float]  # eV/atom, held by the electrode (mu_ion) or by the recipe
    limits: list[Limit]
    above_competing: float = 0.0  # eV per host formula unit; > 0: the host has no region of its own
    competing: list[str] = field(default_factory=list)  # every phase considered
    notes: list[str] = field(default_factory=list)

    @property
    def stable(self) -> bool:
        """Whether the host has a region of its own (it is on the hull of its competing phases)."""
        return self.above_competing <= STABLE_TOLERANCE

    def limit(self, name: str) -> Limit:
        """The limit whose name contains ``name`` (e.g. "O-rich")."""
        for candidate in self.limits:
            if name in candidate.name.split(" / "):
                return candidate
        raise KeyError(f"no limit '{name}'; the region has {', '.join(lim.name for lim in self.limits)}")


@dataclass
class _HalfSpaces:
    """The host's equality and the competing phases' inequalities over the free chemical potentials."""

    free: list[str]
    labels: list[str]
    a_ub: np.ndarray  # one row per competing phase
    b_ub: np.ndarray
    atoms: np.ndarray  # atoms per phase formula, to weigh violations per atom
    a_eq: np.ndarray  # the host
    b_eq: float

    def solve(self, cost, a_ub, b_ub, a_eq, bounds):
        return linprog(cost, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[self.b_eq], bounds=bounds)

    def above_competing(self) -> tuple[float, list[str]]:
        """The energy (eV per host formula unit) the host must drop to have a region, and the phases then bound."""
        n = len(self.free)
        cost = np.r_[np.zeros(n), 1.0]
        a_ub = np.hstack([self.a_ub, np.zeros((len(self.labels), 1))])
        result = self.solve(cost, a_ub, self.b_ub, np.hstack([self.a_eq, [[1.0]]]), [(None, None)] * n + [(0, None)])
        if result.status != 0:
            raise ValueError(f"the stability region could not be solved: {result.message}")
        binding = np.flatnonzero(np.abs(self.b_ub - a_ub @ result.x) < 1e-5)
        return float(result.x[-1]), [self.labels[i] for i in binding]

    def least_unstable_bounds(self) -> np.ndarray:
        """Right-hand sides that keep the host's energy exact and violate the phases least per atom."""
        n = len(self.free)
        cost = np.r_[np.zeros(n), 1.0]
        a_ub = np.hstack([self.a_ub, -self.atoms[:, None]])
        result = self.solve(cost, a_ub, self.b_ub, np.hstack([self.a_eq, [[0.0]]]), [(None, None)] * n + [(0, None)])
        if result.status != 0:
            raise ValueError(f"the chemical potentials could not be solved: {result.message}")
        return self.b_ub + float(result.x[-1]) * self.atoms

    def vertices(self, b_ub: np.ndarray, fixed: dict[str, float], formula: str) -> list[Limit]:
        """Each free element at its highest and lowest mu; coinciding vertices share one limit."""
        n = len(self.free)
        found: dict[tuple, Limit] = {}
        for index, element in enumerate(self.free):
            for sign, word in ((-1.0, "rich"), (1.0, "poor")):
                cost = np.zeros(n)
                cost[index] = sign
                result = self.solve(cost, self.a_ub, b_ub + 1e-9, self.a_eq, [(None, None)] * n)
                if result.status != 0:
                    raise ValueError(
                        f"the stability region of {formula} is unbounded in {element}: add the phases that bound it"
                    )
                key = tuple(np.round(result.x, 4))
                if key in found:
                    found[key].name += f" / {element}-{word}"
                    continue
                binding = np.flatnonzero(np.abs(b_ub - self.a_ub @ result.x) < 1e-5)
                mu = {**fixed, **{el: round(float(v), 6) for el, v in zip(self.free, result.x, strict=True)}}
                found[key] = Limit(f"{element}-{word}", dict(sorted(mu.items())), [self.labels[i] for i in binding])
        limits = list(found.values())
        if len(limits) == 1:
            limits[0].name = "single point"  # a metastable host, or a region of zero width
        return limits


def stability_region(
    host: Composition,
    host_energy: float,
    competing: dict[str, tuple[Composition, float]],
    fixed: dict[str, float] | None = None,
) -> StabilityRegion:
    """The region of ``host`` (total energy ``host_energy`` eV for that composition) against ``competing``.

    ``competing`` maps a label to (composition, total energy in eV); it must include every
    element of the host that is not ``fixed`` (the elemental references bound each mu from
    above). Phases with elements outside the host's and the fixed ones are ignored: at x = 0
    a CoO2 host still competes with LiCoO2 and Li2O through the electrode's mu_Li.
    """
    fixed = dict(fixed or {})
    elements = sorted(el.symbol for el in host.elements)
    free = [el for el in elements if el not in fixed]
    missing = [el for el in free if not any(_is_element(comp, el) for comp, _ in competing.values())]
    if missing:
        raise ValueError(f"no elemental reference for {', '.join(missing)} among the competing phases")
    phases = {
        label: (comp, energy)
        for label, (comp, energy) in competing.items()
        if {el.symbol for el in comp.elements} <= set(elements) | set(fixed)
    }

    def row(comp: Composition) -> np.ndarray:
        return np.array([comp[el] for el in free], dtype=float)

    def fixed_part(comp: Composition) -> float:
        return sum(comp[el] * mu for el, mu in fixed.items())

    labels = list(phases)
    spaces = _HalfSpaces(
        free=free,
        labels=labels,
        a_ub=np.array([row(phases[label][0]) for label in labels]),
        b_ub=np.array([phases[label][1] - fixed_part(phases[label][0]) for label in labels]),
        atoms=np.array([phases[label][0].num_atoms for label in labels]),
        a_eq=row(host)[None, :],
        b_eq=host_energy - fixed_part(host),
    )
    above, binding = spaces.above_competing()
    stable = above <= STABLE_TOLERANCE
    bounds = spaces.b_ub if stable else spaces.least_unstable_bounds()
    region = StabilityRegion(
        host=host.reduced_formula,
        fixed=fixed,
        limits=spaces.vertices(bounds, fixed, host.reduced_formula),
        above_competing=0.0 if stable else above,
        competing=labels,
    )
    if not stable:
        region.notes.append(
            f"{host.reduced_formula} lies {above:.3f} eV per formula unit above "
            f"{' + '.join(binding) or 'its competing phases'} at these fixed chemical potentials: it has no "
            "stability region (metastable); its chemical potentials are the least-unstable ones"
        )
    return region


def _is_element(composition: Composition, element: str) -> bool:
    return len(composition.elements) == 1 and composition.elements[0].symbol == element


def impurity_potential(
    element: str, mu: dict[str, float], competing: dict[str, tuple[Composition, float]]
) -> tuple[float, str]:
    """The chemical potential of an element the host does not hold (F for F_O): its solubility limit.

    The highest mu the impurity can have without precipitating a phase P that holds it:
    min over P of (E(P) - sum_{i != element} n_i mu_i) / n_element. Returns (mu, P).
    """
    best: tuple[float, str] | None = None
    for label, (comp, energy) in competing.items():
        if comp[element] <= 0:
            continue
        others = {el.symbol for el in comp.elements} - {element}
        if not others <= set(mu):
            continue
        value = (energy - sum(comp[el] * mu[el] for el in others)) / comp[element]
        if best is None or value < best[0]:
            best = (float(value), label)
    if best is None:
        raise ValueError(f"no competing phase holds {element}: its chemical potential is unbounded")
    return best


def named_limit(region: StabilityRegion, name: str) -> Limit | None:
    """The limit called ``name``, or the single point of a region of zero width; None if it has neither."""
    if len(region.limits) == 1:
        return region.limits[0]
    try:
        return region.limit(name)
    except KeyError:
        return None


def with_impurities(
    mu: dict[str, float], elements: set[str], competing: dict[str, tuple[Composition, float]]
) -> tuple[dict[str, float], list[str]]:
    """``mu`` plus each of ``elements`` it lacks at its solubility limit; why any could not be bounded."""
    mu, unbounded = dict(mu), []
    for element in sorted(elements - set(mu)):
        try:
            mu[element], _ = impurity_potential(element, mu, competing)
        except ValueError as exc:
            unbounded.append(str(exc))
    return mu, unbounded


#: NIST-JANAF Shomate coefficients of O2 gas (A..G; kJ/mol, J/mol/K with t = T/1000), by range (K).
_O2_SHOMATE = (
    (100.0, 700.0, (31.32234, -20.23531, 57.86644, -36.50624, -0.007374, -8.903471, 246.7945)),
    (700.0, 2000.0, (30.03235, 8.772972, -3.988133, 0.788313, -0.741599, -11.32468, 236.1663)),
)
#: H(298.15 K) - H(0 K) of O2, kJ/mol (JANAF).
_O2_H298_MINUS_H0 = 8.683
_KJ_PER_MOL_PER_EV = 96.4853
BOLTZMANN_EV = 8.617333262e-5


def oxygen_shift(temperature: float, pressure: float = 1.0) -> float:
    """Delta mu_O(T, p) in eV per O atom: 1/2 [G(O2, T, p) - E(O2, 0 K)], ideal gas, p in atm.

    1/2 {[H(T) - H(0)] - T S(T)} from the Shomate fit to NIST-JANAF, plus 1/2 kT ln(p / 1 atm)
    (as Reuter and Scheffler, Phys. Rev. B 65, 035406 (2001), who tabulate -0.27 eV at 300 K and
    -1.10 eV at 1000 K, 1 atm). Zero-point energy is left in E(O2), as there.
    """
    if pressure <= 0:
        raise ValueError(f"the O2 pressure must be positive (got {pressure} atm)")
    for low, high, (a, b, c, d, e, f, g) in _O2_SHOMATE:
        if low <= temperature <= high:
            t = temperature / 1000.0
            enthalpy = a * t + b * t**2 / 2 + c * t**3 / 3 + d * t**4 / 4 - e / t + f  # H(T) - H(298.15 K)
            entropy = a * np.log(t) + b * t + c * t**2 / 2 + d * t**3 / 3 - e / (2 * t**2) + g
            gibbs = enthalpy + _O2_H298_MINUS_H0 - temperature * entropy / 1000.0  # kJ/mol of O2
            return float(gibbs / _KJ_PER_MOL_PER_EV / 2 + 0.5 * BOLTZMANN_EV * temperature * np.log(pressure))
    raise ValueError(f"the O2 tables cover 100-2000 K (got {temperature} K)")
