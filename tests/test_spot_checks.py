"""DFT spot checks of levels and defect studies, on the mock: which points are chosen, what a known shift does."""

import io

import pytest

from insertflow.flows.defect_spot_checks import DefectSpotCheckSettings, chosen_defects
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
    small = chosen_points({"orderings": rows}, SpotCheckSettings(window=0.005, max_points=12, max_atoms=10))
    assert [p["label"] for p in small] == ["x0", "near small", "x1"]  # the 14-atom vertex is too big for the DFT


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
    from insertflow.plotting import profile_figure

    lines = profile_figure(doc).axes[0].lines
    dft_line = next(line for line in lines if "energies on these geometries" in str(line.get_label()))
    assert max(dft_line.get_ydata()) == pytest.approx(max(s["voltage"] for s in spot["steps"]))
    again = run_recipe(spot_checked(window=0.0), store=store, stream=io.StringIO())
    assert all(p["reused"] for p in again["spot_checks"]["points"])  # content-keyed statics


def test_a_spot_check_outside_a_levels_or_defects_study_is_one_line():
    recipe = load_recipe("licoo2_mock").model_dump(exclude={"folder"})
    recipe["spot_check"] = {"calculator": {"name": "mock"}}
    with pytest.raises(Exception, match="spot_check: is for study insertion_levels or defects"):
        recipe_from_dict(recipe)


def test_the_lowest_defect_per_kind_and_x_and_the_migrated_tm_are_chosen_the_surest_signs_dropped_first():
    def row(label, kind, x, energy, **extra):
        return {"label": label, "kind": kind, "x": x, "energy": energy, "status": "ok", "counted": True, **extra}

    doc = {
        "defects": [
            row("V a", "V_TM", 0.5, 2.0),
            row("V b", "V_TM", 0.5, 1.5),
            row("M a", "migration", 0.5, -0.1),
            row("M b", "migration", 0.5, -0.3),
            row("M moved back", "migration", 0.5, -0.9, counted=False),  # relaxed back home: not a migration
            row("M x=1", "migration", 1.0, 0.4),
            row("F", "F_O", 1.0, 3.0),
        ],
        "hysteresis": {"migrated_label": "M a"},  # the one the loop ran on, not the lowest
    }
    labels = [r["label"] for r in chosen_defects(doc, DefectSpotCheckSettings(max_points=12))]
    assert labels == ["V b", "M a", "M b", "F", "M x=1"]  # by x, then kind
    capped = [r["label"] for r in chosen_defects(doc, DefectSpotCheckSettings(max_points=3))]
    assert capped == ["M a", "M b", "M x=1"]  # the migrated TM, then the energies nearest zero
    for r in doc["defects"]:
        r["n_atoms"] = 40 if r["label"] in ("M a", "V b") else 20
    small = [r["label"] for r in chosen_defects(doc, DefectSpotCheckSettings(max_points=12, max_atoms=30))]
    assert small == ["V a", "M b", "F", "M x=1"]  # the 40-atom cells are left out, the migrated TM too


def defect_recipe(calculator: dict, spot: dict | None = None, **defects) -> object:
    recipe = load_recipe("licoo2_defects_mock").model_dump(exclude={"folder"})
    recipe["calculator"] = calculator
    recipe["defects"].update(defects)
    if spot is not None:
        recipe["spot_check"] = {"calculator": spot, "max_points": 20}
    return recipe_from_dict(recipe)


def test_a_defect_spot_check_on_unmoved_geometries_is_the_all_dft_study_with_dft_chemical_potentials():
    """The mock relaxation leaves every structure where it is, so statics with the checking mock on the ML
    geometries must give exactly the energies of a whole study run with the checking mock. Its TM-TM edge is
    -0.3 eV against -0.5: a Co vacancy breaks edges, and mu_Co (from the checker's own CoO and Co3O4) and mu_Li
    (from its own voltage profile) move with it. With the ML chemical potentials the energies would be off."""
    ml, dft = {"name": "mock"}, {"name": "mock", "settings": {"tm_tm_contact": -0.3}}
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(defect_recipe(ml, dft), store=store, stream=io.StringIO())
    truth = run_recipe(defect_recipe(dft), store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    spot = doc["spot_checks"]
    assert spot["geometry_from"]["settings"]["tm_tm_contact"] == -0.5 and not spot["failed"]
    expected = {d["label"]: d["energy"] for d in truth["defects"]}
    points = {p["label"]: p for p in spot["points"]}
    kinds = {(d["kind"], d["x"]) for d in doc["defects"] if d["energy"] is not None}
    assert len(points) == len(kinds)  # one per kind and x
    for label, point in points.items():
        assert point["energy_dft"] == pytest.approx(expected[label], abs=1e-5), label
    assert max(abs(p["difference"]) for p in points.values()) > 0.5  # the checker does differ (V_TM: 0.6 eV)
    assert spot["statics"] < spot["naive_relaxations"]
    import insertflow

    table = insertflow.spot_checks("licoo2-defects-mock", store=store)
    assert set(table["label"]) == set(points) and "energy_dft" in table.columns
    again = run_recipe(defect_recipe(ml, dft), store=store, stream=io.StringIO())
    assert all(p["reused"] for p in again["spot_checks"]["points"])


def test_a_migration_spot_check_needs_no_phases_and_checks_the_tm_the_loop_ran_on():
    """The coupled mock (Co migration -0.8 eV at x = 0.5 and 0) checked by one whose TM-TM edge is 0.6 eV:
    the migration energy is a difference of two cells of one composition, so it needs only the defect cell and
    its host (no competing phase, no metal), and it moves by exactly the lost edge, -0.8 -> -0.6 eV."""
    from test_defects import COUPLED

    ml = {"name": "mock", "settings": COUPLED}
    dft = {"name": "mock", "settings": {**COUPLED, "tm_tm_contact": 0.6}}
    recipe = defect_recipe(ml, dft, kinds=["migration"], orderings_per_x=1)
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    spot = doc["spot_checks"]
    migrated = doc["hysteresis"]["migrated_label"]
    assert migrated in {p["label"] for p in spot["points"] if p["migrated_state"]}
    hosts = {p["label"].rsplit("[", 1)[-1] + str(p["x"]) for p in spot["points"]}  # one host ordering per x
    assert spot["statics"] == len(spot["points"]) + len(hosts)  # the defects and their hosts, nothing else
    downhill = [p for p in spot["points"] if p["energy_ml"] < -0.5]
    assert downhill and all(p["difference"] == pytest.approx(0.2, abs=1e-6) for p in downhill)
    assert all(p["favourable_dft"] for p in downhill) and spot["signs_agree"]
    from insertflow.cli import render_summary

    text = render_summary(doc, "memory")
    assert "(the loop's migrated TM)" in text and f"({spot['statics']} statics;" in text
