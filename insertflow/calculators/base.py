"""The one protocol every calculator implements; flows only talk to this."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from jobflow import Job
from monty.json import MSONable
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow.errors import CalculatorError

TASKS = ("relax", "static")


@dataclass
class CalculationOutcome:
    """What the analysis needs from one finished calculation."""

    entry: ComputedStructureEntry
    converged: bool
    n_steps: int | None = None
    wall_time_s: float | None = None
    magmoms: list[float] | None = None
    dos: Any = None  # pymatgen CompleteDos when the calculator computes one
    band_edges: tuple[float, float, float] | None = None  # (gap, cbm, vbm) in eV from eigenvalues
    #: electrostatic potential energy of an electron at each site (eV; GPAW's atomic potentials,
    #: VASP's "average (electrostatic) potential at core"): a defect's E_F is aligned on it
    site_potentials: list[float] | None = None
    #: the electrostatic potential (eV) averaged over planes along each cell vector ("0", "1", "2"):
    #: the input of the Freysoldt correction of a charged defect
    planar_potential: dict[str, list[float]] | None = None
    #: the total DOS, both spins summed (``analysis.fermi.compact_total_dos``): free carriers in the
    #: self-consistent Fermi level; filled from ``dos`` when the calculator gives only that
    total_dos: dict | None = None

    @property
    def structure(self) -> Structure:
        """The final (relaxed) structure."""
        return self.entry.structure


@runtime_checkable
class Calculator(Protocol):
    """A way to compute energies: makers for jobs, and how to read their outputs.

    Implementations are dataclasses (MSON-serialisable, so a job can carry them to a
    remote worker) with their settings as fields.
    """

    name: ClassVar[str]
    #: Whether ``make_job`` honours ``fixed_normal`` (relax with one stacking spacing fixed).
    supports_fixed_normal: ClassVar[bool]

    def identity(self) -> dict:
        """Stable ``{"name", "version", "settings"}``: part of every content key."""

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None) -> Job:
        """A jobflow Job (usually an atomate2 maker's) that runs ``task`` on ``structure``."""

    def outcome(self, output: Any) -> CalculationOutcome:
        """Turn the job's output into an entry (with corrections); raise ``CalculatorError`` if unusable."""


def supports_charge(calculator: Any) -> bool:
    """Whether ``calculator`` can compute a charged cell (it has electrons: GPAW, VASP; not ML or xTB here)."""
    return bool(getattr(calculator, "supports_charge", False))


def with_charge(calculator: Any, charge: int) -> Any:
    """``calculator`` for a cell of net charge ``charge``; one clear line when it cannot hold one."""
    if charge == 0:
        return calculator
    if not supports_charge(calculator):
        raise CalculatorError(
            f"{calculator.name} cannot compute charged defects (no electrons to add or remove); "
            "use gpaw or vasp (or an energy_calculator that is one), or leave defects.charge_states out"
        )
    return calculator.with_charge(charge)


@dataclass(frozen=True)
class NebSettings(MSONable):
    """How a climbing-image NEB runs: part of its content key.

    ``images`` counts the moving images between the two fixed endpoints; ``spring`` is ASE's
    spring constant (eV/A^2); ``fmax`` (eV/A) the NEB force at which the path counts as converged.
    """

    images: int = 5
    spring: float = 5.0
    climb: bool = True
    fmax: float = 0.05
    steps: int = 500
    method: str = "improvedtangent"  # ASE's tangent; the optimiser is FIRE (atomate2's AseNebInterface)

    def __post_init__(self) -> None:
        if self.images < 1 or self.spring <= 0 or self.fmax <= 0 or self.steps < 1:
            raise CalculatorError(
                f"NEB needs images >= 1, spring > 0, fmax > 0 and steps >= 1 (got images={self.images}, "
                f"spring={self.spring}, fmax={self.fmax}, steps={self.steps})"
            )


@dataclass
class NebOutcome:
    """What the analysis needs from a finished NEB: the path after the optimisation and its energies."""

    images: list[Structure]  # endpoints included
    energies: list[float]  # eV, total, one per image
    converged: bool
    n_steps: int | None = None
    wall_time_s: float | None = None
    interior_only: bool = False  # True: the moving images only (VASP); the pipeline adds the endpoints


def neb_result_outcome(output: Any) -> NebOutcome:
    """Images and energies of emmet's ``NebResult`` (object or dict, from atomate2's NEB makers)."""
    images = [as_structure(image) for image in field_of(output, "images")]
    energies = [float(e) for e in field_of(output, "energies")]
    state = field_of(output, "state")
    converged = str(getattr(state, "value", state)) == "successful"
    tags = field_of(output, "tags") or []
    elapsed = next((float(t.split()[2]) for t in tags if str(t).startswith("elapsed time")), None)
    return NebOutcome(images=images, energies=energies, converged=converged, wall_time_s=elapsed)


def supports_neb(calculator: Any) -> bool:
    """Whether ``calculator`` runs nudged-elastic-band paths (``make_neb_job`` and ``neb_outcome``)."""
    return callable(getattr(calculator, "make_neb_job", None))


def fixed_cell(calculator: Any) -> Any:
    """``calculator`` relaxing positions only (NEB endpoints share one cell); its identity says so."""
    if getattr(calculator, "relax_cell", False):
        from dataclasses import replace

        return replace(calculator, relax_cell=False)
    return calculator


@dataclass
class SinglePoint:
    """One cheap single-point energy: the energy, or NaN and why there is none."""

    energy: float  # eV, total; NaN when the model failed on the structure
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the energy is usable (finite)."""
        return math.isfinite(self.energy)


@runtime_checkable
class SinglePointScreener(Protocol):
    """A calculator that can also give many cheap single-point energies in this process.

    Used to re-rank candidate structures before the expensive relaxations (an ML
    potential, or the mock); file-based codes (VASP) do not implement it.
    """

    def single_points(self, structures: list[Structure]) -> list[SinglePoint]:
        """Total energies (eV) of unrelaxed ``structures``; NaN with the reason where the model fails."""


@functools.cache
def package_version(name: str) -> str:
    """Installed version of a package (cached: ``importlib.metadata`` reads files each call, ~2 ms)."""
    from importlib.metadata import version

    return version(name)


def field_of(doc: Any, *path: str) -> Any:
    """``doc.a.b`` or ``doc["a"]["b"]``, for outputs that arrive as objects or dicts."""
    value = doc
    for part in path:
        if value is None:
            return None
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def as_structure(value: Any) -> Structure:
    """A Structure from a Structure or its dict."""
    return value if isinstance(value, Structure) else Structure.from_dict(value)


def as_complete_dos(value: Any):
    """A pymatgen CompleteDos from a CompleteDos, its dict, or None."""
    from pymatgen.electronic_structure.dos import CompleteDos

    if value is None or isinstance(value, CompleteDos):
        return value
    return CompleteDos.from_dict(value)


def check_energy(energy: Any, formula: str, calculator: str) -> float:
    """Refuse missing, NaN or infinite energies with a message saying what to do."""
    if energy is None:
        raise CalculatorError(f"{calculator} returned no energy for {formula}")
    energy = float(energy)
    if not math.isfinite(energy):
        raise CalculatorError(
            f"{calculator} returned a non-finite energy ({energy}) for {formula}: the calculation diverged; "
            "check the structure (overlapping atoms, vacuum) and the calculator settings"
        )
    return energy


def validate_task(task: str) -> None:
    """Only the tasks every calculator supports."""
    if task not in TASKS:
        raise CalculatorError(f"unknown task '{task}'; calculators run one of {', '.join(TASKS)}")
