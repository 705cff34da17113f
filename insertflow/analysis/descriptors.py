"""Band-structure descriptors from a pymatgen ``CompleteDos``: pure functions.

Energies are relative to a reference E_ref: the valence-band maximum for a gapped system
(gap above ``GAP_THRESHOLD``), the Fermi level otherwise.

* band centres: projection-weighted mean energy of the O-2p (anion p) and TM-d states in the
  window [E_ref - 10 eV, E_ref] (occupied states; pymatgen's ``get_band_center``);
* non-bonding O-2p weight: the O-2p DOS integrated over [E_ref - 1 eV, E_ref], per O atom
  (both spins), the signature of under-coordinated O next to V_TM or Li_TM;
* E_F shift of a defective host against the pristine one: each E_F measured from its own O-2p
  band centre (the valence band, window [E_F - 10 eV, E_F]). F_O (a donor) raises it, V_TM (an
  acceptor) lowers it. The O-2s level was tried as the reference and rejected: in a minimal basis
  (xTB) it moves with the extra charge and reversed the F_O sign.

pymatgen's ``CompleteDos.get_gap`` reads a zero gap from smeared DOS grids; give the
eigenvalue band edges (``Vasprun.eigenvalue_band_properties``) when they exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymatgen.core import Element
from pymatgen.electronic_structure.core import OrbitalType
from pymatgen.electronic_structure.dos import CompleteDos

from insertflow.errors import InsertflowError

#: Below this gap (eV) the Fermi level is the energy reference.
GAP_THRESHOLD = 0.1
CENTRE_WINDOW = (-10.0, 0.0)
NEAR_EF = 1.0


class DescriptorError(InsertflowError):
    """The electronic-structure data cannot give the requested descriptor."""


@dataclass
class BandDescriptors:
    """Gap, edges and band centres of one structure (eV; centres relative to ``reference``)."""

    band_gap: float
    vbm: float | None
    cbm: float | None
    efermi: float
    reference: str  # "VBM" or "E_F"
    reference_energy: float
    anion_p_centre: float  # O-2p band centre
    tm_d_centre: float | None
    anion_p_near_ef: float  # states per O atom in [E_ref - 1 eV, E_ref]
    anion_p_centre_ef: float | None = None  # O-2p centre relative to E_F: the level E_F shifts are measured from
    anion: str = "O"
    tm_elements: tuple[str, ...] = ()
    window: tuple[float, float] = CENTRE_WINDOW

    @property
    def is_metal(self) -> bool:
        """No gap above ``GAP_THRESHOLD``."""
        return self.band_gap <= GAP_THRESHOLD


def band_descriptors(
    dos: CompleteDos,
    band_edges: tuple[float, float, float] | None = None,
    anion: str = "O",
    tm_elements: list[str] | None = None,
    window: tuple[float, float] = CENTRE_WINDOW,
    near: float = NEAR_EF,
) -> BandDescriptors:
    """Descriptors of ``dos``; ``band_edges`` = (gap, cbm, vbm) from eigenvalues if known."""
    _require_projections(dos)
    elements = {el.symbol for el in dos.structure.composition.elements}
    if anion not in elements:
        raise DescriptorError(f"{dos.structure.composition.reduced_formula} has no {anion}: no {anion}-2p descriptors")
    tms = sorted(tm_elements or [el for el in elements if Element(el).is_transition_metal])
    if band_edges is not None:
        gap, cbm, vbm = (float(v) for v in band_edges)
    else:
        gap = float(dos.get_gap(tol=1e-3))
        cbm, vbm = (float(v) for v in dos.get_cbm_vbm(tol=1e-3))
    gapped = gap > GAP_THRESHOLD
    reference_energy = vbm if gapped else float(dos.efermi)
    offset = reference_energy - dos.efermi  # get_band_center's erange is relative to E_F
    erange = (window[0] + offset, window[1] + offset)
    p_centre = dos.get_band_center(band=OrbitalType.p, elements=[Element(anion)], erange=erange) - offset
    d_centre = None
    if tms:
        d_centre = dos.get_band_center(band=OrbitalType.d, elements=[Element(t) for t in tms], erange=erange) - offset
    return BandDescriptors(
        band_gap=gap,
        vbm=vbm if gapped else None,
        cbm=cbm if gapped else None,
        efermi=float(dos.efermi),
        reference="VBM" if gapped else "E_F",
        reference_energy=reference_energy,
        anion_p_centre=float(p_centre),
        tm_d_centre=None if d_centre is None else float(d_centre),
        anion_p_near_ef=projected_weight(dos, anion, OrbitalType.p, (reference_energy - near, reference_energy)),
        anion_p_centre_ef=_p_centre_ef(dos, anion, window),
        anion=anion,
        tm_elements=tuple(tms),
        window=window,
    )


def projected_weight(dos: CompleteDos, element: str, orbital: OrbitalType, energy_range: tuple[float, float]) -> float:
    """Integrated ``element`` ``orbital`` DOS (both spins) over absolute energies, per atom of it."""
    _require_projections(dos)
    projected = dos.get_element_spd_dos(element).get(orbital)
    if projected is None:
        raise DescriptorError(f"the DOS has no {element} {orbital.name} projection")
    energies = np.asarray(projected.energies)
    density = _both_spins(projected)
    low, high = energy_range
    inside = (energies >= low) & (energies <= high)
    if inside.sum() < 2:
        # a coarse grid: interpolate so a 1 eV window is never empty
        grid = np.linspace(low, high, 50)
        weight = float(np.trapezoid(np.interp(grid, energies, density), grid))
    else:
        weight = float(np.trapezoid(density[inside], energies[inside]))
    return weight / dos.structure.composition[element]


def fermi_level_shift(defective: CompleteDos, pristine: CompleteDos, anion: str = "O") -> float:
    """E_F(defective) - E_F(pristine), each measured from its own anion-2p band centre (eV)."""
    for dos in (defective, pristine):
        _require_projections(dos)
    return float(_p_centre_ef(pristine, anion) - _p_centre_ef(defective, anion))


def fermi_shift_from(defective: dict, pristine: dict) -> float | None:
    """The same shift from two stored descriptor dicts (None if either lacks the centre)."""
    if defective.get("anion_p_centre_ef") is None or pristine.get("anion_p_centre_ef") is None:
        return None
    return float(pristine["anion_p_centre_ef"] - defective["anion_p_centre_ef"])


def _p_centre_ef(dos: CompleteDos, anion: str, window: tuple[float, float] = CENTRE_WINDOW) -> float:
    """Anion-p band centre relative to E_F (get_band_center works relative to E_F)."""
    return float(dos.get_band_center(band=OrbitalType.p, elements=[Element(anion)], erange=window))


def _both_spins(dos) -> np.ndarray:
    """Densities of a ``Dos`` summed over spin channels."""
    return sum(np.asarray(d) for d in dos.densities.values())


def _require_projections(dos: CompleteDos) -> None:
    if dos is None:
        raise DescriptorError("no density of states in this output: run a DOS calculation (VASP: LORBIT = 11)")
    if not getattr(dos, "pdos", None):
        raise DescriptorError(
            "the density of states has no site projections: rerun with projections (VASP: LORBIT = 11)"
        )


def compact_pdos(
    dos: CompleteDos, descriptors: BandDescriptors, window: tuple[float, float] = (-10.0, 5.0), step: float = 0.05
) -> dict:
    """Anion-p and TM-d DOS (states/eV per cell, both spins) on a coarse grid relative to E_ref, for plots."""
    grid = np.arange(window[0], window[1] + step / 2, step)
    curves = {}
    for label, element, orbital in [(f"{descriptors.anion}-p", descriptors.anion, OrbitalType.p)] + [
        (f"{tm}-d", tm, OrbitalType.d) for tm in descriptors.tm_elements
    ]:
        projected = dos.get_element_spd_dos(element).get(orbital)
        if projected is None:
            continue
        density = _both_spins(projected)
        energies = np.asarray(projected.energies) - descriptors.reference_energy
        curves[label] = np.round(np.interp(grid, energies, density), 4).tolist()
    return {"energies": np.round(grid, 4).tolist(), "reference": descriptors.reference, "curves": curves}
