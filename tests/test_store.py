import subprocess
import sys
import textwrap
import time
import uuid

import mongomock_ng
import pytest
from maggma.stores import MemoryStore

from insertflow.errors import StoreError
from insertflow.sqlite_store import SQLiteStore
from insertflow.store import StoreConfig, config_from_uri, open_store, resolve_store_config

DOCS = [
    {
        "uuid": f"u{i}",
        "index": 1 + i % 2,
        "output": {"x": i, "tags": ["a"] if i % 3 else ["c"]},
        "metadata": {"k": str(i % 4)},
        "runs": [{"e": i}, {"e": -i}],  # a list of documents: paths through it traverse the list
    }
    for i in range(40)
]
QUERIES = [
    {},
    {"metadata.k": "3"},
    {"uuid": "u5"},
    {"uuid": {"$in": ["u1", "u2", "nope"]}},
    {"output.x": {"$gt": 30}},
    {"output.tags": "c"},
    {"index": 1.0},  # MongoDB: 1 == 1.0
    {"$or": [{"index": 2}, {"output.x": 3}]},
    {"missing": None},
    {"metadata.k": {"$exists": True}, "uuid": {"$in": ["u0", "u4"]}},
    {"runs.e": {"$gte": 38}},  # crosses an array: the projected path must fall back to the whole document
]


@pytest.fixture
def pair(tmp_path):
    sqlite = SQLiteStore(tmp_path / "s.sqlite", "docs", key="uuid", indexes=["metadata.k", "index"])
    memory = MemoryStore("docs", key="uuid")
    for store in (sqlite, memory):
        store.connect()
        store.update(DOCS, key=["uuid", "index"])
    return sqlite, memory


@pytest.mark.parametrize("criteria", QUERIES)
def test_sqlite_store_answers_like_maggma_memory_store(pair, criteria):
    sqlite, memory = pair
    xs = sorted(d["output"]["x"] for d in sqlite.query(criteria))
    assert xs == sorted(d["output"]["x"] for d in memory.query(criteria))
    # the projected path reads only the fields involved (json_extract): same answers
    projected = sorted(d["output"]["x"] for d in sqlite.query(criteria, properties=["output.x", "uuid"]))
    assert projected == xs
    assert projected == sorted(d["output"]["x"] for d in memory.query(criteria, properties=["output.x", "uuid"]))
    assert sqlite.count(criteria) == memory.count(criteria)


def test_sort_skip_limit_projection_distinct(pair):
    sqlite, memory = pair
    got = [d["output"]["x"] for d in sqlite.query({"index": 2}, sort={"output.x": -1}, skip=2, limit=3)]
    want = [d["output"]["x"] for d in memory.query({"index": 2}, sort={"output.x": -1}, skip=2, limit=3)]
    assert got == want == [35, 33, 31]
    assert sqlite.query_one({"uuid": "u7"}, properties=["output.x"]) == {"output": {"x": 7}}
    assert sorted(sqlite.distinct("metadata.k")) == ["0", "1", "2", "3"]


def test_update_replaces_and_remove_deletes(pair):
    sqlite, _ = pair
    sqlite.update({"uuid": "u5", "index": 2, "output": {"x": 500}, "metadata": {"k": "1"}}, key=["uuid", "index"])
    assert sqlite.count({"uuid": "u5"}) == 1 and sqlite.query_one({"uuid": "u5"})["output"]["x"] == 500
    sqlite.remove_docs({"metadata.k": "1"})
    assert sqlite.count() == 40 - 10 and sqlite.count({"metadata.k": "1"}) == 0


def test_index_added_later_covers_existing_documents(pair):
    sqlite, _ = pair
    sqlite.ensure_index("output.x")
    assert [d["uuid"] for d in sqlite.query({"output.x": 12})] == ["u12"]


def test_failed_update_leaves_store_unchanged(pair):
    sqlite, _ = pair
    with pytest.raises(AttributeError):
        sqlite.update([{"uuid": "new", "index": 1}, "not a document"], key=["uuid", "index"])
    assert sqlite.count({"uuid": "new"}) == 0  # the whole batch rolled back


