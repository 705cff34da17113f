"""Defect energies across x and their classification from concentrations: pure functions.

Neutral defect energy at fixed x (same supercell, same calculator):

    E_d(x) = E(defect cell) - E(pristine cell at x) - sum_i dn_i mu_i

with dn_i the atoms of species i added (+) or removed (-). The working ion's chemical
potential follows the electrode's own hull, mu_ion(x) = E_ion(metal) - z e V(x), V(x) being
the pristine voltage step at x (the mean of the two steps when x is a hull vertex). Other
species come from the host's stability region (``insertflow.analysis.chemical_potentials``).

For the migration and exchange pairs the composition does not change:
dE(x) = E(moved) - E(pristine). Classification goes through concentrations
(``insertflow.analysis.concentrations``), never through the sign of one 0 K energy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from insertflow.analysis.concentrations import (
    DEFAULT_OPERATING_TEMPERATURE,
    DEFAULT_SYNTHESIS_TEMPERATURE,
    concentration,
    decades,
    exclusive_concentration,
    total_concentration,
)
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


#: A defect follows the state of charge when its operating-temperature concentration changes by at
#: least this many decades across x (and exceeds its quenched population somewhere).
COUPLED_DECADES = 2.0
#: Below this many defects per formula unit (one in a million) at both temperatures, a defect is negligible.
NEGLIGIBLE = 1e-6
CLASSES = ("coupled", "static", "negligible", "host unstable", "undetermined")


@dataclass(frozen=True)
class DefectPoint:
    """One site variant of a defect kind at one x."""

    x: float
    energy: float  # eV, at the study's chemical-potential limit (migration, exchange: the energy change)
    site: str
    multiplicity: float = 1.0  # equivalent configurations per formula unit


@dataclass
class DefectClass:
    """How one defect kind behaves across x, judged from its concentrations."""

    kind: str
    energies: dict[float, float]  # x -> lowest energy of this kind at x (eV)
    sites: dict[float, str]  # x -> the variant with the largest concentration at operating T
    concentrations: dict[float, float]  # x -> defects per formula unit at operating T (all variants)
    quenched: float | None  # per formula unit at the synthesis T and x (None: not computed there)
    classification: str  # one of CLASSES
    span_decades: float = 0.0  # log10 of the largest over the smallest operating-T concentration across x
    onset_x: float | None = None  # coupled: the highest x at which it is within COUPLED_DECADES of its maximum
    onset_site: str | None = None
    lowest_x_site: str | None = None
    favourable_x: list[float] = field(default_factory=list)  # x at which its lowest energy is below zero
    notes: list[str] = field(default_factory=list)


def classify(
    kind: str,
    points: list[DefectPoint],
    synthesis_x: float,
    synthesis_temperature: float = DEFAULT_SYNTHESIS_TEMPERATURE,
    operating_temperature: float = DEFAULT_OPERATING_TEMPERATURE,
    absent_at: tuple[float, ...] = (),
    hosts: float | None = None,
    reservoir_bound: bool = False,
    synthesis_points: list[DefectPoint] | None = None,
) -> DefectClass:
    """Coupled, static, negligible or host unstable, from the concentrations the energies imply.

    ``absent_at``: x at which the kind cannot exist (a TM cannot move into an empty site of a
    host that has none): its concentration there is zero. The quenched population is the
    concentration at ``synthesis_x`` (the as-made host) and ``synthesis_temperature``.
    ``hosts``: for moved-TM kinds, the TMs per formula unit whose states exclude each other
    (``exclusive_concentration``). ``reservoir_bound``: the defect exchanges atoms other than the
    working ion (TM, O, F) with a reservoir, which a cell at operating temperature cannot do: it
    stays at its quenched population and is never coupled. ``synthesis_points``: the energies at
    the synthesis conditions (O2 at the synthesis temperature and pressure), when they differ
    from the ``points`` at the synthesis x; they set the quenched population.

    - host unstable: the energy is below zero at every x at which the kind exists;
    - coupled: the operating-temperature concentration changes by ``COUPLED_DECADES`` or more
      across x, is not negligible and exceeds the quenched population: it follows the state of charge;
    - negligible: below ``NEGLIGIBLE`` per formula unit at both temperatures, at every x;
    - undetermined: no energy at the synthesis composition to fix its quenched population;
    - static: otherwise; its population is what synthesis left.

    For migration the concentration is zero in the full host, so any x below it at which it
    exceeds 1e-6 makes it coupled; ``onset_x`` is then the highest such x that is within
    ``COUPLED_DECADES`` of its largest concentration.
    """

    def at(variants: list[DefectPoint], temperature: float) -> float:
        pairs = [(p.energy, p.multiplicity) for p in variants]
        if hosts:
            return exclusive_concentration(pairs, hosts, temperature)
        return total_concentration(pairs, temperature)

    by_x: dict[float, list[DefectPoint]] = defaultdict(list)
    for point in points:
        by_x[point.x].append(point)
    xs = sorted(by_x)
    energies = {x: min(p.energy for p in by_x[x]) for x in xs}
    concentrations = {x: at(by_x[x], operating_temperature) for x in xs}
    sites = {
        x: max(by_x[x], key=lambda p: concentration(p.energy, p.multiplicity, operating_temperature)).site for x in xs
    }
    if synthesis_points:
        quenched = at(synthesis_points, synthesis_temperature)
    elif synthesis_x in by_x:
        quenched = at(by_x[synthesis_x], synthesis_temperature)
    else:
        quenched = 0.0 if synthesis_x in absent_at else None
    everywhere = {**concentrations, **{x: 0.0 for x in absent_at if x not in concentrations}}
    result = DefectClass(
        kind=kind,
        energies=energies,
        sites=sites,
        concentrations=concentrations,
        quenched=quenched,
        classification="static",
        lowest_x_site=sites[xs[0]] if xs else None,
        favourable_x=[x for x in xs if energies[x] < 0],
    )
    if not xs:
        return result
    highest = max(everywhere.values())
    result.span_decades = decades(highest, min(everywhere.values()))
    if all(energies[x] < 0 for x in xs) and not absent_at:
        result.classification = "host unstable"
        result.notes.append(
            f"below zero at every computed x (highest {max(energies.values()):+.3f} eV): the host is unstable to it"
        )
        if len(xs) == 1:
            result.notes.append(f"computed at x = {xs[0]:.3f} only")
    elif quenched is None:
        result.classification = "undetermined"
        result.notes.append(f"no energy at the synthesis composition x = {synthesis_x:.3f}: no quenched population")
    elif result.span_decades >= COUPLED_DECADES and highest >= NEGLIGIBLE and highest > quenched:
        if reservoir_bound:
            result.notes.append(
                "its equilibrium population would follow x, but it exchanges atoms other than the working ion "
                "with a reservoir, which a cycling cell does not: it stays at its quenched population"
            )
        else:
            result.classification = "coupled"
            near_top = [x for x in xs if decades(highest, concentrations[x]) < COUPLED_DECADES]
            result.onset_x = max(near_top)
            result.onset_site = sites[result.onset_x]
    if result.classification == "static" and highest < NEGLIGIBLE and quenched < NEGLIGIBLE:
        result.classification = "negligible"
    unfavourable = [x for x in xs if x not in result.favourable_x]
    if unfavourable and any(x > min(unfavourable) for x in result.favourable_x):
        result.notes.append("not monotonic in x: favourable at " + ", ".join(f"{x:.3f}" for x in result.favourable_x))
    return result


def group_points(rows: list[dict]) -> dict[str, list[DefectPoint]]:
    """Points per defect kind from rows with kind/x/energy/site(/multiplicity) keys; rows without energy skipped."""
    grouped: dict[str, list[DefectPoint]] = defaultdict(list)
    for row in rows:
        if row.get("energy") is not None:
            grouped[row["kind"]].append(DefectPoint(row["x"], row["energy"], row["site"], row.get("multiplicity", 1.0)))
    return dict(grouped)
