"""A committee of calculators on one study: hand-made spreads, and the mock with known differences."""

import io
import math

import numpy as np
import pytest

from insertflow.analysis.committee import (
    K_B,
    barrier_spreads,
    defect_energies,
    hull_membership,
    lowest_per_kind,
    mean_and_spread,
    step_verdicts,
    voltage_segments,
)
from insertflow.errors import RecipeError
from insertflow.recipe import load_recipe, recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def committee_recipe(*members: dict, study: str = "licoo2_levels_mock") -> object:
    recipe = load_recipe(study).model_dump(exclude={"folder"})
    recipe["committee"] = list(members)
    return recipe_from_dict(recipe)


def test_spreads_resolved_steps_and_possibly_on_hull_by_hand():
    stats = mean_and_spread([3.0, 3.2])
    assert (stats["mean"], stats["spread"]) == pytest.approx((3.1, 0.1))  # two members: half their difference
    # model a: 3.6 V to x = 0.5, 3.0 V above; model b: 3.5 V to x = 0.4, 2.9 V above
    a = [{"x_low": 0, "x_high": 0.5, "voltage": 3.6}, {"x_low": 0.5, "x_high": 1, "voltage": 3.0}]
    b = [{"x_low": 0, "x_high": 0.4, "voltage": 3.5}, {"x_low": 0.4, "x_high": 1, "voltage": 2.9}]
    segments = voltage_segments({"a": a, "b": b})
    assert [(s["x_low"], s["x_high"]) for s in segments] == [(0, 0.4), (0.4, 0.5), (0.5, 1)]
    assert [s["mean"] for s in segments] == pytest.approx([3.55, 3.25, 2.95])
    assert [s["spread"] for s in segments] == pytest.approx([0.05, 0.35, 0.05])
    # the models disagree on where the step sits: each 0.30 V half-step is inside its 0.40 V of summed spread
    verdicts = step_verdicts(segments)
    assert [v["jump"] for v in verdicts] == pytest.approx([0.3, 0.3])
    assert [v["resolved"] for v in verdicts] == [False, False]
    assert step_verdicts(voltage_segments({"a": a, "b": a}))[0]["resolved"]  # one model: the 0.6 V step stands
    rows = {
        "a": {"p": {"x": 0.5, "e_above_hull": 0.0, "on_hull": True}, "q": {"x": 0.5, "e_above_hull": 0.010}},
        "b": {"p": {"x": 0.5, "e_above_hull": 0.004}, "q": {"x": 0.5, "e_above_hull": 0.014}},
    }
    p, q = hull_membership(rows)
    assert (p["mean"], p["spread"]) == pytest.approx((0.002, 0.002))
    assert not p["on_hull"] and p["possibly_on_hull"] and p["on_hull_for"] == ["a"]  # within its spread
    assert not q["on_hull"] and not q["possibly_on_hull"]  # 12 meV above, 2 meV spread: off the hull


def test_a_mock_committee_spreads_by_the_known_shift_and_reuses_its_members(tmp_path):
    """The mock's ``voltage`` is the Li site energy: 3.9 against 3.8 moves E(x) by 0.1 eV per Li, so every step
    moves by exactly 0.1 V, the hull stays, every spread is 0.05 V and every energy above hull agrees."""
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(
        committee_recipe({"name": "mock", "settings": {"voltage": 3.8}}), store=store, stream=io.StringIO()
    )
    assert doc["kind"] == "committee" and [m["label"] for m in doc["members"]] == ["mock", "mock voltage=3.8"]
    assert doc["average_voltage"]["spread"] == pytest.approx(0.05, abs=1e-9)
    assert all(s["spread"] == pytest.approx(0.05, abs=1e-9) for s in doc["segments"])
    assert all(s["members"]["mock"] - s["members"]["mock voltage=3.8"] == pytest.approx(0.1) for s in doc["segments"])
    assert all(v["resolved"] for v in doc["steps"])  # the mock's steps (>= 0.2 V) stand out of a 0.1 V band
    assert doc["orderings"] and all(o["spread"] < 1e-9 for o in doc["orderings"])
    assert not any(o["possibly_on_hull"] for o in doc["orderings"])
    import insertflow
    from insertflow.cli import render_summary
    from insertflow.plotting import write_plots

    frame = insertflow.committee("licoo2-levels-mock", store=store)
    assert list(frame.columns) == ["x_low", "x_high", "mean", "spread", "mock", "mock voltage=3.8"]
    assert (frame["mock"] - frame["mock voltage=3.8"]).round(9).eq(0.1).all()
    listed = insertflow.studies(store=store)
    assert listed.set_index("study").loc["licoo2-levels-mock", "average_voltage"] == doc["average_voltage"]["mean"]
    steps = len(doc["steps"])
    assert f"Steps resolved beyond the spread: {steps} of {steps}" in render_summary(doc, "memory")
    (png,) = write_plots(doc, tmp_path)
    assert png.name == "licoo2-levels-mock_voltage_committee.png" and png.read_bytes()[:4] == b"\x89PNG"
    alone = load_recipe("licoo2_levels_mock").model_dump(exclude={"folder"})
    alone["name"] = "licoo2-levels-mock [mock]"  # the first member is an ordinary study under its own name
    again = run_recipe(recipe_from_dict(alone), store=store, stream=io.StringIO())
    assert again["new_calculations"] == 0 and again["reused_calculations"] == doc["reused_calculations"] + (
        doc["new_calculations"] // 2
    )