def test_embedded_store_persists_across_processes(tmp_path):
    path = tmp_path / "shared.sqlite"
    writer = textwrap.dedent(f"""
        from insertflow.store import StoreConfig, open_store
        store = open_store(StoreConfig(type="embedded", path={str(path)!r}))
        store.update({{"uuid": "from-child", "index": 1, "output": {{"v": 3.49}}}})
    """)
    subprocess.run([sys.executable, "-c", writer], check=True)
    store = open_store(StoreConfig(type="embedded", path=str(path)))
    assert store.query_one({"uuid": "from-child"})["output"]["v"] == 3.49


def test_config_precedence(tmp_path, monkeypatch, isolated_home):
    assert resolve_store_config().type == "embedded"
    isolated_home.mkdir(parents=True)
    (isolated_home / "store.yaml").write_text("type: memory\n")
    assert resolve_store_config().type == "memory"
    assert resolve_store_config({"type": "embedded", "path": "r.sqlite"}).path == "r.sqlite"
    monkeypatch.setenv("INSERTFLOW_STORE", "embedded:///tmp/env.sqlite")
    assert resolve_store_config({"type": "memory"}).path == "/tmp/env.sqlite"
    assert resolve_store_config({"type": "memory"}, "memory://").type == "memory"


def test_credentials_in_recipe_are_refused():
    with pytest.raises(StoreError, match="holds credentials; move the URI to the INSERTFLOW_MONGODB_URI"):
        resolve_store_config({"type": "mongodb", "uri": "mongodb://alice:secret@db.example/insertflow"})


def test_bad_store_configs():
    with pytest.raises(StoreError, match="unknown store scheme 'ftp:' in 'ftp://x'"):
        config_from_uri("ftp://x")
    with pytest.raises(StoreError, match=r"type: Input should be 'embedded'"):
        resolve_store_config({"type": "embeded"})
    with pytest.raises(StoreError, match="needs a URI: set INSERTFLOW_MONGODB_URI"):
        open_store(StoreConfig(type="mongodb"))


def test_unwritable_embedded_store(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StoreError, match=r"a-file is a file, not a folder"):
        open_store(StoreConfig(type="embedded", path=str(blocker / "store.sqlite")))


def test_unreachable_mongodb_fails_fast():
    start = time.perf_counter()
    with pytest.raises(StoreError, match=r"no MongoDB server answered within 1 s"):
        open_store(StoreConfig(type="mongodb", uri="mongodb://127.0.0.1:9/insertflow", timeout_s=1.0))
    assert time.perf_counter() - start < 10


def test_mongodb_path_from_environment_with_mongomock(monkeypatch):
    """The real MongoStore code path, with pymongo's client swapped for mongomock's.

    mongomock_ng is the maintained mongomock fork maggma uses; mongomock 4.3 cannot take
    the ``sort`` argument pymongo 4.16's ReplaceOne passes in MongoStore.update.
    """
    from maggma.stores import mongolike

    monkeypatch.setattr(mongolike, "MongoClient", mongomock_ng.MongoClient)
    monkeypatch.setenv("INSERTFLOW_MONGODB_URI", f"mongodb://user:pw@server-{uuid.uuid4().hex}/insertflow")
    config = resolve_store_config({"type": "mongodb", "database": "insertflow"})
    store = open_store(config)
    store.update({"uuid": "m1", "index": 1, "output": {"v": 1.5}})
    assert store.query_one({"uuid": "m1"})["output"]["v"] == 1.5
    from insertflow.store import describe

    assert "pw" not in describe(config) and "***@" in describe(config)


def test_switch_to_wal_waits_out_a_lock_the_busy_handler_does_not_cover():
    # SQLite returns "database is locked" at once, without its busy timeout, when two processes
    # switch a new file to WAL together (the CI failure of two runs started at the same time).
    import sqlite3

    from insertflow.sqlite_store import use_write_ahead_log

    class LockedTwice:
        calls = 0

        def execute(self, sql):
            self.calls += 1
            if self.calls <= 2:
                raise sqlite3.OperationalError("database is locked")

    conn = LockedTwice()
    use_write_ahead_log(conn, timeout_s=5.0, pause_s=0.001)
    assert conn.calls == 3  # two refusals waited out, then the switch
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_write_ahead_log(type("AlwaysLocked", (LockedTwice,), {"calls": -(10**9)})(), timeout_s=0.02, pause_s=0.005)
