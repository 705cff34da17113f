from pymatgen.core.operations import SymmOp

from insertflow.calculators.mock import MockCalculator
from insertflow.keys import content_key


def test_key_ignores_rotation_and_site_order(licoo2):
    identity = MockCalculator().identity()
    rotated = licoo2.copy()
    rotated.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0))
    shuffled = licoo2.copy()
    shuffled.sort(key=lambda site: -site.specie.Z)
    key = content_key(licoo2, identity, "relax")
    assert content_key(rotated, identity, "relax") == key
    assert content_key(shuffled, identity, "relax") == key
    assert content_key(licoo2.copy() * (1, 1, 1), identity, "relax") == key


def test_key_changes_with_settings_task_and_structure(licoo2):
    key = content_key(licoo2, MockCalculator().identity(), "relax")
    assert content_key(licoo2, MockCalculator(voltage=4.0).identity(), "relax") != key
    assert content_key(licoo2, MockCalculator().identity(), "static") != key
    strained = licoo2.copy()
    strained.scale_lattice(licoo2.volume * 1.01)
    assert content_key(strained, MockCalculator().identity(), "relax") != key
