"""GFN1-xTB through tblite (PyPI): a real, fast quantum-mechanical electronic structure.

Not DFT: O-2p centres sit 1-1.5 eV off PBE, but gaps open and close and O-2p weight moves
the right way across x (measured against GPAW, CP2K and ABINIT; see docs/design.md). tblite
is Gamma-only, so every cell is first repeated until periodic images are ``min_length`` A
apart (3x3x3 for a 4-atom LiCoO2 cell). Static only: relax with CHGNet or VASP, then take
the electronic structure here ("relax with ML, electronic structure with xTB").

The projected DOS is Mulliken-projected per site and l channel, Gaussian-broadened, and
returned as a pymatgen ``CompleteDos`` (so ``insertflow.analysis.descriptors`` reads it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from jobflow import job
from monty.json import MSONable
from pydantic import BaseModel, ConfigDict
from pymatgen.core import Structure
from pymatgen.electronic_structure.core import Orbital, Spin
from pymatgen.electronic_structure.dos import CompleteDos, Dos
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow.calculators.base import (
    CalculationOutcome,
    as_complete_dos,
    as_structure,
    check_energy,
    field_of,
    package_version,
    validate_task,
)
from insertflow.errors import CalculatorError

HARTREE = 27.211386245988  # eV
BOHR = 0.529177210903  # A
#: m-components of each l, in pymatgen's (VASP's) order.
ORBITALS = {
    0: [Orbital.s],
    1: [Orbital.py, Orbital.pz, Orbital.px],
    2: [Orbital.dxy, Orbital.dyz, Orbital.dz2, Orbital.dxz, Orbital.dx2],
}
METHODS = ("GFN1-xTB", "GFN2-xTB")


class XTBTaskDoc(BaseModel):
    """Output of one tblite single point (energies in eV)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    structure: Structure  # the cell as given
    supercell: list[int]  # repetitions used for the Gamma-only calculation
    energy: float  # eV for ``structure`` (supercell energy divided by the repetitions)
    band_gap: float
    homo: float
    lumo: float
    efermi: float
    converged: bool
    elapsed_time: float
    dos: Any = None  # CompleteDos of the supercell (or its dict, as stores hand it back)


def supercell_for(structure: Structure, min_length: float) -> list[int]:
    """Repetitions along a, b, c so that each perpendicular width is at least ``min_length`` A."""
    matrix = structure.lattice.matrix
    volume = abs(np.linalg.det(matrix))
    widths = [volume / np.linalg.norm(np.cross(matrix[(i + 1) % 3], matrix[(i + 2) % 3])) for i in range(3)]
    return [max(1, int(np.ceil(min_length / w - 1e-9))) if min_length > 0 else 1 for w in widths]


def run_tblite(
    structure: Structure,
    method: str,
    min_length: float,
    smearing: float,
    electronic_temperature: float,
    max_iterations: int = 250,
) -> XTBTaskDoc:
    """Single point with projected DOS; raises ``CalculatorError`` when the SCF fails."""
    from tblite.exceptions import TBLiteRuntimeError
    from tblite.interface import Calculator

    start = time.perf_counter()
    repeat = supercell_for(structure, min_length)
    cell = structure * repeat
    numbers = np.array([site.specie.Z for site in cell])
    try:
        calc = Calculator(
            method,
            numbers,
            cell.cart_coords / BOHR,
            lattice=cell.lattice.matrix / BOHR,
            periodic=np.array([True, True, True]),
        )
        calc.set("verbosity", 0)
        calc.set("save-integrals", 1)
        calc.set("temperature", electronic_temperature * 3.166811563e-6)  # K -> Hartree
        calc.set("max-iter", max_iterations)
        result = calc.singlepoint()
    except TBLiteRuntimeError as exc:
        raise CalculatorError(
            f"tblite {method} failed for {structure.composition.reduced_formula}: {exc}"
            + ("; raise max_iterations or electronic_temperature" if "not converged" in str(exc) else "")
        ) from exc
    except ValueError as exc:  # unknown elements are refused by the parametrisation
        raise CalculatorError(f"tblite {method} cannot treat {structure.composition.reduced_formula}: {exc}") from exc
    energies = np.asarray(result.get("orbital-energies")) * HARTREE
    occupations = np.asarray(result.get("orbital-occupations"))
    homo, lumo, efermi = _band_edges(energies, occupations)
    dos = _projected_dos(cell, calc, result, energies, efermi, smearing)
    return XTBTaskDoc(
        structure=structure,
        supercell=repeat,
        energy=float(result.get("energy")) * HARTREE / int(np.prod(repeat)),
        band_gap=max(0.0, lumo - homo),
        homo=homo,
        lumo=lumo,
        efermi=efermi,
        converged=True,
        elapsed_time=time.perf_counter() - start,
        dos=dos,
    )


