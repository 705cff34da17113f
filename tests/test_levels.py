"""The insertion-levels study end to end on the mock calculator."""

import io

import pytest

from insertflow.calculators.mock import mock_energy
from insertflow.errors import RecipeError
from insertflow.recipe import recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def levels_recipe(**overrides) -> dict:
    recipe = {
        "name": "levels-test",
        "study": "insertion_levels",
        "host": "LiCoO2",
        "calculator": {"name": "mock"},
        "levels": {"max_size": 4, "ewald_keep": 4, "screen": {"keep": 2}},
    }
    recipe.update(overrides)
    return recipe


def run(recipe: dict, store) -> dict:
    return run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())


@pytest.fixture
def store():
    return open_store(StoreConfig(type="memory"))


def test_profile_from_screened_orderings(store):
    doc = run(levels_recipe(), store)
    assert doc["kind"] == "insertion_levels"
    tiers = {round(t["x"], 4): t for t in doc["tiers"]}
    assert sorted(tiers) == [0.0, 0.25, 0.3333, 0.5, 0.6667, 0.75, 1.0]
    assert [tiers[x]["enumerated"] for x in sorted(tiers)] == [1, 12, 5, 12, 5, 12, 1]
    for tier in tiers.values():
        assert tier["kept_ewald"] == min(4, tier["enumerated"])
        assert tier["kept_screen"] == min(2, tier["kept_ewald"])
        assert tier["relaxed_ok"] == tier["kept_screen"]
    # the screen keeps the lowest mock single points at each x
    for x in (0.25, 0.5, 0.75):
        rows = [r for r in doc["orderings"] if round(r["x"], 4) == x]
        kept = [r["screen_energy_per_fu"] for r in rows if r["relaxed"]]
        dropped = [r["screen_energy_per_fu"] for r in rows if not r["relaxed"]]
        assert max(kept) <= min(dropped)
    assert doc["x_range"] == [0.0, 1.0]
    assert doc["hull_x"][0] == 0.0 and doc["hull_x"][-1] == 1.0
    voltages = [s["voltage"] for s in doc["steps"]]
    assert voltages == sorted(voltages, reverse=True)  # convex hull: voltage falls as Li goes in
    assert sum(s["capacity_grav"] for s in doc["steps"]) == pytest.approx(273.8, abs=0.2)


def test_average_voltage_equals_end_member_voltage(store):
    doc = run(levels_recipe(), store)
    end_members = run(
        {"name": "em", "host": "LiCoO2", "calculator": {"name": "mock"}, "study": "end_member_voltage"}, store
    )
    assert doc["average_voltage"] == pytest.approx(end_members["average_voltage"], abs=1e-9)
    # the end members and bcc Li were reused from the levels run: same content keys
    assert end_members["reused_calculations"] == 3
    assert doc["electrode"]["average_voltage"] == pytest.approx(doc["average_voltage"], abs=1e-6)


def test_energies_above_hull_agree_with_pymatgens_phase_diagram(store):
    from pymatgen.analysis.phase_diagram import PhaseDiagram
    from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

    doc = run(levels_recipe(), store)
    records = {c["label"]: c for c in doc["calculations"]}
    rows = [r for r in doc["orderings"] if r["status"] == "ok"]
    assert any(r["on_hull"] for r in rows if 0 < r["x"] < 1)
    # An independent hull: pymatgen's PhaseDiagram over Li-Co-O with the same entries, bcc Li, and Co
    # and O put so high that only the Li_xCoO2 line matters (as pymatgen's InsertionElectrode does).
    entries = {r["label"]: ComputedStructureEntry.from_dict(records[r["label"]]["entry"]) for r in rows}
    li = ComputedStructureEntry.from_dict(records["working_ion"]["entry"])
    diagram = PhaseDiagram([*entries.values(), li, ComputedEntry("Co", 10.0), ComputedEntry("O", 10.0)])
    above = {label: diagram.get_e_above_hull(entry) for label, entry in entries.items()}
    assert max(above.values()) > 1e-3  # some orderings are really above the hull: the check is not vacuous
    for row in rows:
        assert row["e_above_hull_per_atom"] == pytest.approx(above[row["label"]], abs=1e-9)
        assert row["on_hull"] == (above[row["label"]] < 1e-9)
    # the relaxed energy is the mock model's energy of the stored structure
    record = records["x=0.500 #1"] if "x=0.500 #1" in records else next(v for k, v in records.items() if "0.500" in k)
    structure = ComputedStructureEntry.from_dict(record["entry"]).structure
    assert record["entry"]["energy"] == pytest.approx(mock_energy(structure))


