"""GPAW: plane-wave (or LCAO) PAW DFT+U behind the calculator protocol.

GPAW and its PAW setups (the ``gpaw-data`` wheel) install from PyPI; the build needs
libxc and OpenBLAS from the system (``apt-get install libxc-dev libopenblas-dev``) and a
C++ compiler (``CC=g++ pip install 'insertflow[dft]'``).

U values and starting moments come from the preset the VASP calculator uses
(``inputs/vasp/mp_gga_u.yaml``: MP's U on TM d, only where O or F is present, and MP's
MAGMOM table, by oxidation state where it has one), so both codes run the same
Hamiltonian family. GPAW's setups and projectors are not VASP's: with the same U the
energies differ, and MP2020 corrections (fitted to VASP) are not applied. Energies are
compared only with other GPAW energies of the same settings.

A relaxation is an ASE optimizer on GPAW forces, with a Frechet cell filter on GPAW's
plane-wave stress (LCAO has no stress: positions only). Under MPI (``mpi_command``) the
job runs ``insertflow.calculators.gpaw_worker`` with that command and reads its output.
"""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes as ALL_CHANGES
from atomate2.ase.neb import AseNebFromImagesMaker
from jobflow import job
from monty.json import MSONable, jsanitize
from pydantic import BaseModel, ConfigDict, field_validator
from pymatgen.core import Structure
from pymatgen.electronic_structure.core import Orbital, Spin
from pymatgen.electronic_structure.dos import CompleteDos, Dos
from pymatgen.entries.computed_entries import ComputedStructureEntry
from pymatgen.io.ase import AseAtomsAdaptor

from insertflow.analysis.charged import planar_averages
from insertflow.analysis.layers import rotate_normal_to_z
from insertflow.calculators.base import (
    CalculationOutcome,
    NebOutcome,
    NebSettings,
    as_complete_dos,
    as_structure,
    check_energy,
    field_of,
    neb_result_outcome,
    package_version,
    validate_task,
)
from insertflow.calculators.vasp import load_preset
from insertflow.errors import CalculatorError

INSTALL_HINT = (
    "the gpaw calculator needs GPAW: apt-get install libxc-dev libopenblas-dev, "
    "then CC=g++ pip install 'insertflow[dft]'"
)
#: m-components of each l in GPAW's real spherical harmonics, which are VASP's (pymatgen's) order.
ORBITALS = {
    0: [Orbital.s],
    1: [Orbital.py, Orbital.pz, Orbital.px],
    2: [Orbital.dxy, Orbital.dyz, Orbital.dz2, Orbital.dxz, Orbital.dx2],
}
#: Lowest plane-wave cutoff (eV) at which GPAW's stress can drive a cell relaxation. Measured on
#: LiCoO2 (PBE, 3x3x2 k): the analytic pressure is -0.68 eV/A^3 at 350 eV, where the energy-volume
#: curve gives +0.08; at 600 eV it is 0.0004 (the Pulay stress of the O setup has gone). A cell
#: relaxation below this raised the LiCoO2 energy by 0.8 eV in ten BFGS steps.
CELL_RELAX_MIN_ECUT = 600.0
#: Energy step (eV) of the projected DOS grid.
DOS_STEP = 0.05
#: Strain mask (Voigt xx yy zz yz xz xy) that keeps the spacing of planes normal to z.
FIXED_Z_SPACING_MASK = [1, 1, 0, 0, 0, 1]


