"""Hull and voltage profile from hand-made entries whose answers are worked out on paper."""

import pytest
from pymatgen.apps.battery.insertion_battery import InsertionElectrode
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

from insertflow.analysis.profile import FARADAY_MAH_PER_MOL, lower_hull, voltage_profile
from insertflow.analysis.voltage import average_voltage, electrode_document
from insertflow.errors import InsertflowError

E_LI = -2.0  # eV/atom of the "bcc Li" reference
LI = ComputedEntry("Li", E_LI)


def lix_coo2(n_li: int, n_co: int, energy_per_fu: float) -> ComputedEntry:
    """Li_n Co_m O_2m with the given energy per CoO2 unit."""
    return ComputedEntry(Composition({"Li": n_li, "Co": n_co, "O": 2 * n_co}), energy_per_fu * n_co)


def test_three_point_hull_steps_and_average():
    # E(CoO2) = -20, E(LiCoO2) = -25: end-member voltage -(-25 + 20 + 2) = 3 V.
    # Li0.5CoO2 at -22.7 lies 0.2 eV below the tie line (-22.5): on the hull, steps 3.4 and 2.6 V.
    entries = [
        ("x0", lix_coo2(0, 1, -20.0)),
        ("half", lix_coo2(1, 2, -22.7)),
        ("x1", lix_coo2(1, 1, -25.0)),
        ("half-b", lix_coo2(2, 4, -22.4)),  # same x in a bigger cell, 0.3 eV above the hull
    ]
    profile = voltage_profile(entries, LI, "Li")
    assert [p.label for p in profile.hull] == ["x0", "half", "x1"]
    assert [s.voltage for s in profile.steps] == pytest.approx([3.4, 2.6])
    assert profile.average_voltage == pytest.approx(3.0)
    assert profile.average_voltage == pytest.approx(average_voltage(entries[2][1], entries[0][1], LI, "Li"))
    by_label = {p.label: p for p in profile.points}
    assert by_label["half"].formation_energy == pytest.approx(-0.2)
    assert by_label["half-b"].e_above_hull == pytest.approx(0.3)
    assert by_label["half-b"].e_above_hull_per_atom == pytest.approx(0.3 / 3.5)  # Li0.5CoO2: 3.5 atoms per fu
    assert not by_label["half-b"].on_hull
    # Voltage falls as Li goes in: convexity of the hull.
    assert profile.steps[0].voltage > profile.steps[1].voltage


def test_two_phase_host_has_one_plateau():
    # an intermediate above the tie line (like LixFePO4) never makes a step
    entries = [
        ("x0", lix_coo2(0, 1, -20.0)),
        ("quarter", lix_coo2(1, 4, -21.0)),  # tie line at x=1/4: -21.25 -> 0.25 eV above
        ("x1", lix_coo2(1, 1, -25.0)),
    ]
    profile = voltage_profile(entries, LI, "Li")
    assert [p.label for p in profile.hull] == ["x0", "x1"]
    assert len(profile.steps) == 1
    assert profile.steps[0].voltage == pytest.approx(3.0)
    assert profile.points[1].e_above_hull == pytest.approx(0.25)
    assert profile.points[1].formation_energy == pytest.approx(0.25)


def test_collinear_point_is_on_the_line_but_not_a_vertex():
    entries = [("x0", lix_coo2(0, 1, -20.0)), ("half", lix_coo2(1, 2, -22.5)), ("x1", lix_coo2(1, 1, -25.0))]
    profile = voltage_profile(entries, LI, "Li")
    assert [p.label for p in profile.hull] == ["x0", "x1"]
    assert profile.points[1].e_above_hull == pytest.approx(0.0, abs=1e-12)


def test_lower_hull_takes_the_lowest_point_at_each_x():
    points = [(0.0, 0.0), (0.5, -1.0), (0.5, -2.0), (1.0, 0.0), (0.25, 5.0)]
    assert lower_hull(points) == [0, 2, 3]


def test_capacity_and_energy_density_of_licoo2():
    entries = [("x0", lix_coo2(0, 1, -20.0)), ("half", lix_coo2(1, 2, -22.7)), ("x1", lix_coo2(1, 1, -25.0))]
    profile = voltage_profile(entries, LI, "Li")
    molar_mass = Composition("LiCoO2").weight
    assert profile.capacity_grav == pytest.approx(FARADAY_MAH_PER_MOL / molar_mass)
    assert profile.capacity_grav == pytest.approx(273.8, abs=0.2)  # the textbook LiCoO2 theoretical capacity
    assert profile.energy_grav == pytest.approx(3.4 * 136.9 + 2.6 * 136.9, rel=1e-3)
    assert profile.capacity_at(0.5) == pytest.approx(profile.capacity_grav / 2)


