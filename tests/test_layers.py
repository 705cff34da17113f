import pytest

from insertflow.analysis.layers import largest_gap_growth, widest_gaps
from insertflow.calculators.mock import _open_gap_along_c


def test_basal_gap_of_coo2_and_its_growth(licoo2):
    coo2 = licoo2.copy()
    coo2.remove_species(["Li"])
    gaps = widest_gaps(coo2)
    # Without Li, the widest empty slab is the O-Co-O / O-Co-O van der Waals gap:
    # c/3 minus one CoO2 slab thickness, about 2.6 A for LiCoO2's geometry.
    assert max(gaps.values()) == pytest.approx(2.63, abs=0.05)
    drifted = _open_gap_along_c(coo2, 3.0)
    change = largest_gap_growth(coo2, drifted)
    assert change.growth == pytest.approx(3.0, abs=1e-6)
    assert largest_gap_growth(coo2, coo2).growth == pytest.approx(0.0, abs=1e-9)


def test_uniform_strain_is_not_drift(licoo2):
    strained = licoo2.copy()
    strained.scale_lattice(licoo2.volume * 1.05)  # 5 % volume: every gap grows by < 2 %
    assert largest_gap_growth(licoo2, strained).growth < 0.1
