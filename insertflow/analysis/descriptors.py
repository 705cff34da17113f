"""Band-structure descriptors from a pymatgen ``CompleteDos``: pure functions.

Every energy is stored twice, relative to the Fermi level (``*_ef``, continuous across a
metal-insulator change) and, for a gapped system, relative to the valence-band maximum
(``*_vbm``). ``reference`` says which one the headline values (``anion_p_centre``,
``tm_d_centre``, ``anion_p_near_ef``) use: the VBM above a 0.1 eV gap, E_F otherwise. Compare
trends across x with the ``*_ef`` values, which do not jump where the gap closes.

* band centres: projection-weighted mean energy of the O-2p (anion p) and TM-d states over
  the occupied valence band. The window runs from the reference down to the first gap in the
  total DOS, at most 10 eV: the P-O and S-O bonding states of polyanion hosts sit below such a
  gap and are left out;
* non-bonding O-2p: the O-2p DOS in [E_ref - 1 eV, E_ref], per O site and per spin, with each
  O site's TM and working-ion neighbours and its moment. O with fewer TM neighbours than most
  (next to a TM vacancy, or Li-O-Li in Li-excess oxides) is ``under-coordinated``, and its mean
  is reported against the bulk-like O;
* spin: per-spin values where the DOS has two channels; ``spin_polarized`` is False for a
  spin-restricted calculation (xTB), whose one channel holds both spins;
* E_F shift of a defective host against the pristine one: each E_F measured from its own O-2p
  band centre. (Electrostatic-potential alignment is not implemented yet.)

pymatgen's ``CompleteDos.get_gap`` reads a zero gap from smeared DOS grids; give the
eigenvalue band edges (``Vasprun.eigenvalue_band_properties``) when they exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Element
from pymatgen.electronic_structure.core import OrbitalType, Spin
from pymatgen.electronic_structure.dos import CompleteDos

from insertflow.errors import InsertflowError

#: Below this gap (eV) the Fermi level is the energy reference.
GAP_THRESHOLD = 0.1
CENTRE_WINDOW = (-10.0, 0.0)
NEAR_EF = 1.0
#: A (cation-anion) within which a TM, or a working ion, counts as a neighbour of an anion.
TM_NEIGHBOUR = 2.4
ION_NEIGHBOUR = 2.7
#: A gap in the total DOS that ends the valence window: this wide (eV), below this fraction of its peak.
WINDOW_GAP_WIDTH = 0.5
WINDOW_GAP_LEVEL = 0.01
WORKING_IONS = ("Li", "Na", "K", "Mg", "Ca", "Zn")


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
    window: tuple[float, float] = CENTRE_WINDOW  # the valence window used, relative to the reference
    spin_polarized: bool = False  # False: one channel holding both spins (e.g. spin-restricted xTB)
    anion_p_centre_vbm: float | None = None  # O-2p centre relative to the VBM (gapped only)
    tm_d_centre_ef: float | None = None
    tm_d_centre_vbm: float | None = None
    anion_p_near_ef_by_spin: dict[str, float] | None = None  # per O atom, "up"/"down" (spin-polarised only)
    anion_sites: list[dict] = field(default_factory=list)  # per O site: neighbours, near-E_F weight, moment
    near_ef_undercoordinated: float | None = None  # mean per under-coordinated O site
    near_ef_bulk_like: float | None = None  # mean per bulk-like O site
    moment_undercoordinated: float | None = None  # mean |moment| (muB), when moments are given
    moment_bulk_like: float | None = None

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
    magmoms: list[float] | None = None,
) -> BandDescriptors:
    """Descriptors of ``dos``; ``band_edges`` = (gap, cbm, vbm) from eigenvalues if known.

    ``magmoms`` (per site of ``dos.structure``) adds each anion site's moment.
    """
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
    efermi = float(dos.efermi)
    reference_energy = vbm if gapped else efermi
    low = valence_window_bottom(dos, reference_energy, window[0], anion)
    centres_ef = {
        "p": _centre(dos, OrbitalType.p, [anion], (low, reference_energy), efermi),
        "d": _centre(dos, OrbitalType.d, tms, (low, reference_energy), efermi) if tms else None,
    }
    # the E_F-referenced centres use the window below E_F (continuous where the gap closes);
    # without a gap that is the window above, already summed
    if gapped:
        low_ef = valence_window_bottom(dos, efermi, window[0], anion)
        p_ef = _centre(dos, OrbitalType.p, [anion], (low_ef, efermi), efermi)
        d_ef = _centre(dos, OrbitalType.d, tms, (low_ef, efermi), efermi) if tms else None
    else:
        p_ef, d_ef = centres_ef["p"], centres_ef["d"]
    shift = reference_energy - efermi
    near_range = (reference_energy - near, reference_energy)
    sites = anion_sites(dos, anion, near_range, magmoms)
    classes = _class_means(sites)
    spin_polarized = len(dos.densities) == 2
    return BandDescriptors(
        band_gap=gap,
        vbm=vbm if gapped else None,
        cbm=cbm if gapped else None,
        efermi=efermi,
        reference="VBM" if gapped else "E_F",
        reference_energy=reference_energy,
        anion_p_centre=float(centres_ef["p"] - shift),
        tm_d_centre=None if centres_ef["d"] is None else float(centres_ef["d"] - shift),
        anion_p_near_ef=projected_weight(dos, anion, OrbitalType.p, near_range),
        anion_p_centre_ef=p_ef,
        anion=anion,
        tm_elements=tuple(tms),
        window=(round(low - reference_energy, 4), window[1]),
        spin_polarized=spin_polarized,
        anion_p_centre_vbm=float(centres_ef["p"] - shift) if gapped else None,
        tm_d_centre_ef=d_ef,
        tm_d_centre_vbm=None if (centres_ef["d"] is None or not gapped) else float(centres_ef["d"] - shift),
        anion_p_near_ef_by_spin=(
            {
                name: projected_weight(dos, anion, OrbitalType.p, near_range, spin=spin)
                for name, spin in (("up", Spin.up), ("down", Spin.down))
            }
            if spin_polarized
            else None
        ),
        anion_sites=sites,
        **classes,
    )


def valence_window_bottom(dos: CompleteDos, top: float, deepest: float = CENTRE_WINDOW[0], anion: str = "O") -> float:
    """The lower end (absolute eV) of the valence band below ``top``.

    Going down from ``top``, once at least one anion-p state per anion has been passed (the
    valence band, not a few donor states in the conduction band of a doped insulator), the first
    stretch of ``WINDOW_GAP_WIDTH`` eV where the total DOS stays below ``WINDOW_GAP_LEVEL`` of its
    peak ends the band; ``top + deepest`` (10 eV down) if there is none.
    """
    energies = np.asarray(dos.energies)
    total = _both_spins(dos)
    floor = top + deepest
    projected = dos.get_element_spd_dos(anion).get(OrbitalType.p)
    anion_p = _both_spins(projected) / dos.structure.composition[anion] if projected is not None else total * 0
    step = np.gradient(energies)
    empty = total < WINDOW_GAP_LEVEL * float(total.max())
    passed, start = 0.0, None  # anion-p states passed; highest energy of the current empty stretch
    for index in np.flatnonzero((energies <= top) & (energies >= floor))[::-1]:
        passed += anion_p[index] * step[index]
        if empty[index] and passed >= 1.0:
            start = energies[index] if start is None else start
            if start - energies[index] >= WINDOW_GAP_WIDTH:
                return float(start)
        else:
            start = None
    return float(floor)


def anion_sites(
    dos: CompleteDos, anion: str, near_range: tuple[float, float], magmoms: list[float] | None = None
) -> list[dict]:
    """Per anion site: TM and working-ion neighbours, near-E_F p weight (total and per spin), moment."""
    structure = dos.structure
    rows = []
    for index, site in enumerate(structure):
        if site.specie.symbol != anion:
            continue
        neighbours = structure.get_neighbors(site, max(TM_NEIGHBOUR, ION_NEIGHBOUR))
        tm = sum(1 for n in neighbours if n.specie.is_transition_metal and n.nn_distance <= TM_NEIGHBOUR)
        ions = sum(1 for n in neighbours if n.specie.symbol in WORKING_IONS and n.nn_distance <= ION_NEIGHBOUR)
        projected = dos.get_site_spd_dos(site).get(OrbitalType.p)
        weights = {spin: _integrate(projected, near_range, spin) for spin in projected.densities}
        rows.append(
            {
                "index": index,
                "tm_neighbours": tm,
                "ion_neighbours": ions,
                "near_ef": round(sum(weights.values()), 5),
                "near_ef_up": round(weights.get(Spin.up, 0.0), 5),
                "near_ef_down": None if Spin.down not in weights else round(weights[Spin.down], 5),
                "moment": None if magmoms is None else round(float(magmoms[index]), 4),
            }
        )
    if rows:
        usual = max(r["tm_neighbours"] for r in rows)  # the fully coordinated (bulk) count
        for row in rows:
            row["environment"] = "under-coordinated" if row["tm_neighbours"] < usual else "bulk-like"
    return rows


def _class_means(sites: list[dict]) -> dict:
    """Mean near-E_F weight and |moment| of under-coordinated and bulk-like anion sites."""
    out = {}
    for environment, suffix in (("under-coordinated", "undercoordinated"), ("bulk-like", "bulk_like")):
        chosen = [s for s in sites if s["environment"] == environment]
        out[f"near_ef_{suffix}"] = float(np.mean([s["near_ef"] for s in chosen])) if chosen else None
        moments = [abs(s["moment"]) for s in chosen if s["moment"] is not None]
        out[f"moment_{suffix}"] = float(np.mean(moments)) if moments else None
    return out


def _centre(dos: CompleteDos, orbital: OrbitalType, elements: list[str], energy_range, efermi: float) -> float:
    """Band centre of ``orbital`` on ``elements`` over an absolute energy range, relative to E_F."""
    erange = (energy_range[0] - efermi, energy_range[1] - efermi)  # get_band_center works relative to E_F
    return float(dos.get_band_center(band=orbital, elements=[Element(e) for e in elements], erange=erange))


def _integrate(projected, energy_range: tuple[float, float], spin=None) -> float:
    """States of a ``Dos`` (one spin, or both) over an absolute energy range."""
    energies = np.asarray(projected.energies)
    density = _both_spins(projected) if spin is None else np.asarray(projected.densities[spin])
    low, high = energy_range
    inside = (energies >= low) & (energies <= high)
    if inside.sum() < 2:
        # a coarse grid: interpolate so a 1 eV window is never empty
        grid = np.linspace(low, high, 50)
        return float(np.trapezoid(np.interp(grid, energies, density), grid))
    return float(np.trapezoid(density[inside], energies[inside]))


def projected_weight(
    dos: CompleteDos, element: str, orbital: OrbitalType, energy_range: tuple[float, float], spin=None
) -> float:
    """Integrated ``element`` ``orbital`` DOS (both spins, or ``spin``) over absolute energies, per atom of it."""
    _require_projections(dos)
    projected = dos.get_element_spd_dos(element).get(orbital)
    if projected is None:
        raise DescriptorError(f"the DOS has no {element} {orbital.name} projection")
    return _integrate(projected, energy_range, spin) / dos.structure.composition[element]


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


def _p_centre_ef(dos: CompleteDos, anion: str, deepest: float = CENTRE_WINDOW[0]) -> float:
    """Anion-p centre relative to E_F over the valence band below E_F: the level E_F shifts are measured from."""
    efermi = float(dos.efermi)
    low = valence_window_bottom(dos, efermi, deepest, anion)
    return _centre(dos, OrbitalType.p, [anion], (low, efermi), efermi)


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
