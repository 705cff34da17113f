"""The maggma Store contract, checked on SQLiteStore with maggma's MemoryStore as the control.

Every test runs on both stores and asserts the same answer, so a difference is a
SQLiteStore defect (or a documented, deliberate one).

Not covered, because it does not apply to an embedded SQLite store:

* ``_collection`` (a pymongo collection handle): SQLiteStore has none and raises; maggma's
  own tests seed stores through ``_collection.insert_one``, here every write goes through
  ``update``.
* ``aggregate`` pipelines (``$lookup`` and friends), ``hint``, ``default_sort``: MongoDB
  query-planner and pipeline features; the Store API does not expose them.
* ``safe_update`` and ``DocumentTooLarge``: BSON's 16 MB document limit; an SQLite row
  has no such limit, so there is no oversized document to skip.
* ``from_db_file`` / ``from_launchpad_file`` / ``from_collection`` / SSH tunnels / URIs:
  ways to reach a MongoDB server.
"""

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import ObjectId
from maggma.builders import CopyBuilder
from maggma.core import StoreError
from maggma.stores import MemoryStore
from pydantic import BaseModel
from pymongo.errors import OperationFailure

from insertflow.sqlite_store import SQLiteStore

KINDS = ["sqlite", "memory"]
PAIRS = [(a, b) for a in KINDS for b in KINDS]


@pytest.fixture
def make(tmp_path):
    """A connected store of the given kind; SQLite stores of one test share one file."""

    def factory(kind: str, name: str = "docs", **kwargs):
        if kind == "sqlite":
            store = SQLiteStore(tmp_path / "stores.sqlite", name, **kwargs)
        else:
            store = MemoryStore(f"{name}-{uuid.uuid4().hex}", **kwargs)
            # MemoryStore.__init__ skips MongoStore.__init__, so the attribute update() reads
            # after a failed bulk write is missing (AttributeError instead of the write error)
            store.safe_update = False
        store.connect()
        return store

    return factory


@pytest.fixture(params=KINDS)
def store(request, make):
    return make(request.param, key="k")


def without_id(docs):
    return [{k: v for k, v in d.items() if k != "_id"} for d in docs]


def by_key(store, **query):
    return sorted(without_id(store.query(**query)), key=lambda d: json.dumps(d.get("k"), default=str))


# -- connect / close / count / query ---------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_count_before_connect_raises_store_error(tmp_path, kind):
    unconnected = SQLiteStore(tmp_path / "s.sqlite", "docs") if kind == "sqlite" else MemoryStore("never")
    with pytest.raises(StoreError):
        unconnected.count()
    with pytest.raises(StoreError):
        list(unconnected.query())


def test_connect_close_count(store):
    assert store.count() == 0
    store.update([{"k": i, "even": i % 2 == 0} for i in range(5)])
    assert store.count() == 5
    assert store.count({"even": True}) == 3
    store.connect()  # connecting again is a no-op
    assert store.count({"k": {"$gte": 3}}) == 2


def test_sqlite_store_keeps_its_documents_across_close_and_connect(make, tmp_path):
    # SQLite only: a closed MemoryStore cannot be used again, and force_reset gives it a
    # fresh, empty mongomock client, so persistence has no MemoryStore counterpart.
    store = make("sqlite", key="k")
    store.update([{"k": i} for i in range(3)])
    store.close()
    with pytest.raises(StoreError):
        store.count()
    store.connect()
    assert store.count() == 3
    with SQLiteStore(tmp_path / "stores.sqlite", "docs", key="k") as another:  # a second handle on the file
        assert another.count() == 3


def test_query_and_query_one(store):
    store.update([{"k": i, "a": {"b": i * 10}, "tag": "x" if i < 2 else "y"} for i in range(4)])
    assert [d["k"] for d in store.query({"tag": "y"}, sort={"k": 1})] == [2, 3]
    assert without_id([store.query_one({"k": 3}, properties=["a.b"])]) == [{"a": {"b": 30}}]
    assert store.query_one({"k": 99}) is None
    assert store.query_one({"a.b": {"$in": [10, 20]}}, sort={"k": -1})["k"] == 2


