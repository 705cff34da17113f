"""CHGNet through atomate2's force-field makers (weights ship in the chgnet wheel)."""

from __future__ import annotations

import contextlib
import functools
import io
import math
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
from insertflow.calculators.forcefield import FIXED_Z_SPACING_MASK, ForceFieldJobs, threads_from_env
from insertflow.errors import CalculatorError

__all__ = ["FIXED_Z_SPACING_MASK", "CHGNetCalculator", "relaxation_converged"]

#: CHGNet's atom embedding covers H (1) to Pu (94).
CHGNET_MAX_Z = 94


@dataclass
class _CHGNetModel:
    """Load a chosen CHGNet model on a chosen number of threads (fields shared by both makers)."""

    model_version: str = "0.3.0"
    num_threads: int | None = 1

    def _get_calculator(self):
        # atomate2 builds CHGNetCalculator() with the package's default model; we pin the
        # model version (part of the content key) and the torch thread count (1 thread is
        # ~6x faster than 2 on 2-core machines for cells this small).
        import torch
        from chgnet.model.dynamics import CHGNetCalculator

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints its banner
            return CHGNetCalculator(model=_load_model(self.model_version), **self.calculator_kwargs)


@functools.lru_cache(maxsize=4)
def _load_model(version: str):
    """One CHGNet model per version and process: loading costs ~50 ms, inference is stateless."""
    from chgnet.model import CHGNet

    with contextlib.redirect_stdout(io.StringIO()):
        return CHGNet.load(model_name=version, verbose=False)


@dataclass
class CHGNetRelaxMaker(_CHGNetModel, ForceFieldRelaxMaker):
    """atomate2's force-field relaxation, pinned to a CHGNet model and thread count."""

    name: str = "CHGNet relax"
    force_field_name: str = "CHGNet"
    ionic_step_data: tuple[str, ...] | None = ("energy", "magmoms")


@dataclass
class CHGNetStaticMaker(_CHGNetModel, ForceFieldStaticMaker):
    """atomate2's force-field single point, pinned to a CHGNet model and thread count."""

    name: str = "CHGNet static"
    force_field_name: str = "CHGNet"
    ionic_step_data: tuple[str, ...] | None = ("energy", "magmoms")


@dataclass
class CHGNetNebMaker(_CHGNetModel, ForceFieldNebFromImagesMaker):
    """atomate2's force-field NEB (ASE's NEB on the images), pinned to a CHGNet model and thread count."""

    name: str = "CHGNet NEB"
    force_field_name: str = "CHGNet"


@dataclass
class CHGNetCalculator(ForceFieldJobs, MSONable):
    """CHGNet 0.3.0: Materials Project GGA/GGA+U energies, already on the MP2020-corrected scale.

    CHGNet was trained on MPtrj energies with MP2020 corrections applied (its fine-tuning
    notebook corrects new DFT labels with ``MaterialsProject2020Compatibility`` for that
    reason), so its metals, O2 and oxides share one scale as predicted: its own Co, O2 and CoO
    give CoO a formation energy of -2.46 eV (experiment -2.46), Li2O -6.20 (-6.20). Correcting
    again would count the Co U correction twice (-1.64 eV per Co). See ``analysis.energy_scale``.
    """

    name: ClassVar[str] = "chgnet"
    supports_fixed_normal: ClassVar[bool] = True
    makers: ClassVar[tuple[type, type]] = (CHGNetStaticMaker, CHGNetRelaxMaker)
    neb_maker: ClassVar[type] = CHGNetNebMaker
    label: ClassVar[str] = "CHGNet"

    model: str = "0.3.0"
    fmax: float = 0.05
    steps: int = 500
    optimizer: str = "FIRE"
    relax_cell: bool = True
    threads: int | None = field(default_factory=threads_from_env)

    def __post_init__(self) -> None:
        if self.fmax <= 0 or self.steps < 1:
            raise CalculatorError(f"chgnet needs fmax > 0 and steps >= 1 (got fmax={self.fmax}, steps={self.steps})")
        try:
            import chgnet  # noqa: F401
        except ImportError as exc:
            raise CalculatorError(
                "the chgnet calculator needs the ML extra: pip install torch==2.13.0 && pip install 'insertflow[ml]'"
            ) from exc

    def unsupported_elements(self, elements: set[str]) -> list[str]:
        """Elements CHGNet has no embedding for (it knows H to Pu, Z <= 94)."""
        from pymatgen.core import Element

        return sorted(el for el in elements if Element(el).Z > CHGNET_MAX_Z)

    def identity(self) -> dict:
        """Package and model versions plus the settings that change results (not threads)."""
        return {
            "name": self.name,
            "version": f"chgnet {package_version('chgnet')}, model {self.model}",
            "settings": {
                "fmax": self.fmax,
                "steps": self.steps,
                "optimizer": self.optimizer,
                "relax_cell": self.relax_cell,
            },
        }

    def model_fields(self) -> dict:
        """The fields every maker of this model takes."""
        return {"model_version": self.model, "num_threads": self.threads}

    def single_points(self, structures: list[Structure]) -> list[SinglePoint]:
        """CHGNet total energies (eV) of unrelaxed structures, one model call each.

        One structure per call: on 2 CPU cores batching mixed cell sizes was measured
        slower (graph construction dominates), see ``benchmarks/levels.py``. A structure
        the model rejects ranks last with the model's message; it does not stop the screen.
        """
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        model = _load_model(self.model)
        points = []
        for structure in structures:
            try:
                prediction = model.predict_structure(structure, task="e")
            except Exception as exc:  # graph construction and the model raise many types
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                points.append(SinglePoint(float("nan"), f"{type(exc).__name__}: {message}".rstrip(": ")))
                continue
            energy = float(prediction["e"]) * len(structure)
            points.append(
                SinglePoint(energy, None if math.isfinite(energy) else "CHGNet predicted a non-finite energy")
            )
        return points

    def outcome(self, output: Any) -> CalculationOutcome:
        """Entry from atomate2's ``ForceFieldTaskDocument`` (object or dict)."""
        structure = as_structure(field_of(output, "structure"))
        formula = structure.composition.reduced_formula
        energy = check_energy(field_of(output, "output", "energy"), formula, "chgnet")
        n_steps = field_of(output, "output", "n_steps")
        converged = relaxation_converged(output)
        steps = field_of(output, "output", "ionic_steps") or []
        magmoms = field_of(steps[-1], "magmoms") if steps else None
        entry = ComputedStructureEntry(structure, energy, parameters={"calculator": self.identity()})
        return CalculationOutcome(
            entry=entry,
            converged=converged,
            n_steps=n_steps,
            wall_time_s=field_of(output, "output", "elapsed_time"),
            magmoms=None if magmoms is None else [float(m) for m in magmoms],
        )


def relaxation_converged(output: Any) -> bool:
    """Whether an atomate2 force-field task finished: a single point always; a relaxation when its optimizer converged.

    atomate2 also stores ``is_force_converged``, a check of the raw atomic forces against
    fmax with ``<``. Under a cell filter the optimizer converges on the filter's forces
    (atomic forces mapped through the cell deformation, plus the stress), so a converged
    relaxation can fail that check by 1e-4 eV/A (measured: 0.0501 vs 0.05 on a sulfide) and
    more steps change nothing. The optimizer's own verdict (``state``) decides here.
    """
    if (field_of(output, "input", "steps") or 0) <= 1:
        return True  # a single point has nothing to converge
    state = field_of(output, "state")
    if state is not None:
        return str(getattr(state, "value", state)) == "successful"
    return bool(field_of(output, "is_force_converged"))
