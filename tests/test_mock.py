"""The mock energy model, checked against brute-force sums written independently of it."""

import itertools

import numpy as np
import pytest

from insertflow.calculators import get_calculator
from insertflow.calculators.mock import ANION_SHELL, MockModel, mock_energy, polyhedral_contacts
from insertflow.errors import CalculatorError
from insertflow.hosts import load_host
from insertflow.references import working_ion_reference
from insertflow.sampling.defects import DefectSettings, choose_supercell, generate_defects, pristine_orderings

IMAGES = list(itertools.product(range(-3, 4), repeat=3))


def brute_force_repulsion(structure, interaction=1.0, length=3.0, cutoff=6.0, ion="Li") -> float:
    """Sum of interaction * exp(-r/length) / r over ion pairs within cutoff, each pair once, by explicit images."""
    ions = np.array([s.coords for s in structure if s.specie.symbol == ion])
    matrix = structure.lattice.matrix
    total = 0.0
    for a, b, c in IMAGES:
        shift = a * matrix[0] + b * matrix[1] + c * matrix[2]
        for ri in ions:
            for rj in ions:
                r = np.linalg.norm(rj + shift - ri)
                if 1e-8 < r <= cutoff:
                    total += 0.5 * interaction * np.exp(-r / length) / r
    return total


def brute_force_contacts(structure) -> dict[str, int]:
    """Cation pairs sharing >= 2 anions (bonds shorter than ANION_SHELL), by explicit images."""
    cations = [(i, s) for i, s in enumerate(structure) if s.specie.symbol not in ("O", "F", "S")]
    anions = [s.coords for s in structure if s.specie.symbol in ("O", "F", "S")]
    matrix = structure.lattice.matrix
    shells = {}
    for i, site in cations:  # the anion images bonded to each cation, as (anion, image) pairs
        shells[i] = {
            (k, image)
            for k, anion in enumerate(anions)
            for image in itertools.product(range(-1, 2), repeat=3)
            if np.linalg.norm(anion + np.dot(image, matrix) - site.coords) < ANION_SHELL
        }
    counts = {"TM-TM": 0, "TM-ion": 0, "ion-ion": 0}
    for (i, si), (j, sj) in itertools.combinations_with_replacement(cations, 2):
        for image in itertools.product(range(-1, 2), repeat=3):  # j seen through each image of the cell
            if i == j and image <= (0, 0, 0):
                continue  # a site and its own images: count each pair once, never the site itself
            shifted = {(k, tuple(np.add(t, image))) for k, t in shells[j]}
            if len(shells[i] & shifted) >= 2:
                ions = sum(s.specie.symbol == "Li" for s in (si, sj))
                counts[("TM-TM", "TM-ion", "ion-ion")[ions]] += 1
    return counts


@pytest.fixture(scope="module")
def host():
    return load_host("LiCoO2")


def two_layer_cell(host, same_layer: bool):
    """Li_0.5CoO2 in a 2x1x2 primitive supercell: the two Li left in one layer, or one in each."""
    cell = host.structure.get_primitive_structure() * (2, 1, 2)
    li = [i for i, s in enumerate(cell) if s.specie.symbol == "Li"]
    heights = {i: round(cell[i].frac_coords[2] % 1, 3) for i in li}
    first = li[0]
    same = [i for i in li if i != first and heights[i] == heights[first]]
    other = [i for i in li if heights[i] != heights[first]]
    assert len(same) == 1 and len(other) == 2  # two Li layers of two sites each
    keep = {first, same[0]} if same_layer else {first, other[0]}
    cell.remove_sites(sorted(set(li) - keep))
    return cell


def test_repulsion_matches_a_brute_force_pair_sum_and_spreads_the_ions(host):
    clustered, spread = two_layer_cell(host, same_layer=True), two_layer_cell(host, same_layer=False)
    for cell in (clustered, spread):
        model = MockModel(tm_tm_contact=0.0)
        without = MockModel(interaction=0.0, tm_tm_contact=0.0).energy(cell)
        assert model.energy(cell) - without == pytest.approx(brute_force_repulsion(cell), abs=1e-9)
    # Two Li 2.8 A apart in one layer repel more than two Li in different layers (>= 4.9 A apart):
    # the mock ranks the spread ordering lower, by the pair energy difference, about 0.2 eV per cell.
    gap = mock_energy(clustered) - mock_energy(spread)
    assert gap == pytest.approx(brute_force_repulsion(clustered) - brute_force_repulsion(spread), abs=1e-9)
    assert gap > 0.1


def test_voltage_is_the_intrinsic_one_less_the_repulsion_per_ion(host):
    licoo2 = host.structure.get_primitive_structure()
    coo2 = licoo2.copy()
    coo2.remove_species(["Li"])
    li = working_ion_reference("Li")
    voltage = -(mock_energy(licoo2) - mock_energy(coo2) - mock_energy(li) / len(li))
    # one Li per cell: its repulsion with its own periodic images (brute force) lowers the 3.9 V
    assert voltage == pytest.approx(3.9 - brute_force_repulsion(licoo2), abs=1e-9)
    assert voltage == pytest.approx(3.0861, abs=1e-4)  # the README's mock voltage


def test_contacts_count_the_shared_polyhedral_edges_of_layered_licoo2(host):
    cell = host.structure.copy()  # 12-atom hexagonal cell, 3 f.u.
    cell.make_supercell([2, 2, 1])  # 12 f.u.
    found = polyhedral_contacts(cell)
    assert dict(found) == brute_force_contacts(cell)
    # rock-salt-ordered octahedra: each shares 6 edges in its layer and 6 with the next layers
    assert dict(found) == {"TM-TM": 12 * 6 // 2, "TM-ion": 12 * 6, "ion-ion": 12 * 6 // 2}


@pytest.mark.parametrize("x", [0.0, 0.5])
def test_migration_energy_is_set_by_contacts_not_by_the_rattle(host, x):
    settings = DefectSettings(kinds=["migration"], x=[x], supercell=[2, 2, 1])
    matrix = choose_supercell(host, settings)
    (ordering,) = [o for o in pristine_orderings(host, matrix, settings) if o.x == x and o.ewald_rank == 1]
    candidates, _ = generate_defects(host, matrix, ordering, settings)  # rattled by 0.05 A
    model = MockModel()  # the defaults: tm_tm_contact -0.5 eV, tm_ion_contact 0
    e_pristine = model.energy(ordering.structure)
    for candidate in candidates:
        before = brute_force_contacts(ordering.structure)
        after = brute_force_contacts(candidate.structure)
        assert after["TM-TM"] - before["TM-TM"] == -1  # the TM left the site it shared an edge with
        d_e = model.energy(candidate.structure) - e_pristine
        # -(-0.5) eV for the lost TM-TM edge; the Li-Li term only moves with the rattle (meV)
        assert d_e == pytest.approx(0.5, abs=0.02 if x else 1e-9)


def test_unknown_calculator_and_settings():
    with pytest.raises(
        CalculatorError, match=r"unknown calculator 'vasp2'; choose one of: chgnet, gpaw, mock, sevennet, vasp, xtb"
    ):
        get_calculator("vasp2")
    with pytest.raises(CalculatorError, match=r"calculator 'mock' has no setting\(s\) voltge; its settings are"):
        get_calculator("mock", {"voltge": 3.0})
    with pytest.raises(CalculatorError, match=r"unknown mock fault"):
        get_calculator("mock", {"faults": {"CoO2": "explode"}})
