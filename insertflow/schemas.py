"""Documents insertflow stores. Voltage results embed emmet-core's ``InsertionElectrodeDoc``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from emmet.core.electrode import InsertionElectrodeDoc
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymatgen.entries.computed_entries import ComputedStructureEntry

Status = Literal["ok", "failed", "flagged"]


def utcnow() -> datetime:
    """Timezone-aware now, for document timestamps."""
    return datetime.now(tz=UTC)


class CalculationRecord(BaseModel):
    """One calculation as the analysis sees it: entry or the reason there is none."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    label: str = Field(description="Role in the study, e.g. 'discharged', 'charged', 'working_ion'")
    formula: str = Field(description="Reduced formula of the input structure")
    task: str = Field(description="'relax' or 'static'")
    content_key: str = Field(description="SHA-256 of structure + calculator identity + task")
    calculator: dict = Field(description="Calculator identity: name, version, settings")
    status: Status
    reason: str | None = Field(None, description="Why the record is failed or flagged, and what to do")
    reused: bool = Field(False, description="True when taken from an earlier run with the same content key")
    entry: ComputedStructureEntry | None = Field(None, description="Entry of the final structure")
    energy_per_atom: float | None = Field(None, description="eV/atom")
    converged: bool | None = None
    n_steps: int | None = None
    wall_time_s: float | None = None
    magmoms: list[float] | None = Field(None, description="Final per-site magnetic moments (muB), if predicted")
    layer_gap_growth: float | None = Field(None, description="Growth of the widest interlayer slab on relaxing (A)")
    constrained: bool = Field(False, description="Relaxed with the drifting stacking spacing held fixed")
    job_uuid: str | None = Field(None, description="uuid of the job that ran the calculation")

    def computed_entry(self) -> ComputedStructureEntry | None:
        """A copy of the pymatgen entry (None for failed records), safe to annotate."""
        return None if self.entry is None else ComputedStructureEntry.from_dict(self.entry.as_dict())

    @field_validator("entry", mode="before")
    @classmethod
    def _entry_from_dict(cls, value):
        return ComputedStructureEntry.from_dict(value) if isinstance(value, dict) else value


class FailedCalculation(BaseModel):
    """A calculation the analysis could not use."""

    label: str
    formula: str
    status: Status
    reason: str


class VoltageStudyDoc(BaseModel):
    """Average voltage between the fully discharged and fully charged host.

    ``electrode`` is emmet-core's ``InsertionElectrodeDoc`` built from our entries: its
    ``average_voltage``, ``capacity_grav``, ``energy_grav``, ``fracA_charge`` ... mean what
    they mean in the Materials Project.
    """

    study: str = Field(description="Recipe name")
    kind: Literal["end_member_voltage"] = "end_member_voltage"
    host: dict = Field(description="Host summary: name, formula, working ion, redox elements, source")
    calculator: dict = Field(description="Calculator identity used for every entry")
    average_voltage: float | None = Field(None, description="V vs the working-ion metal")
    capacity_grav: float | None = Field(None, description="mAh/g")
    energy_grav: float | None = Field(None, description="Wh/kg")
    electrode: InsertionElectrodeDoc | None = None
    calculations: list[CalculationRecord] = Field(default_factory=list)
    failed: list[FailedCalculation] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list, description="What the voltage could not be computed without")
    new_calculations: int = 0
    reused_calculations: int = 0
    created_at: datetime = Field(default_factory=utcnow)
