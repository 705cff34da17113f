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
