"""What a relaxed cell became: site maps, moved-TM outcomes and polyhedral sharing (pure functions).

A relaxation keeps the order of atoms, so atom i of the relaxed cell is atom i of the input.
Each atom is assigned to the nearest *parent site*: the cation sites of the defect-free
supercell (occupied or empty in this ordering) plus the positions the input put atoms on
(a migrated TM's destination, a tetrahedral site). Positions are compared in fractional
coordinates of the input lattice, so a cell that strained during relaxation still maps.

An atom whose nearest parent site is not the one it started on has changed site: for a
pristine ordering, its Li/vacancy (or TM) map changed and its energy is not the energy of
that ordering; for a migrated TM the outcome is "stayed", "returned" (back to the site it
left) or "elsewhere". Coordination comes from pymatgen's ``CrystalNN``, not from fixed,
oxide-specific distances, so sulfides and fluorides work too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

#: Anion species for polyhedral analysis (the most electronegative species of a host are its anions).
ANIONS = frozenset({"O", "F", "S", "Se", "Te", "Cl", "Br", "N"})
#: A cation-anion pair is bonded when closer than this multiple of the host's shortest cation-anion bond.
BOND_TOLERANCE = 1.25


@dataclass(frozen=True)
class SiteChange:
    """One atom whose nearest parent site after relaxation is not the one it started on."""

    index: int
    species: str
    moved: float  # A from its input position (input lattice)
    now_at: str  # label of the parent site it is nearest to


@dataclass(frozen=True)
class MovedTMOutcome:
    """Where a migrated (or exchanged) TM ended after relaxation."""

    outcome: str  # "stayed", "returned" or "elsewhere"
    coordination: int | None  # CrystalNN coordination number of the TM in the relaxed cell
    polyhedron: str  # "octahedral", "tetrahedral" or "CN=<n>"
    from_destination: float  # A from the site it was put on
    from_origin: float  # A from the site it left

    @property
    def migrated(self) -> bool:
        """Only a TM that stayed where it was put counts as migrated."""
        return self.outcome == "stayed"

    def describe(self) -> str:
        """One phrase, e.g. 'stayed (octahedral, 0.21 A from its destination)'."""
        if self.outcome == "returned":
            return f"returned to the site it left ({self.from_origin:.2f} A from it)"
        where = f"{self.from_destination:.2f} A from its destination"
        return f"{self.outcome} ({self.polyhedron}, {where})"


def minimum_image(delta) -> np.ndarray:
    """A fractional displacement wrapped to its shortest periodic image (each component in [-1/2, 1/2])."""
    delta = np.asarray(delta, dtype=float)
    return delta - np.round(delta)


def periodic_distances(structure: Structure, frac_points: np.ndarray, frac_sites: np.ndarray) -> np.ndarray:
    """Distances (A) on ``structure``'s lattice between each of ``frac_points`` and each of ``frac_sites``."""
    return structure.lattice.get_all_distances(np.atleast_2d(frac_points), np.atleast_2d(frac_sites))


def site_changes(
    start: Structure,
    relaxed: Structure,
    parent_sites: list[tuple[str, np.ndarray]],
    species: set[str] | None = None,
    margin: float = 0.1,
    own_radius: float = 0.5,
) -> list[SiteChange]:
    """Atoms of ``species`` (default: every non-anion) that ended nearer another parent site than their own.

    ``parent_sites``: (label, fractional coordinates on ``start``'s lattice) of every site an atom
    could sit on. An atom's own sites are its input position and the parent sites within
    ``own_radius`` A of it (a rattled input lies a few hundredths off its lattice site). It has
    changed site when some other parent site is closer than all of its own by more than
    ``margin`` A: a rattle or an ordinary relaxation (tenths of an Angstrom) never is, a hop to a
    neighbouring site (2-3 A) is.
    """
    if len(start) != len(relaxed):
        raise ValueError(f"the relaxed cell has {len(relaxed)} atoms, its input {len(start)}")
    if not parent_sites:
        return []
    labels = [label for label, _ in parent_sites]
    sites = np.array([frac for _, frac in parent_sites])
    final = relaxed.frac_coords  # read on the input lattice: a strained cell still maps
    to_input = periodic_distances(start, start.frac_coords, sites)
    changes = []
    for index, site in enumerate(start):
        symbol = site.specie.symbol
        if (species is not None and symbol not in species) or (species is None and symbol in ANIONS):
            continue
        own = to_input[index] < own_radius
        distances = periodic_distances(start, final[index], sites)[0]
        moved = float(periodic_distances(start, final[index], start.frac_coords[index])[0, 0])
        from_own = min(moved, float(distances[own].min()) if own.any() else np.inf)
        others = np.where(own, np.inf, distances)
        nearest = int(np.argmin(others))
        if others[nearest] < from_own - margin:
            changes.append(SiteChange(index, symbol, round(moved, 3), labels[nearest]))
    return changes