# -- update ------------------------------------------------------------------------------
def test_update_single_key_replaces(store):
    store.update({"k": 1, "v": "first", "extra": True})
    store.update({"k": 1, "v": "second"})
    assert by_key(store) == [{"k": 1, "v": "second"}]  # a replacement, not a merge


def test_update_key_list(store):
    store.update([{"k": 1, "run": 1, "v": 0}, {"k": 1, "run": 2, "v": 0}], key=["k", "run"])
    store.update({"k": 1, "run": 2, "v": 5}, key=["k", "run"])
    assert sorted((d["run"], d["v"]) for d in store.query()) == [(1, 0), (2, 5)]


def test_update_upserts_new_documents(store):
    store.update([{"k": i} for i in range(3)])
    store.update([{"k": 2, "v": 1}, {"k": 3}, {"k": 4}])
    assert [d["k"] for d in store.query(sort={"k": 1})] == [0, 1, 2, 3, 4]
    assert store.query_one({"k": 2})["v"] == 1


def test_update_with_none_key_values(store):
    store.update([{"k": None, "v": 1}, {"k": 1, "v": 2}])
    store.update({"k": None, "v": 3})  # replaces the document whose key is null
    assert sorted((d["k"] is None, d["v"]) for d in store.query()) == [(False, 2), (True, 3)]
    store.update({"other": "x", "v": 4}, key="other")  # stored without a "k" field
    store.update([{"k": None, "v": 5}, {"k": None, "v": 6}])
    assert store.count() == 3  # {"k": None} matches null or missing, replace_one touches one of them
    assert sorted(d["v"] for d in store.query()) == [2, 4, 6]


def test_update_document_missing_the_key_field_raises_and_writes_nothing(store):
    store.update({"k": 0})
    with pytest.raises(KeyError):
        store.update([{"k": 1}, {"v": "no key"}])
    assert [d["k"] for d in store.query()] == [0]


def test_update_on_a_non_unique_key_replaces_one_match_and_keeps_the_rest(store):
    store.update([{"k": i, "group": "g", "v": 0} for i in range(4)])
    store.update({"k": 99, "group": "g", "v": 1}, key="group")
    assert store.count() == 4  # nothing lost
    assert sorted((d["k"], d["v"]) for d in store.query()) == [(1, 0), (2, 0), (3, 0), (99, 1)]


def test_update_keeps_the_replaced_documents_id(store):
    oid = ObjectId()
    store.update({"_id": oid, "k": 1, "v": 1})
    store.update({"k": 1, "v": 2})
    assert store.query_one({"k": 1}) == {"_id": oid, "k": 1, "v": 2}


# -- distinct / groupby ------------------------------------------------------------------
DISTINCT_DOCS = [
    {"k": 1, "a": [1, 2], "b": {"c": [{"x": 1}, {"x": 2}]}},
    {"k": 2, "a": 3, "n": None},
    {"k": 3, "a": [2, 1.0, "s"], "b": [{"c": {"x": 5}}, 7]},
    {"k": 4, "a": {"z": 1}},
    {"k": 5, "a": None},
    {"k": 6, "a": []},
    {"k": 7},
]


def test_distinct_flattens_arrays_and_skips_missing_fields(store):
    store.update(DISTINCT_DOCS)

    def canonical(values):
        return sorted(json.dumps(v, sort_keys=True) for v in values)

    assert canonical(store.distinct("a")) == canonical([1, 2, 3, "s", {"z": 1}, None])
    assert sorted(store.distinct("b.c.x")) == [1, 2, 5]
    assert store.distinct("n") == [None]  # an explicit null counts, a missing field does not
    assert store.distinct("missing") == []
    assert sorted(store.distinct("a", {"k": {"$in": [1, 3]}}), key=str) == [1, 2, "s"]


def test_distinct_matches_memory_store(make):
    sqlite, memory = make("sqlite", key="k"), make("memory", key="k")
    for s in (sqlite, memory):
        s.update(DISTINCT_DOCS)
    for field in ["a", "b.c.x", "n", "k"]:
        assert sorted(map(repr, sqlite.distinct(field))) == sorted(map(repr, memory.distinct(field)))


