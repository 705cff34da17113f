"""Detect layers drifting apart during a relaxation (the CoO2 exfoliation failure)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Lattice, Structure

#: Low-index planes checked; (111) of a rhombohedral primitive cell is the hexagonal basal plane.
PLANES = [hkl for hkl in itertools.product((-1, 0, 1), repeat=3) if any(hkl) and next(v for v in hkl if v) > 0]


@dataclass
class GapChange:
    """Widest empty slab between atomic planes (hkl), before and after (A)."""

    hkl: tuple[int, int, int]
    before: float
    after: float
    normal: list[float]

    @property
    def growth(self) -> float:
        """How much wider the widest empty slab became (A)."""
        return self.after - self.before


def widest_gaps(structure: Structure) -> dict[tuple[int, int, int], float]:
    """For each low-index plane family, the widest atom-free slab between planes (A)."""
    gaps = {}
    reciprocal = structure.lattice.reciprocal_lattice_crystallographic.matrix
    for hkl in PLANES:
        g = np.asarray(hkl, dtype=float) @ reciprocal
        spacing = 1.0 / np.linalg.norm(g)
        heights = np.sort((structure.frac_coords @ np.asarray(hkl, dtype=float)) % 1.0)
        cyclic = np.diff(np.append(heights, heights[0] + 1.0))
        gaps[hkl] = float(cyclic.max() * spacing)
    return gaps


def largest_gap_growth(initial: Structure, final: Structure) -> GapChange:
    """The plane family whose widest empty slab grew most from ``initial`` to ``final``.

    Both structures must list the same lattice vectors (a relaxation keeps them).
    """
    before, after = widest_gaps(initial), widest_gaps(final)
    hkl = max(PLANES, key=lambda p: after[p] - before[p])
    normal = np.asarray(hkl, dtype=float) @ initial.lattice.reciprocal_lattice_crystallographic.matrix
    return GapChange(hkl=hkl, before=before[hkl], after=after[hkl], normal=(normal / np.linalg.norm(normal)).tolist())


def rotate_normal_to_z(structure: Structure, normal: list[float]) -> Structure:
    """The same crystal, rotated so the Cartesian vector ``normal`` points along +z."""
    n = np.asarray(normal, dtype=float)
    n /= np.linalg.norm(n)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(n, z)
    s, c = np.linalg.norm(v), float(np.dot(n, z))
    if s < 1e-12:
        rotation = np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    else:
        vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        rotation = np.eye(3) + vx + vx @ vx * ((1 - c) / s**2)
    lattice = Lattice(structure.lattice.matrix @ rotation.T)
    return Structure(lattice, structure.species, structure.frac_coords, site_properties=structure.site_properties)
