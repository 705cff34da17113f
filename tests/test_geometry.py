"""What relaxed cells became: site maps, moved-TM outcomes, face sharing, and the sites migration may use."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from insertflow.analysis.geometry import (
    bond_cutoff,
    classify_moved_tm,
    coordination_number,
    face_sharing_cations,
    parent_sites,
    site_changes,
)
from insertflow.hosts import load_host
from insertflow.sampling.defects import (
    DefectSettings,
    choose_supercell,
    generate_defects,
    pristine_orderings,
    rattled,
)


@pytest.fixture(scope="module")
def licoo2():
    return load_host("LiCoO2")


def lowest(host, x, **settings):
    chosen = DefectSettings(x=[x], rattle=0.0, **settings)
    matrix = choose_supercell(host, chosen)
    ordering = next(o for o in pristine_orderings(host, matrix, chosen) if o.x == x and o.ewald_rank == 1)
    full = host.structure.copy()
    full.make_supercell(matrix)
    return full, ordering, chosen, matrix


def rattled_copy(structure, amplitude, seed=1):
    return rattled(structure, amplitude, seed)


def test_a_hop_to_a_neighbouring_site_is_flagged_and_a_strained_cell_is_not(licoo2):
    full, ordering, *_ = lowest(licoo2, 0.5, supercell=[2, 2, 1])
    start = ordering.structure
    cations = {"Li", "Co"}
    parents = parent_sites(full, start, cations)
    # delithiated hosts expand along c by several percent: the same fractional map on a strained cell
    strained = Structure(
        Lattice(start.lattice.matrix * np.array([[1.01], [1.01], [1.04]])), start.species, start.frac_coords
    )
    assert site_changes(start, strained, parents, cations) == []
    # a rattled input that relaxes back onto its lattice sites has not changed either
    rattled = rattled_copy(start, 0.1)
    assert site_changes(rattled, start, parents, cations) == []
    assert site_changes(start, rattled_copy(start, 0.15, seed=3), parents, cations) == []
    # one Li moved into the empty octahedron next to it (2.8 A): the ordering is no longer the one built
    li = next(i for i, s in enumerate(start) if s.specie.symbol == "Li")
    empty = [
        frac
        for label, frac in parents
        if label.startswith("Li") and start.lattice.get_all_distances(start.frac_coords, [frac]).min() > 1.0
    ]
    target = min(empty, key=lambda f: start.lattice.get_all_distances([start[li].frac_coords], [f])[0, 0])
    hopped = start.copy()
    hopped.replace(li, "Li", coords=target)
    (change,) = site_changes(start, hopped, parents, cations)
    assert change.index == li and change.species == "Li" and 2.5 < change.moved < 3.1
    assert change.now_at.startswith("Li site")


def test_moved_tm_stayed_returned_or_elsewhere(licoo2):
    _, ordering, settings, matrix = lowest(licoo2, 0.0, supercell=[2, 2, 1], kinds=["migration"], tetrahedral=True)
    candidates, _ = generate_defects(licoo2, matrix, ordering, settings)
    octahedral = next(c for c in candidates if c.destination == "3a")
    tetrahedral = next(c for c in candidates if c.destination == "tet")
    start, index = octahedral.structure, octahedral.moved_index
    origin, target = np.array(octahedral.origin), np.array(octahedral.target)
    assert start[index].specie.symbol == "Co"

    stayed = classify_moved_tm(start, start, index, origin, target)
    assert stayed.outcome == "stayed" and stayed.migrated and stayed.polyhedron == "octahedral"

    returned = start.copy()
    returned.replace(index, "Co", coords=origin)
    back = classify_moved_tm(start, returned, index, origin, target)
    assert back.outcome == "returned" and not back.migrated and back.from_origin < 0.01

    # trapped half-way, in the tetrahedron that shares a face with both octahedra: neither site
    trapped = start.copy()
    trapped.replace(index, "Co", coords=np.array(tetrahedral.target))
    halfway = classify_moved_tm(start, trapped, index, origin, target)
    assert halfway.outcome == "elsewhere" and not halfway.migrated
    assert halfway.polyhedron == "tetrahedral"  # CrystalNN: four O around the tetrahedral site
    # a TM put on the tetrahedral site and found there: stayed, tetrahedral
    tet_start = tetrahedral.structure
    tet = classify_moved_tm(
        tet_start, tet_start, tetrahedral.moved_index, np.array(tetrahedral.origin), np.array(tetrahedral.target)
    )
    assert tet.migrated and tet.polyhedron == "tetrahedral"


def test_a_tetrahedron_sharing_a_face_with_an_occupied_octahedron_is_refused(licoo2):
    # CoO2: the tetrahedra above and below each Co share faces only with empty Li-layer octahedra
    _, ordering, settings, matrix = lowest(licoo2, 0.0, supercell=[2, 2, 1], kinds=["migration"], tetrahedral=True)
    assert any(c.destination == "tet" for c in generate_defects(licoo2, matrix, ordering, settings)[0])
    # Li0.5CoO2: every Li-layer tetrahedron next to a Co shares a face with an occupied Li octahedron
    # (a Co there would sit ~1.7 A from a Li): no tetrahedral candidate at all
    _, half, settings, matrix = lowest(licoo2, 0.5, supercell=[2, 2, 1], kinds=["migration"], tetrahedral=True)
    made = generate_defects(licoo2, matrix, half, settings)[0]
    assert made and not any(c.destination == "tet" for c in made)
    structure = half.structure
    cutoff = bond_cutoff(structure)
    li = next(i for i, s in enumerate(structure) if s.specie.symbol == "Li")
    # by hand: a point 1.7 A above an occupied Li octahedron's face shares that face with it
    face = [n for n in structure.get_neighbors(structure[li], cutoff) if n.specie.symbol == "O"][:3]
    assert len(face) == 3
    centre = np.mean([n.coords for n in face], axis=0)
    beyond = structure[li].coords + 1.5 * (centre - structure[li].coords)
    sharing = face_sharing_cations(structure, structure.lattice.get_fractional_coords(beyond), cutoff)
    assert li in sharing


def _spinel() -> Structure:
    """LiMn2O4: Li on 8a, Mn on 16d, O on 32e (u = 0.263 in origin choice 2; pymatgen uses choice 1)."""
    return Structure.from_spacegroup(
        "Fd-3m", Lattice.cubic(8.24), ["Li", "Mn", "O"], [[0, 0, 0], [0.625] * 3, [0.388] * 3]
    ).get_primitive_structure()


def test_spinel_tms_migrate_into_the_octahedral_interstitials():
    host = load_host(_spinel())
    # lambda-MnO2 (x = 0): both 8a tetrahedra of every 16c octahedron are empty
    _, empty, settings, matrix = lowest(host, 0.0, supercell=[1, 1, 1], kinds=["migration"])
    made = generate_defects(host, matrix, empty, settings)[0]
    assert made and {c.destination for c in made} == {"oct-i"}
    for candidate in made:
        # 16d -> 16c shares an edge: a/(2 sqrt 2) = 2.91 A for a = 8.24 A; six O around the new site
        assert candidate.hop_distance == pytest.approx(8.24 / (2 * np.sqrt(2)), abs=0.05)
        assert coordination_number(candidate.structure, candidate.moved_index) == 6
    # x = 0.5 in the primitive cell: every 16c shares a face with the one 8a Li left (1.78 A away)
    _, half, settings, matrix = lowest(host, 0.5, supercell=[1, 1, 1], kinds=["migration"])
    assert generate_defects(host, matrix, half, settings)[0] == []


def test_tetrahedra_are_found_in_a_sulfide():
    # LiTiS2 (P-3m1), emptied: the fixed O-distance cut-offs found none here
    sulfide = Structure(
        Lattice.hexagonal(3.46, 6.19),
        ["Li", "Ti", "S", "S"],
        [[0, 0, 0.5], [0, 0, 0], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
    )
    host = load_host(sulfide)
    _, ordering, settings, matrix = lowest(host, 0.0, supercell=[3, 3, 1], kinds=["migration"], tetrahedral=True)
    tets = [c for c in generate_defects(host, matrix, ordering, settings)[0] if c.destination == "tet"]
    assert tets
    for candidate in tets:
        # O1 stacking: the empty-gap tetrahedra share faces with the gap octahedra (and each other), only
        # edges with the Ti octahedra, so the hop is ~3 A, unlike the 1.7 A face-sharing hop of O3 LiCoO2
        assert 2.9 < candidate.hop_distance < 3.2
        assert coordination_number(candidate.structure, candidate.moved_index) == 4


def test_a_reused_structure_is_put_back_in_the_order_of_the_input_that_asked_for_it():
    from insertflow.analysis.geometry import atom_order_like
    from insertflow.hosts import load_host

    host = load_host("LiCoO2").structure * [2, 2, 1]
    relaxed = host.copy()
    relaxed.perturb(0.1, min_distance=0.05, seed=7)  # what a relaxation does
    relaxed.apply_strain(0.02)
    permutation = list(reversed(range(len(host))))
    stored = Structure.from_sites([relaxed[i] for i in permutation])  # the same sites listed backwards
    order = atom_order_like(stored, host)
    assert order == permutation  # stored[order[i]] is input atom i
    assert all(stored[j].species_string == host[i].species_string for i, j in enumerate(order))
    other = host.copy()
    other.remove_sites([0])
    assert atom_order_like(stored, other) is None  # not the same composition: nothing to map


def test_a_li_site_facing_a_tm_moved_into_a_tetrahedron_is_kept_empty_on_discharge():
    from insertflow.analysis.geometry import bond_cutoff
    from insertflow.flows.defects import faces_a_moved_tm
    from insertflow.sampling.hops import tetrahedral_site_between

    full = load_host("LiCoO2").structure * [2, 2, 1]
    co = next(i for i, s in enumerate(full) if s.species_string == "Co")
    li = min((i for i, s in enumerate(full) if s.species_string == "Li"), key=lambda i: full.get_distance(co, i))
    emptied = full.copy()
    target = emptied[li].frac_coords
    emptied.remove_sites([li])
    co -= 1 if li < co else 0
    tet = tetrahedral_site_between(emptied, co, target)  # the Li-layer tetrahedron the Co passes
    moved = emptied.copy()
    moved.replace(co, "Co", coords=tet, coords_are_cartesian=True)
    cutoff = bond_cutoff(full)
    li_sites = [s.frac_coords for s in full if s.species_string == "Li"]
    facing = [f for f in li_sites if faces_a_moved_tm(moved, full, f, cutoff)]
    assert len(facing) == 3  # a tetrahedron in the Li layer shares faces with three Li octahedra
    assert not faces_a_moved_tm(full, full, li_sites[0], cutoff)  # the pristine host faces nothing new
