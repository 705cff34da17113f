"""Working-ion hops: symmetry-distinct hops of the ion sublattice and their NEB endpoints in a supercell.

The distinct hops come from pymatgen-analysis-diffusion's ``MigrationGraph`` (every pair of
working-ion sites closer than a cut-off, grouped by symmetry). For each hop the supercell of the
host gets:

* ``vacancy``: one vacancy at the hop's end; the ion at its start moves into it (the
  oxygen-dumbbell hop of a layered oxide, the channel and cross-channel hops of an olivine,
  8a-16c-8a in a spinel, whose straight path runs through the empty 16c site);
* ``divacancy``: a second vacancy on a site next to both ends; the ion's path is started
  through the tetrahedral site that faces the three (the tetrahedral-site hop of a layered
  oxide, Van der Ven and Ceder 2000).

Atom order is the same in both endpoints (an NEB moves atom i to atom i). The start and end
are then relaxed with the cell held; the path between them is interpolated there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pymatgen.core import Structure

from insertflow.analysis.geometry import ANIONS, anion_positions, bond_cutoff
from insertflow.analysis.voltage import framework_unit, units_of
from insertflow.errors import InsertflowError

HOP_MODES = ("vacancy", "divacancy")
#: A (working-ion site, image) match tolerance in the supercell.
SITE_TOLERANCE = 0.2


@dataclass(frozen=True)
class Hop:
    """One symmetry-distinct hop of the working-ion sublattice of a host cell."""

    label: int  # rank by length: hop 0 is the shortest
    length: float  # A
    start: tuple[float, float, float]  # Cartesian, A, in the host cell
    vector: tuple[float, float, float]  # Cartesian, A: end - start
    equivalent: int  # hops of this kind leaving one site (z in D)
    dimensionality: int  # of the network these hops alone make: 1 (channels), 2 (layers) or 3

    @property
    def name(self) -> str:
        """``hop 0 (3.01 A, 1D)``."""
        return f"hop {self.label} ({self.length:.2f} A, {self.dimensionality}D)"


def distinct_hops(structure: Structure, ion: str, max_length: float) -> list[Hop]:
    """The symmetry-distinct hops between ``ion`` sites up to ``max_length`` A, shortest first."""
    from pymatgen.analysis.diffusion.neb.full_path_mapper import MigrationGraph

    if ion not in {el.symbol for el in structure.composition.elements}:
        raise InsertflowError(f"the host has no {ion} to hop")
    graph = MigrationGraph.with_distance(structure, ion, max_distance=max_length)
    hops = []
    for label, data in graph.unique_hops.items():
        hop = data["hop"]
        start, end = np.asarray(hop.isite.coords), np.asarray(hop.esite.coords)
        hops.append(
            Hop(
                label=int(label),
                length=float(hop.length),
                start=tuple(float(v) for v in start),
                vector=tuple(float(v) for v in end - start),
                equivalent=_hops_per_site(graph, int(label), int(data["iindex"])),
                dimensionality=_network_dimensionality(graph, int(label)),
            )
        )
    if not hops:
        raise InsertflowError(f"no two {ion} sites are within {max_length} A: no hops (raise barriers.max_hop_length)")
    ranked = sorted(hops, key=lambda h: (round(h.length, 3), h.label))
    return [replace(h, label=index) for index, h in enumerate(ranked)]  # hop 0 is the shortest


def _hops_per_site(graph, label: int, site: int) -> int:
    count = 0
    for u, v, data in graph.m_graph.graph.edges(data=True):
        if data["hop_label"] != label or site not in (u, v):
            continue
        count += 2 if u == v else 1  # a self-loop is the hop to the same site one cell on, both ways
    return count


def _network_dimensionality(graph, label: int) -> int:
    """Larsen's dimensionality of the network of one hop kind (pymatgen)."""
    from pymatgen.analysis.dimensionality import get_dimensionality_larsen
    from pymatgen.analysis.graphs import StructureGraph

    sites = graph.m_graph.structure
    network = StructureGraph.from_empty_graph(sites, name="hops")
    for u, v, data in graph.m_graph.graph.edges(data=True):
        if data["hop_label"] == label:
            network.add_edge(u, v, to_jimage=tuple(int(i) for i in data["to_jimage"]), warn_duplicates=False)
    return int(get_dimensionality_larsen(network))