def classify_moved_tm(
    start: Structure,
    relaxed: Structure,
    index: int,
    origin_frac: np.ndarray,
    destination_frac: np.ndarray,
) -> MovedTMOutcome:
    """Where TM ``index`` ended: at its destination, back at ``origin_frac`` or elsewhere; and its coordination.

    Fractional coordinates are on ``start``'s lattice. The nearer of the two sites decides, unless
    the TM is more than half the origin-destination distance from both (then "elsewhere").
    """
    final = relaxed.frac_coords[index]  # on the input lattice
    to_destination = float(periodic_distances(start, final, destination_frac)[0, 0])
    to_origin = float(periodic_distances(start, final, origin_frac)[0, 0])
    hop = float(periodic_distances(start, origin_frac, destination_frac)[0, 0])
    if min(to_destination, to_origin) > hop / 2:
        outcome = "elsewhere"
    else:
        outcome = "stayed" if to_destination <= to_origin else "returned"
    coordination = coordination_number(relaxed, index)
    return MovedTMOutcome(
        outcome=outcome,
        coordination=coordination,
        polyhedron=polyhedron_name(coordination),
        from_destination=round(to_destination, 3),
        from_origin=round(to_origin, 3),
    )


def coordination_number(structure: Structure, index: int) -> int | None:
    """CrystalNN coordination number of site ``index`` (None when CrystalNN cannot decide)."""
    from pymatgen.analysis.local_env import CrystalNN

    try:
        return int(CrystalNN().get_cn(structure, index))
    except (ValueError, RuntimeError):
        return None


def polyhedron_name(coordination: int | None) -> str:
    """'octahedral' (6), 'tetrahedral' (4), else 'CN=<n>'."""
    return {6: "octahedral", 4: "tetrahedral"}.get(coordination, f"CN={coordination}")


def anion_indices(structure: Structure) -> list[int]:
    """Indices of the anions of ``structure`` (species in ``ANIONS``)."""
    return [i for i, site in enumerate(structure) if site.specie.symbol in ANIONS]


def bond_cutoff(structure: Structure) -> float:
    """``BOND_TOLERANCE`` times the shortest cation-anion distance of ``structure`` (A)."""
    anions = anion_indices(structure)
    cations = [i for i in range(len(structure)) if i not in set(anions)]
    if not anions or not cations:
        raise ValueError(f"{structure.composition.reduced_formula} has no cation-anion bonds")
    distances = structure.lattice.get_all_distances(structure.frac_coords[cations], structure.frac_coords[anions])
    return BOND_TOLERANCE * float(distances.min())


def bonded_anions(structure: Structure, frac_point: np.ndarray, cutoff: float) -> set[int]:
    """Anion indices within ``cutoff`` A of a point (fractional coordinates)."""
    anions = anion_indices(structure)
    distances = periodic_distances(structure, frac_point, structure.frac_coords[anions])[0]
    return {anions[k] for k in np.flatnonzero(distances < cutoff)}


def anion_positions(structure: Structure, cart_point: np.ndarray, cutoff: float) -> np.ndarray:
    """Cartesian positions of the anion images bonded to a point (image-aware: small cells count right)."""
    near = [n.coords for n in structure.get_sites_in_sphere(cart_point, cutoff) if n.specie.symbol in ANIONS]
    return np.array(near).reshape(-1, 3)