GROUP_DOCS = [
    {"k": 1, "d": 9, "e": 7, "tags": ["a", "b"], "sub": {"d": 9}},
    {"k": 2, "d": 9, "e": 7, "tags": ["a"], "sub": {"d": 9}},
    {"k": 3, "d": 9, "e": 8, "tags": ["a", "b"], "sub": {"d": 10}},
    {"k": 4, "d": 10, "e": 9, "tags": ["b"], "sub": {"d": 10}},
    {"k": 5, "e": 9, "tags": ["b"]},  # no "d" and no "sub": left out of those groupings
]


def grouped(store, keys, **kwargs):
    """{group as JSON: sorted member keys} of a groupby."""
    return {
        json.dumps(group, sort_keys=True): sorted(d["k"] for d in docs)
        for group, docs in store.groupby(keys, properties=["k"], **kwargs)
    }


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("d", {'{"d": 9}': [1, 2, 3], '{"d": 10}': [4]}),
        (["e", "d"], {'{"d": 9, "e": 7}': [1, 2], '{"d": 9, "e": 8}': [3], '{"d": 10, "e": 9}': [4]}),
        ("sub.d", {'{"sub": {"d": 9}}': [1, 2], '{"sub": {"d": 10}}': [3, 4]}),
        # an array is grouped by its whole value, not by its first element
        ("tags", {'{"tags": ["a", "b"]}': [1, 3], '{"tags": ["a"]}': [2], '{"tags": ["b"]}': [4, 5]}),
    ],
)
def test_groupby(make, keys, expected):
    sqlite, memory = make("sqlite", key="k"), make("memory", key="k")
    for s in (sqlite, memory):
        s.update(GROUP_DOCS)
    assert grouped(sqlite, keys) == expected
    assert grouped(memory, keys) == expected


def test_groupby_properties_hold_the_keys_and_the_properties(store):
    store.update(GROUP_DOCS)
    groups = {group["d"]: without_id(docs) for group, docs in store.groupby("d", properties=["k", "e"])}
    assert sorted(groups[10], key=str) == [{"d": 10, "e": 9, "k": 4}]
    assert sorted(d["k"] for d in groups[9]) == [1, 2, 3]
    assert all(set(d) == {"d", "e", "k"} for d in groups[9])


# -- projections / sort / skip / limit / remove -----------------------------------------
PROJECTION_DOCS = [
    {"_id": ObjectId(), "k": 1, "a": {"b": 1, "c": 2}, "lst": [{"x": 1, "y": 1}, {"x": 2}, {"y": 3}]},
    {"_id": ObjectId(), "k": 2, "a": {"c": 3}, "lst": [{"x": {"deep": 4}, "y": 5}], "s": 5},
    {"_id": ObjectId(), "k": 3, "a": 4},
]


@pytest.mark.parametrize(
    "properties",
    [
        ["a.b"],
        ["lst.x"],
        ["lst.x", "lst.y", "k"],
        ["lst.x.deep"],
        {"lst.x": 1, "_id": 0},
        {"lst.x": 0},
        {"lst.y": 0, "s": 0},
        {"_id": 0},
        ["s"],
    ],
)
def test_projection_matches_memory_store(make, properties):
    sqlite, memory = make("sqlite", key="k"), make("memory", key="k")
    for s in (sqlite, memory):
        s.update(PROJECTION_DOCS)
    got = list(sqlite.query(properties=properties, sort={"k": 1}))
    assert got == list(memory.query(properties=properties, sort={"k": 1}))
    # the fast path (json_extract of the projected fields) gives the same answer under a filter
    assert list(sqlite.query({"k": {"$gte": 1}}, properties=properties, sort={"k": 1})) == got


@pytest.mark.parametrize(
    "criteria", [{"a.b": None}, {"a.b": {"$exists": False}}, {"a.b": {"$ne": 1}}, {"a": None}, {"when.x": None}]
)
def test_projected_queries_filter_like_whole_document_queries(make, criteria):
    docs = [{"k": 1, "a": 5}, {"k": 2}, {"k": 3, "a": {}}, {"k": 4, "a": None}, {"k": 5, "a": {"b": 1}}]
    docs.append({"k": 6, "when": datetime(2024, 1, 1), "a": {"c": math.nan}})
    sqlite, memory = make("sqlite", key="k"), make("memory", key="k")
    for s in (sqlite, memory):
        s.update(docs)
    want = sorted(d["k"] for d in memory.query(criteria))
    assert sorted(d["k"] for d in sqlite.query(criteria)) == want
    assert sorted(d["k"] for d in sqlite.query(criteria, properties=["k"])) == want  # the json_extract path


