"""A deterministic, dependency-light calculator for tests and CI.

Energy model (eV), chosen so hulls, voltages and defect energies mean something:

* an elemental structure costs ``ELEMENTAL_ENERGY`` per atom (bcc Li: -1.909 eV/atom, the
  CHGNet 0.3.0 value, so mock voltages sit on a familiar scale);
* in a compound every atom costs a fixed site energy; a mobile ion's site energy is its
  elemental energy minus ``voltage`` (the intrinsic insertion voltage, V);
* mobile ions repel each other with a screened Coulomb pair term
  ``interaction * exp(-r / screening_length) / r`` (eV A / A) within ``cutoff``;
* cation polyhedra in contact (sharing an edge or a face: two or more anions within
  ``ANION_SHELL`` A of both cations) cost ``tm_tm_contact`` eV per TM-TM contact and
  ``tm_ion_contact`` eV per TM-ion contact (Pauling's third rule: shared edges and faces
  bring cations close). The count is topological, so a rattle of a few hundredths of an
  Angstrom cannot change it.

What the contact terms do to a TM that moves from its layer into an empty working-ion site
of a layered oxide (LiCoO2: checked by counting in ``tests/test_mock.py``): it loses one TM-TM
contact (the site it left) and gains the working ions of its new layer, about one more than it
had, so dE_mig = -tm_tm_contact + tm_ion_contact * (gained ion contacts). The default
``tm_tm_contact = -0.5`` binds TMs to their layer: migration is uphill by at least 0.5 eV at
every x (the LiCoO2-like, static case). A positive ``tm_tm_contact`` with a larger
``tm_ion_contact`` makes migration downhill where few ions are left and uphill where many are
(the Li-rich-like, coupled case). Every ion of a layered oxide touches six TMs, so
``tm_ion_contact`` lowers the voltage by about 6 x its value: raise ``voltage`` with it. The
mock knows no site identities: an isolated TM_Li and Li_TM differ only by contacts and
chemical potentials.

Repulsion makes orderings rank (spread-out ions are cheaper), makes the formation energy
convex in x (so intermediate compositions can sit on the hull) and lowers the average
voltage below ``voltage`` by the mean repulsion per ion. A "relaxation" returns the input
structure. Faults are injected by reduced formula (or ``"*"``): ``raise``, ``nan``,
``no_converge``, ``drift`` (opens a 3 A gap along the cell's c* axis unless the stacking
spacing is held fixed) and ``neb`` (an NEB of that formula does not converge).

An NEB path is analytic: along the reaction coordinate s in [0, 1] of the linear path,
E(s) = (1 - s) E_start + s E_end + B sin^2(pi s), a double well with its bump B set by what
moves most (``ion_barrier`` for a working ion, ``tm_barrier`` for a TM). The climbing image
lands on the exact maximum, so the barrier is known in closed form.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, get_args

import numpy as np
from jobflow import Maker, job
from monty.json import MSONable
from pydantic import BaseModel, ConfigDict
from pymatgen.core import Element, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow.calculators.base import (
    CalculationOutcome,
    NebOutcome,
    NebSettings,
    SinglePoint,
    as_structure,
    check_energy,
    field_of,
    validate_task,
)
from insertflow.errors import CalculatorError

MOCK_MODEL_VERSION = "2"
#: Mock band edges (eV, absolute): every mock cell is an insulator with its VBM at 0 and a 3 eV gap.
MOCK_VBM, MOCK_GAP = 0.0, 3.0
#: Points per axis of the mock's (flat, zero) planar electrostatic potential.
MOCK_PLANAR_POINTS = 24
#: Mock bands: sqrt(|E - edge|) densities, this many states/eV^1.5 per atom, 6 eV wide, on a 0.05 eV grid.
MOCK_BAND_WEIGHT, MOCK_BAND_WIDTH, MOCK_DOS_STEP = 0.5, 6.0, 0.05
MOBILE_IONS = ("Li", "Na", "K", "Mg", "Ca", "Zn")
ELEMENTAL_ENERGY = {"Li": -1.909, "Na": -1.312, "K": -1.110, "Mg": -1.600, "Ca": -1.990, "Zn": -1.260}
ANIONS = frozenset({"O", "F", "S", "Se", "Cl", "N"})
#: A cation and an anion closer than this (A) are bonded: the anions two cations both bond to are shared.
ANION_SHELL = 2.7
FaultMode = Literal["raise", "nan", "no_converge", "drift", "neb"]
#: Defaults of the mock's NEB bumps (eV): a working ion and a TM moving between sites.
MOCK_ION_BARRIER, MOCK_TM_BARRIER = 0.4, 1.2
FAULT_MODES = get_args(FaultMode)


def site_energy(symbol: str) -> float:
    """Deterministic per-atom energy of a framework element in a compound (eV)."""
    return -2.0 - 0.05 * Element(symbol).Z


def elemental_energy(symbol: str) -> float:
    """Per-atom energy of the pure element (eV)."""
    return ELEMENTAL_ENERGY.get(symbol, -1.0 - 0.03 * Element(symbol).Z)


def is_transition_metal(symbol: str) -> bool:
    """Whether ``symbol`` counts as a TM cation in the contact terms."""
    return Element(symbol).is_transition_metal


def polyhedral_contacts(structure: Structure) -> Counter:
    """Cation pairs whose polyhedra share an edge or a face, counted by kind.

    Returns counts keyed ``"TM-TM"``, ``"TM-ion"`` and ``"ion-ion"`` (ion: a mobile ion).
    Two cations are in contact when two or more anions lie within ``ANION_SHELL`` of both
    (periodic images told apart: the same anion seen through two images is not shared).
    """
    symbols = [site.specie.symbol for site in structure]
    if not ANIONS & set(symbols):
        return Counter()
    centres, neighbours, images, _ = structure.get_neighbor_list(ANION_SHELL)
    cations_of: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
    for centre, neighbour, image in zip(centres, neighbours, images, strict=True):
        if symbols[centre] in ANIONS and symbols[neighbour] not in ANIONS:
            cations_of.setdefault(int(centre), []).append((int(neighbour), tuple(int(v) for v in image)))
    shared: Counter = Counter()
    for bonded in cations_of.values():
        for (i, image_i), (j, image_j) in itertools.combinations(bonded, 2):
            offset = tuple(b - a for a, b in zip(image_i, image_j, strict=True))
            pair = (i, j, offset) if (i, offset) < (j, tuple(-v for v in offset)) else (j, i, tuple(-v for v in offset))
            shared[pair] += 1
    kinds: Counter = Counter()
    for (i, j, _), anions in shared.items():
        if anions < 2:
            continue  # corner sharing: no contact
        tms = is_transition_metal(symbols[i]) + is_transition_metal(symbols[j])
        ions = (symbols[i] in MOBILE_IONS) + (symbols[j] in MOBILE_IONS)
        if tms == 2:
            kinds["TM-TM"] += 1
        elif tms == 1 and ions == 1:
            kinds["TM-ion"] += 1
        elif ions == 2:
            kinds["ion-ion"] += 1
    return kinds


@dataclass
class MockModel(MSONable):
    """The mock energy model's parameters (see the module docstring); ``energy`` evaluates it."""

    voltage: float = 3.9
    interaction: float = 1.0
    screening_length: float = 3.0
    tm_tm_contact: float = -0.5
    tm_ion_contact: float = 0.0
    cutoff: float = 6.0

    def energy(self, structure: Structure) -> float:
        """Total energy (eV) of ``structure``."""
        symbols = [site.specie.symbol for site in structure]
        if len(set(symbols)) == 1:
            return elemental_energy(symbols[0]) * len(symbols)
        energy = sum(elemental_energy(s) - self.voltage if s in MOBILE_IONS else site_energy(s) for s in symbols)
        ion_indices = [i for i, s in enumerate(symbols) if s in MOBILE_IONS]
        if ion_indices and self.interaction:
            ions = Structure.from_sites([structure[i] for i in ion_indices])
            *_, distances = ions.get_neighbor_list(self.cutoff)
            pair = self.interaction * np.exp(-distances / self.screening_length) / distances
            energy += 0.5 * float(pair.sum())  # each pair is listed from both ends
        if self.tm_tm_contact or self.tm_ion_contact:
            contacts = polyhedral_contacts(structure)
            energy += self.tm_tm_contact * contacts["TM-TM"] + self.tm_ion_contact * contacts["TM-ion"]
        return float(energy)


