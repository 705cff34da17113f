"""Submission: FireWorks round trip on a mongomock-backed LaunchPad, jobflow-remote up to its database."""

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

import insertflow
from insertflow.recipe import load_recipe
from insertflow.store import StoreConfig
from insertflow.submit import SubmitError, load_launchpad, submit

BIN = Path(sys.executable).parent


def cli(*args, env, cwd=None):
    command = [str(BIN / args[0]), *map(str, args[1:])]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False, cwd=cwd)


@pytest.fixture
def launchpad(tmp_path):
    pytest.importorskip("mongomock_persistence")
    (tmp_path / "mongomock.json").write_text("{}")  # FireWorks needs the file to exist and hold {}
    (tmp_path / "my_launchpad.yaml").write_text("host: localhost\nname: insertflow_test\n")
    env = {
        **os.environ,
        "MONGOMOCK_SERVERSTORE_FILE": str(tmp_path / "mongomock.json"),
        "INSERTFLOW_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
    }
    lp = tmp_path / "my_launchpad.yaml"
    reset = cli("lpad", "-l", lp, "reset", "--password", date.today().isoformat(), env=env)
    assert reset.returncode == 0, reset.stderr
    return tmp_path, lp, env


@pytest.mark.slow  # tens of seconds; runs in CI
def test_fireworks_round_trip_then_query(launchpad):
    folder, lp, env = launchpad
    store = f"embedded://{folder / 'results.sqlite'}"
    submitted = cli("insertflow", "submit", "licoo2_levels_mock", "--launchpad", lp, "--store", store, env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "submitted 'licoo2-levels-mock: insertion levels'" in submitted.stdout
    launched = cli("rlaunch", "-l", lp, "rapidfire", env=env, cwd=folder)  # launcher_* folders go there
    assert launched.returncode == 0, launched.stderr
    flows = cli("lpad", "-l", lp, "get_wflows", "-d", "more", env=env)
    assert '"state": "COMPLETED"' in flows.stdout
    # the screening job replaced itself with the relaxations on FireWorks too; results come back through the API
    profile = insertflow.voltage_profile("licoo2-levels-mock", store=store)
    assert profile["x_low"].min() == 0.0 and profile["x_high"].max() == 1.0
    assert insertflow.study("licoo2-levels-mock", store=store)["new_calculations"] == 13

    again = cli("insertflow", "submit", "licoo2_levels_mock", "--launchpad", lp, "--store", store, env=env)
    assert again.returncode == 0, again.stderr
    relaunched = cli("rlaunch", "-l", lp, "rapidfire", env=env, cwd=folder)
    assert relaunched.returncode == 0, relaunched.stderr
    print(relaunched.stdout[-2000:], relaunched.stderr[-3000:])
    second = insertflow.study("licoo2-levels-mock", store=store)
    assert (second["new_calculations"], second["reused_calculations"]) == (0, 13)  # submitted twice: no duplicates


def test_launchpad_problems_are_clear(tmp_path):
    with pytest.raises(SubmitError, match="does not exist; give --launchpad"):
        load_launchpad(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("host: [unclosed\n")
    with pytest.raises(SubmitError, match="is not valid YAML"):
        load_launchpad(str(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text("just a string\n")
    with pytest.raises(SubmitError, match="needs at least 'host'"):
        load_launchpad(str(empty))
    unreachable = tmp_path / "unreachable.yaml"
    unreachable.write_text(
        "host: 127.0.0.1\nport: 1\nname: nothing\nmongoclient_kwargs:\n  serverSelectionTimeoutMS: 1500\n"
    )
    start = time.perf_counter()
    with pytest.raises(SubmitError, match="cannot reach the LaunchPad"):
        load_launchpad(str(unreachable))
    assert time.perf_counter() - start < 10


def test_memory_store_and_unknown_engine_are_refused():
    recipe = load_recipe("licoo2_mock")
    with pytest.raises(SubmitError, match="in-memory store cannot collect results"):
        submit(recipe, StoreConfig(type="memory"))
    with pytest.raises(SubmitError, match="unknown engine 'slurm'"):
        submit(recipe, StoreConfig(type="embedded", path="x.sqlite"), engine="slurm")


def test_jobflow_remote_is_called_with_project_and_worker(monkeypatch, tmp_path):
    calls = []

    class FakeJobflowRemote:  # the real package needs a MongoDB server: test up to that boundary
        @staticmethod
        def submit_flow(flow, worker, project):
            calls.append((flow, worker, project))
            return [job.uuid for job in flow.jobs]

    monkeypatch.setitem(sys.modules, "jobflow_remote", FakeJobflowRemote)
    config = StoreConfig(type="embedded", path=str(tmp_path / "s.sqlite"))
    message = submit(load_recipe("licoo2_mock"), config, engine="jobflow-remote", project="cluster", worker="slurm_cpu")
    flow, worker, project = calls[0]
    assert (worker, project) == ("slurm_cpu", "cluster")
    assert flow.name == "licoo2-mock: end-member voltage" and len(flow.jobs) == 4
    assert "worker slurm_cpu: 4 jobs" in message
    with pytest.raises(SubmitError, match="--worker is required"):
        submit(load_recipe("licoo2_mock"), config, engine="jobflow-remote")


def test_jobflow_remote_missing_is_explained(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jobflow_remote", None)  # an import of it now fails
    with pytest.raises(SubmitError, match="pip install jobflow-remote"):
        submit(
            load_recipe("licoo2_mock"),
            StoreConfig(type="embedded", path=str(tmp_path / "s.sqlite")),
            engine="jobflow-remote",
            worker="w",
        )


@pytest.mark.slow  # tens of seconds; runs in CI
def test_submitting_twice_before_launching_computes_each_key_once(launchpad):
    from insertflow.store import open_store

    folder, lp, env = launchpad
    path = folder / "results.sqlite"
    store = f"embedded://{path}"
    for _ in range(2):
        submitted = cli("insertflow", "submit", "licoo2_levels_mock", "--launchpad", lp, "--store", store, env=env)
        assert submitted.returncode == 0, submitted.stderr
    launched = cli("rlaunch", "-l", lp, "rapidfire", env=env, cwd=folder)
    assert launched.returncode == 0, launched.stderr
    flows = cli("lpad", "-l", lp, "get_wflows", "-d", "more", env=env)
    assert flows.stdout.count('"state": "COMPLETED"') >= 2  # both workflows finished
    opened = open_store(StoreConfig(type="embedded", path=str(path)))
    computed = [d["output"]["content_key"] for d in opened.query({"output.reused": False, "output.status": "ok"})]
    assert len(computed) == 13 and len(set(computed)) == 13  # 13 keys, each computed once
    studies = list(opened.query({"metadata.insertflow.kind": "study"}, properties=["output.average_voltage"]))
    assert len(studies) == 2 and studies[0]["output"]["average_voltage"] == studies[1]["output"]["average_voltage"]


@pytest.mark.slow  # tens of seconds; runs in CI
def test_a_barrier_study_plans_and_runs_its_nebs_on_fireworks(launchpad):
    import yaml

    folder, lp, env = launchpad
    recipe = folder / "barriers.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "fw-barriers",
                "study": "barriers",
                "host": "LiCoO2",
                "calculator": {"name": "mock"},
                "barriers": {"hops": [0], "modes": ["vacancy", "divacancy"], "supercell": [3, 3, 1]},
            }
        )
    )
    store = f"embedded://{folder / 'results.sqlite'}"
    submitted = cli("insertflow", "submit", recipe, "--launchpad", lp, "--store", store, env=env)
    assert submitted.returncode == 0, submitted.stderr
    launched = cli("rlaunch", "-l", lp, "rapidfire", env=env, cwd=folder)
    assert launched.returncode == 0, launched.stderr
    table = insertflow.barriers("fw-barriers", store=store)
    # the planning job replaced itself with the endpoints and NEBs on FireWorks: the mock's 0.4 eV bump
    assert list(table["mode"]) == ["vacancy", "divacancy"]
    assert list(table["forward_barrier"]) == pytest.approx([0.4, 0.4], abs=1e-6)
