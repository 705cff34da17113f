"""Where a defect sits in its supercell, and its E_F shift aligned on the electrostatic potential.

A defect cell and its pristine cell each put their eigenvalues on their own absolute scale
(periodic codes set the cell-average potential to zero), so E_F(defect) - E_F(pristine) mixes
the shift of the Fermi level with the shift of the potential that the defect's own charge
density causes. The potential at sites far from the defect is the same crystal as the
pristine one, so its difference there, Delta V, is the offset between the two scales (the
alignment term of Freysoldt and of Kumagai-Oba corrections). The aligned shift is

    Delta E_F = [E_F(defect) - E_F(pristine)] - Delta V.

Potentials are the electron's potential energy at each atom (GPAW's atomic electrostatic
potentials, VASP's "average (electrostatic) potential at core"): eigenvalues move with them.
Pure functions: structures and numbers in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

#: A site that moved less than this (A) on relaxing is the same site in both cells.
MATCH_TOLERANCE = 1.0
#: With fewer far sites than this the alignment is taken from the farthest quarter of the cell.
MIN_FAR_SITES = 3


@dataclass
class DefectSite:
    """What differs between a defect cell and its pristine cell, and where."""

    centre: np.ndarray  # fractional coordinates in the defect cell
    removed: list[int]  # pristine sites with no counterpart (vacancies, a migrated atom's origin)
    added: list[int]  # defect sites with no pristine counterpart (interstitials, its destination)
    substituted: list[int]  # defect sites whose species differs from their pristine counterpart
    matches: dict[int, int]  # defect site -> pristine site, for sites of the same species


@dataclass
class PotentialAlignment:
    """Delta V = V(defect) - V(pristine) at sites far from the defect (eV)."""

    delta_v: float
    spread: float  # standard deviation over the sites used: large when the cell is too small
    n_sites: int
    radius: float  # A; sites at least this far from the defect were used

    def as_dict(self) -> dict:
        """Rounded, for documents."""
        return {
            "delta_v": round(self.delta_v, 4),
            "spread": round(self.spread, 4),
            "n_sites": self.n_sites,
            "radius": round(self.radius, 3),
        }


def locate_defect(defect: Structure, pristine: Structure, tolerance: float = MATCH_TOLERANCE) -> DefectSite:
    """Match the sites of a relaxed defect cell to its relaxed pristine cell (same supercell).

    Positions are compared in fractional coordinates on the pristine lattice, so a cell that
    relaxed differently does not unmatch every site. The centre is the mean of the removed,
    added and substituted positions, each taken at its image nearest the first one.
    """
    if len(defect) == 0 or len(pristine) == 0:
        raise ValueError("an empty structure has no defect to locate")
    distances = pristine.lattice.get_all_distances(pristine.frac_coords, defect.frac_coords)  # (pristine, defect)
    nearest_defect = distances.argmin(axis=1)
    nearest_pristine = distances.argmin(axis=0)
    matched: dict[int, int] = {}
    for d, p in enumerate(nearest_pristine):
        if distances[p, d] <= tolerance and nearest_defect[p] == d:
            matched[d] = int(p)
    removed = sorted(set(range(len(pristine))) - set(matched.values()))
    added = sorted(set(range(len(defect))) - set(matched))
    substituted = sorted(d for d, p in matched.items() if defect[d].species != pristine[p].species)
    same = {d: p for d, p in matched.items() if d not in substituted}
    points = [pristine.frac_coords[p] for p in removed] + [defect.frac_coords[d] for d in added + substituted]
    if not points:
        raise ValueError("the defect cell has the same sites as the pristine cell: nothing to align on")
    first = np.asarray(points[0])
    unwrapped = [first + (np.asarray(f) - first - np.round(np.asarray(f) - first)) for f in points]
    return DefectSite(np.mean(unwrapped, axis=0) % 1.0, removed, added, substituted, same)


def potential_alignment(
    defect: Structure,
    defect_potentials: list[float],
    pristine: Structure,
    pristine_potentials: list[float],
    radius: float | None = None,
    site: DefectSite | None = None,
) -> PotentialAlignment:
    """Delta V over same-species sites at least ``radius`` from the defect.

    ``radius`` defaults to half the shortest lattice translation of the defect cell (the
    sphere inscribed in its Wigner-Seitz cell, as Kumagai and Oba sample); when fewer than
    ``MIN_FAR_SITES`` sites lie beyond it, the farthest quarter of the matched sites is used.
    ``site`` is ``locate_defect(defect, pristine)`` when the caller has it already.
    """
    if len(defect_potentials) != len(defect) or len(pristine_potentials) != len(pristine):
        raise ValueError("one site potential per site is needed in both cells")
    site = site or locate_defect(defect, pristine)
    if radius is None:
        radius = 0.5 * float(min(defect.lattice.get_lll_reduced_lattice().abc))
    indices = np.array(sorted(site.matches))
    if len(indices) == 0:
        raise ValueError("no site of the defect cell matches the pristine cell: nothing to align on")
    distance = defect.lattice.get_all_distances(site.centre, defect.frac_coords[indices])[0]
    far = distance >= radius
    if far.sum() < MIN_FAR_SITES:
        cut = np.quantile(distance, 0.75)
        far = distance >= cut
        radius = float(cut)
    used = indices[far]
    differences = np.array([defect_potentials[d] - pristine_potentials[site.matches[d]] for d in used])
    return PotentialAlignment(float(differences.mean()), float(differences.std()), len(used), float(radius))


def aligned_fermi_shift(defect_efermi: float, pristine_efermi: float, alignment: PotentialAlignment) -> float:
    """E_F(defect) - E_F(pristine) on one potential scale (eV): positive when the defect raises E_F."""
    return float(defect_efermi - pristine_efermi - alignment.delta_v)


def moment_changes(
    defect: Structure,
    defect_moments: list[float],
    pristine: Structure,
    pristine_moments: list[float],
    elements: list[str],
    threshold: float = 0.25,
    site: DefectSite | None = None,
) -> list[dict]:
    """Sites of ``elements`` whose moment changed by more than ``threshold`` muB, nearest the defect first.

    This is how a donor's electron (F_O) or an acceptor's hole (V_TM) is found on a TM: the
    reduced or oxidised ion changes its number of unpaired d electrons. The threshold is low
    enough for an electron shared by the three Co next to F in a small LiCoO2 cell (GPAW
    PBE+U, 16 atoms: 0.39 muB each) and well above the 0.00-0.05 muB of low-spin Co3+.
    ``site`` is ``locate_defect(defect, pristine)`` when the caller has it already.
    """
    site = site or locate_defect(defect, pristine)
    rows = []
    for d, p in site.matches.items():
        symbol = defect[d].specie.symbol
        change = defect_moments[d] - pristine_moments[p]
        if symbol in elements and abs(abs(defect_moments[d]) - abs(pristine_moments[p])) > threshold:
            distance = float(defect.lattice.get_all_distances(site.centre, defect.frac_coords[d])[0, 0])
            rows.append(
                {
                    "element": symbol,
                    "site": int(d),
                    "pristine": round(float(pristine_moments[p]), 3),
                    "defect": round(float(defect_moments[d]), 3),
                    "change": round(float(change), 3),
                    "distance": round(distance, 3),
                }
            )
    return sorted(rows, key=lambda row: row["distance"])
