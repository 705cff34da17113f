"""Real CHGNet 0.3.0 on the 4-atom LiCoO2 cell (a few seconds)."""

import json

import pytest

pytest.importorskip("chgnet")

from insertflow.db import latest_study
from insertflow.recipe import load_recipe
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store

pytestmark = pytest.mark.chgnet


def test_licoo2_voltage_and_stored_document_reads_back(tmp_path):
    recipe = load_recipe("licoo2_chgnet")
    path = str(tmp_path / "chgnet.sqlite")
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="embedded", path=path)))
    # Bare CHGNet 0.3.0, relaxed end members and bcc Li: 3.49 V measured (MP GGA+U level).
    assert 3.3 <= doc["average_voltage"] <= 3.7
    assert doc["average_voltage"] == pytest.approx(3.49, abs=0.03)
    charged = next(c for c in doc["calculations"] if c["label"] == "charged")
    assert charged["layer_gap_growth"] < 1.0  # CoO2 layers stayed together
    # A fresh connection (as another process would open it) reads back the identical document.
    reread = latest_study(open_store(StoreConfig(type="embedded", path=path)), recipe.name)
    assert json.dumps(reread, sort_keys=True, default=str) == json.dumps(doc, sort_keys=True, default=str)
    # CHGNet magnetic moments: Co3+ in LiCoO2 is low-spin (~0 muB).
    discharged = next(c for c in doc["calculations"] if c["label"] == "discharged")
    co = [
        m
        for m, site in zip(discharged["magmoms"], discharged["entry"]["structure"]["sites"], strict=True)
        if site["species"][0]["element"] == "Co"
    ]
    assert co and max(abs(m) for m in co) < 0.3


def test_licoo2_levels_profile_matches_end_members_and_stays_layered(tmp_path):
    store = open_store(StoreConfig(type="embedded", path=str(tmp_path / "levels.sqlite")))
    levels = load_recipe("licoo2_levels_chgnet")
    levels.levels.max_size = 3  # x = 0, 1/3, 1/2, 2/3, 1: six relaxations of <= 12 atoms
    levels.levels.ewald_keep = 3
    levels.levels.screen.keep = 1
    doc = run_recipe(levels, store=store)
    end_members = run_recipe(load_recipe("licoo2_chgnet"), store=store)
    # The same thermodynamic quantity two ways: the capacity-weighted profile average over
    # 0 <= x <= 1 and the end-member voltage (its entries were reused from the levels run).
    assert doc["x_range"] == [0.0, 1.0]
    assert doc["average_voltage"] == pytest.approx(end_members["average_voltage"], abs=0.05)
    assert end_members["reused_calculations"] == 3
    voltages = [s["voltage"] for s in doc["steps"]]
    assert voltages == sorted(voltages, reverse=True)
    assert all(3.0 < v < 4.2 for v in voltages)  # MP GGA+U scale, no runaway step
    hull = [r for r in doc["orderings"] if r["on_hull"]]
    assert {r["x"] for r in hull} >= {0.0, 1.0}
    for row in hull:
        assert row["status"] == "ok"
        assert row["layer_gap_growth"] < 1.0  # no exfoliated CoO2 slabs
        assert row["spacegroup_final"] == row["spacegroup_initial"]  # the ordering kept its symmetry
