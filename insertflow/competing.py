"""Competing phases of a host's chemistry: built-in prototypes (relaxed by the study's calculator).

Each phase is a starting structure from experimental lattice constants; the calculator relaxes
it (content-keyed, so every study on the same chemistry reuses it). The list covers the
layered and spinel oxides of Li/Na with Co, Ni, Mn, Fe and F doping: elements (metals, O2,
F2, black P), the binary oxides and fluorides a defect can exchange atoms with, and the
working-ion oxides. Phases that are not here (Mn2O3, Mn3O4, Li2MnO3, Li3PO4, FePO4, Fe2P,
sulfides) come as structure files in the recipe (``defects.competing_phases``): without them a
region is wider than the real one, bounded only by what was given.
"""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from insertflow.references import has_metal_reference, working_ion_reference

#: O=O and F-F bond lengths (A) of the molecules, and the box they sit in (A).
MOLECULES = {"O": 1.23, "F": 1.42}
MOLECULE_BOX = 8.0


def _rocksalt(cation: str, anion: str, a: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _antifluorite(cation: str, anion: str, a: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [anion, cation], [[0, 0, 0], [0.25, 0.25, 0.25]])


def _spinel(tm: str, a: float, u: float) -> Structure:
    """Normal spinel TM3O4 (Fd-3m): TM on 8a and 16d, O on 32e; ``u`` in origin choice 2.

    pymatgen's Fd-3m is origin choice 1 (8a at the origin), so every position shifts by 1/8.
    """
    shift = 0.125
    return Structure.from_spacegroup(
        "Fd-3m", Lattice.cubic(a), [tm, tm, "O"], [[0, 0, 0], [0.5 + shift] * 3, [u + shift] * 3]
    )


def _rutile(tm: str, anion: str, a: float, c: float, x: float) -> Structure:
    return Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(a, c), [tm, anion], [[0, 0, 0], [x, x, 0]])


def _corundum(tm: str, a: float, c: float, z: float, x: float) -> Structure:
    return Structure.from_spacegroup("R-3c", Lattice.hexagonal(a, c), [tm, "O"], [[0, 0, z], [x, 0, 0.25]])


def _li2o2() -> Structure:
    """Li2O2 (P6_3/mmc): peroxide O-O pairs of 1.55 A."""
    return Structure.from_spacegroup(
        "P6_3/mmc",
        Lattice.hexagonal(3.142, 7.650),
        ["Li", "Li", "O"],
        [[0, 0, 0], [1 / 3, 2 / 3, 0.25], [1 / 3, 2 / 3, 0.649]],
    )


#: label -> (elements it holds, builder). Binary and ternary phases only; elements come below.
_COMPOUNDS = {
    "Li2O": ({"Li", "O"}, lambda: _antifluorite("Li", "O", 4.61)),
    "Li2O2": ({"Li", "O"}, _li2o2),
    "Na2O": ({"Na", "O"}, lambda: _antifluorite("Na", "O", 5.55)),
    "LiF": ({"Li", "F"}, lambda: _rocksalt("Li", "F", 4.03)),
    "NaF": ({"Na", "F"}, lambda: _rocksalt("Na", "F", 4.63)),
    "CoO": ({"Co", "O"}, lambda: _rocksalt("Co", "O", 4.26)),
    "NiO": ({"Ni", "O"}, lambda: _rocksalt("Ni", "O", 4.18)),
    "MnO": ({"Mn", "O"}, lambda: _rocksalt("Mn", "O", 4.44)),
    "FeO": ({"Fe", "O"}, lambda: _rocksalt("Fe", "O", 4.33)),
    "Co3O4": ({"Co", "O"}, lambda: _spinel("Co", 8.08, 0.263)),
    "Fe3O4": ({"Fe", "O"}, lambda: _spinel("Fe", 8.40, 0.255)),
    "MnO2": ({"Mn", "O"}, lambda: _rutile("Mn", "O", 4.40, 2.87, 0.305)),
    "Fe2O3": ({"Fe", "O"}, lambda: _corundum("Fe", 5.035, 13.75, 0.355, 0.306)),
    "CoF2": ({"Co", "F"}, lambda: _rutile("Co", "F", 4.70, 3.18, 0.306)),
    "NiF2": ({"Ni", "F"}, lambda: _rutile("Ni", "F", 4.65, 3.08, 0.302)),
    "MnF2": ({"Mn", "F"}, lambda: _rutile("Mn", "F", 4.87, 3.31, 0.305)),
    "FeF2": ({"Fe", "F"}, lambda: _rutile("Fe", "F", 4.70, 3.31, 0.300)),
}


def molecule(element: str) -> Structure:
    """An O2 or F2 molecule in a box: the gas-phase reference (its energy is the calculator's)."""
    bond = MOLECULES[element]
    box = Lattice.cubic(MOLECULE_BOX)
    half = 0.5 * bond / MOLECULE_BOX
    return Structure(box, [element, element], [[0.5 - half, 0.5, 0.5], [0.5 + half, 0.5, 0.5]])


def black_phosphorus() -> Structure:
    """Black phosphorus (Cmce), the stable form of P: P-P bonds of 2.22 and 2.24 A."""
    return Structure.from_spacegroup("Cmce", Lattice.orthorhombic(3.314, 10.478, 4.376), ["P"], [[0, 0.10168, 0.08056]])


def elemental_reference(element: str) -> Structure | None:
    """The elemental phase of ``element``: the metal, the O2/F2 molecule or black P; None if insertflow has none."""
    if element in MOLECULES:
        return molecule(element)
    if element == "P":
        return black_phosphorus().get_primitive_structure()
    return working_ion_reference(element) if has_metal_reference(element) else None


def competing_phases(elements: set[str]) -> dict[str, Structure]:
    """Every built-in phase whose elements lie within ``elements`` (elements first), by label."""
    phases: dict[str, Structure] = {}
    for element in sorted(elements):
        structure = elemental_reference(element)
        if structure is not None:
            phases[f"{element}2" if element in MOLECULES else element] = structure
    for label, (needs, build) in _COMPOUNDS.items():
        if needs <= elements:
            phases[label] = build().get_primitive_structure()
    return phases


def task_for(label: str) -> str:
    """How a competing phase is computed: "static" for a molecule in its box, else "relax".

    A cell relaxation would collapse the box into a molecular solid.
    """
    return "static" if label in {f"{el}2" for el in MOLECULES} else "relax"
