"""A deterministic, dependency-light calculator for tests and CI.

Energy model (eV), chosen so hulls and voltages mean something:

* an elemental structure costs ``ELEMENTAL_ENERGY`` per atom (bcc Li: -1.909 eV/atom, the
  CHGNet 0.3.0 value, so mock voltages sit on a familiar scale);
* in a compound every atom costs a fixed site energy; a mobile ion's site energy is its
  elemental energy minus ``voltage`` (the intrinsic insertion voltage, V);
* mobile ions repel each other with a screened Coulomb pair term
  ``interaction * exp(-r / screening_length) / r`` (eV A / A) within ``cutoff``;
* optionally (``tm_interaction``, default 0) transition-metal cations repel each other and the
  mobile ions with the same screened form, so moving a TM between layers costs or gains
  energy depending on how many ions are left around it (coupled defects in tests).

Repulsion makes orderings rank (spread-out ions are cheaper), makes the formation energy
convex in x (so intermediate compositions can sit on the hull) and lowers the average
voltage below ``voltage`` by the mean repulsion per ion. A "relaxation" returns the input
structure. Faults are injected by reduced formula (or ``"*"``): ``raise``, ``nan``,
``no_converge`` and ``drift`` (opens a 3 A gap along the cell's c* axis unless the
stacking spacing is held fixed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args

import numpy as np
from jobflow import Maker, job
from monty.json import MSONable
from pydantic import BaseModel, ConfigDict
from pymatgen.core import Element, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow.calculators.base import CalculationOutcome, as_structure, check_energy, field_of, validate_task
from insertflow.errors import CalculatorError

MOCK_MODEL_VERSION = "1"
MOBILE_IONS = ("Li", "Na", "K", "Mg", "Ca", "Zn")
ELEMENTAL_ENERGY = {"Li": -1.909, "Na": -1.312, "K": -1.110, "Mg": -1.600, "Ca": -1.990, "Zn": -1.260}
FaultMode = Literal["raise", "nan", "no_converge", "drift"]
FAULT_MODES = get_args(FaultMode)


def site_energy(symbol: str) -> float:
    """Deterministic per-atom energy of a framework element in a compound (eV)."""
    return -2.0 - 0.05 * Element(symbol).Z


def elemental_energy(symbol: str) -> float:
    """Per-atom energy of the pure element (eV)."""
    return ELEMENTAL_ENERGY.get(symbol, -1.0 - 0.03 * Element(symbol).Z)


def mock_energy(
    structure: Structure,
    voltage: float = 3.9,
    interaction: float = 1.0,
    screening_length: float = 3.0,
    cutoff: float = 6.0,
    tm_interaction: float = 0.0,
) -> float:
    """Total energy (eV) of ``structure`` in the mock model."""
    symbols = [site.specie.symbol for site in structure]
    if len(set(symbols)) == 1:
        return elemental_energy(symbols[0]) * len(symbols)
    energy = sum(elemental_energy(s) - voltage if s in MOBILE_IONS else site_energy(s) for s in symbols)
    ion_indices = [i for i, s in enumerate(symbols) if s in MOBILE_IONS]
    if len(ion_indices) > 0 and interaction:
        ions = Structure.from_sites([structure[i] for i in ion_indices])
        *_, distances = ions.get_neighbor_list(cutoff)
        pair = interaction * np.exp(-distances / screening_length) / distances
        energy += 0.5 * float(pair.sum())  # each pair is listed from both ends
    if tm_interaction:
        energy += _tm_repulsion(structure, symbols, tm_interaction, screening_length, cutoff)
    return float(energy)


def _tm_repulsion(structure: Structure, symbols: list[str], strength: float, length: float, cutoff: float) -> float:
    """Screened repulsion of every TM-TM and TM-ion pair (each pair once)."""
    tm = {i for i, s in enumerate(symbols) if Element(s).is_transition_metal}
    charged = [i for i, s in enumerate(symbols) if i in tm or s in MOBILE_IONS]
    if not tm or len(charged) < 2:
        return 0.0
    sub = Structure.from_sites([structure[i] for i in charged])
    centres, neighbours, _, distances = sub.get_neighbor_list(cutoff)
    is_tm = np.array([charged[i] in tm for i in range(len(charged))])
    involved = is_tm[centres] | is_tm[neighbours]
    pair = strength * np.exp(-distances[involved] / length) / distances[involved]
    return 0.5 * float(pair.sum())


class MockTaskDoc(BaseModel):
    """Output of a mock calculation (shaped like a tiny atomate2 task document)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: str
    structure: Structure
    energy: float
    converged: bool
    n_steps: int
    elapsed_time: float


