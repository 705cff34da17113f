"""Stability regions on hand-made phase diagrams, and the one energy scale they need."""

import pytest
from pymatgen.core import Composition

from insertflow.analysis.chemical_potentials import impurity_potential, stability_region

#: Formation energies (eV per formula unit, elements at 0), close to experiment; CoO2 metastable
#: by 0.133 eV against 1/3 Co3O4 + 1/3 O2.
LI_CO_O = {
    "Li": ("Li", 0.0),
    "Co": ("Co", 0.0),
    "O2": ("O2", 0.0),
    "Li2O": ("Li2O", -6.20),
    "Li2O2": ("Li2O2", -6.57),
    "CoO": ("CoO", -2.47),
    "Co3O4": ("Co3O4", -9.40),
}


def phases(extra: dict | None = None) -> dict:
    table = {**LI_CO_O, **(extra or {})}
    return {label: (Composition(formula), energy) for label, (formula, energy) in table.items()}


def test_the_licoo2_region_at_fixed_mu_li_runs_from_o2_to_co3o4():
    # mu_Li = -3.8 eV (3.8 V vs Li): mu_Co + 2 mu_O = -7.0 + 3.8 = -3.2 on the host
    region = stability_region(Composition("LiCoO2"), -7.0, phases(), {"Li": -3.8})
    assert region.stable and not region.notes
    rich, poor = region.limit("O-rich"), region.limit("O-poor")
    assert rich.mu["O"] == pytest.approx(0.0, abs=1e-6) and rich.bounded_by == ["O2"]
    # O-poor: Co3O4 binds first (3 mu_Co + 4 mu_O = -9.4 gives mu_O = -0.1), before CoO (-0.73)
    assert poor.mu["O"] == pytest.approx(-0.1, abs=1e-6) and poor.mu["Co"] == pytest.approx(-3.0, abs=1e-6)
    assert poor.bounded_by == ["Co3O4"]
    assert region.limit("Co-rich") is poor and region.limit("Co-poor") is rich
    assert all(lim.mu["Li"] == -3.8 for lim in region.limits)  # held by the electrode


def test_a_metastable_host_is_reported_with_how_far_above_it_lies():
    # CoO2 at x = 0 (mu_Li = -4.5): above 1/3 Co3O4 + 1/3 O2 by 3.0 - 9.4/3 = 0.133 eV
    region = stability_region(Composition("CoO2"), -3.0, phases({"LiCoO2": ("LiCoO2", -7.0)}), {"Li": -4.5})
    assert not region.stable
    assert region.above_competing == pytest.approx(0.4 / 3, abs=1e-6)
    assert "no stability region" in region.notes[0] and "Co3O4" in region.notes[0]
    assert [lim.name for lim in region.limits] == ["single point"]
    point = region.limits[0].mu  # the host's own energy stays exact: removing a CoO2 unit costs nothing
    assert point["Co"] + 2 * point["O"] == pytest.approx(-3.0, abs=1e-5)
    # the same host at a lower potential competes with LiCoO2 through mu_Li, though it holds no Li
    lower = stability_region(Composition("CoO2"), -3.0, phases({"LiCoO2": ("LiCoO2", -7.0)}), {"Li": -3.5})
    assert lower.above_competing == pytest.approx(0.5, abs=1e-6)
    assert "LiCoO2" in lower.notes[0]


def test_an_impurity_sits_at_its_solubility_limit():
    # F at the O-rich limit of LiCoO2 (mu_Li -3.8, mu_Co -3.2): LiF binds (-6.39 + 3.8) before F2 (0)
    table = phases({"LiF": ("LiF", -6.39), "F2": ("F2", 0.0), "CoF2": ("CoF2", -6.88)})
    mu_f, phase = impurity_potential("F", {"Li": -3.8, "Co": -3.2, "O": 0.0}, table)
    assert phase == "LiF" and mu_f == pytest.approx(-2.59, abs=1e-9)  # CoF2 would allow -1.84
    with pytest.raises(ValueError, match="no competing phase holds Cl"):
        impurity_potential("Cl", {"Li": -3.8}, table)