def test_projection_through_an_array_of_subdocuments(store):
    store.update(PROJECTION_DOCS)
    doc = store.query_one({"k": 1}, properties={"lst.x": 1, "_id": 0})
    assert doc == {"lst": [{"x": 1}, {"x": 2}, {}]}
    assert store.query_one({"k": 1}, properties=["a.b"])["_id"] == PROJECTION_DOCS[0]["_id"]


def test_sort_skip_limit(store):
    store.update([{"k": i, "v": (i * 7) % 5, "w": -i} for i in range(10)] + [{"k": 10}])
    want = [10, 0, 5, 3, 8, 1, 6, 4, 9, 2, 7]  # missing v sorts first; ties by w descending
    assert [d["k"] for d in store.query(sort={"v": 1, "w": -1})] == want
    assert [d["k"] for d in store.query(sort={"v": 1, "w": -1}, skip=3, limit=4)] == want[3:7]
    assert [d["k"] for d in store.query({"v": {"$gt": 2}}, sort={"k": -1}, limit=2)] == [9, 7]


def test_remove_docs(store):
    store.update([{"k": i, "odd": i % 2} for i in range(6)])
    store.remove_docs({"odd": 1})
    assert sorted(d["k"] for d in store.query()) == [0, 2, 4]
    store.remove_docs({})
    assert store.count() == 0


# -- last_updated / newer_in / builders -------------------------------------------------
def test_last_updated(store):
    assert store.last_updated == datetime.min
    early, late = datetime(2024, 1, 1), datetime(2024, 6, 1, 12)
    store.update([{"k": 1, "last_updated": early}, {"k": 2, "last_updated": late}, {"k": 3}])
    assert store.last_updated == late


def test_last_updated_with_documents_missing_the_field_raises(store):
    store.update([{"k": 1}, {"k": 2}])
    with pytest.raises(StoreError, match="last_updated"):
        _ = store.last_updated
    store.update({"k": 1, "last_updated": None})
    assert store.last_updated == datetime.min  # a null value is "never", a missing one an error


@pytest.mark.parametrize(("target_kind", "source_kind"), PAIRS)
def test_newer_in(make, target_kind, source_kind):
    target = make(target_kind, "target", key="k")
    source = make(source_kind, "source", key="k")
    then = datetime.now(UTC)  # aware: both stores must give back naive UTC to compare
    target.update([{"k": i, "last_updated": then} for i in range(10)])
    source.update([{"k": i, "last_updated": then + timedelta(seconds=1)} for i in range(10)])
    source.update({"k": 10, "last_updated": then})
    assert sorted(target.newer_in(source)) == list(range(10))
    assert sorted(target.newer_in(source, exhaustive=True)) == list(range(11))
    assert sorted(target.updated_keys(source)) == list(range(10))
    assert source.newer_in(target) == []


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_copy_builder_copies_then_copies_only_the_newer_document(make, monkeypatch, source_kind, target_kind):
    source = make(source_kind, "source", key="k", last_updated_field="lu")
    target = make(target_kind, "target", key="k", last_updated_field="lu")
    for store in (source, target):
        if isinstance(store, MemoryStore):  # Builder.run closes its stores; a closed MemoryStore loses its data
            monkeypatch.setattr(store, "close", lambda: None)
    now = datetime.now(UTC)
    source.update([{"k": i, "lu": now, "v": "old"} for i in range(5)])
    builder = CopyBuilder(source, target)
    builder.run()  # closes the stores when done
    builder.connect()
    assert {d["k"]: d["v"] for d in target.query()} == dict.fromkeys(range(5), "old")
    assert list(builder.get_items()) == []  # nothing newer: an incremental run copies nothing

    source.update({"k": 3, "lu": now + timedelta(seconds=2), "v": "new"})
    assert [item["k"] for item in builder.get_items()] == [3]
    builder.run()
    builder.connect()
    assert {d["k"]: d["v"] for d in target.query()} == {0: "old", 1: "old", 2: "old", 3: "new", 4: "old"}
    assert list(builder.get_items()) == []