def mock_energy(structure: Structure, **parameters: float) -> float:
    """Total energy (eV) of ``structure`` in the mock model with ``parameters`` (``MockModel`` fields)."""
    return MockModel(**parameters).energy(structure)


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
    model: MockModel = field(default_factory=MockModel)
    faults: dict[str, str] = field(default_factory=dict)
    fixed_normal: list[float] | None = None
    seconds: float = 0.0
    energy_shift: float = 0.0  # eV added to every energy (a charged cell)

    @job
    def make(self, structure: Structure) -> MockTaskDoc:
        """Compute the mock energy of ``structure``, applying any injected fault."""
        start = time.perf_counter()
        time.sleep(self.seconds)
        formula = structure.composition.reduced_formula
        fault = fault_for(self.faults, formula)
        if fault == "raise":
            raise CalculatorError(f"mock fault 'raise' injected for {formula}")
        final = structure.copy()
        if fault == "drift" and self.task == "relax" and self.fixed_normal is None:
            final = _open_gap_along_c(final, 3.0)
        energy = float("nan") if fault == "nan" else self.model.energy(final) + self.energy_shift
        converged = fault != "no_converge"
        return MockTaskDoc(
            task=self.task,
            structure=final,
            energy=energy,
            converged=converged,
            n_steps=1 if converged else 500,
            elapsed_time=time.perf_counter() - start,
        )


