"""Self-consistent Fermi level: analytic cases a defect physicist can solve by hand."""

import math

import numpy as np
import pytest

from insertflow.analysis.concentrations import BOLTZMANN
from insertflow.analysis.fermi import (
    ChargedDefect,
    carrier_densities,
    charge_state_populations,
    self_consistent_fermi_level,
)
from insertflow.calculators.mock import MOCK_GAP, MOCK_VBM, mock_total_dos


def no_carriers(fermi_level, temperature):
    return 0.0, 0.0


def test_a_compensated_donor_and_acceptor_meet_halfway_between_their_lines():
    # D+ at 2.0 + E_F and A- at 3.0 - E_F on equal sites, no free carriers: neutrality is
    # exp(-(2 + E_F)/kT) = exp(-(3 - E_F)/kT), so E_F = (3 - 2)/2 = 0.5 eV, at any T
    donor = ChargedDefect("D", ((1.0, 2.0), (0.0, 5.0)), 1e21)
    acceptor = ChargedDefect("A", ((-1.0, 3.0), (0.0, 5.0)), 1e21)
    for temperature in (300.0, 1000.0):
        solution = self_consistent_fermi_level([donor, acceptor], no_carriers, band_gap=3.0, temperature=temperature)
        assert solution.fermi_level == pytest.approx(0.5, abs=1e-3)
        assert solution.pinned is None
    # twice the acceptor sites: E_F moves down by kT ln(2) / 2 (18 meV at 600 K)
    doubled = ChargedDefect("A", acceptor.lines, 2e21)
    solution = self_consistent_fermi_level([donor, doubled], no_carriers, band_gap=3.0, temperature=600.0)
    assert solution.fermi_level == pytest.approx(0.5 - BOLTZMANN * 600 * math.log(2) / 2, abs=1e-3)


def test_charge_states_share_their_sites():
    # a defect with every state far below zero fills its sites once, not once per state
    defect = ChargedDefect("V", ((0.0, -5.0), (-1.0, -5.0)), 1e22)
    populations = charge_state_populations(defect, fermi_level=0.0, temperature=1000.0)
    assert sum(populations.values()) == pytest.approx(1e22, rel=1e-9)
    assert populations[0] == pytest.approx(populations[-1], rel=1e-9)
    # dilute: Boltzmann, exp(-E/kT) per site
    dilute = ChargedDefect("V", ((0.0, 1.0),), 1e22)
    expected = 1e22 * math.exp(-1.0 / (BOLTZMANN * 1000.0))
    assert charge_state_populations(dilute, 0.0, 1000.0)[0] == pytest.approx(expected, rel=1e-4)  # 1 + e^-E/kT


def parabolic_bands(vbm, gap, amplitude, step=0.002, width=3.0, tail=0.0):
    """sqrt(|E - edge|) bands (states/eV per cell); ``tail``: a Gaussian-broadening leak into the gap."""
    energies = np.arange(vbm - width, vbm + gap + width, step)
    cbm = vbm + gap
    depth = np.where(energies <= vbm, vbm - energies, np.where(energies >= cbm, energies - cbm, 0.0))
    densities = amplitude * np.sqrt(depth)
    if tail:
        gap_region = (energies > vbm) & (energies < cbm)
        leak = np.exp(-(((energies - vbm) / tail) ** 2)) + np.exp(-(((energies - cbm) / tail) ** 2))
        densities = np.where(gap_region, amplitude * leak, densities)
    return {"efermi": vbm + gap / 2, "energies": energies.tolist(), "densities": densities.tolist()}


def test_free_carriers_of_parabolic_bands_match_the_analytic_integral():
    # g(E) = A sqrt(E - E_c) per cell gives n = (A / V) (sqrt(pi) / 2) (kT)^1.5 exp(-(E_c - E_F) / kT):
    # the DOS is integrated as the cell's own states, not rescaled to the composition's electrons,
    # and the Gaussian tails a broadened DOS leaks into the gap are not counted as carriers
    vbm, gap, amplitude, volume, temperature = 4.2, 2.5, 8.0, 160.0, 1000.0
    kt = BOLTZMANN * temperature
    fermi_level = 1.7  # 0.8 eV below the CBM
    prefactor = amplitude / (volume * 1e-24) * math.sqrt(math.pi) / 2 * kt**1.5
    for tail in (0.0, 0.1):
        carriers = carrier_densities(parabolic_bands(vbm, gap, amplitude, tail=tail), volume, vbm, gap)
        electrons, holes = carriers(fermi_level, temperature)
        assert electrons == pytest.approx(prefactor * math.exp(-(gap - fermi_level) / kt), rel=0.03)
        assert holes == pytest.approx(prefactor * math.exp(-fermi_level / kt), rel=0.03)


def test_an_intrinsic_host_sits_at_midgap_and_a_donor_lifts_it():
    carriers = carrier_densities(mock_total_dos(16), 160.0, MOCK_VBM, MOCK_GAP)
    intrinsic = self_consistent_fermi_level([], carriers, MOCK_GAP, 1000.0)
    assert intrinsic.fermi_level == pytest.approx(MOCK_GAP / 2, abs=0.01)  # mirror-image bands
    assert intrinsic.electrons == pytest.approx(intrinsic.holes, rel=1e-3)
    # a donor at -0.5 eV (at E_F = VBM) on 1e22 sites: E_F rises until its electrons are free
    donor = ChargedDefect("D", ((1.0, -0.5), (0.0, 4.0)), 1e22)
    doped = self_consistent_fermi_level([donor], carriers, MOCK_GAP, 1000.0)
    assert doped.fermi_level > intrinsic.fermi_level + 0.3
    ionised = sum(d["concentration"] for d in doped.defects if d["charge"] == 1)
    assert doped.electrons == pytest.approx(ionised + doped.holes, rel=1e-3)  # the balance it solved


def test_a_root_beyond_a_band_edge_is_reported_as_pinned():
    donor = ChargedDefect("D", ((1.0, -4.0), (0.0, 4.0)), 1e22)  # negative at every E_F in the gap
    carriers = carrier_densities(mock_total_dos(16), 160.0, MOCK_VBM, MOCK_GAP)
    solution = self_consistent_fermi_level([donor], carriers, MOCK_GAP, 1000.0)
    assert solution.fermi_level > MOCK_GAP and solution.pinned == "CBM"
    assert np.isfinite(solution.electrons)