@dataclass
class MockMaker(Maker):
    """Run a mock relaxation or static calculation (milliseconds per structure)."""

    name: str = "mock calculation"
    task: str = "relax"
    voltage: float = 3.9
    interaction: float = 1.0
    screening_length: float = 3.0
    tm_interaction: float = 0.0
    faults: dict[str, str] = field(default_factory=dict)
    fixed_normal: list[float] | None = None

    @job
    def make(self, structure: Structure) -> MockTaskDoc:
        """Compute the mock energy of ``structure``, applying any injected fault."""
        start = time.perf_counter()
        formula = structure.composition.reduced_formula
        fault = self.faults.get(formula, self.faults.get("*"))
        if fault == "raise":
            raise CalculatorError(f"mock fault 'raise' injected for {formula}")
        final = structure.copy()
        if fault == "drift" and self.task == "relax" and self.fixed_normal is None:
            final = _open_gap_along_c(final, 3.0)
        energy = mock_energy(
            final, self.voltage, self.interaction, self.screening_length, tm_interaction=self.tm_interaction
        )
        if fault == "nan":
            energy = float("nan")
        converged = fault != "no_converge"
        return MockTaskDoc(
            task=self.task,
            structure=final,
            energy=energy,
            converged=converged,
            n_steps=1 if converged else 500,
            elapsed_time=time.perf_counter() - start,
        )


def _open_gap_along_c(structure: Structure, width: float) -> Structure:
    """Widen the widest empty slab along c* by ``width`` A, as exfoliating layers would."""
    matrix = structure.lattice.matrix.copy()
    normal = np.cross(matrix[0], matrix[1])
    normal /= np.linalg.norm(normal)
    heights = structure.frac_coords[:, 2] % 1.0
    order = np.sort(heights)
    cyclic = np.diff(np.append(order, order[0] + 1.0))
    widest = int(np.argmax(cyclic))
    cut = (order[widest] + cyclic[widest] / 2) % 1.0
    shifted = (heights - cut) % 1.0  # 0 just above the cut, 1 just below it
    cart = structure.lattice.get_cartesian_coords(np.column_stack([structure.frac_coords[:, :2], cut + shifted]))
    matrix[2] = matrix[2] + width * normal
    return Structure(Lattice(matrix), structure.species, cart, coords_are_cartesian=True)


@dataclass
class MockCalculator(MSONable):
    """The deterministic test calculator behind the common protocol."""

    name: ClassVar[str] = "mock"
    supports_fixed_normal: ClassVar[bool] = True

    voltage: float = 3.9
    interaction: float = 1.0
    screening_length: float = 3.0
    tm_interaction: float = 0.0
    faults: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {k: v for k, v in self.faults.items() if v not in FAULT_MODES}
        if unknown:
            raise CalculatorError(f"unknown mock fault(s) {unknown}; use one of {', '.join(FAULT_MODES)}")

    def identity(self) -> dict:
        """Name, model version and settings (faults included: a faulty run is a different run)."""
        return {
            "name": self.name,
            "version": MOCK_MODEL_VERSION,
            "settings": {
                "voltage": self.voltage,
                "interaction": self.interaction,
                "screening_length": self.screening_length,
                "tm_interaction": self.tm_interaction,
                "faults": dict(sorted(self.faults.items())),
            },
        }

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """A mock job; ``fixed_normal`` suppresses the ``drift`` fault, as a real constraint would."""
        validate_task(task)
        maker = MockMaker(
            name=f"mock {task}",
            task=task,
            voltage=self.voltage,
            interaction=self.interaction,
            screening_length=self.screening_length,
            tm_interaction=self.tm_interaction,
            faults=self.faults,
            fixed_normal=fixed_normal,
        )
        return maker.make(structure)

    def single_point_energies(self, structures: list[Structure]) -> list[float]:
        """Mock energies of unrelaxed structures (``raise``/``nan`` faults give NaN)."""
        energies = []
        for structure in structures:
            fault = self.faults.get(structure.composition.reduced_formula, self.faults.get("*"))
            broken = fault in ("raise", "nan")
            energies.append(
                float("nan")
                if broken
                else mock_energy(
                    structure, self.voltage, self.interaction, self.screening_length, tm_interaction=self.tm_interaction
                )
            )
        return energies

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry from a ``MockTaskDoc`` (object or dict)."""
        structure = as_structure(field_of(output, "structure"))
        energy = check_energy(field_of(output, "energy"), structure.composition.reduced_formula, "mock")
        entry = ComputedStructureEntry(structure, energy, parameters={"calculator": self.identity()})
        return CalculationOutcome(
            entry=entry,
            converged=bool(field_of(output, "converged")),
            n_steps=field_of(output, "n_steps"),
            wall_time_s=field_of(output, "elapsed_time"),
        )
