"""DFT spot checks of a levels study, on the mock: which points are chosen, and what a known shift does to them."""

import io

import pytest

from insertflow.flows.spot_checks import SpotCheckSettings, chosen_points
from insertflow.recipe import load_recipe, recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def spot_checked(**spot) -> object:
    recipe = load_recipe("licoo2_levels_mock").model_dump(exclude={"folder"})
    recipe["spot_check"] = {"calculator": {"name": "mock", "settings": {"voltage": 3.8}}, **spot}
    return recipe_from_dict(recipe)


def test_the_hull_and_what_lies_within_the_window_are_chosen_smallest_cells_first():
    rows = [
        {"label": "x0", "x": 0.0, "e_above_hull": 0.0, "on_hull": True, "status": "ok", "n_atoms": 3},
        {"label": "a", "x": 0.5, "e_above_hull": 0.0, "on_hull": True, "status": "ok", "n_atoms": 14},
        {"label": "near small", "x": 0.5, "e_above_hull": 0.004, "status": "ok", "n_atoms": 7},
        {"label": "near big", "x": 0.5, "e_above_hull": 0.003, "status": "ok", "n_atoms": 28},
        {"label": "far", "x": 0.5, "e_above_hull": 0.02, "status": "ok", "n_atoms": 7},
        {"label": "x1", "x": 1.0, "e_above_hull": 0.0, "on_hull": True, "status": "ok", "n_atoms": 4},
    ]
    labels = [p["label"] for p in chosen_points({"orderings": rows}, SpotCheckSettings(window=0.005, max_points=4))]
    assert labels == ["x0", "a", "near small", "x1"]  # "far" is outside the window; "near big" lost to the cap
    everything = chosen_points({"orderings": rows}, SpotCheckSettings(window=0.005, max_points=12))
    assert {p["label"] for p in everything} == {"x0", "a", "near small", "near big", "x1"}


def test_a_checker_that_differs_by_a_li_site_energy_keeps_the_hull_and_shifts_every_step():
    """The checking mock has a Li site energy 0.1 eV lower (voltage 3.8 against 3.9): E(x) moves by 0.1 eV per Li,
    linear in x, so every formation energy against the end members is unchanged, the hull agrees and every
    step of the profile rebuilt from its energies is 0.1 V lower."""
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(spot_checked(window=0.0), store=store, stream=io.StringIO())
    spot = doc["spot_checks"]
    assert spot["geometry_from"]["name"] == "mock" and spot["calculator"]["settings"]["voltage"] == 3.8
    assert spot["points"] and all(abs(p["difference"]) < 1e-9 for p in spot["points"])
    assert spot["hull_agrees"]
    ml = {(s["x_low"], s["x_high"]): s["voltage"] for s in doc["steps"]}
    dft = {(s["x_low"], s["x_high"]): s["voltage"] for s in spot["steps"]}
    assert ml.keys() == dft.keys() and all(ml[k] - dft[k] == pytest.approx(0.1) for k in ml)
    assert spot["average_voltage"] == pytest.approx(doc["average_voltage"] - 0.1)
    hull = [o for o in doc["orderings"] if o["on_hull"]]
    assert [p["label"] for p in spot["points"]] == [o["label"] for o in hull]  # window 0: the vertices only
    assert spot["statics"] == len(hull) + 1 < spot["naive_relaxations"]  # and the metal; fewer than relaxing all
    import insertflow

    table = insertflow.spot_checks("licoo2-levels-mock", store=store)
    assert list(table["label"]) == [o["label"] for o in hull] and table["difference"].abs().max() < 1e-9
    assert table.attrs["geometry_from"] == "mock" and table.attrs["statics"] == len(hull) + 1
    again = run_recipe(spot_checked(window=0.0), store=store, stream=io.StringIO())
    assert all(p["reused"] for p in again["spot_checks"]["points"])  # content-keyed statics


def test_a_spot_check_outside_a_levels_study_is_one_line():
    recipe = load_recipe("licoo2_mock").model_dump(exclude={"folder"})
    recipe["spot_check"] = {"calculator": {"name": "mock"}}
    with pytest.raises(Exception, match="spot_check: is for study insertion_levels"):
        recipe_from_dict(recipe)