class GPAWTaskDoc(BaseModel):
    """One GPAW static or relaxation (eV, A, muB)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    task: str
    structure: Structure  # final structure (relaxed, or the input for a static)
    energy: float | None = None  # eV, total
    forces: list[list[float]] | None = None
    stress: list[float] | None = None  # eV/A^3, Voigt; plane-wave mode only
    magmoms: list[float] | None = None  # per site, from GPAW's local moments
    total_magmom: float | None = None
    efermi: float | None = None
    vbm: float | None = None
    cbm: float | None = None
    band_gap: float | None = None
    kpts: list[int] = []
    spin_polarized: bool = False
    n_steps: int = 0  # ionic steps (relaxation); 1 for a static
    converged: bool = False
    failure: str | None = None  # why there is no usable result (SCF did not converge, ...)
    elapsed_time: float = 0.0
    dos: Any = None  # CompleteDos (statics) or its dict
    site_potentials: list[float] | None = None  # eV, electrostatic potential energy of an electron at each atom
    planar_potential: dict[str, list[float]] | None = None  # eV, the electrostatic potential averaged over planes

    @field_validator("structure", mode="before")
    @classmethod
    def _structure_from_dict(cls, value):
        return as_structure(value)

    def to_json(self) -> str:
        """JSON of every field (structures and the DOS as pymatgen dicts)."""
        return json.dumps(jsanitize(self.model_dump(), strict=True, enum_values=True))


@functools.cache
def _setup_files() -> frozenset[str]:
    """File names of every PAW setup GPAW can find."""
    import gpaw

    names: set[str] = set()
    for folder in gpaw.setup_paths:
        if Path(folder).is_dir():
            names |= {p.name for p in Path(folder).iterdir()}
    return frozenset(names)


@dataclass
class GPAWCalculator(MSONable):
    """GPAW PBE(+U) statics and relaxations, spin-polarised where a TM carries a moment."""

    name: ClassVar[str] = "gpaw"
    supports_fixed_normal: ClassVar[bool] = True
    supports_charge: ClassVar[bool] = True  # a charged cell with a compensating background

    mode: Literal["pw", "lcao"] = "pw"
    ecut: float = 450.0  # eV, plane-wave cutoff (pw mode)
    basis: str = "dzp"  # LCAO basis (lcao mode: supercells)
    xc: str = "PBE"
    preset: str = "mp_gga_u"  # U values and starting moments, shared with the VASP calculator
    hubbard_u: dict[str, float] | None = None  # eV on TM d, replacing the preset's ({} = plain GGA)
    spin: Literal["auto", "on", "off"] = "auto"  # auto: spin-polarised when a seeded moment is non-zero
    kpoint_density: float = 3.5  # k-points per A^-1 along each reciprocal vector (ASE's convention)
    smearing: float = 0.05  # eV, Fermi-Dirac width
    scf_max_iterations: int = 300
    scf_energy_tolerance: float = 5e-5  # eV per valence electron between the last SCF steps
    fmax: float = 0.05  # eV/A (relaxation)
    steps: int = 100  # ionic steps (relaxation)
    relax_cell: bool = True  # pw mode only; LCAO relaxes positions
    dos_width: float = 0.1  # eV, Gaussian broadening of the projected DOS
    charge: int = 0  # net charge of the cell (e): +1 removes one electron
    mpi_command: str | None = None  # e.g. "mpiexec -n 32": runs GPAW under MPI (not part of the key)
    grid_spacing: float | None = None  # A, real-space grid (GPAW's h); None: GPAW's default (0.2 A)

    def __post_init__(self) -> None:
        if self.ecut <= 0 or self.kpoint_density <= 0 or self.smearing < 0 or self.fmax <= 0 or self.steps < 1:
            raise CalculatorError("gpaw needs ecut > 0, kpoint_density > 0, smearing >= 0, fmax > 0 and steps >= 1")
        try:
            import gpaw  # noqa: F401
        except ImportError as exc:
            raise CalculatorError(INSTALL_HINT) from exc
        self._preset = load_preset(self.preset)

    # --- what goes into the content key -------------------------------------------------

    def identity(self) -> dict:
        """GPAW and setup versions, and every setting that changes a result."""
        settings = {k: v for k, v in asdict(self).items() if k != "mpi_command"}
        if self.grid_spacing is None:  # keys from before the setting existed stay valid
            settings.pop("grid_spacing")
        settings["hubbard_u"] = self.u_values()
        settings["magmom"] = self._preset["magmom"]
        return {
            "name": self.name,
            "version": f"gpaw {package_version('gpaw')}, gpaw-data {package_version('gpaw-data')}",
            "settings": dict(sorted(settings.items())),
        }

    def u_values(self) -> dict[str, float]:
        """U (eV) on the d states of each TM, before the O/F condition."""
        return dict(sorted((self.hubbard_u if self.hubbard_u is not None else self._preset["hubbard_u"]).items()))

    def unsupported_elements(self, elements: set[str]) -> list[str]:
        """Elements with no PAW setup for ``xc`` in GPAW's setup paths (gpaw-data)."""
        files = _setup_files()
        return sorted(el for el in elements if not any(f.startswith(f"{el}.{self.xc}") for f in files))

    # --- inputs ---------------------------------------------------------------------------

    def setups(self, structure: Structure) -> dict[str, str]:
        """GPAW ``setups``: ``{"Co": ":d,3.32"}`` for each TM with a U, when O or F is present."""
        elements = {el.symbol for el in structure.composition.elements}
        if not elements & {"O", "F"}:
            return {}
        return {el: f":d,{u}" for el, u in self.u_values().items() if el in elements and u}

    def initial_magmoms(self, structure: Structure) -> list[float]:
        """Starting moments: MP's MAGMOM by oxidation state (Co3+ 0.6, Co4+ 1, Mn4+ 3, ...), else by element.

        Oxidation states are guessed per composition (an average per element); only
        transition metals and rare earths start with a moment, capped at the high-spin count of
        unpaired d electrons of that oxidation state (Fe2+ 4, Ni3+ 3). MP's 5 muB for Fe and Ni is
        only a VASP starting value: GPAW builds its first density from atomic occupations and
        stops with "Bad basis for Fe" when the atom cannot hold the moment asked for.
        """
        table = self._preset["magmom"]
        plain = structure.copy()
        plain.remove_oxidation_states()
        try:
            guesses = plain.composition.oxi_state_guesses(max_sites=-50)
        except ValueError:
            guesses = []
        average = guesses[0] if guesses else {}
        moments = []
        for site in plain:
            element = site.specie
            if not (element.is_transition_metal or element.is_rare_earth):
                moments.append(0.0)
                continue
            state = average.get(element.symbol)
            species = None if state is None else f"{element.symbol}{round(state)}+"
            moment = float(table.get(species, table.get(element.symbol, table["default"])))
            if state is not None and element.is_transition_metal:
                moment = min(moment, float(_high_spin_unpaired(element, state)))
            moments.append(moment)
        return moments

    def kpoint_mesh(self, structure: Structure) -> list[int]:
        """Gamma-centred mesh with ``kpoint_density`` points per A^-1 (at least 1 per direction)."""
        from ase.calculators.calculator import kptdensity2monkhorstpack

        atoms = AseAtomsAdaptor.get_atoms(structure)
        return [int(n) for n in kptdensity2monkhorstpack(atoms, kptdensity=self.kpoint_density, even=False)]

    def gpaw_parameters(self, structure: Structure) -> dict:
        """Keyword arguments of ``gpaw.GPAW`` for ``structure`` (no output file)."""
        moments = self.initial_magmoms(structure)
        spin = self.spin == "on" or (self.spin == "auto" and any(abs(m) > 0 for m in moments))
        mode = {"name": "pw", "ecut": self.ecut} if self.mode == "pw" else {"name": "lcao"}
        parameters = {
            "mode": mode,
            "xc": self.xc,
            "kpts": {"size": self.kpoint_mesh(structure), "gamma": True},
            "occupations": {"name": "fermi-dirac", "width": self.smearing},
            "convergence": {"energy": self.scf_energy_tolerance},
            "maxiter": self.scf_max_iterations,
            "spinpol": spin,
            "setups": self.setups(structure) or "paw",
        }
        if self.charge:
            parameters["charge"] = self.charge
        if self.mode == "lcao":
            parameters["basis"] = self.basis
        if self.grid_spacing is not None:
            parameters["h"] = self.grid_spacing
        return parameters

    # --- protocol -------------------------------------------------------------------------

    def with_charge(self, charge: int) -> GPAWCalculator:
        """These settings for a cell of net charge ``charge`` (another content key)."""
        return replace(self, charge=int(charge))

    def check_relaxation(self) -> None:
        """Refuse a cell relaxation at a cutoff where GPAW's stress is mostly Pulay stress."""
        if self.mode == "pw" and self.relax_cell and self.ecut < CELL_RELAX_MIN_ECUT:
            raise CalculatorError(
                f"gpaw relaxes the cell from its plane-wave stress, which needs ecut >= {CELL_RELAX_MIN_ECUT:g} eV "
                f"(got {self.ecut:g}: the Pulay stress of O setups dominates); raise ecut, set relax_cell: false, "
                "or relax with chgnet and take energies from gpaw (energy_calculator)"
            )

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """A GPAW static (energy, forces, stress, moments, DOS) or relaxation job."""
        validate_task(task)
        if task == "relax":
            self.check_relaxation()
        return gpaw_job(structure, self, task, fixed_normal)

    def make_neb_job(self, images: list[Structure], settings: NebSettings):
        """atomate2's ASE NEB (climbing image, FIRE) with GPAW on every image, in this process.

        Every image gets its own GPAW (reusing its density from step to step), with the
        parameters and starting moments a static of the first image would get. LCAO suits
        supercells; ``mpi_command`` is not used here (run the whole job under MPI instead).
        """
        first = images[0]
        moments = self.initial_magmoms(first)
        seeded = [image.copy(site_properties={"magmom": moments}) for image in images]
        # no point-group symmetry: the images break it, and GPAW stops when atoms leave it
        parameters = {**self.gpaw_parameters(first), "symmetry": "off"}
        maker = GpawNebMaker(
            gpaw_parameters=jsanitize(parameters),
            steps=settings.steps,
            neb_kwargs={"k": settings.spring, "climb": settings.climb, "method": settings.method},
            relax_kwargs={"fmax": settings.fmax},
        )
        maker.name = f"GPAW NEB ({settings.images} images)"
        return maker.make(seeded)

    def neb_outcome(self, output: Any) -> NebOutcome:
        """Images and energies of emmet's ``NebResult``; converged from its state."""
        return neb_result_outcome(output)

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry, moments, DOS and band edges from a ``GPAWTaskDoc``; failures keep GPAW's reason."""
        structure = as_structure(field_of(output, "structure"))
        formula = structure.composition.reduced_formula
        failure = field_of(output, "failure")
        if failure:
            raise CalculatorError(f"gpaw {field_of(output, 'task')} of {formula}: {failure}")
        energy = check_energy(field_of(output, "energy"), formula, "gpaw")
        entry = ComputedStructureEntry(structure, energy, parameters={"calculator": self.identity()})
        entry.data["kpts"] = field_of(output, "kpts")
        dos = as_complete_dos(field_of(output, "dos"))
        gap = field_of(output, "band_gap")
        magmoms = field_of(output, "magmoms")
        potentials = field_of(output, "site_potentials")
        planar = field_of(output, "planar_potential")
        return CalculationOutcome(
            entry=entry,
            converged=bool(field_of(output, "converged")),
            n_steps=field_of(output, "n_steps"),
            wall_time_s=field_of(output, "elapsed_time"),
            magmoms=None if magmoms is None else [float(m) for m in magmoms],
            dos=dos,
            band_edges=None if gap is None else (gap, field_of(output, "cbm"), field_of(output, "vbm")),
            site_potentials=None if potentials is None else [float(v) for v in potentials],
            planar_potential=None if planar is None else {str(k): [float(x) for x in v] for k, v in planar.items()},
        )


