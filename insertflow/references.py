"""Reference structures of elemental metals (computed with the same calculator as the study)."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from insertflow.errors import HostError

#: (lattice, species positions) of the stable elemental metal at low temperature, experimental.
_METALS = {
    "Li": ("bcc", 3.451),
    "Na": ("bcc", 4.225),
    "K": ("bcc", 5.225),
    "Ca": ("fcc", 5.588),
    "Mg": ("hcp", (3.209, 5.211)),
    "Zn": ("hcp", (2.665, 4.947)),
    # transition metals: chemical-potential references for defects (ferromagnetic phases
    # relaxed by the calculator; Mn uses fcc gamma-Mn instead of the 58-atom alpha phase)
    "Ti": ("hcp", (2.951, 4.686)),
    "V": ("bcc", 3.030),
    "Cr": ("bcc", 2.910),
    "Mn": ("fcc", 3.630),
    "Fe": ("bcc", 2.866),
    "Co": ("hcp", (2.507, 4.070)),
    "Ni": ("fcc", 3.524),
    "Cu": ("fcc", 3.615),
}


def working_ion_reference(symbol: str) -> Structure:
    """Primitive cell of the elemental metal of ``symbol`` (bcc Li, bcc Na, hcp Mg, hcp Co ...)."""
    if symbol not in _METALS:
        raise HostError(
            f"insertflow has no elemental reference structure for {symbol}; supported: {', '.join(_METALS)}; "
            "give its chemical potential in the recipe instead"
        )
    kind, a = _METALS[symbol]
    if kind == "bcc":
        return Structure(Lattice.cubic(a), [symbol] * 2, [[0, 0, 0], [0.5, 0.5, 0.5]]).get_primitive_structure()
    if kind == "fcc":
        return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [symbol], [[0, 0, 0]]).get_primitive_structure()
    a_hex, c_hex = a
    return Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(a_hex, c_hex), [symbol], [[1 / 3, 2 / 3, 0.25]])


def has_metal_reference(symbol: str) -> bool:
    """Whether ``working_ion_reference`` knows the elemental metal of ``symbol``."""
    return symbol in _METALS
