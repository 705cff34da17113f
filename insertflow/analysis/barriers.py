"""Migration barriers from NEB energy paths; rates, a kinetic limit and a diffusivity (pure).

A hop is thermally activated with rate Gamma = nu exp(-E_a / kT) (harmonic transition-state
theory, one attempt frequency nu for every hop, ~1e13 Hz for Li in oxides). A hop happens on a
time scale tau (e.g. one hour of cycling) when Gamma tau >= 1, i.e. below the kinetic limit

    E_max = kT ln(nu tau)        (0.99 eV at 300 K, 1e13 Hz, 1 h).

A random walk of hops of length a on a d-dimensional network gives D = Gamma a^2 / (2 d) with
Gamma the rate of one hop direction times the z equivalent directions: D = z nu a^2 exp(-E_a/kT)
/ (2 d). Correlation factors and vacancy concentrations are left out (the dilute-vacancy
estimate); so D is an order of magnitude, not a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from insertflow.analysis.concentrations import BOLTZMANN

DEFAULT_ATTEMPT_FREQUENCY = 1e13  # Hz
DEFAULT_TIME_SCALE = 3600.0  # s: one hour of cycling
#: cm^2 per A^2.
CM2_PER_A2 = 1e-16


@dataclass(frozen=True)
class PathBarrier:
    """What an energy path says: barriers both ways (eV) and where the saddle is."""

    forward: float  # the largest climb met going start -> end: max_j [E_j - min_{i<=j} E_i]
    reverse: float  # the same going end -> start
    reaction_energy: float  # E(end) - E(start)
    saddle_index: int  # the highest image
    saddle_is_interior: bool  # False: the highest image is an endpoint (no barrier beyond the endpoints)
    trapped: bool = False  # an interior minimum lies below both endpoints: the path has another product


def _largest_climb(values: np.ndarray) -> float:
    """max_j (E_j - min_{i<=j} E_i): with a minimum along the way, the climb out of it counts, not E_top - E_0."""
    return float(np.max(values - np.minimum.accumulate(values)))


def path_barrier(energies: Sequence[float]) -> PathBarrier:
    """Barriers of a path of image energies (eV, endpoints included).

    A path with an intermediate minimum (a TM resting in the tetrahedral site on its way) is
    limited by the climb out of that minimum: 0, 0.4, -0.3, 0.5, -0.5 is a 0.8 eV barrier, not 0.5.
    """
    values = np.asarray(energies, dtype=float)
    if values.size < 3:
        raise ValueError(f"a path needs at least one image between its endpoints (got {values.size} energies)")
    if not np.all(np.isfinite(values)):
        raise ValueError("a path energy is not finite")
    top = int(np.argmax(values))
    return PathBarrier(
        forward=_largest_climb(values),
        reverse=_largest_climb(values[::-1]),
        reaction_energy=float(values[-1] - values[0]),
        saddle_index=top,
        saddle_is_interior=0 < top < values.size - 1,
        trapped=bool(values[1:-1].min() < min(values[0], values[-1]) - 1e-3),
    )


def hop_rate(barrier: float, temperature: float, attempt_frequency: float = DEFAULT_ATTEMPT_FREQUENCY) -> float:
    """Gamma = nu exp(-E_a / kT), per second."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (got {temperature} K)")
    return attempt_frequency * math.exp(-barrier / (BOLTZMANN * temperature))


def kinetic_limit(
    temperature: float,
    attempt_frequency: float = DEFAULT_ATTEMPT_FREQUENCY,
    time_scale: float = DEFAULT_TIME_SCALE,
) -> float:
    """The highest barrier crossed at least once in ``time_scale`` s: kT ln(nu tau), eV."""
    if temperature <= 0 or attempt_frequency <= 0 or time_scale <= 0:
        raise ValueError("temperature, attempt frequency and time scale must be positive")
    return BOLTZMANN * temperature * math.log(attempt_frequency * time_scale)


