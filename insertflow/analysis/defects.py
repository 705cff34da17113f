"""Defect energies across x and the static/coupled classification: pure functions.

Neutral defect energy at fixed x (same supercell, same calculator):

    E_d(x) = E(defect cell) - E(pristine cell at x) - sum_i dn_i mu_i

with dn_i the atoms of species i added (+) or removed (-). The working ion's chemical
potential follows the electrode's own hull, mu_ion(x) = E_ion(metal) - z e V(x), V(x) being
the pristine voltage step at x (the mean of the two steps when x is a hull vertex). Other
species use explicit recipe values or their computed elemental metals.

For the migration pair the composition does not change: dE_mig(x) = E(migrated) - E(pristine).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from insertflow.analysis.profile import VoltageProfile


def defect_energy(e_defect: float, e_pristine: float, change: dict[str, int], mu: dict[str, float]) -> float:
    """E(defect) - E(pristine) - sum dn_i mu_i, in eV."""
    missing = sorted(el for el, n in change.items() if n and el not in mu)
    if missing:
        raise KeyError(f"no chemical potential for {', '.join(missing)}")
    return e_defect - e_pristine - sum(n * mu[el] for el, n in change.items())


def ion_chemical_potential(profile: VoltageProfile, x: float) -> float:
    """mu_ion(x) = E_ion(metal) - z e V(x) on the pristine hull (eV per ion)."""
    from insertflow.analysis.voltage import ion_charge

    charge = ion_charge(profile.working_ion)
    voltages = [s.voltage for s in profile.steps if s.x_low - 1e-9 <= x <= s.x_high + 1e-9]
    if not voltages:
        raise ValueError(f"x={x:g} is outside the pristine hull {profile.x_range}")
    return profile.ion_energy_per_atom - charge * sum(voltages) / len(voltages)


@dataclass
class DefectClass:
    """How one defect type behaves across x."""

    kind: str
    energies: dict[float, float]  # x -> lowest energy of this kind at x (eV)
    sites: dict[float, str]  # x -> which site variant is lowest
    classification: str  # "static" or "coupled"
    onset_x: float | None = None  # coupled: the highest x at which the energy is below the threshold
    onset_site: str | None = None  # ... and the site variant that gets there
    lowest_x_site: str | None = None  # the lowest-energy variant at the lowest x
    notes: list[str] = field(default_factory=list)


def classify(kind: str, points: list[tuple[float, float, str]], threshold: float = 0.0) -> DefectClass:
    """Static or coupled from (x, energy, site) points of one defect type.

    The lowest energy per x counts. Coupled: the energy lies below ``threshold`` (eV) at
    some x and above it at another, i.e. whether the defect forms depends on the state of
    charge. For the migration pair with threshold 0 that is "migration becomes favourable
    below x = onset_x". A defect below the threshold at every x is always present: static.
    """
    best: dict[float, tuple[float, str]] = {}
    for x, energy, site in points:
        if x not in best or energy < best[x][0]:
            best[x] = (energy, site)
    xs = sorted(best)
    energies = {x: best[x][0] for x in xs}
    sites = {x: best[x][1] for x in xs}
    below = [x for x in xs if energies[x] < threshold]
    above = [x for x in xs if energies[x] >= threshold]
    result = DefectClass(
        kind=kind,
        energies=energies,
        sites=sites,
        classification="coupled" if below and above else "static",
        lowest_x_site=sites[xs[0]] if xs else None,
    )
    if below and above:
        result.onset_x = max(below)
        result.onset_site = sites[result.onset_x]
        if any(x > min(above) for x in below):
            result.notes.append("not monotonic in x: favourable at " + ", ".join(f"{x:.3f}" for x in below))
    return result


def group_points(rows: list[dict]) -> dict[str, list[tuple[float, float, str]]]:
    """(x, energy, site) points per defect kind from rows with kind/x/energy/site keys."""
    grouped: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for row in rows:
        if row.get("energy") is not None:
            grouped[row["kind"]].append((row["x"], row["energy"], row["site"]))
    return dict(grouped)
