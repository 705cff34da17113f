"""Locating a defect in its relaxed supercell, aligning its E_F on the far-site potential, moment changes."""

import numpy as np
import pytest

from insertflow.analysis.alignment import (
    aligned_fermi_shift,
    locate_defect,
    moment_changes,
    potential_alignment,
)
from insertflow.hosts import load_host


@pytest.fixture(scope="module")
def pristine():
    """LiCoO2, 3x3x2 of the 4-atom cell (72 atoms, 8.4 A in plane): room for far sites."""
    return load_host("LiCoO2").structure.get_primitive_structure() * [3, 3, 2]


def relaxed_like(structure, rattle: float = 0.12, strain: float = 0.02, seed: int = 1):
    """The same cell after a relaxation: every atom moved by ``rattle`` (A), the cell strained."""
    moved = structure.copy()
    if rattle:
        moved.perturb(rattle, min_distance=0.5 * rattle, seed=seed)
    moved.apply_strain([strain, strain, -strain])
    return moved


def first(structure, symbol: str) -> int:
    return next(i for i, site in enumerate(structure) if site.specie.symbol == symbol)


def test_a_vacancy_a_substitution_and_a_hop_are_found_where_they_were_made(pristine):
    co, o = first(pristine, "Co"), first(pristine, "O")

    vacancy = relaxed_like(pristine)
    vacancy.remove_sites([co])
    found = locate_defect(vacancy, pristine)
    assert found.removed == [co] and not found.added and not found.substituted
    assert pristine.lattice.get_distance_and_image(found.centre, pristine[co].frac_coords)[0] < 0.05

    fluorine = relaxed_like(pristine)
    fluorine.replace(o, "F")
    found = locate_defect(fluorine, pristine)
    assert found.substituted == [o] and not found.removed and not found.added
    assert o not in found.matches  # F is not aligned on as if it were O

    hop = relaxed_like(pristine, rattle=0.0)
    shift = np.array([1.4, 0.0, 0.0])  # A, a Co leaving its octahedron (half way to a tetrahedral site)
    hop.translate_sites([co], shift, frac_coords=False)
    found = locate_defect(hop, pristine)
    assert found.removed == [co] and found.added == [co]
    middle = pristine.lattice.get_fractional_coords(pristine[co].coords + shift / 2)
    assert pristine.lattice.get_distance_and_image(found.centre, middle)[0] < 0.1


def test_an_offset_of_the_potential_scale_is_not_a_fermi_level_shift(pristine):
    """Delta V is read far from the defect: the near-defect potential would pull it off by > 0.1 eV."""
    co = first(pristine, "Co")
    defect = relaxed_like(pristine)
    defect.remove_sites([co])
    rng = np.random.default_rng(7)
    bulk_v = {"Li": -40.0, "Co": -60.0, "O": -80.0}
    v_pristine = [bulk_v[site.specie.symbol] + rng.normal(0.0, 0.002) for site in pristine]
    found = locate_defect(defect, pristine)
    offset, charge, screening = 0.70, 10.0, 1.0  # eV; eV A and A: 0.8 eV on the O next to it, 0.04 at 4.2 A
    v_defect = []
    for d, site in enumerate(defect):
        r = defect.lattice.get_distance_and_image(found.centre, site.frac_coords)[0]
        v_defect.append(v_pristine[found.matches[d]] + offset + charge / r * np.exp(-r / screening))
    alignment = potential_alignment(defect, v_defect, pristine, v_pristine)
    assert alignment.radius == pytest.approx(0.5 * min(defect.lattice.get_lll_reduced_lattice().abc))
    assert alignment.delta_v == pytest.approx(offset, abs=0.05)  # the tail beyond 4.2 A: < 0.04 eV
    assert alignment.n_sites >= 20 and alignment.spread < 0.05
    everywhere = potential_alignment(defect, v_defect, pristine, v_pristine, radius=0.0)
    assert everywhere.delta_v - offset > 0.08  # the near shells included: 0.12 eV off (0.02 for the far sites)
    efermi_pristine = 4.0
    raw = efermi_pristine + offset + 0.25  # E_F rose by 0.25 eV on top of the offset
    assert aligned_fermi_shift(raw, efermi_pristine, alignment) == pytest.approx(0.25, abs=0.05)


def test_the_reduced_tm_is_the_one_whose_moment_changed(pristine):
    o = first(pristine, "O")
    defect = relaxed_like(pristine)
    defect.replace(o, "F")
    co_next_to_f = min(
        (i for i, s in enumerate(defect) if s.specie.symbol == "Co"), key=lambda i: defect.get_distance(i, o)
    )
    rng = np.random.default_rng(3)
    pristine_moments = [0.0 if s.specie.symbol != "Co" else rng.normal(0.0, 0.05) for s in pristine]
    defect_moments = [m + rng.normal(0.0, 0.05) for m in pristine_moments]  # low-spin Co3+ noise
    defect_moments[co_next_to_f] = 2.7  # high-spin Co2+ (d7): the donor electron's site
    changes = moment_changes(defect, defect_moments, pristine, pristine_moments, ["Co"])
    assert [c["site"] for c in changes] == [co_next_to_f]
    assert changes[0]["distance"] < 2.2 and changes[0]["change"] > 2.4


def test_cells_that_do_not_differ_or_do_not_fit_are_refused(pristine):
    with pytest.raises(ValueError, match="nothing to align on"):
        locate_defect(relaxed_like(pristine), pristine)
    with pytest.raises(ValueError, match="one site potential per site"):
        potential_alignment(pristine, [0.0], pristine, [0.0] * len(pristine))