class GpawOnFirstUse(AseCalculator):
    """An ASE calculator that builds its GPAW on the first energy asked of it.

    atomate2's ``AseNebInterface`` gives each image ``deepcopy(calculator)``; a GPAW object cannot
    be deep-copied (its logger raises), so the copies are made of this shell, each of which then
    builds, and keeps, its own GPAW (its density carries over from step to step). Energy, forces
    and moments only: no stress (LCAO has none, and the NEB holds the cell).
    """

    implemented_properties = ("energy", "free_energy", "forces", "magmoms")

    def __init__(self, gpaw_parameters: dict):
        super().__init__()
        self.gpaw_parameters = gpaw_parameters
        self._gpaw = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=ALL_CHANGES):
        """Energy, forces and moments of ``atoms`` from this image's GPAW (built on the first call)."""
        from gpaw import GPAW

        super().calculate(atoms, properties, system_changes)
        if self._gpaw is None:
            self._gpaw = GPAW(**self.gpaw_parameters, txt=None)
        energy = float(self._gpaw.get_potential_energy(self.atoms))
        spin = self.gpaw_parameters.get("spinpol")
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": self._gpaw.get_forces(self.atoms),
            "magmoms": self._gpaw.get_magnetic_moments(self.atoms) if spin else np.zeros(len(self.atoms)),
        }


