"""Band descriptors from real HSE VASP output (an oxygen-redox cathode with and without Li in the TM layer)."""

from pathlib import Path

import numpy as np
import pytest
from pymatgen.electronic_structure.core import OrbitalType
from pymatgen.electronic_structure.dos import CompleteDos
from pymatgen.io.vasp import Vasprun

from insertflow.analysis.descriptors import DescriptorError, band_descriptors, fermi_level_shift

REFERENCE = Path(__file__).resolve().parent / "data" / "vasp"
WITH_LI = REFERENCE / "Na3Li2Mn6O16_hse_vasprun.xml.gz"
WITHOUT_LI = REFERENCE / "Na3Mn8O16_hse_vasprun.xml.gz"


def descriptors(path: Path):
    run = Vasprun(str(path), parse_potcar_file=False)
    gap, cbm, vbm, _ = run.eigenvalue_band_properties
    return run, band_descriptors(run.complete_dos, band_edges=(gap, cbm, vbm))


@pytest.fixture(scope="module")
def both():
    return descriptors(WITH_LI), descriptors(WITHOUT_LI)


def test_li_in_the_tm_layer_lifts_o2p_towards_the_fermi_level(both):
    (_, li), (_, no_li) = both
    # under-coordinated O next to Li_TM: non-bonding O-2p just below E_F
    assert li.anion_p_centre > no_li.anion_p_centre + 0.5  # measured -3.51 vs -4.75 eV
    assert li.anion_p_near_ef > 1.5 * no_li.anion_p_near_ef
    assert li.tm_elements == ("Mn",) and li.tm_d_centre is not None


def o2p_by_hand(run):
    """Energies and the O p DOS summed over O sites, p orbitals and spins, read straight from vasprun's arrays."""
    dos = run.complete_dos
    energies = np.asarray(dos.energies)
    density = np.zeros_like(energies)
    for site, orbitals in dos.pdos.items():
        if site.specie.symbol != "O":
            continue
        for orbital, spins in orbitals.items():
            if orbital.orbital_type == OrbitalType.p:
                density += sum(np.asarray(v) for v in spins.values())
    return energies, density


def test_reference_energy_and_units(both):
    (run, li), _ = both
    assert li.reference == "E_F"  # 0.07 eV eigenvalue gap: below the 0.1 eV threshold
    assert li.reference_energy == pytest.approx(run.efermi)
    energies, density = o2p_by_hand(run)
    # band centre: the O-2p-weighted mean energy over [E_F - 10, E_F], on the vasprun grid
    inside = (energies >= run.efermi - 10.0) & (energies <= run.efermi)
    centre = np.trapezoid(energies[inside] * density[inside], energies[inside]) / np.trapezoid(
        density[inside], energies[inside]
    )
    assert li.anion_p_centre == pytest.approx(centre - run.efermi, abs=0.02)
    # non-bonding weight: O-2p states per O in [E_F - 1, E_F] (16 O in Na3Li2Mn6O16)
    near = (energies >= run.efermi - 1.0) & (energies <= run.efermi)
    weight = np.trapezoid(density[near], energies[near]) / 16
    assert li.anion_p_near_ef == pytest.approx(weight, rel=1e-6)


def test_fermi_level_shift_is_aligned_and_antisymmetric(both):
    (run_li, _), (run_no, _) = both
    shift = fermi_level_shift(run_li.complete_dos, run_no.complete_dos)
    assert shift == pytest.approx(-fermi_level_shift(run_no.complete_dos, run_li.complete_dos))
    assert fermi_level_shift(run_li.complete_dos, run_li.complete_dos) == pytest.approx(0.0)


def test_dos_without_projections_is_refused(both):
    (run, _), _ = both
    total_only = CompleteDos(run.complete_dos.structure, run.complete_dos, {})
    with pytest.raises(DescriptorError, match=r"no site projections.*LORBIT = 11"):
        band_descriptors(total_only)
    with pytest.raises(DescriptorError, match="no density of states"):
        band_descriptors(None)
    with pytest.raises(DescriptorError, match="has no F"):
        band_descriptors(run.complete_dos, anion="F")