def _band_edges(energies: np.ndarray, occupations: np.ndarray) -> tuple[float, float, float]:
    """(HOMO, LUMO, E_F) in eV.

    Partly filled levels (a metal, or a donor electron spread over a degenerate band edge)
    put E_F at their occupation-weighted centre and close the gap.
    """
    partial = (occupations > 0.02) & (occupations < 1.98)
    if partial.any():
        weights = occupations[partial] * (2.0 - occupations[partial])
        efermi = float(np.average(energies[partial], weights=weights))
        return efermi, efermi, efermi
    filled, empty = energies[occupations >= 1.98], energies[occupations <= 0.02]
    homo = float(filled.max()) if len(filled) else float(energies.min())
    lumo = float(empty.min()) if len(empty) else float(energies.max())
    return homo, lumo, (homo + lumo) / 2


def _projected_dos(cell: Structure, calc, result, energies: np.ndarray, efermi: float, sigma: float) -> CompleteDos:
    coefficients = np.asarray(result.get("orbital-coefficients"))
    overlap = np.asarray(result.get("overlap-matrix"))
    weights = coefficients * (overlap @ coefficients)  # Mulliken: w[orbital, state], columns sum to 1
    shell_of = np.asarray(calc.get("orbital-map"))
    atom_of_shell = np.asarray(calc.get("shell-map"))
    l_of_shell = np.asarray(calc.get("angular-momenta"))
    grid = np.arange(energies.min() - 5.0, min(energies.max(), efermi + 20.0) + 5.0, 0.02)
    kernel = np.exp(-0.5 * ((grid[:, None] - energies[None, :]) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    per_orbital = 2.0 * kernel @ weights.T  # (grid, orbitals); 2 electrons per closed-shell state
    pdos: dict = {}
    m_counter: dict[int, int] = {}
    for orbital, shell in enumerate(shell_of):
        atom, l_value = int(atom_of_shell[shell]), int(l_of_shell[shell])
        m = m_counter.get(shell, 0)
        m_counter[shell] = m + 1
        key = ORBITALS[l_value][m]
        site_pdos = pdos.setdefault(cell[atom], {})
        site_pdos[key] = site_pdos.get(key, {Spin.up: np.zeros_like(grid)})
        site_pdos[key][Spin.up] = site_pdos[key][Spin.up] + per_orbital[:, orbital]
    total = Dos(efermi, grid, {Spin.up: per_orbital.sum(axis=1)})
    return CompleteDos(cell, total, pdos)


@job
def xtb_static(
    structure: Structure, method: str, min_length: float, smearing: float, temperature: float, max_iterations: int
) -> XTBTaskDoc:
    """A tblite single point with projected DOS, as a jobflow job."""
    return run_tblite(structure, method, min_length, smearing, temperature, max_iterations)


@dataclass
class XTBCalculator(MSONable):
    """GFN-xTB single points and projected DOS (tblite); ``static`` only."""

    name: ClassVar[str] = "xtb"
    supports_fixed_normal: ClassVar[bool] = False

    method: str = "GFN1-xTB"
    min_length: float = 8.0  # A between periodic images of the Gamma-only supercell
    smearing: float = 0.1  # eV, Gaussian broadening of the DOS
    electronic_temperature: float = 300.0  # K, Fermi smearing of the occupations
    max_iterations: int = 250  # SCF cycles before the calculation counts as failed

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalculatorError(f"xtb method '{self.method}' is not one of {', '.join(METHODS)}")
        try:
            import tblite  # noqa: F401
        except ImportError as exc:
            raise CalculatorError("the xtb calculator needs tblite: pip install tblite") from exc

    def identity(self) -> dict:
        """Tblite version and the settings that change results."""
        return {
            "name": self.name,
            "version": f"tblite {package_version('tblite')}",
            "settings": {
                "method": self.method,
                "min_length": self.min_length,
                "smearing": self.smearing,
                "electronic_temperature": self.electronic_temperature,
                "max_iterations": self.max_iterations,
            },
        }

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """A static job; relaxations belong to CHGNet or VASP."""
        validate_task(task)
        if task != "static":
            raise CalculatorError("the xtb calculator runs static single points only; relax with chgnet or vasp first")
        return xtb_static(
            structure, self.method, self.min_length, self.smearing, self.electronic_temperature, self.max_iterations
        )

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry and DOS from an ``XTBTaskDoc`` (object or dict)."""
        structure = as_structure(field_of(output, "structure"))
        energy = check_energy(field_of(output, "energy"), structure.composition.reduced_formula, "xtb")
        entry = ComputedStructureEntry(structure, energy, parameters={"calculator": self.identity()})
        dos = as_complete_dos(field_of(output, "dos"))
        return CalculationOutcome(
            entry=entry,
            converged=bool(field_of(output, "converged")),
            n_steps=1,
            wall_time_s=field_of(output, "elapsed_time"),
            dos=dos,
            band_edges=(field_of(output, "band_gap"), field_of(output, "lumo"), field_of(output, "homo")),
        )
