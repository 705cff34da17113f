"""VASP through atomate2's Materials Project makers, run under custodian by atomate2.

Settings come from a preset under ``inputs/vasp/`` (MP GGA+U: U values, MAGMOMs, DOS
flags), applied on top of pymatgen's ``MPRelaxSet`` / ``MPStaticSet`` so entries carry MP's
parameters and get MP2020 corrections: voltages compare with the Materials Project.
No POTCAR ships with insertflow: pymatgen finds yours through ``PMG_VASP_PSP_DIR``
(``pmg config --add PMG_VASP_PSP_DIR /path/to/potcars``); inputs can be generated and
checked without them (``input_set(..., potcar_spec=True)`` writes POTCAR.spec only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import yaml
from monty.json import MSONable
from pymatgen.core import Structure
from pymatgen.electronic_structure.dos import CompleteDos
from pymatgen.entries.compatibility import MaterialsProject2020Compatibility
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry
from pymatgen.io.vasp.outputs import Locpot, Outcar

from insertflow.calculators.base import (
    CalculationOutcome,
    NebOutcome,
    NebSettings,
    as_complete_dos,
    as_structure,
    check_energy,
    field_of,
    package_version,
    validate_task,
)
from insertflow.errors import CalculatorError
from insertflow.resources import shipped_dir


def load_preset(name: str) -> dict:
    """A VASP preset from ``inputs/vasp/<name>.yaml``."""
    path = shipped_dir("inputs") / "vasp" / f"{name}.yaml"
    if not path.exists():
        available = ", ".join(p.stem for p in sorted(path.parent.glob("*.yaml")))
        raise CalculatorError(f"unknown VASP preset '{name}'; available: {available}")
    return yaml.safe_load(path.read_text())


@dataclass
class VaspCalculator(MSONable):
    """VASP relax / static / DOS static with MP-compatible PBE+U (atomate2 + custodian)."""

    name: ClassVar[str] = "vasp"
    supports_fixed_normal: ClassVar[bool] = False  # a stacking-only cell constraint needs IOPTCELL (VASP >= 6.4)
    supports_charge: ClassVar[bool] = True  # NELECT from the structure's charge (pymatgen's use_structure_charge)

    preset: str = "mp_gga_u"
    user_incar_settings: dict = field(default_factory=dict)  # on top of the preset, e.g. {"EDIFF": 1e-6}
    dos: bool = True  # static tasks are DOS-quality (LORBIT 11, tetrahedron)
    charge: int = 0  # net charge of the cell (e): NELECT = valence electrons - charge
    relax_cell: bool = True  # False: ISIF 2, positions only (NEB endpoints share one cell)

    def __post_init__(self) -> None:
        self._preset = load_preset(self.preset)

    def incar_settings(self, structure: Structure, task: str) -> dict:
        """The INCAR overrides insertflow adds to MP's set for ``structure`` and ``task``."""
        elements = {el.symbol for el in structure.composition.elements}
        preset = self._preset
        magmom = {el: preset["magmom"].get(el, preset["magmom"]["default"]) for el in sorted(elements)}
        settings: dict[str, Any] = {"MAGMOM": magmom}
        if elements & {"O", "F"}:
            settings["LDAUU"] = {"O": {el: u for el, u in preset["hubbard_u"].items() if el in elements}}
            if "F" in elements:
                settings["LDAUU"]["F"] = settings["LDAUU"]["O"]
        if task == "static" and self.dos:
            settings.update(preset["dos_static"])
        if task == "relax" and not self.relax_cell:
            settings["ISIF"] = 2
        if self.charge or task == "static":
            settings["LVHAR"] = True  # LOCPOT = the electrostatic potential: Freysoldt's planar averages
        settings.update(self.user_incar_settings)
        return settings

    def input_set(self, structure: Structure, task: str, potcar_spec: bool = False):
        """Pymatgen's VaspInput (INCAR, KPOINTS, POSCAR, POTCAR or POTCAR.spec) for ``task``."""
        return self._generator(structure, task).get_input_set(self.charged(structure), potcar_spec=potcar_spec)

    def _generator(self, structure: Structure, task: str):
        from pymatgen.io.vasp.sets import MPRelaxSet, MPStaticSet

        cls = MPRelaxSet if task == "relax" else MPStaticSet
        return cls(
            force_gamma=True,
            auto_metal_kpoints=True,
            inherit_incar=False,
            user_incar_settings=self.incar_settings(structure, task),
            use_structure_charge=bool(self.charge),
        )

    def with_charge(self, charge: int) -> VaspCalculator:
        """These settings for a cell of net charge ``charge`` (NELECT changes; another content key)."""
        return replace(self, user_incar_settings=dict(self.user_incar_settings), charge=int(charge))

    def charged(self, structure: Structure) -> Structure:
        """``structure`` carrying this calculator's net charge (pymatgen's input sets read NELECT from it)."""
        return structure if not self.charge else Structure.from_sites(structure, charge=self.charge)

    def identity(self) -> dict:
        """atomate2/pymatgen versions, the preset's values and the overrides."""
        return {
            "name": self.name,
            "version": f"atomate2 {package_version('atomate2')}, pymatgen {package_version('pymatgen')}",
            "settings": {
                "preset": self._preset,
                "user_incar_settings": dict(sorted(self.user_incar_settings.items())),
                "dos": self.dos,
                "charge": self.charge,
                "relax_cell": self.relax_cell,
            },
        }

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """atomate2's ``MPGGARelaxMaker`` or ``MPGGAStaticMaker`` job (custodian runs VASP)."""
        validate_task(task)
        from atomate2.vasp.jobs.mp import MPGGARelaxMaker, MPGGAStaticMaker

        maker_cls = MPGGARelaxMaker if task == "relax" else MPGGAStaticMaker
        return maker_cls(input_set_generator=self._generator(structure, task)).make(self.charged(structure))

    def neb_incar(self, images: list[Structure], settings: NebSettings) -> dict:
        """INCAR of a climbing-image NEB on MP's GGA(+U) set, on the same footing as the endpoints' relaxations.

        atomate2's ``NebSetGenerator`` starts from its r2SCAN base set with PREC Normal; the endpoints
        here are MPRelaxSet GGA(+U), PREC Accurate relaxations, so the NEB takes MP's GGA(+U) set and
        PREC Accurate and the endpoint energies join its images on one scale. ``SPRING`` < 0 is the
        nudged spring (eV/A^2), ``EDIFFG`` < 0 the force criterion; IOPT 1 (VTST's LBFGS) as atomate2 sets.
        """
        incar = self.incar_settings(images[0], "relax")
        incar.update(
            {
                "ISIF": 2,
                "PREC": "Accurate",
                "SPRING": -settings.spring,
                "LCLIMB": settings.climb,
                "EDIFFG": -settings.fmax,
                "NSW": settings.steps,
            }
        )
        incar.update(self.user_incar_settings)
        return incar

    def make_neb_job(self, images: list[Structure], settings: NebSettings):
        """atomate2's VASP ``NebFromImagesMaker`` (custodian's NEB job) on MP's GGA(+U) set; VTST needed."""
        from atomate2.vasp.jobs.neb import NebFromImagesMaker
        from atomate2.vasp.sets.core import NebSetGenerator
        from pymatgen.io.vasp.sets import MPRelaxSet

        generator = NebSetGenerator(
            config_dict=MPRelaxSet()._config_dict,  # MP GGA(+U), as atomate2 builds its r2SCAN base set
            user_incar_settings=self.neb_incar(images, settings),
            climbing_image=settings.climb,
            force_gamma=True,
        )
        maker = NebFromImagesMaker(input_set_generator=generator, name=f"VASP NEB ({settings.images} images)")
        return maker.make([self.charged(image) for image in images])

    def neb_outcome(self, output: Any) -> NebOutcome:
        """The intermediate images and their energies (atomate2's ``NebIntermediateImagesDoc``).

        VASP does not recompute the endpoints of an NEB: ``interior_only`` tells the pipeline to add
        the endpoint relaxations' energies (the same INCAR but for IBRION/ISIF).
        """
        state = str(getattr(field_of(output, "state"), "value", field_of(output, "state")) or "")
        images = [as_structure(image) for image in field_of(output, "images") or []]
        energies = [float(e) for e in field_of(output, "energies") or []]
        if not energies or len(energies) != len(images):
            raise CalculatorError(f"the VASP NEB gave {len(energies)} energies for {len(images)} images")
        return NebOutcome(images=images, energies=energies, converged=state == "successful", interior_only=True)

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry (with MP2020 corrections) from atomate2's ``TaskDoc``; unsuccessful runs are refused."""
        state = str(field_of(output, "state") or "")
        structure = as_structure(field_of(output, "output", "structure") or field_of(output, "structure"))
        formula = structure.composition.reduced_formula
        if state and not state.endswith("successful"):
            raise CalculatorError(
                f"VASP run for {formula} ended in state '{state}' (electronic or ionic convergence failed); "
                "see its custodian.json and OUTCAR"
            )
        raw = field_of(output, "entry")
        entry = raw if isinstance(raw, ComputedEntry) else ComputedEntry.from_dict(raw)
        energy = check_energy(entry.uncorrected_energy, formula, "vasp")
        structured = ComputedStructureEntry(
            structure, energy, parameters=entry.parameters, data=dict(entry.data), entry_id=entry.entry_id
        )
        corrected = MaterialsProject2020Compatibility(check_potcar=False).process_entry(structured)
        if corrected is None:
            raise CalculatorError(
                f"MP2020 compatibility rejected the VASP entry of {formula}: its run type or POTCARs are not MP's"
            )
        magmoms = field_of(output, "output", "magmoms") or None
        dos, band_edges = vasp_electronic_structure(output)
        return CalculationOutcome(
            entry=corrected,
            converged=True,
            n_steps=len(field_of(output, "output", "ionic_steps") or []) or None,
            wall_time_s=field_of(output, "run_stats", "overall", "Elapsed time (sec)"),
            magmoms=None if magmoms is None else [float(m) for m in magmoms],
            dos=dos,
            band_edges=band_edges,
            site_potentials=vasp_site_potentials(output),
            planar_potential=vasp_planar_potential(output),
        )


