"""Average insertion voltage from entries: pure functions, no I/O, no calculators."""

from __future__ import annotations

import warnings

from emmet.core.electrode import InsertionElectrodeDoc
from pymatgen.core import Composition
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

from insertflow.errors import InsertflowError


def framework_of(composition: Composition, working_ion: str) -> Composition:
    """The composition without the working ion."""
    return Composition({el: n for el, n in composition.element_composition.items() if el.symbol != working_ion})


def framework_unit(host_formula: str, working_ion: str) -> Composition:
    """The framework formula unit of a host: its reduced formula without the working ion.

    LiCoO2 -> CoO2, LiMn2O4 -> Mn2O4 (x in [0, 1], not [0, 0.5]), LiC6 -> C6, Li2MnO3 -> MnO3.
    """
    return framework_of(Composition(Composition(host_formula).reduced_formula), working_ion)


def units_of(composition: Composition, unit: Composition, working_ion: str) -> float:
    """How many framework units ``unit`` the composition holds (its ions aside)."""
    own = framework_of(composition, working_ion)
    if unit.num_atoms == 0:
        raise InsertflowError(f"the framework unit is empty: {working_ion} alone is the reference, not a host")
    if own.num_atoms == 0:
        raise InsertflowError(
            f"{composition.reduced_formula} is the elemental {working_ion}, not a composition of the host: "
            "pass it as the working-ion reference"
        )
    if own.reduced_formula != unit.reduced_formula:
        raise InsertflowError(f"{composition.reduced_formula} does not share the framework {unit.reduced_formula}")
    return own.num_atoms / unit.num_atoms


def ions_per_framework(entry: ComputedEntry, framework: Composition, working_ion: str) -> tuple[float, float]:
    """(x, number of framework units) for ``entry`` = Li_x(framework) * units."""
    comp = entry.composition.element_composition
    units = framework_of(comp, working_ion).get_reduced_composition_and_factor()[1]
    reduced_framework = framework.get_reduced_composition_and_factor()[0]
    own_reduced = framework_of(comp, working_ion).get_reduced_composition_and_factor()[0]
    if own_reduced != reduced_framework:
        raise InsertflowError(
            f"{entry.composition.reduced_formula} does not share the framework {reduced_framework.reduced_formula}"
        )
    return comp[working_ion] / units if working_ion in comp else 0.0, units


def average_voltage(
    discharged: ComputedEntry, charged: ComputedEntry, ion_reference: ComputedEntry, working_ion: str
) -> float:
    """V = -[E(ion_x2 H) - E(ion_x1 H) - (x2 - x1) E(ion)] / ((x2 - x1) e), per framework unit H.

    Energies in eV; ``ion_reference`` is the elemental working ion (e.g. bcc Li) from the
    same calculator and settings. Charge per ion is 1 e for Li/Na/K (divide by the ion's
    charge for multivalent ions: ``VoltagePair`` in pymatgen does the same).
    """
    framework = framework_of(discharged.composition, working_ion)
    x2, units2 = ions_per_framework(discharged, framework, working_ion)
    x1, units1 = ions_per_framework(charged, framework, working_ion)
    if x2 <= x1:
        raise InsertflowError(
            f"the discharged entry (x={x2:g}) must hold more {working_ion} than the charged (x={x1:g})"
        )
    e_ion = ion_reference.energy / ion_reference.composition.num_atoms
    charge = ion_charge(working_ion)
    delta = discharged.energy / units2 - charged.energy / units1 - (x2 - x1) * e_ion
    return -delta / ((x2 - x1) * charge)


def electrode_document(
    entries: list[ComputedStructureEntry], ion_reference: ComputedEntry
) -> InsertionElectrodeDoc | None:
    """emmet-core's ``InsertionElectrodeDoc`` for ``entries`` (None if there is no voltage step).

    Entries need ``data["material_id"]``. No ``data["decomposition_energy"]`` is set: emmet
    fills ``stability_charge`` / ``stability_discharge`` from it, and in the Materials Project
    they mean stability against the full phase diagram, not against this 1D hull (whose
    energies above hull are stored under their own names in our documents).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsertionElectrodeDoc.from_entries(entries, ion_reference)


def ion_charge(working_ion: str) -> int:
    """Charge (e) each working ion carries: 1 for alkali metals, 2 for Mg/Ca/Zn, 3 for Al."""
    return {"Mg": 2, "Ca": 2, "Zn": 2, "Al": 3}.get(working_ion, 1)