def test_rerun_computes_nothing_new(store):
    first = run(levels_recipe(), store)
    second = run(levels_recipe(), store)
    assert first["new_calculations"] == 13
    assert second["new_calculations"] == 0
    assert second["reused_calculations"] == 13
    assert second["screening_reused"] is True
    assert second["average_voltage"] == pytest.approx(first["average_voltage"])


def test_without_screening_every_ewald_survivor_is_relaxed(store):
    recipe = levels_recipe(levels={"max_size": 3, "ewald_keep": 2})
    doc = run(recipe, store)
    assert doc["screen_calculator"] is None
    assert all(r["relaxed"] for r in doc["orderings"])
    assert len(doc["calculations"]) == len(doc["orderings"]) + 1  # plus bcc Li


def test_emmet_stability_fields_are_not_filled_with_the_1d_hull():
    doc = run(levels_recipe(), open_store(StoreConfig(type="memory")))
    # MP's stability_charge/discharge mean stability against the full phase diagram; ours is a 1D hull
    assert doc["electrode"]["stability_charge"] is None and doc["electrode"]["stability_discharge"] is None
    assert any(r["e_above_hull_per_atom"] > 0 for r in doc["orderings"] if r["status"] == "ok")


def test_a_failed_single_point_keeps_its_reason(store):
    recipe = levels_recipe(calculator={"name": "mock", "settings": {"faults": {"Li3(CoO2)4": "nan"}}})
    doc = run(recipe, store)
    rows = [r for r in doc["orderings"] if r["formula"] == "Li3(CoO2)4"]
    assert rows and all(r["screen_energy_per_fu"] is None for r in rows)
    unrelaxed = [r for r in rows if not r["relaxed"]]
    assert unrelaxed and all(
        r["reason"] == "single point failed: mock fault 'nan' injected for Li3(CoO2)4" for r in unrelaxed
    )
    assert any("x=0.750" in m and "mock fault 'nan' injected for Li3(CoO2)4" in m for m in doc["missing"])


def test_failed_relaxation_at_one_x_leaves_a_reported_gap(store):
    recipe = levels_recipe(calculator={"name": "mock", "settings": {"faults": {"Li(CoO2)2": "raise"}}})
    doc = run(recipe, store)
    assert 0.5 not in doc["hull_x"]
    assert any(s["x_low"] < 0.5 < s["x_high"] for s in doc["steps"])  # one step spans the gap
    assert any(m.startswith("x=0.500: no usable ordering") for m in doc["missing"])
    failed = [f for f in doc["failed"] if f["formula"] == "Li(CoO2)2"]
    assert len(failed) == 2
    assert all("mock fault 'raise'" in f["reason"] for f in failed)
    assert doc["average_voltage"] is not None
    assert doc["x_range"] == [0.0, 1.0]


def test_failed_end_member_narrows_the_range(store):
    recipe = levels_recipe(calculator={"name": "mock", "settings": {"faults": {"CoO2": "nan"}}})
    doc = run(recipe, store)
    assert doc["x_range"][0] == pytest.approx(0.25)
    assert any("x=0.000" in m for m in doc["missing"])


def test_failed_working_ion_reference_gives_no_profile_but_keeps_the_orderings(store):
    recipe = levels_recipe(calculator={"name": "mock", "settings": {"faults": {"Li": "no_converge"}}})
    doc = run(recipe, store)
    assert doc["average_voltage"] is None
    assert any("working-ion reference" in m for m in doc["missing"])
    assert sum(1 for r in doc["orderings"] if r["status"] == "ok") == 12


