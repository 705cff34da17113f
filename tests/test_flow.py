import io
import re

import pytest
from jobflow import run_locally

from insertflow.calculators import get_calculator
from insertflow.calculators.mock import mock_energy
from insertflow.db import latest_study
from insertflow.flows.calculation import LayerGuard
from insertflow.flows.end_members import EndMemberVoltageMaker
from insertflow.hosts import load_host
from insertflow.progress import ProgressReporter, reporting
from insertflow.references import working_ion_reference


def run_study(store, settings=None, guard=None, study="t", report=True):
    """Run the study as `insertflow run` does (with a reporter), or as bare jobflow."""
    calculator = get_calculator("mock", settings or {})
    maker = EndMemberVoltageMaker(calculator=calculator, guard=guard or LayerGuard(), study=study)
    flow = maker.make(load_host("LiCoO2"))
    if report:
        with reporting(ProgressReporter({"calculations": 3, "analysis": 1}, io.StringIO())):
            run_locally(flow, store=store, log=False)
    else:
        run_locally(flow, store=store, log=False)
    return latest_study(store, study)


def hand_voltage(licoo2, **settings):
    coo2 = licoo2.copy()
    coo2.remove_species(["Li"])
    li = working_ion_reference("Li")
    e_li = mock_energy(li, **settings) / len(li)
    return -(mock_energy(licoo2, **settings) - mock_energy(coo2, **settings) - e_li)


def test_voltage_matches_hand_calculation_and_emmet(memory_store, licoo2):
    doc = run_study(memory_store)
    assert doc["average_voltage"] == pytest.approx(hand_voltage(licoo2), abs=1e-9)
    assert doc["electrode"]["average_voltage"] == pytest.approx(doc["average_voltage"], abs=1e-9)
    assert doc["electrode"]["formula_charge"] == "CoO2"
    assert (doc["new_calculations"], doc["reused_calculations"]) == (3, 0)


def test_second_run_reuses_and_changed_setting_recomputes(embedded_store, licoo2):
    first = run_study(embedded_store)
    second = run_study(embedded_store)
    assert (second["new_calculations"], second["reused_calculations"]) == (0, 3)
    assert second["average_voltage"] == first["average_voltage"]
    changed = run_study(embedded_store, {"voltage": 4.2})
    assert (changed["new_calculations"], changed["reused_calculations"]) == (3, 0)
    assert changed["average_voltage"] == pytest.approx(hand_voltage(licoo2, voltage=4.2), abs=1e-9)
    # the changed setting made new records under new keys; the first run's records are still there
    first_keys = {c["content_key"] for c in first["calculations"]}
    assert first_keys.isdisjoint(c["content_key"] for c in changed["calculations"])
    for key in first_keys | {c["content_key"] for c in changed["calculations"]}:
        assert embedded_store.count({"output.content_key": key, "output.reused": False}) == 1  # computed once


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("raise", r"mock relax job raised an exception: .*mock fault 'raise' injected for CoO2"),
        ("nan", r"non-finite energy \(nan\) for CoO2: the calculation diverged"),
        ("no_converge", r"did not converge in 500 steps; raise the calculator's steps"),
    ],
)
def test_one_failure_is_recorded_and_siblings_finish(memory_store, fault, reason):
    doc = run_study(memory_store, {"faults": {"CoO2": fault}})
    assert doc["average_voltage"] is None
    assert [f["label"] for f in doc["failed"]] == ["charged"]
    assert re.search(reason, doc["failed"][0]["reason"]), doc["failed"][0]["reason"]
    statuses = {c["label"]: c["status"] for c in doc["calculations"]}
    assert statuses == {"discharged": "ok", "charged": "failed", "working_ion": "ok"}
    assert "charged (CoO2): failed" in doc["missing"]


