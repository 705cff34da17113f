"""Self-consistent Fermi level: charge neutrality between charged defects and free carriers (pure).

At temperature T the Fermi level E_F (eV above the host's VBM) is where

    sum_defects sum_q q c_q(E_F) + p(E_F) - n(E_F) = 0,

with every term per cm^3. A defect with N sites per cm^3 is in one charge state at a time:
c_q = N Z_q / (1 + sum_q' Z_q'), Z_q = exp(-E_f(q, E_F) / kT) (spin and orientational
degeneracies taken as 1). The free electrons n and holes p come from the host's DOS through
pymatgen's ``FermiDos``, normalised to the DOS's own valence-electron count (FermiDos would
otherwise scale it to every electron of the composition, cores included), with the broadening
tails inside the eigenvalue gap removed.

pymatgen-analysis-defects' ``MultiFormationEnergyDiagram.solve_for_fermi_level`` adds defect
counts per *supercell* to carrier densities per *cm^3* (its DOS multiplicity is a ratio of
formula units, not a volume), which under-weights the defects by ~1e21 and moves E_F towards
midgap; so the balance is written here, in one unit, with pymatgen's carrier integrals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from insertflow.analysis.concentrations import BOLTZMANN

#: cm^3 per A^3.
CM3_PER_A3 = 1e-24


@dataclass(frozen=True)
class ChargedDefect:
    """One defect's formation-energy lines (q, E_f at the VBM, eV) and its sites per cm^3."""

    label: str
    lines: tuple[tuple[float, float], ...]
    sites_per_cm3: float


@dataclass
class FermiSolution:
    """E_F (eV above the VBM) at charge neutrality, and what is charged there (per cm^3)."""

    fermi_level: float
    temperature: float
    electrons: float
    holes: float
    defects: list[dict] = field(default_factory=list)  # label, charge, concentration (cm^-3)
    pinned: str | None = None  # "VBM" / "CBM": the neutral point lies beyond that band edge


def compact_total_dos(dos) -> dict:
    """The total DOS both spins summed (states/eV per cell), absolute energies, as a small dict."""
    densities = np.sum([np.asarray(d, dtype=float) for d in dos.densities.values()], axis=0)
    return {
        "efermi": float(dos.efermi),
        "energies": [round(float(e), 5) for e in dos.energies],
        "densities": [round(float(d), 6) for d in densities],
    }


def carrier_densities(total_dos: dict, volume: float, vbm: float, band_gap: float):
    """A function (E_F above the VBM, T) -> (electrons, holes) per cm^3, from a ``compact_total_dos``.

    ``volume`` is the DOS cell's, A^3; ``vbm`` the eigenvalue VBM (eV, absolute).
    """
    from pymatgen.core import Lattice, Structure
    from pymatgen.electronic_structure.core import Spin
    from pymatgen.electronic_structure.dos import Dos, FermiDos

    energies = np.asarray(total_dos["energies"], dtype=float)
    densities = np.asarray(total_dos["densities"], dtype=float)
    cbm = vbm + band_gap
    # A broadened DOS (GPAW's Gaussians) leaks states into the gap; they are an artefact of the
    # broadening, and FermiDos would take its band edges (and scissor) from them: zero them, so
    # the edges are the eigenvalue ones.
    densities = np.where((energies > vbm) & (energies < cbm), 0.0, densities)
    below = energies <= vbm + 0.5 * band_gap
    valence_electrons = float(np.trapezoid(densities[below], energies[below]))
    # FermiDos needs a structure only for its volume (and an electron count we pass ourselves)
    cube = Structure(Lattice.cubic(volume ** (1 / 3)), ["H"], [[0, 0, 0]])
    fermi_dos = FermiDos(
        Dos(total_dos["efermi"], energies, {Spin.up: densities}), structure=cube, nelecs=valence_electrons
    )

    def densities_at(fermi_level: float, temperature: float) -> tuple[float, float]:
        electrons, holes = fermi_dos.get_e_h_concs(vbm + fermi_level, temperature)
        return abs(float(electrons)), abs(float(holes))

    return densities_at


def charge_state_populations(defect: ChargedDefect, fermi_level: float, temperature: float) -> dict[int, float]:
    """Concentration (cm^-3) of each charge state: the sites shared among the states."""
    kt = BOLTZMANN * temperature
    exponents = {int(q): -(b + q * fermi_level) / kt for q, b in defect.lines}
    top = max(exponents.values())
    if top < -700:  # dilute: 1 + sum Z is 1 to machine precision, and e^-top would overflow
        return {q: defect.sites_per_cm3 * math.exp(x) for q, x in exponents.items()}
    # N Z_q / (1 + sum Z), with the largest exponent factored out so nothing overflows
    weights = {q: math.exp(x - top) for q, x in exponents.items()}
    denominator = (math.exp(-top) if top < 700 else 0.0) + sum(weights.values())
    return {q: defect.sites_per_cm3 * w / denominator for q, w in weights.items()}


def net_charge(defects: Sequence[ChargedDefect], carriers, fermi_level: float, temperature: float) -> float:
    """Net charge density (e per cm^3) at ``fermi_level``: defects plus holes minus electrons."""
    electrons, holes = carriers(fermi_level, temperature)
    total = holes - electrons
    for defect in defects:
        total += sum(q * c for q, c in charge_state_populations(defect, fermi_level, temperature).items())
    return total


def self_consistent_fermi_level(
    defects: Sequence[ChargedDefect], carriers, band_gap: float, temperature: float, margin: float = 1.0
) -> FermiSolution:
    """E_F where the net charge vanishes (brentq: it falls monotonically with E_F).

    The root is sought from ``margin`` eV below the VBM to ``margin`` above the CBM (free
    carriers always balance there); a root outside the gap is reported as pinned at that edge.
    """
    from scipy.optimize import brentq

    if temperature <= 0:
        raise ValueError(f"temperature must be positive (got {temperature} K)")
    low, high = -margin, float(band_gap) + margin
    fermi_level = brentq(lambda ef: net_charge(defects, carriers, ef, temperature), low, high, xtol=1e-5)
    pinned = "VBM" if fermi_level < 0 else "CBM" if fermi_level > band_gap else None
    electrons, holes = carriers(fermi_level, temperature)
    charged = [
        {"label": defect.label, "charge": q, "concentration": c}
        for defect in defects
        for q, c in charge_state_populations(defect, fermi_level, temperature).items()
    ]
    return FermiSolution(fermi_level, temperature, electrons, holes, charged, pinned)
