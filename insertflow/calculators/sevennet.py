"""SevenNet through atomate2's force-field makers (the checkpoints ship in the sevenn wheel).

Only the checkpoints inside the installed wheel are used: sevenn downloads the others on first
use, and nothing here is downloaded at run time. SevenNet-0 (``7net-0``) was trained on MPtrj, the
Materials Project GGA/GGA+U relaxations CHGNet was trained on; SevenNet-MF-0 (``7net-mf-0``) is
multi-fidelity, and its ``modal`` picks the level: ``PBE`` (MPtrj) or ``R2SCAN``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atomate2.forcefields.jobs import ForceFieldRelaxMaker, ForceFieldStaticMaker
from atomate2.forcefields.neb import ForceFieldNebFromImagesMaker
from monty.json import MSONable
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow.calculators.base import (
    CalculationOutcome,
    SinglePoint,
    as_structure,
    check_energy,
    field_of,
    package_version,
)
from insertflow.calculators.chgnet import relaxation_converged
from insertflow.calculators.forcefield import ForceFieldJobs, threads_from_env
from insertflow.errors import CalculatorError

#: The multi-fidelity checkpoints and the levels (modals) each one knows.
MODALS = {"7net-mf-0": ("PBE", "R2SCAN")}
INSTALL_HINT = "the sevennet calculator needs the ML extra: pip install torch==2.13.0 && pip install 'insertflow[ml]'"


#: Pretrained names and the sevenn constants holding their checkpoint paths.
CHECKPOINTS = {
    "7net-0": "SEVENNET_0_11Jul2024",
    "7net-0_22may2024": "SEVENNET_0_22May2024",
    "7net-l3i5": "SEVENNET_l3i5",
    "7net-mf-0": "SEVENNET_MF_0",
    "7net-mf-ompa": "SEVENNET_MF_ompa",
    "7net-omat": "SEVENNET_omat",
    "7net-omni": "SEVENNET_omni",
}


def shipped_models() -> list[str]:
    """SevenNet checkpoints inside the installed wheel: the ones usable without a download."""
    from sevenn import _const

    paths = {name: getattr(_const, constant, None) for name, constant in CHECKPOINTS.items()}
    return [name for name, path in paths.items() if path and os.path.exists(path)]


def sevennet_calculator(calculator_kwargs: dict, threads: int | None):
    """The ASE calculator of sevenn on ``threads`` torch threads."""
    import torch
    from sevenn.calculator import SevenNetCalculator

    if threads:
        torch.set_num_threads(threads)
    return SevenNetCalculator(**calculator_kwargs)


@dataclass
class _SevenNetModel:
    """Thread count for the torch model (fields shared by the makers)."""

    num_threads: int | None = 1

    def _get_calculator(self):
        return sevennet_calculator(self.calculator_kwargs, self.num_threads)


@dataclass
class SevenNetRelaxMaker(_SevenNetModel, ForceFieldRelaxMaker):
    """atomate2's force-field relaxation with a shipped SevenNet checkpoint."""

    name: str = "SevenNet relax"
    force_field_name: str = "SevenNet"


@dataclass
class SevenNetStaticMaker(_SevenNetModel, ForceFieldStaticMaker):
    """atomate2's force-field single point with a shipped SevenNet checkpoint."""

    name: str = "SevenNet static"
    force_field_name: str = "SevenNet"


@dataclass
class SevenNetNebMaker(_SevenNetModel, ForceFieldNebFromImagesMaker):
    """atomate2's force-field NEB (ASE's NEB on the images) with a shipped SevenNet checkpoint."""

    name: str = "SevenNet NEB"
    force_field_name: str = "SevenNet"