def fault_for(faults: dict[str, str], formula: str) -> str | None:
    """The fault injected for ``formula`` (its own, else the ``"*"`` one), if any."""
    return faults.get(formula, faults.get("*"))


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
    """The deterministic test calculator behind the common protocol (settings: ``MockModel`` fields, faults)."""

    name: ClassVar[str] = "mock"
    supports_fixed_normal: ClassVar[bool] = True
    supports_charge: ClassVar[bool] = True  # a bookkeeping model (see charge_level), for tests of the charged path

    voltage: float = 3.9
    interaction: float = 1.0
    screening_length: float = 3.0
    tm_tm_contact: float = -0.5
    tm_ion_contact: float = 0.0
    faults: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # how long each calculation takes (tests of concurrent workers); not in the key
    charge: int = 0  # net charge of the cell: E(q) = E(0) + q * charge_level (no electrons: bookkeeping only)
    charge_level: float = -2.0  # eV: puts a donor's (0/+) level 2 eV above the mock VBM, before correction
    ion_barrier: float = MOCK_ION_BARRIER  # eV: NEB bump when a working ion moves most
    tm_barrier: float = MOCK_TM_BARRIER  # eV: NEB bump when a TM moves most

    def __post_init__(self) -> None:
        unknown = {k: v for k, v in self.faults.items() if v not in FAULT_MODES}
        if unknown:
            raise CalculatorError(f"unknown mock fault(s) {unknown}; use one of {', '.join(FAULT_MODES)}")

    @property
    def model(self) -> MockModel:
        """The energy model these settings define."""
        return MockModel(
            voltage=self.voltage,
            interaction=self.interaction,
            screening_length=self.screening_length,
            tm_tm_contact=self.tm_tm_contact,
            tm_ion_contact=self.tm_ion_contact,
        )

    def identity(self) -> dict:
        """Name, model version and settings (faults included: a faulty run is a different run)."""
        model = self.model.as_dict()
        settings = {k: v for k, v in model.items() if not k.startswith("@") and k != "cutoff"}
        settings = {**settings, "faults": dict(sorted(self.faults.items()))}
        if self.charge:  # neutral keys stay what they were
            settings |= {"charge": self.charge, "charge_level": self.charge_level}
        if (self.ion_barrier, self.tm_barrier) != (MOCK_ION_BARRIER, MOCK_TM_BARRIER):  # likewise
            settings |= {"ion_barrier": self.ion_barrier, "tm_barrier": self.tm_barrier}
        return {"name": self.name, "version": MOCK_MODEL_VERSION, "settings": settings}

    def make_neb_job(self, images: list[Structure], settings: NebSettings):
        """The analytic double-well path through ``images`` (endpoints included)."""
        return MockNebMaker(
            model=self.model,
            settings=settings,
            ion_barrier=self.ion_barrier,
            tm_barrier=self.tm_barrier,
            faults=self.faults,
        ).make(images)

    def neb_outcome(self, output: Any) -> NebOutcome:
        """Images and energies of a ``MockNebDoc`` (object or dict)."""
        images = [as_structure(image) for image in field_of(output, "images")]
        return NebOutcome(
            images=images,
            energies=[float(e) for e in field_of(output, "energies")],
            converged=bool(field_of(output, "converged")),
            n_steps=field_of(output, "n_steps"),
            wall_time_s=field_of(output, "elapsed_time"),
        )

    def with_charge(self, charge: int) -> MockCalculator:
        """The same model for a cell of net charge ``charge``."""
        return replace(self, charge=int(charge))

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """A mock job; ``fixed_normal`` suppresses the ``drift`` fault, as a real constraint would."""
        validate_task(task)
        maker = MockMaker(
            name=f"mock {task}",
            task=task,
            model=self.model,
            faults=self.faults,
            fixed_normal=fixed_normal,
            seconds=self.seconds,
            energy_shift=self.charge * self.charge_level,
        )
        return maker.make(structure)

    def single_points(self, structures: list[Structure]) -> list[SinglePoint]:
        """Mock energies of unrelaxed structures (``raise``/``nan`` faults fail, with the fault as reason)."""
        model = self.model
        points = []
        for structure in structures:
            formula = structure.composition.reduced_formula
            fault = fault_for(self.faults, formula)
            if fault in ("raise", "nan"):
                points.append(SinglePoint(float("nan"), f"mock fault '{fault}' injected for {formula}"))
            else:
                points.append(SinglePoint(model.energy(structure)))
        return points

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry from a ``MockTaskDoc`` (object or dict)."""
        structure = as_structure(field_of(output, "structure"))
        energy = check_energy(field_of(output, "energy"), structure.composition.reduced_formula, "mock")
        entry = ComputedStructureEntry(structure, energy, parameters={"calculator": self.identity()})
        flat = [0.0] * MOCK_PLANAR_POINTS
        return CalculationOutcome(
            entry=entry,
            converged=bool(field_of(output, "converged")),
            n_steps=field_of(output, "n_steps"),
            wall_time_s=field_of(output, "elapsed_time"),
            band_edges=(MOCK_GAP, MOCK_VBM + MOCK_GAP, MOCK_VBM),
            planar_potential={str(axis): flat for axis in range(3)},
            total_dos=mock_total_dos(len(structure)),
        )


def mock_total_dos(n_atoms: int) -> dict:
    """Parabolic valence and conduction bands about the mock gap (a ``compact_total_dos``)."""
    energies = np.arange(MOCK_VBM - MOCK_BAND_WIDTH, MOCK_VBM + MOCK_GAP + MOCK_BAND_WIDTH + 1e-9, MOCK_DOS_STEP)
    cbm = MOCK_VBM + MOCK_GAP
    depth = np.where(energies <= MOCK_VBM, MOCK_VBM - energies, np.where(energies >= cbm, energies - cbm, 0.0))
    densities = n_atoms * MOCK_BAND_WEIGHT * np.sqrt(depth)
    return {
        "efermi": MOCK_VBM + MOCK_GAP / 2,
        "energies": np.round(energies, 5).tolist(),
        "densities": np.round(densities, 6).tolist(),
    }


class MockNebDoc(BaseModel):
    """Output of a mock NEB: the images (endpoints included) and their energies."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    images: list[Structure]
    energies: list[float]
    converged: bool
    n_steps: int
    elapsed_time: float


