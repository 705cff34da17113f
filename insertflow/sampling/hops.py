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

from insertflow.analysis.geometry import ANIONS, anion_positions, bond_cutoff, minimum_image
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
    dimensionality: int  # of the network these hops alone make: 0 (isolated), 1 (channels), 2 (layers) or 3
    clearance: float = 0.0  # A: the closest any other atom comes to the straight segment
    direct: bool = True  # False: it passes another ion site, or squeezes past an atom (not a hop of its own)

    def in_cell(self, old: Structure, new: Structure) -> Hop:
        """The same hop carried into a strained copy of its cell (same fractional start and vector)."""
        start = new.lattice.get_cartesian_coords(old.lattice.get_fractional_coords(self.start))
        vector = new.lattice.get_cartesian_coords(old.lattice.get_fractional_coords(self.vector))
        return replace(
            self,
            start=tuple(float(v) for v in start),
            vector=tuple(float(v) for v in vector),
            length=float(np.linalg.norm(vector)),
        )

    @property
    def name(self) -> str:
        """``hop 0 (3.01 A, 1D)``."""
        return f"hop {self.label} ({self.length:.2f} A, {self.dimensionality}D)"


#: A hop is direct when nothing comes closer to its straight segment than this multiple of the host's
#: shortest ion-anion bond (LiCoO2: 1.36 A; its in-plane hop clears 1.55 A, the hop across the CoO2
#: slab 1.10 A) and no other ion site is nearer its middle than its two ends are.
DIRECT_CLEARANCE = 0.65


def distinct_hops(structure: Structure, ion: str, max_length: float, direct_only: bool = True) -> list[Hop]:
    """The symmetry-distinct hops between ``ion`` sites up to ``max_length`` A, shortest first.

    With ``direct_only`` the hops that pass through another ion site (two shorter hops in a row,
    e.g. sqrt(3) a in a layered oxide) or through the framework (across the CoO2 slab) are left out.
    """
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
                **_directness(structure, ion, start, end - start),
            )
        )
    if direct_only:
        hops = [h for h in hops if h.direct]
    if not hops:
        raise InsertflowError(f"no two {ion} sites are within {max_length} A: no hops (raise barriers.max_hop_length)")
    ranked = sorted(hops, key=lambda h: (round(h.length, 3), h.label))
    return [replace(h, label=index) for index, h in enumerate(ranked)]  # hop 0 is the shortest


def _directness(structure: Structure, ion: str, start: np.ndarray, vector: np.ndarray) -> dict:
    """The segment's clearance and whether the hop is a hop of its own (see ``DIRECT_CLEARANCE``)."""
    lattice = structure.lattice
    ends = lattice.get_fractional_coords(np.array([start, start + vector]))
    at_end = lattice.get_all_distances(ends, structure.frac_coords).min(axis=0) < SITE_TOLERANCE
    points = lattice.get_fractional_coords(np.array([start + t * vector for t in np.linspace(0.1, 0.9, 33)]))
    distances = lattice.get_all_distances(points, structure.frac_coords)[:, ~at_end]
    clearance = float(distances.min()) if distances.size else float("inf")
    ions = [i for i, site in enumerate(structure) if site.specie.symbol == ion and not at_end[i]]
    middle = lattice.get_fractional_coords(start + vector / 2)
    half = float(np.linalg.norm(vector)) / 2
    nearer = bool(ions) and float(lattice.get_all_distances([middle], structure.frac_coords[ions]).min()) < half - 0.05
    try:
        bond = ion_anion_bond(structure, ion)
    except ValueError:
        bond = None
    squeezes = bond is not None and clearance < DIRECT_CLEARANCE * bond
    return {"clearance": clearance, "direct": not (nearer or squeezes)}


