"""A committee of calculators on one study: hand-made spreads, and the mock with known differences."""

import io

import pytest

from insertflow.analysis.committee import hull_membership, mean_and_spread, step_verdicts, voltage_segments
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


def test_a_committee_on_a_study_it_does_not_support_is_one_line():
    recipe = load_recipe("licoo2_defects_mock").model_dump(exclude={"folder"})
    recipe["committee"] = [{"name": "mock"}]
    with pytest.raises(Exception, match="committee: is for study end_member_voltage or insertion_levels"):
        recipe_from_dict(recipe)
    with pytest.raises(RecipeError, match="committee members must differ: mock, mock"):
        run_recipe(committee_recipe({"name": "mock"}), store=open_store(StoreConfig(type="memory")))