def diffusivity(
    barrier: float,
    hop_length: float,
    temperature: float,
    dimensionality: int,
    equivalent_hops: int = 1,
    attempt_frequency: float = DEFAULT_ATTEMPT_FREQUENCY,
) -> float:
    """Dilute random-walk D = z nu a^2 exp(-E_a/kT) / (2 d), cm^2/s (``hop_length`` a in A)."""
    if dimensionality not in (1, 2, 3):
        raise ValueError(f"dimensionality must be 1, 2 or 3 (got {dimensionality})")
    rate = hop_rate(barrier, temperature, attempt_frequency)
    return equivalent_hops * rate * (hop_length**2) * CM2_PER_A2 / (2 * dimensionality)


def endpoint_mismatch(start: Structure, end: Structure) -> list[str]:
    """Why two endpoints cannot be the ends of one path: different cells, atom counts or species order.

    An NEB moves atom i of the start to atom i of the end; each entry names a site that breaks that.
    """
    problems = []
    if len(start) != len(end):
        problems.append(f"{len(start)} atoms at the start, {len(end)} at the end")
        return problems
    if not np.allclose(start.lattice.matrix, end.lattice.matrix, atol=1e-3):
        problems.append("the two cells differ (an NEB needs both endpoints in one cell)")
    for index, (a, b) in enumerate(zip(start, end, strict=True)):
        if a.species_string != b.species_string:
            problems.append(f"site {index} is {a.species_string} at the start and {b.species_string} at the end")
    return problems


def moving_atoms(start: Structure, end: Structure, threshold: float = 0.5) -> list[tuple[int, float]]:
    """(index, minimum-image distance in A) of the atoms that move more than ``threshold`` between endpoints."""
    moved = []
    for index, (a, b) in enumerate(zip(start, end, strict=True)):
        distance = float(a.distance(b))
        if distance > threshold:
            moved.append((index, distance))
    return moved


@dataclass(frozen=True)
class MigrationGate:
    """Whether a TM migration can happen on charge: downhill and fast enough, at which x."""

    onset_x: float | None  # the highest x where it is both; None: at no computed x
    reason: str  # what decided it, in words
    returns_at: float | None = None  # on discharge, the lowest x above onset where going back is downhill and fast
    determined: bool = True  # False: a downhill migration's barrier is unresolved and no other opens the gate


def migration_gate(points: Sequence[tuple[float, float, float | None, float | None]], limit: float) -> MigrationGate:
    """Gate TM migration by thermodynamics and kinetics.

    ``points``: (x, dE_mig, forward barrier, reverse barrier) per x, eV; a barrier is None when its
    NEB is unresolved. On charge (x falling) the TM moves at the highest x where dE_mig < 0 and the
    forward barrier is below ``limit``; an unresolved barrier cannot open the gate. On discharge it
    comes back at the first higher x where dE_mig > 0 and the reverse barrier is below the limit.
    """
    ordered = sorted(points, key=lambda p: -p[0])
    open_at = [p for p in ordered if p[1] < 0 and p[2] is not None and p[2] <= limit]
    if not open_at:
        downhill = [p for p in ordered if p[1] < 0]
        if not downhill:
            return MigrationGate(None, "migration is uphill at every computed x")
        unresolved = [x for x, _, fwd, _ in downhill if fwd is None]
        if unresolved:  # no barrier, no verdict: an unresolved NEB must not read as "too slow"
            where = ", ".join(f"x={x:.3f}" for x in unresolved)
            return MigrationGate(None, f"downhill, but its barrier is unresolved at {where}", determined=False)
        slowest = ", ".join(f"x={x:.3f}: {fwd:.2f} eV" for x, _, fwd, _ in downhill)
        return MigrationGate(None, f"downhill but above the {limit:.2f} eV kinetic limit ({slowest})")
    onset = open_at[0]
    back = [
        p[0]
        for p in sorted(points, key=lambda p: p[0])
        if p[0] > onset[0] and p[1] > 0 and p[3] is not None and p[3] <= limit
    ]
    return MigrationGate(
        onset[0],
        f"downhill ({onset[1]:+.2f} eV) with a {onset[2]:.2f} eV barrier at x={onset[0]:.3f}, "
        f"below the {limit:.2f} eV kinetic limit",
        back[0] if back else None,
    )