def test_o_next_to_li_in_the_tm_layer_carries_the_non_bonding_o2p(both):
    # Seo et al., Nat. Chem. 2016: O with a Li-O-Li axis (fewer TM neighbours) puts O-2p states just below E_F
    (_, li), (_, no_li) = both
    under = [s for s in li.anion_sites if s["environment"] == "under-coordinated"]
    assert len(under) == 12 and {s["tm_neighbours"] for s in under} == {2}  # 4 O keep 3 Mn neighbours
    assert li.near_ef_undercoordinated > 4 * li.near_ef_bulk_like  # measured 0.076 vs 0.0087 states per O
    assert not [s for s in no_li.anion_sites if s["environment"] == "under-coordinated"]  # every O has 3 Mn
    site_sum = sum(s["near_ef"] for s in li.anion_sites) / len(li.anion_sites)
    assert site_sum == pytest.approx(li.anion_p_near_ef, rel=1e-3)  # the sites add up to the cell average


def test_spin_channels_add_up(both):
    (_, li), _ = both
    assert li.spin_polarized
    assert sum(li.anion_p_near_ef_by_spin.values()) == pytest.approx(li.anion_p_near_ef, rel=1e-6)
    # the hole states near E_F of this ferromagnetic cell are majority spin
    assert li.anion_p_near_ef_by_spin["up"] > 10 * li.anion_p_near_ef_by_spin["down"]


def synthetic_dos(o_bands: list[tuple[float, float]], efermi: float = 0.0, gap: float = 0.0):
    """A one-Co, one-O CompleteDos: O p as Gaussians (centre eV, states), Co d one band at -1 eV."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.electronic_structure.core import Orbital, Spin
    from pymatgen.electronic_structure.dos import Dos

    structure = Structure(Lattice.cubic(4.2), ["Co", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    energies = np.arange(-14.0, 6.0, 0.01)

    def band(centre, states, width=0.4):
        return states * np.exp(-0.5 * ((energies - centre) / width) ** 2) / (width * np.sqrt(2 * np.pi))

    o_p = sum(band(c, n) for c, n in o_bands) / 3
    co_d = band(-1.0, 7.0) / 5
    pdos = {
        structure[0]: {o: {Spin.up: co_d} for o in (Orbital.dxy, Orbital.dyz, Orbital.dz2, Orbital.dxz, Orbital.dx2)},
        structure[1]: {o: {Spin.up: o_p} for o in (Orbital.px, Orbital.py, Orbital.pz)},
    }
    total = Dos(efermi, energies, {Spin.up: 3 * o_p + 5 * co_d})
    return CompleteDos(structure, total, pdos), (gap, efermi + gap / 2, efermi - gap / 2)


def test_the_valence_window_stops_at_the_gap_above_polyanion_states():
    # O-2p valence band at -3 eV, P-O-like bonding states at -8.5 eV behind a 3 eV gap
    dos, _ = synthetic_dos([(-3.0, 4.0), (-8.5, 2.0)])
    found = band_descriptors(dos)
    assert -5.0 < found.window[0] < -3.9  # the window ends where the gap begins (-4.1 eV), not at -10 eV
    assert found.anion_p_centre == pytest.approx(-3.0, abs=0.1)  # measured over the whole window: -4.8
    connected = band_descriptors(synthetic_dos([(-3.0, 4.0), (-4.5, 2.0)])[0])
    assert -6.0 < connected.window[0] < -5.3  # one band: the window takes all of it, down to its bottom
    assert connected.anion_p_centre == pytest.approx((4 * -3.0 + 2 * -4.5) / 6, abs=0.05)


def test_e_f_referenced_values_do_not_jump_where_the_gap_closes():
    below, edges_below = synthetic_dos([(-3.0, 4.0)], gap=0.09)
    above, edges_above = synthetic_dos([(-3.0, 4.0)], gap=0.11)
    metal, insulator = band_descriptors(below, band_edges=edges_below), band_descriptors(above, band_edges=edges_above)
    assert (metal.reference, insulator.reference) == ("E_F", "VBM")
    assert insulator.anion_p_centre_ef == pytest.approx(metal.anion_p_centre_ef, abs=1e-6)
    assert insulator.anion_p_centre_vbm == pytest.approx(insulator.anion_p_centre_ef + 0.055, abs=1e-6)
    assert metal.anion_p_centre_vbm is None
