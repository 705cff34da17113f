import pytest
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
    other_basis = licoo2.copy()
    other_basis.make_supercell([[1, 1, 0], [0, 1, 0], [0, 0, 1]])  # a' = a + b: the same cell, another basis
    assert other_basis.lattice.abc != pytest.approx(licoo2.lattice.abc)
    assert content_key(other_basis, identity, "relax") == key
    doubled = licoo2.copy() * (2, 1, 1)  # a supercell is another calculation
    assert content_key(doubled, identity, "relax") != key


def test_key_changes_with_settings_task_and_structure(licoo2):
    key = content_key(licoo2, MockCalculator().identity(), "relax")
    assert content_key(licoo2, MockCalculator(voltage=4.0).identity(), "relax") != key
    assert content_key(licoo2, MockCalculator().identity(), "static") != key
    strained = licoo2.copy()
    strained.scale_lattice(licoo2.volume * 1.01)
    assert content_key(strained, MockCalculator().identity(), "relax") != key


#: Settings that do not change a result (how fast it is computed), per calculator.
NOT_IN_KEY = {"chgnet": {"threads"}, "sevennet": {"threads"}, "mock": {"seconds"}, "gpaw": {"mpi_command"}}
CHANGED = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v + 0.25, str: lambda v: v + "-other"}


@pytest.mark.parametrize(
    "name", ["mock", "chgnet", "sevennet", "xtb", "vasp", pytest.param("gpaw", marks=pytest.mark.gpaw)]
)
def test_every_calculator_setting_that_changes_a_result_changes_the_key(licoo2, name):
    import dataclasses

    from insertflow.calculators import get_calculator

    pytest.importorskip(
        {"chgnet": "chgnet", "sevennet": "sevenn", "xtb": "tblite", "gpaw": "gpaw"}.get(name, "pymatgen")
    )
    base = get_calculator(name)
    key = content_key(licoo2, base.identity(), "relax")
    for f in dataclasses.fields(base):
        value = getattr(base, f.name)
        if f.name in NOT_IN_KEY.get(name, set()):
            faster = "mpiexec -n 4" if f.name == "mpi_command" else (value or 1) + 1
            other = dataclasses.replace(base, **{f.name: faster})
            assert content_key(licoo2, other.identity(), "relax") == key, f"{name}.{f.name} must not split the key"
            continue
        if name == "vasp" and f.name == "preset":
            continue  # one preset ships; a preset's own values are in the identity (checked below)
        if name == "mock" and f.name == "charge_level":
            # it changes only charged cells' energies, so it splits only their keys (neutral keys stay put)
            charged = dataclasses.replace(base, charge=1)
            other = dataclasses.replace(charged, charge_level=value + 0.25)
            assert content_key(licoo2, other.identity(), "relax") != content_key(licoo2, charged.identity(), "relax")
            assert content_key(licoo2, dataclasses.replace(base, charge_level=value + 0.25).identity(), "relax") == key
            continue
        if name == "gpaw" and f.name in ("mode", "spin", "xc", "preset", "basis", "hubbard_u"):
            if f.name == "preset":
                continue  # one preset ships; its U and MAGMOM values are in the identity (checked below)
            changed = {"mode": "lcao", "spin": "off", "xc": "LDA", "basis": "szp", "hubbard_u": {"Co": 5.0}}[f.name]
        elif isinstance(value, dict):
            changed = {**value, "EDIFF": 1e-7} if name == "vasp" else {**value, "CoO2": "raise"}
        elif name == "xtb" and f.name == "method":
            changed = "GFN2-xTB"
        elif name == "chgnet" and f.name in ("model", "optimizer"):
            changed = {"model": "0.2.0", "optimizer": "BFGS"}[f.name]
        elif name == "sevennet" and f.name in ("model", "optimizer", "modal"):
            if f.name == "modal":  # one fidelity for 7net-0; the multi-fidelity model's two levels split the key
                fidelity = dataclasses.replace(base, model="7net-mf-0")
                r2scan = dataclasses.replace(fidelity, modal="R2SCAN")
                assert content_key(licoo2, fidelity.identity(), "relax") != content_key(
                    licoo2, r2scan.identity(), "relax"
                )
                continue
            changed = {"model": "7net-l3i5", "optimizer": "BFGS"}[f.name]
        elif name == "gpaw" and f.name == "grid_spacing":
            changed = 0.18
        else:
            changed = CHANGED[type(value)](value)
        other = dataclasses.replace(base, **{f.name: changed})
        assert content_key(licoo2, other.identity(), "relax") != key, f"{name}.{f.name} is not in the content key"
    if name == "vasp":
        assert base.identity()["settings"]["preset"]["hubbard_u"]["Co"] == 3.32
    if name == "gpaw":  # the U and MAGMOM the key holds are the VASP preset's (one shared table)
        vasp = get_calculator("vasp").identity()["settings"]["preset"]
        assert base.identity()["settings"]["hubbard_u"] == vasp["hubbard_u"]
        assert base.identity()["settings"]["magmom"] == vasp["magmom"]
        assert "gpaw-data" in base.identity()["version"]


def test_the_layer_guard_is_part_of_a_relaxations_key(licoo2):
    from insertflow.flows.calculation import LayerGuard

    identity = MockCalculator().identity()
    keys = {
        content_key(licoo2, identity, "relax", guard.protocol("relax"))
        for guard in (LayerGuard("constrain"), LayerGuard("flag"), LayerGuard("off"), LayerGuard("constrain", 2.0))
    }
    assert len(keys) == 4  # each policy and limit gives another result on a drifting cell
    # statics do not relax, so the guard cannot change them: one key
    assert {
        content_key(licoo2, identity, "static", g.protocol("static")) for g in (LayerGuard("flag"), LayerGuard())
    } == {content_key(licoo2, identity, "static")}
