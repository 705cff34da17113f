import math

import pytest

from insertflow.calculators import get_calculator
from insertflow.calculators.mock import mock_energy
from insertflow.errors import CalculatorError


def _half_lithiated(licoo2, spread: bool):
    """Li_0.5CoO2 in a 2x1x1 or 1x1x2-type cell: which Li to remove decides the ordering."""
    cell = licoo2 * (2, 2, 1)
    li = [i for i, s in enumerate(cell) if s.specie.symbol == "Li"]
    # Remove two Li: nearest neighbours (clustered vacancies -> clustered Li) or not.
    distances = [(cell.get_distance(li[0], j), j) for j in li[1:]]
    partner = min(distances)[1] if spread else max(distances)[1]
    keep_apart = cell.copy()
    keep_apart.remove_sites([li[0], partner])
    return keep_apart


def test_orderings_rank_and_half_lithiation_is_on_the_hull(licoo2):
    e_li = mock_energy(licoo2)  # LiCoO2, 1 f.u.
    coo2 = licoo2.copy()
    coo2.remove_species(["Li"])
    e_empty = mock_energy(coo2)
    a = _half_lithiated(licoo2, spread=True)
    b = _half_lithiated(licoo2, spread=False)
    e_a, e_b = mock_energy(a) / 4, mock_energy(b) / 4  # per CoO2 unit
    assert e_a != pytest.approx(e_b, abs=1e-3)  # orderings are distinguishable
    # Repulsion makes the formation energy convex: the best x = 1/2 ordering sits below
    # the tie line between x = 0 and x = 1.
    assert min(e_a, e_b) < 0.5 * (e_li + e_empty) - 0.01


def test_voltage_positive_and_below_intrinsic(licoo2):
    coo2 = licoo2.copy()
    coo2.remove_species(["Li"])
    voltage = mock_energy(coo2) - 1.909 - mock_energy(licoo2)
    # Repulsion between Li lowers the voltage below the intrinsic 3.9 V but keeps it positive.
    assert 2.5 < voltage < 3.9
    assert math.isfinite(voltage)
    # Without interactions the voltage is exactly the intrinsic one.
    no_repulsion = mock_energy(coo2, interaction=0) - 1.909 - mock_energy(licoo2, interaction=0)
    assert no_repulsion == pytest.approx(3.9, abs=1e-12)


def test_mock_is_deterministic(licoo2):
    assert mock_energy(licoo2) == mock_energy(licoo2.copy())
    perturbed = licoo2.copy()
    perturbed.perturb(0.05, min_distance=0.01)
    assert mock_energy(perturbed) == mock_energy(perturbed.copy())


def test_unknown_calculator_and_settings():
    with pytest.raises(CalculatorError, match=r"unknown calculator 'vasp2'; choose one of: chgnet, mock"):
        get_calculator("vasp2")
    with pytest.raises(CalculatorError, match=r"calculator 'mock' has no setting\(s\) voltge; its settings are"):
        get_calculator("mock", {"voltge": 3.0})
    with pytest.raises(CalculatorError, match=r"unknown mock fault"):
        get_calculator("mock", {"faults": {"CoO2": "explode"}})