def test_every_member_relaxes_the_orderings_one_screen_chose():
    """Screened by its own model, each member would keep other orderings and share few energies above hull;
    the committee screens once, with the recipe's calculator. The second mock (Li-Li repulsion screened at 1 A, not 3 A)
    ranks the orderings otherwise, but relaxes the same ones."""
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(committee_recipe({"name": "mock", "settings": {"screening_length": 1.0}}), store=store)
    import insertflow

    relaxed = {
        member["label"]: set(insertflow.orderings(member["study"], store=store).query("relaxed")["label"])
        for member in doc["members"]
    }
    first, second = relaxed.values()
    assert first == second and len(first) > 2
    assert {o["label"] for o in doc["orderings"]} == first  # every relaxed ordering has both energies
    assert any(o["spread"] > 1e-4 for o in doc["orderings"])  # the two models do differ


def test_members_that_fail_on_different_structures_are_reported_per_member_and_the_rest_goes_on():
    doc = run_recipe(
        committee_recipe(
            {"name": "mock", "settings": {"faults": {"Li3(CoO2)4": "raise"}}},
            study="licoo2_levels_mock",
        ),
        store=open_store(StoreConfig(type="memory")),
        stream=io.StringIO(),
    )
    failing = "mock faults={'Li3(CoO2)4': 'raise'}"
    assert set(doc["failed_by_member"]) == {failing}
    assert all("x=0.750" in label for label in doc["failed_by_member"][failing])
    assert doc["average_voltage"] is not None and doc["segments"]  # both members still give a profile
    assert not any(o["x"] == 0.75 for o in doc["orderings"])  # only orderings every member relaxed are compared


def test_defect_signs_lowest_configurations_and_kinetic_verdicts_by_hand():
    defects = {
        "a": {
            "V x=0 #1": {"kind": "V_TM", "x": 0.0, "energy": 0.30, "concentration_operating": 1e-5},
            "V x=0 #2": {"kind": "V_TM", "x": 0.0, "energy": 0.50},
            "M x=0": {"kind": "migration", "x": 0.0, "energy": -0.2},
        },
        "b": {
            "V x=0 #1": {"kind": "V_TM", "x": 0.0, "energy": 0.42, "concentration_operating": 1e-7},
            "V x=0 #2": {"kind": "V_TM", "x": 0.0, "energy": 0.40},
            "M x=0": {"kind": "migration", "x": 0.0, "energy": 0.1},
        },
    }
    rows = {row["label"]: row for row in defect_energies(defects)}
    assert rows["V x=0 #1"]["verdict"] == "unfavourable" and rows["V x=0 #1"]["spread"] == pytest.approx(0.06)
    assert rows["V x=0 #1"]["concentration_decades"] == pytest.approx(2.0)  # 1e-5 against 1e-7
    assert rows["M x=0"]["verdict"] == "undecided"  # one member says it forms, the other does not
    (vacancy, migration) = lowest_per_kind(defects)
    assert vacancy["lowest"] == {"a": "V x=0 #1", "b": "V x=0 #2"} and not vacancy["same_configuration"]
    assert migration["same_configuration"]
    hops = {"a": {"h": {"x": 0.5, "forward_barrier": 0.5}}, "b": {"h": {"x": 0.5, "forward_barrier": 0.8}}}
    (fast,) = barrier_spreads(hops, kinetic_limit=0.99, temperature=300.0)
    assert fast["verdict"] == "within" and fast["rate_factor"] == pytest.approx(math.exp(0.3 / (K_B * 300)))
    (split,) = barrier_spreads(hops, kinetic_limit=0.6, temperature=300.0)
    assert split["verdict"] == "undecided"  # 0.5 fast enough, 0.8 not
    hops["b"]["h"]["forward_barrier"] = None  # a member that did not resolve the path: nothing to compare
    assert barrier_spreads(hops, kinetic_limit=0.6, temperature=300.0) == []