# -- value round trips --------------------------------------------------------------------
def test_timezone_aware_datetimes_read_back_naive_utc(store):
    aware = datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    store.update({"k": 1, "when": aware, "nested": {"times": [aware]}})
    utc = datetime(2024, 5, 1, 12, 30, 15, 123000)  # UTC, milliseconds (BSON precision)
    doc = store.query_one({"k": 1})
    assert doc["when"] == utc and doc["when"].tzinfo is None
    assert doc["nested"]["times"] == [utc]
    assert store.query_one({"k": 1}, properties=["when"])["when"] == utc
    assert store.count({"when": aware}) == 1  # aware criteria compare as UTC
    assert store.count({"when": {"$gt": datetime(2024, 5, 1, 12, 30)}}) == 1


def test_object_id_round_trips_and_is_queryable(store):
    oid = ObjectId()
    store.update([{"_id": oid, "k": 1, "ref": oid}, {"k": 2}])
    doc = store.query_one({"_id": oid})
    assert doc is not None and doc["k"] == 1
    assert isinstance(doc["_id"], ObjectId) and doc["ref"] == oid
    assert store.count({"_id": str(oid)}) == 0  # a string is not an ObjectId
    assert store.ensure_index("_id")
    assert store.query_one({"_id": oid}, properties=["k"]) == {"_id": oid, "k": 1}
    assert store.distinct("ref") == [oid]


class Task(BaseModel):
    energy: float


def test_non_finite_floats_round_trip(store):
    store.ensure_index("energy")
    store.update(
        [
            {"k": "nan", "energy": math.nan, "trace": [1.0, math.nan]},
            {"k": "inf", "energy": math.inf},
            {"k": "-inf", "energy": -math.inf},
            {"k": "one", "energy": 1.0},
        ]
    )
    doc = store.query_one({"k": "nan"})
    assert math.isnan(doc["energy"]) and math.isnan(doc["trace"][1]) and doc["trace"][0] == 1.0
    assert math.isnan(Task.model_validate(doc).energy)  # not None: the model still validates
    assert store.query_one({"k": "inf"})["energy"] == math.inf
    assert store.query_one({"k": "-inf"}, properties=["energy"])["energy"] == -math.inf
    assert math.isnan(store.query_one({"k": "nan"}, properties=["energy"])["energy"])
    assert [d["k"] for d in store.query({"energy": math.nan})] == ["nan"]  # NaN == NaN in MongoDB queries
    assert sorted(d["k"] for d in store.query({"energy": {"$gt": 0}})) == ["inf", "one"]
    assert store.count({"energy": {"$exists": True}}) == 4


# -- unique indexes -------------------------------------------------------------------------
def test_unique_index_refuses_duplicates(store):
    assert store.ensure_index("x", unique=True)
    store.update([{"k": 1, "x": "a"}, {"k": 2, "x": "b"}])
    store.update({"k": 1, "x": "a", "v": 2})  # replacing a document with its own value is fine
    with pytest.raises(OperationFailure):  # sqlite: DuplicateKeyError; MongoDB: BulkWriteError
        store.update({"k": 3, "x": "a"})
    assert sorted(d["k"] for d in store.query({"x": "a"})) == [1]
    with pytest.raises(OperationFailure):
        store.update([{"k": 4, "x": "c"}, {"k": 5, "x": "b"}])
    assert store.count({"k": 5}) == 0
    # SQLiteStore rolls the whole batch back; MongoDB's unordered bulk write keeps the good ones
    assert store.count({"k": 4}) == (0 if isinstance(store, SQLiteStore) else 1)


def test_unique_index_treats_missing_as_null(store):
    assert store.ensure_index("x", unique=True)
    store.update({"k": 1})
    with pytest.raises(OperationFailure):
        store.update({"k": 2})  # a second document without x
    assert store.count() == 1


def test_unique_index_over_existing_duplicates_is_refused(store):
    store.update([{"k": 1, "x": 1}, {"k": 2, "x": 1.0}])  # 1 == 1.0
    assert store.ensure_index("x", unique=True) is False
    store.update({"k": 3, "x": 1})  # no unique index was made
    assert store.count({"x": 1}) == 3
