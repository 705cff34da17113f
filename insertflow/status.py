"""How far a study has got, read from the store: per stage, done of planned, and failures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from jobflow import JobStore

from insertflow.db import latest_study
from insertflow.recipe import Recipe

#: Calculation labels -> the stage they belong to (first match wins).
STAGES = (
    ("references", ("working_ion", "competing ")),
    ("pristine hosts", ("pristine ",)),
    ("discharge re-lithiation", ("discharge ",)),
    ("electronic structure", ("electronic ",)),
    ("relaxations", ("relax ",)),
    ("orderings", ("x=",)),
    ("end members", ("discharged", "charged")),
)


@dataclass
class StageStatus:
    """One stage: calculations finished per status, against the plan when it is known."""

    name: str
    counts: Counter = field(default_factory=Counter)
    planned: int | None = None

    @property
    def done(self) -> int:
        """Finished calculations (ok, flagged or failed)."""
        return sum(self.counts.values())


@dataclass
class StudyStatus:
    """The whole study."""

    study: str
    kind: str
    stages: list[StageStatus]
    planned_calculations: int
    finished_analysis: bool
    failures: list[str]

    def render(self) -> str:
        """Lines for the terminal."""
        done = sum(stage.done for stage in self.stages)
        lines = [
            f"Study {self.study} ({self.kind}): {done} calculations recorded; {self.planned_calculations} planned "
            "when the flow is built (run-time stages such as screening or discharge add more)"
        ]
        for stage in self.stages:
            detail = ", ".join(f"{n} {status}" for status, n in sorted(stage.counts.items()))
            lines.append(f"  {stage.name:<26} {stage.done:>4} done ({detail})")
        lines.append(f"  {'analysis':<26} {'done' if self.finished_analysis else 'pending'}")
        lines.extend(f"  FAILED {failure}" for failure in self.failures)
        return "\n".join(lines)


def stage_of(label: str) -> str:
    """The stage a calculation label belongs to."""
    for name, prefixes in STAGES:
        if label.startswith(prefixes):
            return name
    return "defects"


def study_status(recipe: Recipe, store: JobStore, planned: int) -> StudyStatus:
    """Status of ``recipe``'s study in ``store``; ``planned`` is the number of calculations its flow makes."""
    latest: dict[str, dict] = {}
    for item in store.query(
        # $in, not $ne None: mongomock (so MemoryStore) matches $ne None under a null parent; MongoDB does not
        {
            "metadata.insertflow.study": recipe.name,
            "metadata.insertflow.kind": "calculation",
            "output.status": {"$in": ["ok", "flagged", "failed"]},
        },
        properties=["output.label", "output.status", "output.reason", "output.formula", "completed_at"],
        sort={"completed_at": 1},
    ):
        latest[item["output"]["label"]] = item["output"]  # a rerun's record replaces the older one
    stages: dict[str, StageStatus] = {}
    failures = []
    for label, record in latest.items():
        stage = stages.setdefault(stage_of(label), StageStatus(stage_of(label)))
        stage.counts[record["status"]] += 1
        if record["status"] != "ok":
            failures.append(f"{label} ({record['formula']}): {record.get('reason') or record['status']}")
    return StudyStatus(
        study=recipe.name,
        kind=recipe.study,
        stages=sorted(stages.values(), key=lambda s: s.name),
        planned_calculations=planned,
        finished_analysis=latest_study(store, recipe.name) is not None,
        failures=failures,
    )
