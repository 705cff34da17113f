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
