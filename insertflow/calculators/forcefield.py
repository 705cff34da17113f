"""The job recipes every atomate2 force-field calculator shares: relax/static and NEB jobs from one set of settings."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pymatgen.core import Structure

from insertflow.analysis.layers import rotate_normal_to_z
from insertflow.calculators.base import NebOutcome, NebSettings, neb_result_outcome, validate_task

#: ASE FrechetCellFilter strain mask (Voigt xx yy zz yz xz xy) that freezes the spacing
#: of planes normal to z (and their tilt): the "constrain" answer to layers drifting apart.
FIXED_Z_SPACING_MASK = [1, 1, 0, 0, 0, 1]


def threads_from_env() -> int | None:
    """Torch threads for the ML potentials: ``INSERTFLOW_TORCH_THREADS``, else 1 (fastest on 2 cores)."""
    value = os.environ.get("INSERTFLOW_TORCH_THREADS")
    return int(value) if value else 1


def force_field_job(
    calculator: Any,
    structure: Structure,
    task: str,
    fixed_normal: list[float] | None,
    makers: tuple[type, type],
    common: dict,
):
    """A static or relaxation job from ``makers`` (static, relax); ``fixed_normal`` holds that spacing fixed.

    ``calculator`` gives ``fmax``, ``steps``, ``relax_cell`` and ``optimizer``; ``common`` the model's fields.
    """
    validate_task(task)
    static_maker, relax_maker = makers
    if task == "static":
        return static_maker(**common).make(structure)
    relax_kwargs: dict[str, Any] = {"fmax": calculator.fmax}
    if fixed_normal is not None:
        structure = rotate_normal_to_z(structure, fixed_normal)
        relax_kwargs["filter_kwargs"] = {"mask": FIXED_Z_SPACING_MASK}
    maker = relax_maker(
        **common,
        steps=calculator.steps,
        relax_cell=calculator.relax_cell,
        relax_kwargs=relax_kwargs,
        optimizer_kwargs={"optimizer": calculator.optimizer},
    )
    return maker.make(structure)


def force_field_neb_job(neb_maker: type, common: dict, images: list[Structure], settings: NebSettings, label: str):
    """atomate2's ASE NEB (climbing image, improved tangent) on ``images``, endpoints included and fixed."""
    maker = neb_maker(
        **common,
        steps=settings.steps,
        neb_kwargs={"k": settings.spring, "climb": settings.climb, "method": settings.method},
        relax_kwargs={"fmax": settings.fmax},
        optimizer_kwargs={},
    )
    maker.name = f"{label} NEB ({settings.images} images)"
    return maker.make(images)


class ForceFieldJobs:
    """The job side of the protocol for an atomate2 force-field calculator (CHGNet, SevenNet).

    A subclass names its makers and gives the model's maker fields (``model_fields``); it keeps
    ``fmax``, ``steps``, ``relax_cell`` and ``optimizer`` as dataclass fields.
    """

    makers: ClassVar[tuple[type, type]]  # (static, relax)
    neb_maker: ClassVar[type]
    label: ClassVar[str]

    def model_fields(self) -> dict:
        """The fields every maker of this model takes (model, threads)."""
        raise NotImplementedError

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """An atomate2 force-field job; ``fixed_normal`` holds that stacking spacing fixed."""
        return force_field_job(self, structure, task, fixed_normal, self.makers, self.model_fields())

    def make_neb_job(self, images: list[Structure], settings: NebSettings):
        """atomate2's ASE NEB (climbing image, improved tangent) on ``images``, endpoints included and fixed."""
        return force_field_neb_job(self.neb_maker, self.model_fields(), images, settings, self.label)

    def neb_outcome(self, output: Any) -> NebOutcome:
        """Images and energies of emmet's ``NebResult``; converged from its state."""
        return neb_result_outcome(output)