def test_engine_without_reporter_still_records_a_reason(memory_store):
    doc = run_study(memory_store, {"faults": {"CoO2": "raise"}}, report=False)
    assert doc["failed"][0]["reason"] == (
        "the mock relax job raised an exception (its traceback is in the workflow manager's log)"
    )


def test_failed_calculation_is_retried_not_reused(memory_store):
    run_study(memory_store, {"faults": {"CoO2": "nan"}})
    again = run_study(memory_store, {"faults": {"CoO2": "nan"}})
    # the two healthy results are reused; the failed one is tried again
    assert (again["new_calculations"], again["reused_calculations"]) == (1, 2)


def test_layer_drift_flagged(memory_store):
    doc = run_study(memory_store, {"faults": {"CoO2": "drift"}}, LayerGuard(policy="flag"))
    charged = next(c for c in doc["calculations"] if c["label"] == "charged")
    assert charged["status"] == "flagged"
    assert charged["layer_gap_growth"] == pytest.approx(3.0, abs=1e-6)
    assert "layers drifted apart" in charged["reason"] and doc["average_voltage"] is None


def test_layer_drift_constrained(memory_store, licoo2):
    doc = run_study(memory_store, {"faults": {"CoO2": "drift"}}, LayerGuard(policy="constrain"))
    charged = next(c for c in doc["calculations"] if c["label"] == "charged")
    assert charged["status"] == "ok" and charged["constrained"] is True
    assert charged["layer_gap_growth"] == pytest.approx(0.0, abs=1e-6)
    assert doc["average_voltage"] == pytest.approx(hand_voltage(licoo2), abs=1e-9)


def test_layer_guard_off_accepts_drift(memory_store):
    doc = run_study(memory_store, {"faults": {"CoO2": "drift"}}, LayerGuard(policy="off"))
    assert doc["failed"] == [] and doc["average_voltage"] is not None


def test_a_run_whose_study_job_fails_does_not_return_an_older_document(embedded_store, monkeypatch):
    from insertflow.errors import InsertflowError
    from insertflow.flows import end_members
    from insertflow.recipe import recipe_from_dict
    from insertflow.runner import run_recipe

    recipe = recipe_from_dict({"name": "t", "host": "LiCoO2", "calculator": {"name": "mock"}})
    assert run_recipe(recipe, store=embedded_store, stream=io.StringIO())["average_voltage"] is not None

    def broken(*args, **kwargs):
        raise RuntimeError("analysis crashed")

    monkeypatch.setattr(end_members, "average_voltage", broken)
    with pytest.raises(InsertflowError, match="study 't' did not finish"):
        run_recipe(recipe, store=embedded_store, stream=io.StringIO())


def test_a_flagged_result_is_not_reused_by_a_study_that_constrains(memory_store, licoo2):
    drifting = {"faults": {"CoO2": "drift"}}
    flagged = run_study(memory_store, drifting, LayerGuard(policy="flag"))
    assert flagged["average_voltage"] is None
    constrained = run_study(memory_store, drifting, LayerGuard(policy="constrain"))
    charged = next(c for c in constrained["calculations"] if c["label"] == "charged")
    assert not charged["reused"] and charged["constrained"] and charged["status"] == "ok"
    assert constrained["average_voltage"] == pytest.approx(hand_voltage(licoo2), abs=1e-9)
    # and the other way round: a flag study never receives the constrained result
    again = run_study(memory_store, drifting, LayerGuard(policy="flag"))
    assert next(c for c in again["calculations"] if c["label"] == "charged")["status"] == "flagged"


def test_a_nan_energy_keeps_its_failure_and_reason_on_the_embedded_store(embedded_store):
    # SQLite once stored NaN as null: the record job then failed validation and the reason was lost
    doc = run_study(embedded_store, {"faults": {"CoO2": "nan"}})
    assert [f["label"] for f in doc["failed"]] == ["charged"]
    assert "non-finite energy (nan) for CoO2" in doc["failed"][0]["reason"]