@dataclass
class HopEndpoints:
    """The two endpoints of one hop in a supercell, and where its path is started."""

    start: Structure
    end: Structure
    moving: int  # index of the hopping ion (the same in both)
    vacancies: list[list[float]]  # fractional coordinates of the sites left empty at the start
    waypoint: list[float] | None  # Cartesian point the moving ion's initial path passes through
    x: float  # working ions per framework unit at the start (the host's x minus the vacancies)


def hop_endpoints(supercell: Structure, hop: Hop, host_cell: Structure, ion: str, mode: str) -> HopEndpoints:
    """Endpoints of ``hop`` (given in ``host_cell``) inside ``supercell`` of the same host."""
    if mode not in HOP_MODES:
        raise InsertflowError(f"unknown hop mode '{mode}'; use one of {', '.join(HOP_MODES)}")
    # the hop's start, carried into the supercell (same Cartesian frame: a supercell of the cell)
    origin = np.asarray(hop.start)
    vector = np.asarray(hop.vector)
    first = _ion_at(supercell, origin, ion)
    last = _ion_at(supercell, origin + vector, ion)
    if first is None or last is None:
        raise InsertflowError(f"{hop.name}: its sites are not {ion} sites of the supercell")
    if first == last:
        raise InsertflowError(
            f"{hop.name}: the supercell is too small along the hop (it ends on its own image); use a larger one"
        )
    empty = [last]
    waypoint = None
    if mode == "divacancy":
        third = _common_neighbour(supercell, first, last, hop.length, ion)
        if third is None:
            raise InsertflowError(f"{hop.name}: no {ion} site is next to both ends: no divacancy hop")
        empty.append(third)
        anchor = supercell[first].coords
        centre = _triangle_centre(supercell, first, anchor + vector, third)
        waypoint = _void_along_normal(supercell, centre, anchor, vector, exclude={first, *empty})
    vacancies = [supercell[i].frac_coords.tolist() for i in empty]
    start = supercell.copy()
    start.remove_sites(empty)
    moving = first - sum(1 for i in empty if i < first)
    end = start.copy()
    end.replace(moving, ion, coords=supercell[last].frac_coords)
    units = units_of(supercell.composition, framework_unit(host_cell.composition.reduced_formula, ion), ion)
    x = (sum(1 for site in start if site.specie.symbol == ion)) / units
    return HopEndpoints(start, end, moving, vacancies, None if waypoint is None else waypoint.tolist(), x)


def _ion_at(structure: Structure, point: np.ndarray, ion: str) -> int | None:
    frac = structure.lattice.get_fractional_coords(point)
    for index, site in enumerate(structure):
        if site.specie.symbol != ion:
            continue
        distance, _ = structure.lattice.get_distance_and_image(site.frac_coords, frac)
        if distance < SITE_TOLERANCE:
            return index
    return None


def _common_neighbour(structure: Structure, first: int, last: int, length: float, ion: str) -> int | None:
    """The lowest-index ``ion`` site within a hop length of both ends (one of the two in a layer)."""
    for index, site in enumerate(structure):
        if index in (first, last) or site.specie.symbol != ion:
            continue
        if (
            structure.get_distance(index, first) < length + SITE_TOLERANCE
            and structure.get_distance(index, last) < length + SITE_TOLERANCE
        ):
            return index
    return None


def _triangle_centre(structure: Structure, first: int, end_point: np.ndarray, third: int) -> np.ndarray:
    """Centroid of the start, the end and the third site, each taken at its image nearest the start."""
    anchor = structure[first].coords
    points = [anchor, end_point]
    _, image = structure.lattice.get_distance_and_image(structure[first].frac_coords, structure[third].frac_coords)
    points.append(structure.lattice.get_cartesian_coords(structure[third].frac_coords + image))
    return np.mean(points, axis=0)