def ion_anion_bond(structure: Structure, ion: str) -> float:
    """The shortest distance between the working ion and an anion (A)."""
    ions = [i for i, site in enumerate(structure) if site.specie.symbol == ion]
    anions = [i for i, site in enumerate(structure) if site.specie.symbol in ANIONS]
    if not ions or not anions:
        raise ValueError("no ion-anion bonds")
    return float(structure.lattice.get_all_distances(structure.frac_coords[ions], structure.frac_coords[anions]).min())


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
    anchor = supercell[first].coords
    shortest = supercell.lattice.get_cartesian_coords(
        minimum_image(supercell[last].frac_coords - supercell[first].frac_coords)
    )
    if first == last or np.linalg.norm(shortest - vector) > SITE_TOLERANCE:
        raise InsertflowError(
            f"{hop.name}: the supercell is too small along the hop (its end is as near, or nearer, through a "
            "periodic image); use a larger barriers.supercell"
        )
    empty = [last]
    waypoint = None
    if mode == "divacancy":
        third = _common_neighbour(supercell, anchor, vector, hop.length, ion, exclude={first, last})
        if third is None:
            raise InsertflowError(f"{hop.name}: no {ion} site is next to both ends: no divacancy hop")
        index, position = third
        empty.append(index)
        centre = np.mean([anchor, anchor + vector, position], axis=0)
        waypoint = _void_along_normal(supercell, centre, anchor, vector, exclude={first, *empty})
    start = supercell.copy()
    start.remove_sites(empty)
    moving = first - sum(1 for i in empty if i < first)
    end = start.copy()
    end.replace(moving, ion, coords=supercell[last].frac_coords)
    units = units_of(supercell.composition, framework_unit(host_cell.composition.reduced_formula, ion), ion)
    x = (sum(1 for site in start if site.specie.symbol == ion)) / units
    return HopEndpoints(start, end, moving, None if waypoint is None else waypoint.tolist(), x)


def _ion_at(structure: Structure, point: np.ndarray, ion: str) -> int | None:
    frac = structure.lattice.get_fractional_coords(point)
    for index, site in enumerate(structure):
        if site.specie.symbol != ion:
            continue
        distance, _ = structure.lattice.get_distance_and_image(site.frac_coords, frac)
        if distance < SITE_TOLERANCE:
            return index
    return None


def _common_neighbour(
    structure: Structure, anchor: np.ndarray, vector: np.ndarray, length: float, ion: str, exclude: set[int]
) -> tuple[int, np.ndarray] | None:
    """An ``ion`` site (index, Cartesian image) within a hop length of both ends, off the hop's line.

    Each candidate is taken at its image nearest the start and measured from that image to the
    real end point, so a site two hops along the line (next to the end only through another
    image) is not taken; the three must make a triangle.
    """
    lattice = structure.lattice
    start_frac = lattice.get_fractional_coords(anchor)
    for index, site in enumerate(structure):
        if index in exclude or site.specie.symbol != ion:
            continue
        position = anchor + lattice.get_cartesian_coords(minimum_image(site.frac_coords - start_frac))
        to_start, to_end = np.linalg.norm(position - anchor), np.linalg.norm(position - anchor - vector)
        area = np.linalg.norm(np.cross(vector, position - anchor)) / 2
        if to_start < length + SITE_TOLERANCE and to_end < length + SITE_TOLERANCE and area > 0.2 * length**2:
            return index, position
    return None


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
    delta = minimum_image(end.frac_coords - start.frac_coords)
    origin = start.frac_coords[moving]
    if waypoint is not None:  # the two legs of the hopping ion, each its shortest image
        first_leg = minimum_image(lattice.get_fractional_coords(np.asarray(waypoint)) - origin)
        via = origin + first_leg
        second_leg = minimum_image(end.frac_coords[moving] - via)
    path = []
    for s in np.linspace(0.0, 1.0, images + 2):
        frac = start.frac_coords + s * delta
        if waypoint is not None:
            frac[moving] = via + (2 * s - 1) * second_leg if s > 0.5 else origin + 2 * s * first_leg
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
    target = home + lattice.get_cartesian_coords(minimum_image(np.asarray(end_frac) - structure[moving].frac_coords))
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