def test_a_region_without_an_elemental_reference_is_refused():
    table = phases()
    del table["Co"]
    with pytest.raises(ValueError, match="no elemental reference for Co"):
        stability_region(Composition("LiCoO2"), -7.0, table, {"Li": -3.8})


def test_each_calculator_says_which_energy_scale_it_is_on():
    from insertflow.analysis.energy_scale import energy_scale, mixes_scales
    from insertflow.calculators import get_calculator
    from insertflow.calculators.composite import GeometryThenEnergy

    assert energy_scale(get_calculator("mock").identity())["scale"] == "mock"
    pair = GeometryThenEnergy(geometry=get_calculator("mock"), energy=get_calculator("xtb"))
    assert energy_scale(pair.identity())["calculator"] == "xtb"  # the energy's calculator decides
    assert mixes_scales({"name": "gpaw"}, {"Co", "O"}) and not mixes_scales({"name": "gpaw"}, {"Li"})
    assert not mixes_scales({"name": "chgnet"}, {"Co", "O"})


def test_oxygen_shift_reproduces_the_janaf_values_reuter_and_scheffler_tabulate():
    from insertflow.analysis.chemical_potentials import oxygen_shift

    # Reuter and Scheffler, Phys. Rev. B 65, 035406 (2001), Table I: Delta mu_O(T, 1 atm), eV
    published = {300: -0.27, 500: -0.50, 700: -0.73, 800: -0.85, 1000: -1.10}
    for temperature, value in published.items():
        assert oxygen_shift(temperature) == pytest.approx(value, abs=0.01)
    # air (0.21 atm) lowers it by kT/2 ln(1/0.21): 67 meV at 1000 K
    assert oxygen_shift(1000, 0.21) - oxygen_shift(1000) == pytest.approx(-0.0672, abs=5e-4)
    with pytest.raises(ValueError, match="100-2000 K"):
        oxygen_shift(3000)


def test_the_synthesis_point_puts_the_as_made_host_in_o2_at_its_li_rich_end():
    from pymatgen.core import Composition

    from insertflow.analysis.chemical_potentials import oxygen_shift
    from insertflow.flows.defects import _synthesis_point

    class Entry:  # what the record of a relaxed host gives: composition and energy
        composition, energy = Composition("LiCoO2"), -27.0

    record = type("Record", (), {"entry": Entry()})()
    phases = {
        "O2": (Composition("O2"), -9.8),
        "Li": (Composition("Li"), -1.9),
        "Co": (Composition("Co"), -7.0),
        "Li2O": (Composition("Li2O"), -14.3),
        "CoO": (Composition("CoO"), -15.0),
    }
    context = {"synthesis_temperature": 1000.0, "oxygen_pressure": 0.21, "chemical_potentials": {}}
    point = _synthesis_point(context, record, phases, "Li")
    mu_o = -4.9 + oxygen_shift(1000.0, 0.21)
    assert point.name == "O2 at 1000 K, 0.21 atm, Li-rich"
    assert point.mu["O"] == pytest.approx(mu_o, abs=1e-9)
    # Li-rich end at this mu_O: LiCoO2 with Li2O, so mu_Li = (E(Li2O) - mu_O)/2 and the host fixes Co
    assert point.mu["Li"] == pytest.approx((-14.3 - mu_o) / 2, abs=1e-6)
    assert point.mu["Co"] == pytest.approx(-27.0 - point.mu["Li"] - 2 * mu_o, abs=1e-6)
    assert "Li2O" in point.bounded_by[0]
    held = {**context, "chemical_potentials": {"O": -5.0}}
    assert _synthesis_point(held, record, phases, "Li") is None  # a recipe's mu_O is not overridden
