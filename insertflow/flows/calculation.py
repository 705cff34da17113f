"""One calculation with content-keyed reuse, failure records and the layer guard.

``calculate`` runs when its turn comes, on any engine: it computes the content key,
looks for a finished record with that key in the job store and returns it (reused), or
replaces itself with the calculator's job plus ``record_calculation``, which turns the
output (or its absence) into a ``CalculationRecord``. Nothing here knows which
calculator it drives.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from jobflow import CURRENT_JOB, Flow, Maker, OnMissing, Response, job
from monty.json import MSONable
from pymatgen.core import Structure
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow import claims, progress
from insertflow.analysis.descriptors import DescriptorError, band_descriptors, compact_pdos
from insertflow.analysis.fermi import compact_total_dos
from insertflow.analysis.geometry import atom_order_like
from insertflow.analysis.layers import largest_gap_growth
from insertflow.calculators.base import Calculator
from insertflow.errors import CalculatorError
from insertflow.keys import content_key
from insertflow.schemas import CalculationRecord

STAGE = "calculations"
#: Record statuses that a later run may reuse (failures are retried).
REUSABLE = ("ok", "flagged")


@dataclass
class LayerGuard(MSONable):
    """What to do when layers drift apart while relaxing (e.g. CHGNet CoO2 at tight fmax).

    ``flag``: keep the result but mark it and leave it out of the analysis;
    ``constrain``: relax again with that stacking spacing held fixed (if the calculator
    can), flagging only if it still drifts; ``off``: no check.
    """

    policy: Literal["flag", "constrain", "off"] = "constrain"
    max_gap_growth: float = 1.0  # A; the widest empty slab may grow by this much

    def protocol(self, task: str) -> dict | None:
        """The part of a calculation's content key the guard decides (relaxations only)."""
        if task != "relax":
            return None
        if self.policy == "off":
            return {"layer_guard": "off"}
        return {"layer_guard": self.policy, "max_gap_growth": self.max_gap_growth}


@dataclass
class CalculationMaker(Maker):
    """Make the reuse-aware job for one structure in one role of a study."""

    name: str = "calculation"
    calculator: Calculator | None = None
    label: str = "structure"
    task: str = "relax"
    study: str = ""
    guard: LayerGuard = field(default_factory=LayerGuard)

    def make(self, structure: Structure):
        """A job whose output is a ``CalculationRecord``."""
        if self.calculator is None:
            raise CalculatorError("CalculationMaker needs a calculator")
        formula = structure.composition.reduced_formula
        new_job = calculate(structure, self.calculator, self.label, self.task, self.guard, self.study)
        new_job.name = f"{self.task} {self.label} ({formula})"
        new_job.config.expose_store = True
        new_job.update_metadata({"insertflow": {"kind": "calculation", "label": self.label, "study": self.study}})
        return new_job


#: How long (s) a job waits for another process's calculation of the same key before deferring.
CLAIM_WAIT_S = 30.0
#: Deferrals before a job stops waiting for a claim and computes the key itself.
MAX_DEFERRALS = 20


@job
def calculate(
    structure: Structure,
    calculator: Calculator,
    label: str,
    task: str,
    guard: LayerGuard,
    study: str,
    deferrals: int = 0,
) -> CalculationRecord | Response:
    """Reuse a finished calculation with the same content key, or claim the key and run it."""
    identity = calculator.identity()
    key = content_key(structure, identity, task, guard.protocol(task))
    formula = structure.composition.reduced_formula
    item = f"{task} {label} {formula} ({identity['name']})"
    current = CURRENT_JOB.job
    current.metadata.setdefault("insertflow", {})["content_key"] = key
    store = CURRENT_JOB.store

    cached = finished_record(store, key)
    owner = claims.owner_of(current.uuid)
    taken = claims.claim(store, key, owner) if store is not None and cached is None else None
    if cached is None and taken is not None and not taken.granted:
        if deferrals < MAX_DEFERRALS:
            # another worker computes this key: wait for its record (not for ourselves: a single-process
            # engine runs the holder only after this job), then defer and look again later
            cached = _wait_for_record(store, key, 0.0 if claims.same_process(taken.holder or "") else CLAIM_WAIT_S)
            if cached is None:
                progress.emit(STAGE, item, f"another worker holds this key ({taken.holder}); checking later...")
                again = calculate(structure, calculator, label, task, guard, study, deferrals + 1)
                again.name, again.config.expose_store = current.name, True
                again.metadata = dict(current.metadata)
                return Response(replace=again)
        else:
            progress.emit(STAGE, item, f"the claim of {taken.holder} did not end; computing it here...")
    if cached is not None:
        record = CalculationRecord.model_validate(cached["output"])
        record = in_input_order(record.model_copy(update={"label": label, "reused": True}), structure)
        progress.emit(STAGE, item, f"reused (key {key[:10]})")
        return record

    progress.emit(STAGE, item, "running...")
    claimed = owner if taken is not None and taken.supported else None
    return Response(replace=_run_and_record(structure, calculator, label, task, guard, key, claimed=claimed))