def test_recipe_errors_are_clear():
    with pytest.raises(RecipeError, match=r"unknown key 'levels\.max_sizes'"):
        recipe_from_dict(levels_recipe(levels={"max_sizes": 3}))
    with pytest.raises(RecipeError, match=r"levels.*belongs to study: insertion_levels"):
        recipe_from_dict(levels_recipe(study="end_member_voltage"))
    with pytest.raises(RecipeError, match=r"levels\.screen\.keep"):
        recipe_from_dict(levels_recipe(levels={"screen": {"keep": 0}}))


def test_plots_carry_the_profile(store, tmp_path):
    from insertflow.plotting import hull_figure, profile_xy, write_plots

    doc = run(levels_recipe(), store)
    xs, vs = profile_xy(doc, "x")
    assert xs[0] == 0.0 and xs[-1] == 1.0
    assert sorted(set(vs)) == sorted(s["voltage"] for s in doc["steps"])
    capacities, _ = profile_xy(doc, "capacity")
    assert capacities[0] == pytest.approx(doc["capacity_grav"])  # x = 0: fully charged
    assert capacities[-1] == pytest.approx(0.0)
    hull_line = hull_figure(doc).axes[0].lines[0]
    assert list(hull_line.get_xdata()) == sorted(doc["hull_x"])
    paths = write_plots(doc, tmp_path)
    assert [p.name for p in paths] == [
        "levels-test_hull.png",
        "levels-test_voltage_vs_x.png",
        "levels-test_voltage_vs_capacity.png",
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_runs_and_plots_a_levels_recipe(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from insertflow.cli import EXIT_BAD_INPUT, app

    recipe = tmp_path / "levels.yaml"
    recipe.write_text(yaml.safe_dump(levels_recipe(store={"type": "embedded", "path": "store.sqlite"})))
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "[screening 1/1]" in result.output and "[calculations 13/13]" in result.output
    assert "Average voltage over x 0-1:" in result.output
    assert "   total         48     22       12      12" in result.output
    plotted = runner.invoke(app, ["plot", str(recipe), "--out", str(tmp_path / "figs")])
    assert plotted.exit_code == 0, plotted.output
    assert len(list((tmp_path / "figs").glob("*.png"))) == 3

    end_member = tmp_path / "em.yaml"
    end_member.write_text(
        yaml.safe_dump(
            {
                "name": "em",
                "host": "LiCoO2",
                "calculator": {"name": "mock"},
                "store": {"type": "embedded", "path": "store.sqlite"},
            }
        )
    )
    assert runner.invoke(app, ["run", str(end_member)]).exit_code == 0
    refused = runner.invoke(app, ["plot", str(end_member), "--out", str(tmp_path / "figs2")])
    assert refused.exit_code == EXIT_BAD_INPUT
    assert "hull and profile plots need study: insertion_levels" in refused.output
    assert not (tmp_path / "figs2").exists()


def test_li2mno3_with_only_the_li_layer_active(store):
    recipe = levels_recipe(
        host="Li2MnO3",
        levels={"max_size": 1, "active_sites": ["2c", "4h"], "ewald_keep": 2},
    )
    doc = run(recipe, store)
    assert doc["x_range"] == [0.5, 2.0]  # Li per MnO3; the TM-layer 2b Li stays
    assert doc["enumeration"]["active_sites"] == ["2c", "4h"]
    assert doc["enumeration"]["active_per_cell"] == 3
    assert all(r["formula"] != "MnO3" for r in doc["orderings"])
    # capacity counts only the Li that leaves: 1.5 Li per Li2MnO3
    assert doc["capacity_grav"] == pytest.approx(1.5 * 26801.4814 / 116.8165, rel=1e-3)


def test_screening_window_relaxes_near_degenerate_orderings(store):
    narrow = run(levels_recipe(levels={"max_size": 4, "ewald_keep": 4, "screen": {"keep": 1}}), store)
    wide = run(levels_recipe(levels={"max_size": 4, "ewald_keep": 4, "screen": {"keep": 1, "window": 1000.0}}), store)
    assert all(t["kept_screen"] == 1 for t in narrow["tiers"])
    assert all(t["kept_screen"] == t["kept_ewald"] for t in wide["tiers"])  # 1 eV/atom lets every ordering through
    assert wide["reused_calculations"] == narrow["new_calculations"]  # the narrow run's relaxations are reused