@pytest.mark.slow  # ~30 s; runs in CI
def test_a_defect_committee_spreads_energies_and_barriers_by_the_known_differences(tmp_path):
    """The coupled mock (Co migration -0.8 eV at x = 0.5 and 0, the -0.8 eV per TM-TM edge it leaves) against one
    with a -0.7 eV edge and a higher NEB bump. Every migration energy differs by exactly 0.1 eV: spread 0.05 eV,
    and both members say it forms. The barriers are the analytic maxima of the mock paths (0.23 and 1.46 eV): one
    within the 0.99 eV limit and one beyond it, so the committee cannot say whether the Co migrates on charge."""
    from test_defects import COUPLED, gated_mock_defects

    from insertflow.calculators.mock import mock_path_energy

    recipe = gated_mock_defects({"tm_barrier": 0.6}).model_dump(exclude={"folder"})
    recipe["committee"] = [{"name": "mock", "settings": {**COUPLED, "tm_barrier": 1.8, "tm_tm_contact": 0.7}}]
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())
    first, second = (m["label"] for m in doc["members"])
    downhill = [d for d in doc["defects"] if d["mean"] < 0]
    assert len(downhill) == 2 and all(d["verdict"] == "favourable" for d in downhill)
    for row in doc["defects"]:
        assert row["energy"][second] - row["energy"][first] == pytest.approx(0.1, abs=1e-6)
        assert row["spread"] == pytest.approx(0.05, abs=1e-6)
    assert all(pick["same_configuration"] for pick in doc["lowest_defects"])
    assert doc["classes"] == [
        {"kind": "migration", "classification": {first: "coupled", second: "coupled"}, "agree": True}
    ]
    assert {b["x"] for b in doc["barriers"]} == {0.0, 0.5} and doc["temperature"] == 300.0
    s = np.linspace(0, 1, 200001)
    for row in doc["barriers"]:
        assert row["verdict"] == "undecided"
        for label, bump, drop in ((first, 0.6, -0.8), (second, 1.8, -0.7)):
            expected = mock_path_energy(s, 0.0, drop, bump).max()
            assert row["forward_barrier"][label] == pytest.approx(expected, abs=0.01)  # the 0.01 eV is the end relax
    assert doc["migration_onset_x"] == {first: 0.5, second: None}  # gate open for the first, shut for the second
    assert doc["hysteresis"]["values"][1] == 0.0 and doc["hysteresis"]["values"][0] > 0.1
    import insertflow
    from insertflow.cli import render_summary

    table = insertflow.committee(doc["study"], store=store)
    assert set(table["label"]) == {d["label"] for d in doc["defects"]} and (table[second] - table[first]).gt(0.09).all()
    text = render_summary(doc, "memory")
    assert "TM migration onset differs" in text and "undecided" in text
    from insertflow.plotting import write_plots

    names = sorted(path.name for path in write_plots(doc, tmp_path))
    assert names == [f"{doc['study']}_barriers_committee.png", f"{doc['study']}_defects_committee.png"]


def test_a_barrier_committee_brackets_the_kinetic_limit_with_the_two_bumps():
    """The mock's symmetric LiCoO2 hop: its barrier is the NEB bump itself, 0.4 and 1.3 eV; 0.99 eV lies between."""
    from test_barriers import barrier_recipe

    recipe = barrier_recipe().model_dump(exclude={"folder"})
    recipe["committee"] = [{"name": "mock", "settings": {"ion_barrier": 1.3}}]
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())
    (hop,) = doc["barriers"]
    assert list(hop["forward_barrier"].values()) == pytest.approx([0.4, 1.3], abs=1e-6)
    assert (hop["mean"], hop["spread"]) == pytest.approx((0.85, 0.45), abs=1e-6)
    assert hop["verdict"] == "undecided" and doc["kinetic_limit"] == pytest.approx(0.9855, abs=1e-3)
    assert hop["rate_factor"] == pytest.approx(math.exp(0.9 / (K_B * 300.0)), rel=1e-4)
    import insertflow

    table = insertflow.committee(doc["study"], store=store)
    assert list(table.columns[:4]) == ["label", "x", "mean", "spread"] and len(table) == 1


def test_a_committee_on_a_study_it_does_not_support_is_one_line():
    recipe = load_recipe("licoo2_electronic_xtb").model_dump(exclude={"folder"})
    recipe["committee"] = [{"name": "mock"}]
    with pytest.raises(Exception, match="committee: is for study end_member_voltage, insertion_levels, defects or"):
        recipe_from_dict(recipe)
    with pytest.raises(RecipeError, match="committee members must differ: mock, mock"):
        run_recipe(committee_recipe({"name": "mock"}), store=open_store(StoreConfig(type="memory")))