def in_input_order(record: CalculationRecord, structure: Structure) -> CalculationRecord:
    """A reused record with its atoms (and per-site data) in the order of the input that asked for it.

    The content key ignores atom order, so the stored record may list the same sites differently
    (an NEB endpoint built another way, a defect cell made from another ordering). Analyses that
    compare a relaxed cell with its input atom by atom need the input's order.
    """
    if record.entry is None:
        return record
    stored = record.entry.structure
    order = atom_order_like(stored, structure)
    if order is None or order == list(range(len(stored))):
        return record
    entry = record.computed_entry()
    reordered = Structure.from_sites([stored[i] for i in order])
    entry = ComputedStructureEntry(
        reordered,
        entry.uncorrected_energy,
        energy_adjustments=entry.energy_adjustments,
        parameters=entry.parameters,
        data=entry.data,
        entry_id=entry.entry_id,
    )
    update: dict = {"entry": entry}
    for name in ("magmoms", "site_potentials"):
        values = getattr(record, name)
        if values is not None and len(values) == len(order):
            update[name] = [values[i] for i in order]
    return record.model_copy(update=update)


def finished_record(store, key: str) -> dict | None:
    """The latest reusable record of ``key`` in the job store, if any."""
    if store is None:
        return None
    return store.query_one(
        # the record carries its key: metadata set while a job runs is lost on FireWorks (measured)
        {"output.content_key": key, "output.status": {"$in": list(REUSABLE)}},
        properties=["output", "uuid"],
        sort={"completed_at": -1},
    )


