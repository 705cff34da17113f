"""Which energy scale each calculator's entries are on, before oxides meet metals, O2 or fluorides.

The Materials Project mixes GGA (metals, and compounds without O or F) with GGA+U (oxides and
fluorides of Co, Cr, Fe, Mn, Mo, Ni, V, W); its MP2020 scheme puts both on one scale with an
anion correction per O/F atom and a fitted energy per U-treated TM atom. Voltages between two
oxides of one framework do not see these terms (they cancel per TM and per O); defect
formation energies and stability regions do (the Co term is -1.64 eV per Co).

- ``vasp``: raw GGA/GGA+U with MP's input sets; the calculator applies
  ``MaterialsProject2020Compatibility`` to every entry, as MP does.
- ``chgnet``: CHGNet 0.3.0 was trained on MP2020-corrected MPtrj energies, so it predicts the
  corrected scale directly. Measured through insertflow: formation energies from its own Co,
  Li, O2 and F2 are CoO -2.46 eV (experiment -2.46), Li2O -6.20 (-6.20), LiCoO2 -6.93 (-7.04),
  Co3O4 -9.35 (-9.20), LiF -6.20 (-6.39) per formula unit. Applying MP2020 again would move
  CoO by -2.3 eV. No correction is applied.
- ``sevennet``: SevenNet-0 and SevenNet-MF-0 (PBE) predict the *uncorrected* MPtrj mix. Measured
  through insertflow from its own Co, Li and O2: CoO -0.11 eV, Li2O -5.50, Co3O4 -1.42 per formula
  unit (7net-0), the raw GGA+U-oxide-against-GGA-metal numbers. Its entries are labelled as MP's
  (GGA+U with MP's U where O or F meets a U element) and get ``MaterialsProject2020Compatibility``:
  CoO -2.43 eV, Co3O4 -9.08 eV. The r2SCAN fidelity of SevenNet-MF-0 stays on its own scale.
- ``gpaw``: none. Its U acts on GPAW's own d projectors and MP2020 is fitted to VASP, so the
  fitted numbers do not belong on a GPAW Hamiltonian: its oxides (PBE+U) and metals (PBE) are
  on different scales, and limits bounded by a TM metal carry that mismatch.
- ``xtb`` and ``mock``: their own scales, consistent within themselves.
"""

from __future__ import annotations

#: calculator name -> (scale, what insertflow does about it)
ENERGY_SCALES: dict[str, tuple[str, str]] = {
    "vasp": ("MP2020", "MaterialsProject2020Compatibility applied to every entry"),
    "chgnet": ("MP2020", "predicted directly (trained on MP2020-corrected MPtrj energies); no correction"),
    "sevennet": ("MP2020", "MaterialsProject2020Compatibility applied (SevenNet predicts the uncorrected MPtrj mix)"),
    "gpaw": ("PBE+U / PBE mixed", "no correction: MP2020 is fitted to VASP; TM-metal limits mix scales"),
    "xtb": ("GFN1-xTB", "no correction; spin-restricted tight binding"),
    "mock": ("mock", "the mock's own energies"),
}


def energy_scale(identity: dict) -> dict[str, str]:
    """The scale of a calculator identity's energies, for documents: ``{"scale", "treatment"}``.

    A composite (``chgnet>gpaw``) is on the scale of the calculator that gave the energy.
    """
    energy = identity.get("settings", {}).get("energy") if "energy_from" in identity else None
    source = energy or identity
    name = str(source.get("name", ""))
    scale, treatment = ENERGY_SCALES.get(name, ("unknown", "no correction; compare only with the same calculator"))
    if name == "sevennet" and "R2SCAN" in str(source.get("version", "")):
        scale, treatment = "r2SCAN", "no correction: SevenNet-MF-0's r2SCAN fidelity, its own scale"
    return {"calculator": name, "scale": scale, "treatment": treatment}


def mixes_scales(identity: dict, elements: set[str]) -> bool:
    """Whether metals and oxides/fluorides of ``elements`` sit on different scales for this calculator."""
    return energy_scale(identity)["scale"] == "PBE+U / PBE mixed" and bool(elements & {"O", "F"})