def mock_path_energy(s: np.ndarray | float, start: float, end: float, bump: float):
    """E(s) = (1 - s) E_start + s E_end + B sin^2(pi s) along the linear path (eV)."""
    return (1 - s) * start + s * end + bump * np.sin(np.pi * s) ** 2


@dataclass
class MockNebMaker(Maker):
    """An NEB whose energy along the path is ``mock_path_energy`` (milliseconds)."""

    name: str = "mock NEB"
    model: MockModel = field(default_factory=MockModel)
    settings: NebSettings = field(default_factory=NebSettings)
    ion_barrier: float = MOCK_ION_BARRIER
    tm_barrier: float = MOCK_TM_BARRIER
    faults: dict[str, str] = field(default_factory=dict)

    @job
    def make(self, images: list[Structure]) -> MockNebDoc:
        """Energies of the images on the analytic path; the climbing image on its maximum."""
        begin = time.perf_counter()
        start, end = images[0], images[-1]
        e_start, e_end = self.model.energy(start), self.model.energy(end)
        shifts = [start[i].distance(end[i]) for i in range(len(start))]
        mover = start[int(np.argmax(shifts))].specie.symbol
        bump = self.ion_barrier if mover in MOBILE_IONS else self.tm_barrier if is_transition_metal(mover) else 0.8
        s_values = np.linspace(0.0, 1.0, len(images))
        if self.settings.climb:  # the image nearest the maximum climbs onto it (its energy; its structure stays)
            fine = np.linspace(0.0, 1.0, 20001)
            top = float(fine[np.argmax(mock_path_energy(fine, e_start, e_end, bump))])
            if 0.0 < top < 1.0:
                nearest = 1 + int(np.argmin(np.abs(s_values[1:-1] - top)))
                s_values[nearest] = top
        path = [image.copy() for image in images]  # the path as given (a mock "relaxes" nothing)
        energies = [float(mock_path_energy(s, e_start, e_end, bump)) for s in s_values]
        fault = fault_for(self.faults, start.composition.reduced_formula)
        return MockNebDoc(
            images=path,
            energies=energies,
            converged=fault != "neb",
            n_steps=self.settings.steps if fault == "neb" else 1,
            elapsed_time=time.perf_counter() - begin,
        )