def _run_folder_file(output: Any, name: str) -> Path | None:
    """``name`` (or .gz, .bz2) in the run folder (``dir_name``, "host:/path") when this machine can reach it."""
    dir_name = field_of(output, "dir_name")
    if not dir_name:
        return None
    folder = Path(str(dir_name).split(":", 1)[-1])
    found = [folder / f"{name}{ext}" for ext in ("", ".gz", ".bz2") if (folder / f"{name}{ext}").is_file()]
    return found[0] if found else None


def vasp_planar_potential(output: Any) -> dict[str, list[float]] | None:
    """LOCPOT (LVHAR: the electrostatic potential) averaged over planes along each cell vector, eV.

    Read from the run folder like the core potentials; the three averages are what Freysoldt's
    correction of a charged defect needs, so the 3-D grid itself is not kept.
    """
    path = _run_folder_file(output, "LOCPOT")
    if path is None:
        return None
    locpot = Locpot.from_file(str(path))
    return {str(axis): [float(v) for v in locpot.get_average_along_axis(axis)] for axis in range(3)}


def vasp_site_potentials(output: Any) -> list[float] | None:
    """VASP's "average (electrostatic) potential at core" (eV) of the last ionic step, per site.

    atomate2's TaskDoc does not keep these numbers, so they are read from the OUTCAR in the
    run folder (``dir_name``, "host:/path"), which is there when the record job runs on the
    cluster that ran VASP. None when the folder is not reachable: the E_F shift of a defect
    then falls back to the O-2p centre, and the document says so.
    """
    path = _run_folder_file(output, "OUTCAR")
    if path is None:
        return None
    steps = Outcar(str(path)).read_avg_core_poten()
    return [float(v) for v in steps[-1]] if steps and steps[-1] else None


def vasp_electronic_structure(output: Any) -> tuple[Any, tuple[float, float, float] | None]:
    """The CompleteDos atomate2 put in its data store (``vasp_objects["dos"]``) and the eigenvalue edges.

    jobflow loads the DOS from the data store when it resolves the job's output, so a DOS
    static run by atomate2 on HPC reaches the descriptors like GPAW's does.
    """
    objects = field_of(output, "vasp_objects") or {}
    raw = objects.get("dos") if isinstance(objects, dict) else None
    dos = as_complete_dos(raw) if isinstance(raw, (dict, CompleteDos)) else None
    last = (field_of(output, "calcs_reversed") or [None])[0]
    gap, cbm, vbm = (field_of(last, "output", key) for key in ("bandgap", "cbm", "vbm"))
    edges = None if None in (gap, cbm, vbm) else (float(gap), float(cbm), float(vbm))
    return dos, edges