@dataclass
class SevenNetCalculator(ForceFieldJobs, MSONable):
    """SevenNet universal potential: Materials Project GGA/GGA+U energies (``7net-0``, ``7net-mf-0`` PBE).

    Its entries get MP2020 corrections (``corrected_entry``); CHGNet's do not (it learned them).
    """

    name: ClassVar[str] = "sevennet"
    supports_fixed_normal: ClassVar[bool] = True
    makers: ClassVar[tuple[type, type]] = (SevenNetStaticMaker, SevenNetRelaxMaker)
    neb_maker: ClassVar[type] = SevenNetNebMaker
    label: ClassVar[str] = "SevenNet"

    model: str = "7net-0"
    modal: str | None = None  # multi-fidelity checkpoints only: PBE (MPtrj) or R2SCAN
    fmax: float = 0.05
    steps: int = 500
    optimizer: str = "FIRE"
    relax_cell: bool = True
    threads: int | None = field(default_factory=threads_from_env)

    def __post_init__(self) -> None:
        if self.fmax <= 0 or self.steps < 1:
            raise CalculatorError(f"sevennet needs fmax > 0 and steps >= 1 (got fmax={self.fmax}, steps={self.steps})")
        try:
            import sevenn  # noqa: F401
        except ImportError as exc:
            raise CalculatorError(INSTALL_HINT) from exc
        shipped = shipped_models()
        if self.model not in shipped:
            raise CalculatorError(
                f"SevenNet model '{self.model}' is not shipped in the installed sevenn wheel; "
                f"shipped: {', '.join(shipped)}"
            )
        modals = MODALS.get(self.model)
        if modals is None and self.modal is not None:
            raise CalculatorError(f"SevenNet model '{self.model}' has one fidelity: leave modal unset")
        if modals is not None:
            if self.modal is None:
                self.modal = modals[0]
            if self.modal not in modals:
                raise CalculatorError(f"SevenNet model '{self.model}' knows modal {' or '.join(modals)}")

    def calculator_kwargs(self) -> dict:
        """What ``sevenn.calculator.SevenNetCalculator`` is built with (CPU, this checkpoint)."""
        kwargs: dict[str, Any] = {"model": self.model, "device": "cpu"}
        if self.modal is not None:
            kwargs["modal"] = self.modal
        return kwargs

    def identity(self) -> dict:
        """Package and model (and fidelity) plus the settings that change results (not threads)."""
        model = self.model if self.modal is None else f"{self.model} ({self.modal})"
        return {
            "name": self.name,
            "version": f"sevenn {package_version('sevenn')}, model {model}",
            "settings": {
                "fmax": self.fmax,
                "steps": self.steps,
                "optimizer": self.optimizer,
                "relax_cell": self.relax_cell,
            },
        }

    def model_fields(self) -> dict:
        """The fields every maker of this model takes."""
        return {"calculator_kwargs": self.calculator_kwargs(), "num_threads": self.threads}

    def single_points(self, structures: list[Structure]) -> list[SinglePoint]:
        """SevenNet total energies (eV) of unrelaxed structures; a rejected one ranks last with the reason."""
        from pymatgen.io.ase import AseAtomsAdaptor

        ase_calculator = sevennet_calculator(self.calculator_kwargs(), self.threads)
        points = []
        for structure in structures:
            try:
                atoms = AseAtomsAdaptor.get_atoms(structure)
                atoms.calc = ase_calculator
                energy = float(atoms.get_potential_energy())
            except Exception as exc:  # graph construction and the model raise many types
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                points.append(SinglePoint(float("nan"), f"{type(exc).__name__}: {message}".rstrip(": ")))
                continue
            points.append(
                SinglePoint(energy, None if math.isfinite(energy) else "SevenNet predicted a non-finite energy")
            )
        return points

    def corrected_entry(self, structure: Structure, energy: float) -> ComputedStructureEntry:
        """The entry on MP's MP2020 scale: SevenNet predicts the *uncorrected* MPtrj GGA/GGA+U mix.

        Measured here from its own Co, Li and O2: CoO -0.11 eV and Li2O -5.50 eV per formula unit
        (7net-0; 7net-mf-0 PBE: -0.15, -5.53) against -2.46 and -6.20 in experiment: the GGA+U oxide
        and the GGA metal are on different scales, and O2 is overbound, as in raw MP data. So each
        entry is labelled as MP labels it (GGA+U with MP's U where O or F meets a U element, GGA
        otherwise) and goes through ``MaterialsProject2020Compatibility``. The r2SCAN fidelity is
        left as it is (its own scale).
        """
        from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

        from insertflow.calculators.vasp import load_preset

        parameters: dict[str, Any] = {"calculator": self.identity(), "software": "sevennet"}
        if self.modal == "R2SCAN":
            return ComputedStructureEntry(structure, energy, parameters={**parameters, "run_type": "r2SCAN"})
        elements = {el.symbol for el in structure.composition.elements}
        u_values = load_preset("mp_gga_u")["hubbard_u"] if elements & {"O", "F"} else {}
        hubbards = {el: u for el, u in u_values.items() if el in elements}
        parameters.update({"run_type": "GGA+U" if hubbards else "GGA", "hubbards": hubbards})
        entry = ComputedStructureEntry(structure, energy, parameters=parameters)
        corrected = MaterialsProject2020Compatibility(check_potcar=False).process_entry(entry)
        if corrected is None:
            raise CalculatorError(f"MP2020 compatibility rejected the SevenNet entry of {structure.formula}")
        return corrected

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry (MP2020-corrected, see ``corrected_entry``) from atomate2's ``ForceFieldTaskDocument``."""
        structure = as_structure(field_of(output, "structure"))
        formula = structure.composition.reduced_formula
        energy = check_energy(field_of(output, "output", "energy"), formula, "sevennet")
        entry = self.corrected_entry(structure, energy)
        return CalculationOutcome(
            entry=entry,
            converged=relaxation_converged(output),
            n_steps=field_of(output, "output", "n_steps"),
            wall_time_s=field_of(output, "output", "elapsed_time"),
        )