def _void_along_normal(
    structure: Structure, centre: np.ndarray, origin: np.ndarray, vector: np.ndarray, exclude: set[int]
) -> np.ndarray:
    """The point within 1.5 A of ``centre``, along the triangle's normal, farthest from every other atom.

    Above the centre of three edge-sharing octahedra of a layer lies the tetrahedral site they
    face; the void's centre is where the nearest atom is farthest.
    """
    lattice = structure.lattice
    other = np.array([site.frac_coords for i, site in enumerate(structure) if i not in exclude])
    in_plane = np.cross(vector, centre - origin)
    normal = in_plane / np.linalg.norm(in_plane)
    best, best_clearance = centre, -1.0
    for t in np.linspace(-1.5, 1.5, 61):
        point = centre + t * normal
        clearance = float(lattice.get_all_distances(lattice.get_fractional_coords(point)[None, :], other).min())
        if clearance > best_clearance:
            best, best_clearance = point, clearance
    return best


def initial_path(start: Structure, end: Structure, images: int, moving: int, waypoint: list[float] | None) -> list:
    """``images`` structures between ``start`` and ``end`` (endpoints included in the list returned).

    Every atom moves on the straight minimum-image line; with a ``waypoint`` the hopping ion goes
    start -> waypoint over the first half of the images and waypoint -> end over the rest.
    """
    lattice = start.lattice
    delta = end.frac_coords - start.frac_coords
    delta -= np.round(delta)
    fractions = np.linspace(0.0, 1.0, images + 2)
    path = []
    for s in fractions:
        frac = start.frac_coords + s * delta
        if waypoint is not None:
            via = lattice.get_fractional_coords(np.asarray(waypoint))
            first_leg = via - start.frac_coords[moving]
            first_leg -= np.round(first_leg)
            via = start.frac_coords[moving] + first_leg
            second_leg = end.frac_coords[moving] - via
            second_leg -= np.round(second_leg)
            frac[moving] = via + (2 * s - 1) * second_leg if s > 0.5 else start.frac_coords[moving] + 2 * s * first_leg
        path.append(Structure(lattice, start.species, frac))
    return path


def tetrahedral_site_between(structure: Structure, moving: int, end_frac) -> list[float] | None:
    """The tetrahedral site two edge-sharing polyhedra both share a face with (Cartesian, A), or None.

    A TM leaving its octahedron for an empty one in the next layer (which shares an edge with it)
    passes through a tetrahedron made of that edge's two anions, one more of its own and one more
    of the target's (oct -> tet -> oct); the straight line runs through the edge instead. Anions are
    found by bond length (1.25 x the shortest cation-anion distance), so sulfides work alike. Of the
    two tetrahedra on either side of the edge, the one farther from every other cation is taken.
    Polyhedra that share a face (no tetrahedron between them) give None.
    """
    lattice = structure.lattice
    cutoff = bond_cutoff(structure)
    home = structure[moving].coords
    delta = np.asarray(end_frac) - structure[moving].frac_coords
    delta -= np.round(delta)
    target = home + lattice.get_cartesian_coords(delta)
    own, theirs = anion_positions(structure, home, cutoff), anion_positions(structure, target, cutoff)
    shared = [p for p in own if np.min(np.linalg.norm(theirs - p, axis=1)) < 1e-3]
    if len(shared) != 2:
        return None
    only_own = [p for p in own if np.min(np.linalg.norm(np.asarray(shared) - p, axis=1)) > 1e-3]
    only_theirs = [p for p in theirs if np.min(np.linalg.norm(np.asarray(shared) - p, axis=1)) > 1e-3]
    edge = float(np.linalg.norm(shared[0] - shared[1]))
    cations = np.array(
        [site.frac_coords for i, site in enumerate(structure) if i != moving and site.specie.symbol not in ANIONS]
    )
    best, best_clearance = None, -1.0
    for a in only_own:
        for b in only_theirs:
            corners = np.array([*shared, a, b])
            sides = [np.linalg.norm(corners[i] - corners[j]) for i in range(4) for j in range(i + 1, 4)]
            if max(sides) > 1.3 * edge:  # not a compact tetrahedron
                continue
            centre = corners.mean(axis=0)
            clearance = float(lattice.get_all_distances([lattice.get_fractional_coords(centre)], cations).min())
            if clearance > best_clearance:
                best, best_clearance = centre, clearance
    return None if best is None else best.tolist()