def face_sharing_cations(
    structure: Structure, frac_point: np.ndarray, cutoff: float, exclude: set[int] = frozenset()
) -> list[int]:
    """Cations (not in ``exclude``) whose polyhedra share a face (three or more anions) with the site at a point.

    Anions are compared as positions of periodic images, so a cation that reaches the same anion
    index through another image is not counted as sharing it.
    """
    centre = structure.lattice.get_cartesian_coords(frac_point)
    own = anion_positions(structure, centre, cutoff)
    if len(own) < 3:
        return []
    sharing = []
    for neighbour in structure.get_sites_in_sphere(centre, 2 * cutoff):
        if neighbour.specie.symbol in ANIONS or neighbour.index in exclude:
            continue
        if np.linalg.norm(neighbour.coords - centre) < 0.3:
            continue  # the point itself
        theirs = anion_positions(structure, neighbour.coords, cutoff)
        shared = sum(bool(len(theirs)) and np.linalg.norm(theirs - anion, axis=1).min() < 0.1 for anion in own)
        if shared >= 3:
            sharing.append(int(neighbour.index))
    return sorted(set(sharing))


def parent_sites(full: Structure, start: Structure, species: set[str]) -> list[tuple[str, np.ndarray]]:
    """The sites of ``species`` of the defect-free supercell ``full``, on ``start``'s lattice.

    Every structure of a study lives in one supercell with the same origin and orientation, so
    cartesian positions carry over; labels read e.g. 'Li site 7' (index in ``full``).
    """
    chosen = [i for i, site in enumerate(full) if site.specie.symbol in species]
    fractional = start.lattice.get_fractional_coords(full.cart_coords[chosen]) if chosen else []
    return [(f"{full[i].specie.symbol} site {i}", frac) for i, frac in zip(chosen, fractional, strict=True)]


def same_atom_order(start: Structure, relaxed: Structure) -> bool:
    """Whether ``relaxed`` lists the same species in the same order as ``start`` (needed to map it)."""
    return len(start) == len(relaxed) and all(
        a.specie.symbol == b.specie.symbol for a, b in zip(start, relaxed, strict=True)
    )


#: A (in the stored cell) beyond which an atom of a reused structure is not the same atom of the input.
ORDER_MATCH_DISTANCE = 1.0


def atom_order_like(stored: Structure, reference: Structure) -> list[int] | None:
    """Indices into ``stored`` that list its atoms in ``reference``'s order, or None when they do not map.

    Reuse finds a record by content key, which ignores atom order: two inputs with the same sites
    listed differently share a key. A reused relaxed structure is put back in the order of the
    input that asked for it by matching fractional coordinates, one to one per species (the
    Hungarian assignment), so a relaxed cell works; another choice of cell vectors does not map.
    """
    from scipy.optimize import linear_sum_assignment

    if len(stored) != len(reference) or stored.composition != reference.composition:
        return None
    order = np.empty(len(reference), dtype=int)
    for element in {site.specie.symbol for site in reference}:
        wanted = [i for i, site in enumerate(reference) if site.specie.symbol == element]
        have = [i for i, site in enumerate(stored) if site.specie.symbol == element]
        cost = stored.lattice.get_all_distances(reference.frac_coords[wanted], stored.frac_coords[have])
        rows, cols = linear_sum_assignment(cost)
        if cost[rows, cols].max() > ORDER_MATCH_DISTANCE:
            return None
        order[np.asarray(wanted)[rows]] = np.asarray(have)[cols]
    return order.tolist()


def describe_changes(changes: list[SiteChange], limit: int = 3) -> str:
    """'Li 5 -> Li site 17 (2.81 A), ...' for the first ``limit`` changes, and how many more."""
    text = ", ".join(f"{c.species} {c.index} -> {c.now_at} ({c.moved:.2f} A)" for c in changes[:limit])
    return text + (f" and {len(changes) - limit} more" if len(changes) > limit else "")
