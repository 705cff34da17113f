"""Study makers composed like atomate2's: make(structure) behind an atomate2 relaxation, in one Flow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest
from jobflow import Flow, job, run_locally

import insertflow
from insertflow.calculators import get_calculator
from insertflow.errors import InsertflowError
from insertflow.flows.compose import StudyInputError
from insertflow.flows.levels import InsertionLevelsMaker
from insertflow.hosts import load_host
from insertflow.recipe import recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.sampling.orderings import OrderingSettings
from insertflow.store import StoreConfig, open_store


def levels_maker(study: str) -> InsertionLevelsMaker:
    """The maker the recipe below builds: mock relaxations and screening, 2 kept per x of 4 by Ewald."""
    mock = get_calculator("mock")
    return InsertionLevelsMaker(
        calculator=mock,
        screen_calculator=mock,
        screen_keep=2,
        orderings=OrderingSettings(max_size=4, ewald_keep=4),
        study=study,
    )


def recipe(name: str, host: str, folder) -> dict:
    data = {
        "name": name,
        "study": "insertion_levels",
        "host": host,
        "calculator": {"name": "mock"},
        "levels": {"max_size": 4, "ewald_keep": 4, "screen": {"keep": 2}},
    }
    return recipe_from_dict(data, folder=folder)


def atomate2_relax():
    from atomate2.forcefields.jobs import ForceFieldRelaxMaker

    primitive = load_host("LiCoO2").structure.get_primitive_structure()
    return ForceFieldRelaxMaker(force_field_name="CHGNet", steps=200, relax_kwargs={"fmax": 0.05}).make(primitive)


@pytest.mark.slow  # CHGNet loads once (a few seconds); the mock study is fast
def test_levels_after_an_atomate2_relaxation_equals_the_recipe_route(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    store = open_store(StoreConfig(type="embedded", path=str(tmp_path / "store.sqlite")))
    relax = atomate2_relax()
    levels = levels_maker("composed").make(relax.output.structure, working_ion="Li")
    assert [j.name for j in levels.jobs] == ["plan composed"]  # nothing enumerated yet
    run_locally(Flow([relax, levels]), store=store, log=False, root_dir=tmp_path, create_folders=True)
    composed = insertflow.study("composed", store=store)
    assert composed["kind"] == "insertion_levels" and composed["new_calculations"] > 10

    # the recipe route on the same host: the relaxed structure as the recipe's host file
    relaxed = store.query_one({"uuid": relax.uuid}, properties=["output.structure"])["output"]["structure"]
    (tmp_path / "relaxed.json").write_text(json.dumps(relaxed))
    via_recipe = run_recipe(recipe("via-recipe", "relaxed.json", tmp_path), store=store)
    # the same orderings and content keys: the recipe route computes nothing and agrees to 1e-6 V
    assert via_recipe["new_calculations"] == 0
    assert via_recipe["reused_calculations"] == composed["new_calculations"]
    assert via_recipe["average_voltage"] == pytest.approx(composed["average_voltage"], abs=1e-6)
    assert [s["voltage"] for s in via_recipe["steps"]] == pytest.approx(
        [s["voltage"] for s in composed["steps"]], abs=1e-6
    )

    # a second run of the composed Flow (new jobs, same store): the relaxation repeats, the study does not
    second_relax = atomate2_relax()
    second = levels_maker("composed").make(second_relax.output.structure)
    run_locally(Flow([second_relax, second]), store=store, log=False, root_dir=tmp_path, create_folders=True)
    rerun = insertflow.study("composed", store=store)
    assert (rerun["new_calculations"], rerun["reused_calculations"]) == (0, composed["new_calculations"])
    # the notebook API opens it like any recipe's study
    profile = insertflow.voltage_profile("composed", store=store)
    assert profile["x_low"].min() == 0.0 and profile["x_high"].max() == 1.0


@job
def energy_only(structure):
    """An upstream job whose output is not a structure."""
    return {"energy": -1.0, "formula": structure.composition.reduced_formula}


def test_a_reference_to_something_else_names_the_job_that_made_it(memory_store):
    upstream = energy_only(load_host("LiCoO2").structure)
    upstream.name = "energy only"
    levels = levels_maker("bad-input").make(upstream.output["energy"])
    run_locally(Flow([upstream, levels]), store=memory_store, log=False)
    doc = insertflow.study("bad-input", store=memory_store, failed_ok=True)
    assert doc["status"] == "failed" and doc["kind"] == "insertion_levels"
    assert doc["error"] == (
        f"study 'bad-input': job 'energy only' ({upstream.uuid}) gave a float at output['energy'], not a structure"
    )
    with pytest.raises(InsertflowError, match=r"study 'bad-input' failed: study 'bad-input': job 'energy only'"):
        insertflow.voltage_profile("bad-input", store=memory_store)


def test_a_structure_without_the_working_ion_is_a_failed_study(memory_store):
    coo2 = load_host("LiCoO2").structure
    coo2.remove_species(["Li"])
    levels = levels_maker("no-li").make(coo2, working_ion="Li")
    run_locally(levels, store=memory_store, log=False)
    doc = insertflow.study("no-li", store=memory_store, failed_ok=True)
    assert doc["status"] == "failed"
    assert "contains no Li" in doc["error"] and "\n" not in doc["error"]
    with pytest.raises(StudyInputError, match=r"takes a Structure, its dict or an upstream job's output, not str"):
        levels_maker("x").make("LiCoO2")


@pytest.mark.slow  # two FireWorks subprocesses
def test_composed_flow_through_fireworks_on_mongomock(tmp_path):
    pytest.importorskip("mongomock_persistence")
    (tmp_path / "mongomock.json").write_text("{}")
    launchpad = tmp_path / "my_launchpad.yaml"
    launchpad.write_text("host: localhost\nname: insertflow_compose\n")
    env = {**os.environ, "MONGOMOCK_SERVERSTORE_FILE": str(tmp_path / "mongomock.json"), "OMP_NUM_THREADS": "1"}
    bin_dir = os.path.dirname(sys.executable)

    def run(*command):
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    run(f"{bin_dir}/lpad", "-l", str(launchpad), "reset", "--password", date.today().isoformat())
    store = f"embedded://{tmp_path / 'results.sqlite'}"
    script = tmp_path / "submit_composed.py"
    script.write_text(
        "import sys\n"
        "from jobflow import Flow\n"
        "from tests.test_compose import atomate2_relax, levels_maker\n"
        "from insertflow.store import resolve_store_config\n"
        "from insertflow.submit import submit_flow\n"
        "relax = atomate2_relax()\n"
        "flow = Flow([relax, levels_maker('composed-fw').make(relax.output.structure)], name='composed')\n"
        "print(submit_flow(flow, resolve_store_config(None, sys.argv[1]), launchpad=sys.argv[2]))\n"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(os.path.dirname(os.path.dirname(__file__))), env.get("PYTHONPATH", "")])
    submitted = run(sys.executable, str(script), store, str(launchpad))
    assert "submitted 'composed'" in submitted.stdout
    run(f"{bin_dir}/rlaunch", "-l", str(launchpad), "rapidfire")
    flows = run(f"{bin_dir}/lpad", "-l", str(launchpad), "get_wflows", "-d", "more")
    assert '"state": "COMPLETED"' in flows.stdout
    doc = insertflow.study("composed-fw", store=store)
    assert doc["kind"] == "insertion_levels" and doc["x_range"] == [0.0, 1.0] and doc["new_calculations"] > 10
