import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from pymatgen.core import Structure

from insertflow.hosts import load_host
from insertflow.store import StoreConfig, open_store


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own INSERTFLOW_HOME and no store override from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("INSERTFLOW_HOME", str(home))
    monkeypatch.delenv("INSERTFLOW_STORE", raising=False)
    monkeypatch.delenv("INSERTFLOW_MONGODB_URI", raising=False)
    return home


@pytest.fixture
def licoo2() -> Structure:
    return load_host("LiCoO2").structure.get_primitive_structure()


@pytest.fixture
def memory_store():
    return open_store(StoreConfig(type="memory"))


@pytest.fixture
def embedded_store(tmp_path):
    return open_store(StoreConfig(type="embedded", path=str(tmp_path / "store.sqlite")))
