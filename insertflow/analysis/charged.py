"""Charged defects: formation energy against the Fermi level, transition levels, Freysoldt correction (pure).

For charge state q of a defect in a supercell,

    E_f(q, E_F) = E(defect, q) + E_corr(q) - E(bulk) - sum_i n_i mu_i + q (E_VBM + E_F),

with n_i the atoms of species i added (+) or removed (-), E_F measured from the bulk VBM and
E_corr the finite-size correction. The lowest line at each E_F is the stable charge state; its
kinks are the thermodynamic transition levels. The envelope and the kinks come from
pymatgen-analysis-defects (``get_lower_envelope``, ``get_transitions``), the Freysoldt
correction from its ``get_freysoldt_correction`` fed with planar-averaged potentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice


@dataclass(frozen=True)
class ChargeState:
    """One relaxed charge state of a defect: its supercell energy and finite-size correction (eV)."""

    charge: int
    energy: float
    correction: float = 0.0


def formation_energy_lines(
    states: Sequence[ChargeState], bulk_energy: float, change: dict[str, int], mu: dict[str, float], vbm: float
) -> list[tuple[float, float]]:
    """(slope q, E_f at E_F = VBM) per charge state; ``mu`` absolute, eV/atom."""
    missing = sorted(el for el, n in change.items() if n and el not in mu)
    if missing:
        raise KeyError(f"no chemical potential for {', '.join(missing)}")
    reservoir = sum(n * mu[el] for el, n in change.items())
    return [(float(s.charge), s.energy + s.correction - bulk_energy - reservoir + s.charge * vbm) for s in states]


def formation_energy(lines: Sequence[tuple[float, float]], fermi_level: float) -> float:
    """E_f of the stable charge state at ``fermi_level`` (eV above the VBM)."""
    return min(intercept + slope * fermi_level for slope, intercept in lines)


def stable_charge(lines: Sequence[tuple[float, float]], fermi_level: float) -> int:
    """The charge state whose line is lowest at ``fermi_level``."""
    slope, _ = min(lines, key=lambda line: line[1] + line[0] * fermi_level)
    return int(slope)


def transition_levels(lines: Sequence[tuple[float, float]], band_gap: float) -> list[tuple[float, float]]:
    """Kinks of the lower envelope inside the gap, as (E_F, E_f); the band edges excluded."""
    from pymatgen.analysis.defects.thermo import get_lower_envelope, get_transitions

    points = get_transitions(get_lower_envelope(list(lines)), 0.0, band_gap)
    return [(float(e), float(f)) for e, f in points[1:-1]]


def planar_averages(potential: np.ndarray) -> dict[int, np.ndarray]:
    """Planar averages of a 3-D grid along each lattice axis (the input Freysoldt's method needs)."""
    grid = np.asarray(potential, dtype=float)
    if grid.ndim != 3:
        raise ValueError(f"a potential on a 3-D grid is needed (got shape {grid.shape})")
    return {axis: grid.mean(axis=tuple(a for a in range(3) if a != axis)) for axis in range(3)}


def freysoldt_correction(
    charge: int,
    dielectric: float | Sequence[float] | np.ndarray,
    defect_planar: dict[int, np.ndarray],
    bulk_planar: dict[int, np.ndarray],
    lattice: Lattice,
    defect_frac_coords: Sequence[float],
    energy_cutoff: float = 520.0,
) -> tuple[float, dict]:
    """Freysoldt-Neugebauer-Van de Walle correction (eV) and its parts (electrostatic, alignment).

    Calls pymatgen-analysis-defects' ``get_freysoldt_correction`` directly with planar averages:
    its ``DefectEntry.get_freysoldt_correction`` cannot take them (with dictionaries it reads an
    undefined bulk potential), so the lattice and the defect position are passed here.
    """
    from pymatgen.analysis.defects.corrections.freysoldt import get_freysoldt_correction

    if charge == 0:
        return 0.0, {}
    result = get_freysoldt_correction(
        q=charge,
        dielectric=dielectric,
        defect_locpot={k: np.asarray(v) for k, v in defect_planar.items()},
        bulk_locpot={k: np.asarray(v) for k, v in bulk_planar.items()},
        defect_frac_coords=np.asarray(defect_frac_coords, dtype=float),
        lattice=lattice,
        energy_cutoff=energy_cutoff,
    )
    meta = result.metadata
    parts = {
        "electrostatic": float(meta["electrostatic"]),  # the model charge's periodic minus isolated energy
        "alignment": float(meta["potential"]),  # -q Delta V, from the planar averages far from the defect
        "alignment_per_axis": {int(axis): float(v) for axis, v in meta["alignments"].items()},
    }
    return float(result.correction_energy), parts


def guess_charge_states(change: dict[str, int], oxidation_states: dict[str, float]) -> list[int]:
    """Charge states from 0 to the nominal ionic charge the defect adds, e.g. V_Co(3+) -> -3..0, F_O -> 0, +1.

    The nominal charge is sum_i n_i (oxidation state of i): removing Co3+ leaves -3, putting
    F- on an O2- site leaves +1. Every state between it and 0 is a candidate.
    """
    missing = sorted(el for el, n in change.items() if n and el not in oxidation_states)
    if missing:
        raise KeyError(f"no oxidation state for {', '.join(missing)}")
    nominal = round(sum(n * oxidation_states[el] for el, n in change.items()))
    low, high = sorted((0, nominal))
    return list(range(low, high + 1))


def on_grid(planar: dict[int, np.ndarray], like: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """``planar`` resampled (periodic, linear in the fractional coordinate) onto ``like``'s grid sizes.

    Two relaxed cells of one supercell can get grids one point apart; the planar averages are
    compared point by point, so they must share a grid.
    """
    resampled = {}
    for axis, raw in planar.items():
        values = np.asarray(raw, dtype=float)
        n_out = len(like[axis])
        if len(values) == n_out:
            resampled[axis] = values
            continue
        source = np.arange(len(values) + 1) / len(values)
        target = np.arange(n_out) / n_out
        resampled[axis] = np.interp(target, source, np.append(values, values[0]))
    return resampled


def charged_summary(
    states: Sequence[ChargeState],
    bulk_energy: float,
    change: dict[str, int],
    mu_by_limit: dict[str, dict[str, float]],
    vbm: float,
    band_gap: float,
) -> dict[str, dict]:
    """Per limit: the lines (q, E_f at the VBM), the transition levels in the gap, E_f at both band edges."""
    summary = {}
    for name, mu in mu_by_limit.items():
        lines = formation_energy_lines(states, bulk_energy, change, mu, vbm)
        summary[name] = {
            "lines": [[int(q), round(b, 6)] for q, b in lines],
            "transition_levels": [[round(e, 4), round(f, 4)] for e, f in transition_levels(lines, band_gap)],
            "at_vbm": {"charge": stable_charge(lines, 0.0), "energy": round(formation_energy(lines, 0.0), 6)},
            "at_cbm": {
                "charge": stable_charge(lines, band_gap),
                "energy": round(formation_energy(lines, band_gap), 6),
            },
        }
    return summary