@dataclass
class GpawNebMaker(AseNebFromImagesMaker):
    """atomate2's ASE NEB maker with GPAW (``GpawOnFirstUse``) on every image."""

    name: str = "GPAW NEB"
    gpaw_parameters: dict = field(default_factory=dict)

    def _get_calculator(self):
        return GpawOnFirstUse(self.gpaw_parameters)


def _high_spin_unpaired(element, oxidation_state: float) -> int:
    """Unpaired d electrons of a high-spin ion (d^n: n up to 5, then 10 - n)."""
    group = element.group  # 3d: Sc 3 ... Zn 12 = d electrons of the neutral atom + 2
    electrons = max(0, min(10, round(group - oxidation_state)))
    return electrons if electrons <= 5 else 10 - electrons


@job
def gpaw_job(
    structure: Structure, calculator: GPAWCalculator, task: str, fixed_normal: list[float] | None = None
) -> GPAWTaskDoc:
    """Run GPAW in this process, or under ``calculator.mpi_command`` in a worker."""
    if calculator.mpi_command:
        return _run_under_mpi(structure, calculator, task, fixed_normal)
    return run_gpaw(structure, calculator, task, fixed_normal)


def run_gpaw(
    structure: Structure,
    calculator: GPAWCalculator,
    task: str,
    fixed_normal: list[float] | None = None,
    txt: str | Path | None = "gpaw.txt",
) -> GPAWTaskDoc:
    """One static or relaxation; an SCF that does not converge gives a doc with ``failure`` set."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from gpaw import GPAW, KohnShamConvergenceError

    start = time.perf_counter()
    if task == "relax":
        calculator.check_relaxation()
    if task == "relax" and fixed_normal is not None:
        structure = rotate_normal_to_z(structure, fixed_normal)  # so the mask can hold the zz strain
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.set_initial_magnetic_moments(calculator.initial_magmoms(structure))
    parameters = calculator.gpaw_parameters(structure)
    atoms.calc = GPAW(**parameters, txt=None if txt is None else str(txt))
    doc = {"task": task, "kpts": parameters["kpts"]["size"], "spin_polarized": parameters["spinpol"]}
    try:
        steps, converged = 1, True
        if task == "relax":
            target = atoms
            if calculator.mode == "pw" and calculator.relax_cell:
                mask = FIXED_Z_SPACING_MASK if fixed_normal is not None else None
                target = FrechetCellFilter(atoms, mask=mask)
            optimizer = BFGS(target, logfile=None)
            converged = bool(optimizer.run(fmax=calculator.fmax, steps=calculator.steps))
            steps = int(optimizer.nsteps)
        energy = float(atoms.get_potential_energy())
    except KohnShamConvergenceError:
        return GPAWTaskDoc(
            **doc,
            structure=structure,
            failure=(
                f"the SCF did not converge in {calculator.scf_max_iterations} iterations; raise "
                "scf_max_iterations or smearing, or start from other moments"
            ),
            elapsed_time=time.perf_counter() - start,
        )
    gpaw_calc = atoms.calc
    final = AseAtomsAdaptor.get_structure(atoms)
    if "magmom" in final.site_properties:
        final.remove_site_property("magmom")
    efermi = float(gpaw_calc.get_fermi_level())
    vbm, cbm = _band_edges(gpaw_calc, efermi)
    stress = atoms.get_stress().tolist() if calculator.mode == "pw" else None
    magmoms = atoms.get_magnetic_moments().tolist() if parameters["spinpol"] else [0.0] * len(atoms)
    dos = projected_dos(gpaw_calc, final, efermi, calculator.dos_width) if task == "static" else None
    # the L=0 part of the Hartree potential around each atom (eV): what a defect's E_F is aligned on
    potentials = gpaw_calc.get_atomic_electrostatic_potentials().tolist() if task == "static" else None
    # planes along each cell vector: what Freysoldt's correction of a charged cell aligns
    planar = planar_averages(gpaw_calc.get_electrostatic_potential())
    return GPAWTaskDoc(
        **doc,
        structure=final,
        energy=energy,
        forces=atoms.get_forces().tolist(),
        stress=stress,
        magmoms=magmoms,
        total_magmom=float(gpaw_calc.get_magnetic_moment()) if parameters["spinpol"] else 0.0,
        efermi=efermi,
        vbm=vbm,
        cbm=cbm,
        band_gap=max(0.0, cbm - vbm),
        n_steps=steps,
        converged=converged,
        elapsed_time=time.perf_counter() - start,
        dos=dos,
        site_potentials=potentials,
        planar_potential={str(axis): values.tolist() for axis, values in planar.items()},
    )


def _band_edges(calc, efermi: float) -> tuple[float, float]:
    """(VBM, CBM) over every k-point and spin: the highest level below E_F and the lowest above."""
    levels = np.concatenate(
        [
            calc.get_eigenvalues(kpt=k, spin=s)
            for k in range(len(calc.get_ibz_k_points()))
            for s in range(calc.get_number_of_spins())
        ]
    )
    below, above = levels[levels <= efermi], levels[levels > efermi]
    vbm = float(below.max()) if len(below) else efermi
    cbm = float(above.min()) if len(above) else efermi
    return vbm, cbm


def projected_dos(calc, structure: Structure, efermi: float, width: float) -> CompleteDos:
    """Spin-resolved site- and m-projected DOS (PAW projections) as a pymatgen ``CompleteDos``.

    Energies are absolute (eV, E_F = ``efermi``); a non-spin-polarised calculation gives
    one channel holding both spins, as VASP's ISPIN = 1 does.
    """
    from gpaw.dos import DOSCalculator

    dos_calc = DOSCalculator.from_calculator(calc, shift_fermi_level=False)
    low, high = float(dos_calc.eig_skn.min()), float(dos_calc.eig_skn.max())
    # 0.05 eV steps sample the 0.1 eV Gaussians; 8 eV above E_F covers what the descriptors read.
    # (A 0.02 eV grid to E_F + 18 eV made the stored DOS 3x larger: 1.2 s of jsanitize per static.)
    energies = np.arange(low - 3.0, min(high, efermi + 8.0) + DOS_STEP, DOS_STEP)
    spins = [Spin.up, Spin.down] if dos_calc.nspins == 2 else [Spin.up]
    # GPAW's spin index per channel; None sums both spins into the one channel of a spin-paired run
    channel = {Spin.up: 0, Spin.down: 1} if len(spins) == 2 else {Spin.up: None}
    total = {spin: dos_calc.raw_dos(energies, spin=channel[spin], width=width) for spin in spins}
    pdos: dict = {}
    for index, site in enumerate(structure):
        setup = dos_calc.setups[index]
        for l_value in sorted({int(value) for value in setup.l_j} & set(ORBITALS)):
            for m, orbital in enumerate(ORBITALS[l_value]):
                pdos.setdefault(site, {})[orbital] = {
                    spin: dos_calc.raw_pdos(energies, a=index, l=l_value, m=m, spin=channel[spin], width=width)
                    for spin in spins
                }
    return CompleteDos(structure, Dos(efermi, energies, total), pdos)


def _run_under_mpi(structure: Structure, calculator: GPAWCalculator, task: str, fixed_normal) -> GPAWTaskDoc:
    """``mpi_command python -m insertflow.calculators.gpaw_worker`` in the job folder; its doc back."""
    import sys

    folder = Path(tempfile.mkdtemp(prefix="gpaw-", dir=Path.cwd()))
    request = {
        "structure": structure.as_dict(),
        "calculator": calculator.as_dict(),
        "task": task,
        "fixed_normal": fixed_normal,
    }
    (folder / "request.json").write_text(json.dumps(request))
    command = [*shlex.split(calculator.mpi_command), sys.executable, "-m", "insertflow.calculators.gpaw_worker"]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    result = folder / "result.json"
    if done.returncode != 0 or not result.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CalculatorError(f"GPAW under '{calculator.mpi_command}' exited with {done.returncode}: {tail[0]}")
    return GPAWTaskDoc.model_validate(json.loads(result.read_text()))
