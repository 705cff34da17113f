"""Geometry from one calculator, energy from another ("relax cheap, compute exact").

``GeometryThenEnergy(geometry=CHGNet, energy=GPAW)`` relaxes with CHGNet and takes the
energy, moments and DOS from a GPAW static on the relaxed structure. The flows see one
calculator; its identity names both, so the content key, the records and the study
documents say which calculator gave the geometry and which gave the energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobflow import Flow, Response, job
from monty.json import MSONable
from pymatgen.core import Structure

from insertflow.calculators.base import CalculationOutcome, Calculator, validate_task
from insertflow.errors import CalculatorError


@dataclass
class GeometryThenEnergy(MSONable):
    """Relax with ``geometry``; the static that gives the energy runs with ``energy``."""

    geometry: Calculator
    energy: Calculator

    def __post_init__(self) -> None:
        if self.geometry.identity() == self.energy.identity():
            raise CalculatorError("energy_calculator is the same as calculator: leave energy_calculator out")

    @property
    def supports_fixed_normal(self) -> bool:
        """The layer guard constrains the geometry calculator's relaxation."""
        return self.geometry.supports_fixed_normal

    @property
    def supports_charge(self) -> bool:
        """A charged cell is the energy calculator's business (the geometry relaxes it neutral)."""
        return bool(getattr(self.energy, "supports_charge", False))

    def with_charge(self, charge: int) -> GeometryThenEnergy:
        """The same geometry calculator (its relaxation is reused); the energy static at ``charge``."""
        return GeometryThenEnergy(geometry=self.geometry, energy=self.energy.with_charge(charge))

    @property
    def name(self) -> str:
        """``chgnet>gpaw``: geometry, then energy."""
        return f"{self.geometry.name}>{self.energy.name}"

    def identity(self) -> dict:
        """Both identities: the geometry's and the energy's."""
        geometry, energy = self.geometry.identity(), self.energy.identity()
        return {
            "name": self.name,
            "version": f"{geometry['version']} > {energy['version']}",
            "settings": {"geometry": geometry, "energy": energy},
            "geometry_from": f"{geometry['name']} ({geometry['version']})",
            "energy_from": f"{energy['name']} ({energy['version']})",
        }

    def unsupported_elements(self, elements: set[str]) -> list[str]:
        """Elements either calculator cannot treat."""
        missing: set[str] = set()
        for calculator in (self.geometry, self.energy):
            check = getattr(calculator, "unsupported_elements", None)
            if check is not None:
                missing |= set(check(elements))
        return sorted(missing)

    def make_job(self, structure: Structure, task: str, fixed_normal: list[float] | None = None):
        """relax: the geometry relaxation, then the energy static on its structure; static: energy only."""
        validate_task(task)
        if task == "static":
            return self.energy.make_job(structure, "static")
        relax = self.geometry.make_job(structure, "relax", fixed_normal=fixed_normal)
        static = static_on_relaxed(relax.output, self.geometry, self.energy)
        static.name = f"{self.energy.name} static on the {self.geometry.name} geometry"
        return Flow([relax, static], output={"relax": relax.output, "static": static.output}, name=self.name)

    def outcome(self, output: Any) -> CalculationOutcome:
        """The energy calculator's entry on the geometry calculator's structure, with both verdicts."""
        if not (isinstance(output, dict) and set(output) == {"relax", "static"}):
            return self.energy.outcome(output)  # a static task: the energy calculator's own output
        if output["relax"] is None:
            raise CalculatorError(f"the {self.geometry.name} relaxation gave no output")
        relaxed = self.geometry.outcome(output["relax"])
        if not relaxed.converged:
            return relaxed  # no static was run on it
        if output["static"] is None:
            raise CalculatorError(f"the {self.energy.name} static on the {self.geometry.name} geometry gave no output")
        static = self.energy.outcome(output["static"])
        entry = static.entry
        entry.parameters["geometry_from"] = self.geometry.identity()
        entry.parameters["energy_from"] = self.energy.identity()
        entry.data["geometry_energy"] = relaxed.entry.energy  # the geometry calculator's own energy, eV
        wall = [t for t in (relaxed.wall_time_s, static.wall_time_s) if t is not None]
        return CalculationOutcome(
            entry=entry,
            converged=static.converged,
            n_steps=relaxed.n_steps,
            wall_time_s=sum(wall) if wall else None,
            magmoms=static.magmoms,
            dos=static.dos,
            band_edges=static.band_edges,
            site_potentials=static.site_potentials,  # the defect alignment and the Freysoldt correction
            planar_potential=static.planar_potential,  # need the energy calculator's potentials
            total_dos=static.total_dos,
        )


@job
def static_on_relaxed(relax_output: Any, geometry: Calculator, energy: Calculator):
    """Replace itself with the energy calculator's static on the relaxed structure (none if it failed)."""
    try:
        relaxed = geometry.outcome(relax_output)
    except CalculatorError:
        return None  # the record says why, from the relaxation's output
    if not relaxed.converged:
        return None
    return Response(replace=energy.make_job(relaxed.structure, "static"))