def _wait_for_record(store, key: str, seconds: float) -> dict | None:
    """Poll for another worker's record of ``key`` for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = finished_record(store, key)
        if found is not None or time.monotonic() >= deadline or claims.holder(store, key) is None:
            return found
        time.sleep(0.5)


def _run_and_record(
    structure: Structure,
    calculator: Calculator,
    label: str,
    task: str,
    guard: LayerGuard,
    key: str,
    fixed_normal: list[float] | None = None,
    claimed: str | None = None,
) -> Flow:
    formula = structure.composition.reduced_formula
    calc_job = calculator.make_job(structure, task, fixed_normal=fixed_normal)
    calc_job.name = f"{calculator.name} {task} {label} {formula} [{key[:10]}]"
    calc_job.update_metadata({"insertflow": {"kind": "raw_calculation", "content_key": key}})
    record_job = record_calculation(
        calc_job.output,
        structure,
        calculator,
        label,
        task,
        key,
        guard,
        calc_job.name,
        calc_job.uuid,
        fixed_normal is not None,
        claimed,
    )
    record_job.name = f"record {label} ({formula})"
    record_job.config.on_missing_references = OnMissing.NONE
    record_job.config.expose_store = True  # it releases the claim
    return Flow([calc_job, record_job], output=record_job.output, name=f"{task} {label}")


@job
def record_calculation(
    output: Any,
    structure: Structure,
    calculator: Calculator,
    label: str,
    task: str,
    key: str,
    guard: LayerGuard,
    calc_job_name: str,
    calc_job_uuid: str,
    constrained: bool = False,
    claimed: str | None = None,
) -> CalculationRecord | Response:
    """Turn a calculator output into a record: ok, flagged (layers drifted) or failed (why); release the claim."""
    result = _record(
        output, structure, calculator, label, task, key, guard, calc_job_name, calc_job_uuid, constrained, claimed
    )
    if claimed is not None and not isinstance(result, Response) and CURRENT_JOB.store is not None:
        claims.release(CURRENT_JOB.store, key, claimed)  # the record is written with this job's output
    return result


def _record(
    output: Any,
    structure: Structure,
    calculator: Calculator,
    label: str,
    task: str,
    key: str,
    guard: LayerGuard,
    calc_job_name: str,
    calc_job_uuid: str,
    constrained: bool,
    claimed: str | None,
) -> CalculationRecord | Response:
    formula = structure.composition.reduced_formula
    item = f"{task} {label} {formula} ({calculator.name})"
    base = {
        "label": label,
        "formula": formula,
        "task": task,
        "content_key": key,
        "calculator": calculator.identity(),
        "job_uuid": calc_job_uuid,
        "constrained": constrained,
    }

    def failed(reason: str) -> CalculationRecord:
        progress.emit(STAGE, item, f"FAILED: {reason}")
        return CalculationRecord(status="failed", reason=reason, **base)

    if output is None:
        detail = progress.job_error(calc_job_name)
        return failed(
            f"the {calculator.name} {task} job raised an exception"
            + (f": {detail}" if detail else " (its traceback is in the workflow manager's log)")
        )
    try:
        outcome = calculator.outcome(output)
    except CalculatorError as exc:
        return failed(str(exc))
    except Exception as exc:  # an unreadable output must not stop the study
        return failed(f"could not read the {calculator.name} output: {type(exc).__name__}: {exc}")
    if not outcome.converged:
        return failed(
            f"the {task} of {formula} did not converge in {outcome.n_steps} steps; "
            "raise the calculator's steps or loosen fmax"
        )

    status, reason, growth = "ok", None, None
    if task == "relax" and guard.policy != "off":
        change = largest_gap_growth(structure, outcome.structure)
        growth = round(change.growth, 4)
        if change.growth > guard.max_gap_growth:
            if guard.policy == "constrain" and calculator.supports_fixed_normal and not constrained:
                progress.emit(
                    STAGE,
                    item,
                    f"layers drifted apart by {change.growth:.2f} A along {change.hkl}; "
                    "relaxing again with that spacing fixed...",
                )
                again = _run_and_record(structure, calculator, label, task, guard, key, change.normal, claimed)
                return Response(replace=again)
            status = "flagged"
            reason = (
                f"layers drifted apart: the widest empty slab normal to {change.hkl} grew by "
                f"{change.growth:.2f} A (limit {guard.max_gap_growth} A); left out of the analysis. "
                "Use layer_guard.policy: constrain, or a looser fmax"
            )

    descriptors = None
    has_oxygen = "O" in {el.symbol for el in outcome.structure.composition.elements}
    if outcome.dos is not None and has_oxygen:  # the descriptors are O-2p ones: none for Li metal, no note
        try:
            found = band_descriptors(outcome.dos, band_edges=outcome.band_edges, magmoms=outcome.magmoms)
            descriptors = {**asdict(found), "pdos": compact_pdos(outcome.dos, found)}
        except DescriptorError as exc:
            reason = f"{reason + '; ' if reason else ''}no band descriptors: {exc}"
    entry = outcome.entry
    entry.entry_id = key
    entry.data.update({"content_key": key, "label": label})
    record = CalculationRecord(
        status=status,
        reason=reason,
        entry=entry,
        energy_per_atom=entry.energy_per_atom,
        converged=outcome.converged,
        n_steps=outcome.n_steps,
        wall_time_s=outcome.wall_time_s,
        magmoms=outcome.magmoms,
        layer_gap_growth=growth,
        descriptors=descriptors,
        site_potentials=outcome.site_potentials,
        planar_potential=outcome.planar_potential,
        band_edges=None if outcome.band_edges is None else list(outcome.band_edges),
        total_dos=_total_dos(outcome),
        **base,
    )
    progress.emit(
        STAGE, item, f"{'new' if status == 'ok' else 'FLAGGED: ' + reason}, {entry.energy_per_atom:.4f} eV/atom"
    )
    return record


def _total_dos(outcome) -> dict | None:
    """The calculator's compact total DOS, or one made from its DOS when it has band edges (an insulator)."""
    if outcome.total_dos is not None:
        return outcome.total_dos
    if outcome.dos is None or outcome.band_edges is None:
        return None
    return compact_total_dos(outcome.dos)
