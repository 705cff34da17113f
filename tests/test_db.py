"""The notebook API (DataFrames from a store) and `insertflow status`."""

import io

import pandas as pd
import pytest
from pymatgen.core import Structure
from typer.testing import CliRunner

import insertflow
from insertflow.cli import app
from insertflow.errors import InsertflowError
from insertflow.recipe import load_recipe, recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "store.sqlite"
    store = open_store(StoreConfig(type="embedded", path=str(path)))
    for name in ("licoo2_mock", "licoo2_levels_mock", "licoo2_defects_mock"):
        run_recipe(load_recipe(name), store=store, stream=io.StringIO())
    return f"embedded://{path}"


def test_three_lines_from_import_to_a_profile_plot(filled, monkeypatch):
    monkeypatch.setenv("INSERTFLOW_STORE", filled)  # as a user's default store would be
    profile = insertflow.voltage_profile("licoo2-levels-mock")
    axes = profile.plot(x="x_low", y="voltage", drawstyle="steps-post")
    assert list(axes.lines[0].get_ydata()) == list(profile["voltage"])
    assert profile["x_high"].iloc[0] == 1.0  # discharge order: from the lithiated end
    assert profile["cumulative_capacity"].iloc[-1] == pytest.approx(273.8, abs=0.2)


def test_studies_table_and_filters(filled):
    table = insertflow.studies(store=filled)
    assert set(table["study"]) == {"licoo2-mock", "licoo2-levels-mock", "licoo2-defects-mock"}
    assert set(table["kind"]) == {"end_member_voltage", "insertion_levels", "defects"}
    assert insertflow.studies(store=filled, calculator="chgnet").empty
    assert len(insertflow.studies(store=filled, host="LiCoO2")) == 3
    end_member = table.set_index("study").loc["licoo2-mock"]
    levels = insertflow.voltage_profile("licoo2-levels-mock", store=filled)
    # the profile's capacity-weighted mean is the end-member voltage
    mean = (levels["voltage"] * levels["capacity_grav"]).sum() / levels["capacity_grav"].sum()
    assert mean == pytest.approx(end_member["average_voltage"])


def test_orderings_defects_hysteresis_and_structures(filled):
    orderings = insertflow.orderings("licoo2-levels-mock", store=filled, x_min=0.25, x_max=0.75)
    assert orderings["x"].between(0.25, 0.75).all() and len(orderings) > 0
    assert {"e_above_hull", "ewald_rank", "screen_rank", "on_hull"} <= set(orderings.columns)
    defects = insertflow.defects("licoo2-defects-mock", store=filled)
    classes = dict(zip(defects["kind"], defects["classification"], strict=True))
    assert classes["V_TM"] == "negligible" and classes["migration"] == "negligible"  # ~4 eV and 0.5 eV in the mock
    assert {"concentration_operating", "multiplicity", "geometry", "counted"} <= set(defects.columns)
    assert (defects.query("kind == 'V_TM'")["energy"] > 0).all()
    loop = insertflow.hysteresis("licoo2-defects-mock", store=filled)
    assert isinstance(loop, pd.DataFrame) and (loop["dv"] == 0).all()
    assert loop.attrs["coupled"] is False
    structure = insertflow.get_structure("licoo2-levels-mock", "x=0.500 #3", store=filled)
    assert isinstance(structure, Structure) and structure.composition.reduced_formula == "Li(CoO2)2"


def test_clear_errors_for_unknown_or_mismatched_studies(filled):
    with pytest.raises(InsertflowError, match=r"no study 'nope'.*licoo2-levels-mock"):
        insertflow.voltage_profile("nope", store=filled)
    with pytest.raises(InsertflowError, match=r"is an insertion_levels study, not defects"):
        insertflow.defects("licoo2-levels-mock", store=filled)
    with pytest.raises(InsertflowError, match="no finished calculation 'x=9'"):
        insertflow.get_structure("licoo2-levels-mock", "x=9", store=filled)


def test_status_counts_stages_and_lists_failures(tmp_path):
    runner = CliRunner()
    store = f"embedded://{tmp_path / 'status.sqlite'}"
    before = runner.invoke(app, ["status", "licoo2_levels_mock", "--store", store])
    assert (
        "0 calculations recorded; 13 planned" in before.output and "analysis                   pending" in before.output
    )
    broken = recipe_from_dict(
        {
            "name": "licoo2-levels-mock",
            "study": "insertion_levels",
            "host": "LiCoO2",
            "calculator": {"name": "mock", "settings": {"faults": {"Li(CoO2)2": "raise"}}},
            "levels": {"max_size": 4, "ewald_keep": 4, "screen": {"keep": 2}},
        }
    )
    run_recipe(
        broken,
        store=open_store(StoreConfig(type="embedded", path=str(tmp_path / "status.sqlite"))),
        stream=io.StringIO(),
    )
    after = runner.invoke(app, ["status", "licoo2_levels_mock", "--store", store])
    assert after.exit_code == 0, after.output
    assert "orderings                    12 done (2 failed, 10 ok)" in after.output
    assert "FAILED x=0.500" in after.output and "mock fault 'raise'" in after.output
    assert "analysis                   done" in after.output
