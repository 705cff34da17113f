"""The first study: discharged host, charged host, elemental working ion -> average voltage."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobflow import Flow, Maker, OnMissing, job

from insertflow import progress
from insertflow.analysis.voltage import average_voltage, electrode_document
from insertflow.calculators.base import Calculator
from insertflow.flows.calculation import CalculationMaker, LayerGuard
from insertflow.flows.compose import ComposableMaker
from insertflow.hosts import Host
from insertflow.references import working_ion_reference
from insertflow.schemas import CalculationRecord, FailedCalculation, VoltageStudyDoc

LABELS = ("discharged", "charged", "working_ion")
ANALYSIS_STAGE = "analysis"


@dataclass
class EndMemberVoltageMaker(ComposableMaker, Maker):
    """Relax the fully discharged and fully charged host and the elemental ion; build the voltage."""

    study_kind = "end_member_voltage"

    name: str = "end-member voltage"
    calculator: Calculator | None = None
    guard: LayerGuard = field(default_factory=LayerGuard)
    study: str = "study"

    def make_for_host(self, host: Host) -> Flow:
        """The study as a jobflow Flow whose output is a ``VoltageStudyDoc``."""
        discharged = host.structure.get_primitive_structure()
        charged = discharged.copy()
        charged.remove_species([host.working_ion])
        structures = {
            "discharged": discharged,
            "charged": charged,
            "working_ion": working_ion_reference(host.working_ion),
        }
        calc_jobs = [
            CalculationMaker(
                calculator=self.calculator, label=label, task="relax", study=self.study, guard=self.guard
            ).make(structures[label])
            for label in LABELS
        ]
        analysis = voltage_study([j.output for j in calc_jobs], host.summary(), self.calculator.identity(), self.study)
        analysis.name = f"voltage {host.formula}"
        analysis.config.on_missing_references = OnMissing.NONE
        analysis.update_metadata({"insertflow": {"kind": "study", "study": self.study}})
        return Flow([*calc_jobs, analysis], output=analysis.output, name=f"{self.study}: {self.name}")


@job
def voltage_study(records: list, host: dict, calculator: dict, study: str) -> VoltageStudyDoc:
    """Average voltage from the three records; says what is missing instead of failing."""
    parsed = [None if r is None else CalculationRecord.model_validate(r) for r in records]
    usable = {}
    failed, missing = [], []
    for label, record in zip(LABELS, parsed, strict=True):
        if record is None:
            missing.append(f"{label}: its calculation job did not finish (see the workflow manager's log)")
            continue
        if record.status != "ok":
            failed.append(
                FailedCalculation(label=label, formula=record.formula, status=record.status, reason=record.reason or "")
            )
            missing.append(f"{label} ({record.formula}): {record.status}")
            continue
        usable[label] = record

    doc = VoltageStudyDoc(
        study=study,
        host=host,
        calculator=calculator,
        calculations=[r for r in parsed if r is not None],
        failed=failed,
        missing=missing,
        new_calculations=sum(1 for r in parsed if r is not None and not r.reused),
        reused_calculations=sum(1 for r in parsed if r is not None and r.reused),
    )
    if len(usable) == len(LABELS):
        ion = host["working_ion"]
        entries = {label: usable[label].computed_entry() for label in LABELS}
        doc.average_voltage = average_voltage(entries["discharged"], entries["charged"], entries["working_ion"], ion)
        for label in ("discharged", "charged"):
            entries[label].data["material_id"] = material_id(usable[label].content_key)
        entries["working_ion"].data["material_id"] = material_id(usable["working_ion"].content_key)
        electrode = electrode_document([entries["discharged"], entries["charged"]], entries["working_ion"])
        if electrode is not None:
            doc.electrode = electrode
            doc.capacity_grav = electrode.capacity_grav
            doc.energy_grav = electrode.energy_grav
    status = f"{doc.average_voltage:.3f} V" if doc.average_voltage is not None else "no voltage: " + "; ".join(missing)
    progress.emit(ANALYSIS_STAGE, f"average voltage {host['formula']}", status)
    return doc


def material_id(key: str) -> str:
    """An emmet-compatible id ('if-<number>') derived from the content key."""
    return f"if-{int(key[:12], 16)}"
