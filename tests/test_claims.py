"""One worker computes a content key: claims with a lease, on the embedded store and MongoDB-like stores."""

import os
import subprocess
import sys
import time

import pytest
import yaml

from insertflow import claims
from insertflow.store import StoreConfig, open_store

RECIPE = {"name": "claims", "host": "LiCoO2", "calculator": {"name": "mock", "settings": {"seconds": 1.0}}}


@pytest.fixture(params=["embedded", "memory"])
def store(request, tmp_path):
    path = str(tmp_path / "claims.sqlite") if request.param == "embedded" else None
    return open_store(StoreConfig(type=request.param, path=path))


def test_a_key_is_held_by_one_owner_until_its_lease_ends(store):
    assert claims.claim(store, "k", "host-a:1:job", lease_s=60).granted
    other = claims.claim(store, "k", "host-b:2:job", lease_s=60)
    assert not other.granted and other.holder == "host-a:1:job"
    assert claims.claim(store, "k", "host-a:1:job", lease_s=60).granted  # its owner may renew it
    assert claims.holder(store, "k") == "host-a:1:job"
    claims.release(store, "k", "host-b:2:job", grace_s=0)  # not its claim: nothing happens
    assert claims.holder(store, "k") == "host-a:1:job"
    claims.release(store, "k", "host-a:1:job", grace_s=0)
    assert claims.holder(store, "k") is None and claims.claim(store, "k", "host-b:2:job").granted


def test_an_expired_claim_is_taken_over(store):
    assert claims.claim(store, "k", "killed-worker:9:job", lease_s=-1).granted  # a lease that already ended
    assert claims.claim(store, "k", "host-b:2:job", lease_s=60).granted


def test_a_claim_of_a_process_gone_from_this_host_is_taken_over_before_its_lease_ends(store):
    import socket

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    gone = f"{socket.gethostname()}:{finished.stdout.strip()}:job"  # that pid has exited
    assert claims.claim(store, "k", gone, lease_s=3600).granted
    assert claims.claim(store, "k", "host-b:2:job", lease_s=60).granted  # a Ctrl-C'd run does not block for hours
    alive = f"{socket.gethostname()}:{os.getppid()}:job"  # this test's parent runs
    assert claims.claim(store, "j", alive, lease_s=3600).granted
    assert not claims.claim(store, "j", "host-b:2:job", lease_s=60).granted


def test_a_killed_workers_claim_does_not_block_the_next_run(tmp_path, monkeypatch):
    from insertflow.recipe import recipe_from_dict
    from insertflow.runner import run_recipe

    monkeypatch.setattr(claims, "RELEASE_GRACE_S", 0.0)
    store = open_store(StoreConfig(type="embedded", path=str(tmp_path / "s.sqlite")))
    recipe = recipe_from_dict({**RECIPE, "calculator": {"name": "mock"}})
    first = run_recipe(recipe, store=store)
    keys = [c["content_key"] for c in first["calculations"]]
    store.docs_store.remove_docs({"output.content_key": {"$in": keys}})  # as if the worker died mid-way
    for key in keys:
        assert claims.claim(store, key, "dead-host:1:job", lease_s=1.0).granted
    time.sleep(1.2)  # the lease runs out
    again = run_recipe(recipe, store=store)
    assert again["new_calculations"] == 3 and again["average_voltage"] == pytest.approx(first["average_voltage"])


def test_two_identical_runs_started_together_compute_each_key_once(tmp_path):
    path = tmp_path / "shared.sqlite"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))  # each mock calculation takes 1 s: the runs overlap
    command = [sys.executable, "-m", "insertflow.cli", "run", str(recipe), "--store", f"embedded://{path}"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    store = open_store(StoreConfig(type="embedded", path=str(path)))
    computed = [d["output"]["content_key"] for d in store.query({"output.reused": False}, properties=["output"])]
    assert len(computed) == 3 and len(set(computed)) == 3  # three keys, each computed by exactly one run
    reused = store.count({"output.reused": True})
    assert reused == 3  # the other run took all three from the store
