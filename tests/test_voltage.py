import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

from insertflow.analysis.voltage import average_voltage, electrode_document
from insertflow.errors import InsertflowError


def _entries(e_discharged, e_charged, e_li_per_atom, units=1):
    lat = Lattice.hexagonal(2.8, 14.0)
    lco = Structure.from_spacegroup("R-3m", lat, ["Li", "Co", "O"], [[0, 0, 0], [0, 0, 0.5], [0, 0, 0.24]])
    lco = lco.get_primitive_structure() * (units, 1, 1)
    coo2 = lco.copy()
    coo2.remove_species(["Li"])
    return (
        ComputedStructureEntry(lco, e_discharged * units, data={"material_id": "if-1"}),
        ComputedStructureEntry(coo2, e_charged * units, data={"material_id": "if-2"}),
        ComputedEntry("Li2", 2 * e_li_per_atom, data={"material_id": "if-3"}),
    )


def test_average_voltage_by_hand():
    # V = -[E(LiCoO2) - E(CoO2) - E(Li)] / 1 = -[-25.0 + 20.0 + 1.5] = 3.5 V
    discharged, charged, li = _entries(-25.0, -20.0, -1.5)
    assert average_voltage(discharged, charged, li, "Li") == pytest.approx(3.5, abs=1e-12)


def test_average_voltage_is_per_framework_unit():
    # The same energies per formula unit in a 3x supercell give the same voltage.
    discharged, charged, li = _entries(-25.0, -20.0, -1.5, units=3)
    small = _entries(-25.0, -20.0, -1.5, units=1)
    assert average_voltage(discharged, small[1], li, "Li") == pytest.approx(3.5, abs=1e-12)
    assert average_voltage(discharged, charged, li, "Li") == pytest.approx(3.5, abs=1e-12)


def test_emmet_electrode_document_agrees():
    discharged, charged, li = _entries(-25.477, -20.105, -1.909)
    doc = electrode_document([discharged, charged], li)
    expected = -(-25.477 + 20.105 + 1.909)
    assert doc.average_voltage == pytest.approx(expected, abs=1e-9)
    assert average_voltage(discharged, charged, li, "Li") == pytest.approx(expected, abs=1e-12)
    assert doc.working_ion.symbol == "Li"
    assert doc.formula_charge == "CoO2" and doc.formula_discharge == "LiCoO2"
    # LiCoO2 theoretical capacity: F / (3.6 * M(LiCoO2)) = 96485 / (3.6 * 97.87) = 273.8 mAh/g
    assert doc.capacity_grav == pytest.approx(273.8, abs=0.5)


def test_swapped_end_members_are_refused():
    discharged, charged, li = _entries(-25.0, -20.0, -1.5)
    with pytest.raises(InsertflowError, match="must hold more Li"):
        average_voltage(charged, discharged, li, "Li")