def _structure_entry(n_li: int, energy_per_fu: float) -> ComputedStructureEntry:
    """Li_n Co2 O4 in a toy cell (emmet needs structures), energy per CoO2 unit."""
    lattice = Lattice.hexagonal(2.8, 14.0)
    species = ["Co", "Co", "O", "O", "O", "O"] + ["Li"] * n_li
    coords = [
        [0, 0, 0],
        [0, 0, 0.5],
        [1 / 3, 2 / 3, 0.1],
        [2 / 3, 1 / 3, 0.4],
        [1 / 3, 2 / 3, 0.6],
        [2 / 3, 1 / 3, 0.9],
    ]
    coords += [[0, 0, 0.25], [0, 0, 0.75]][:n_li]
    return ComputedStructureEntry(Structure(lattice, species, coords), energy_per_fu * 2)


def test_steps_agree_with_pymatgen_and_emmet():
    entries = [_structure_entry(0, -20.0), _structure_entry(1, -22.7), _structure_entry(2, -25.0)]
    for i, entry in enumerate(entries):
        entry.data["material_id"] = f"if-{i}"
    li = ComputedStructureEntry(Structure(Lattice.cubic(3.44), ["Li", "Li"], [[0, 0, 0], [0.5, 0.5, 0.5]]), 2 * E_LI)
    li.data["material_id"] = "if-li"
    ours = voltage_profile([(str(i), e) for i, e in enumerate(entries)], li, "Li")
    theirs = InsertionElectrode.from_entries(entries, li)
    assert sorted(p.voltage for p in theirs.voltage_pairs) == pytest.approx(sorted(s.voltage for s in ours.steps))
    assert theirs.get_average_voltage() == pytest.approx(ours.average_voltage)
    doc = electrode_document(entries, li)
    assert doc.average_voltage == pytest.approx(ours.average_voltage)
    assert doc.capacity_grav == pytest.approx(ours.capacity_grav, rel=1e-3)


def test_profile_needs_two_compositions_and_one_framework():
    with pytest.raises(InsertflowError, match="single composition"):
        voltage_profile([("a", lix_coo2(1, 1, -25.0)), ("b", lix_coo2(2, 2, -49.0))], LI, "Li")
    with pytest.raises(InsertflowError, match="does not share the framework"):
        voltage_profile([("a", lix_coo2(1, 1, -25.0)), ("b", ComputedEntry("LiNiO2", -20.0))], LI, "Li")
    with pytest.raises(InsertflowError, match="no entries"):
        voltage_profile([], LI, "Li")


def test_x_counts_against_the_host_formula_unit_and_voltages_do_not_care():
    from insertflow.analysis.voltage import framework_unit

    assert framework_unit("LiMn2O4", "Li") == Composition("Mn2O4")
    assert framework_unit("Li2MnO3", "Li") == Composition("MnO3")
    entries = [
        ("x0", ComputedEntry("Mn4O8", -100.0)),
        ("half", ComputedEntry("LiMn4O8", -104.5)),
        ("x1", ComputedEntry("Li2Mn4O8", -108.2)),
    ]
    spinel = voltage_profile(entries, LI, "Li", framework=framework_unit("LiMn2O4", "Li"))
    reduced = voltage_profile(entries, LI, "Li")  # per MnO2: x in [0, 0.5]
    assert [p.x for p in spinel.hull] == [0.0, 0.5, 1.0]
    assert [p.x for p in reduced.hull] == [0.0, 0.25, 0.5]
    assert [s.voltage for s in spinel.steps] == pytest.approx([s.voltage for s in reduced.steps])
    assert spinel.capacity_grav == pytest.approx(reduced.capacity_grav)
    # -(E(Li2Mn4O8) - E(Mn4O8) - 2 E_Li) / 2 = -(-8.2 + 4) / 2 = 2.1 V
    assert spinel.average_voltage == pytest.approx(2.1)


def test_the_working_ion_entry_is_a_reference_not_a_host_composition():
    entries = [("Li", ComputedEntry("Li2", 2 * E_LI)), ("x0", lix_coo2(0, 1, -20.0)), ("x1", lix_coo2(1, 1, -25.0))]
    with pytest.raises(InsertflowError, match=r"Li: the elemental Li is the reference \(ion_reference\)"):
        voltage_profile(entries, LI, "Li")  # listed first, it used to set an empty framework: division by zero
    assert voltage_profile(entries[1:], LI, "Li").average_voltage == pytest.approx(3.0)
