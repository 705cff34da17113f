"""An embedded, on-disk maggma ``Store`` backed by SQLite, with real indexes.

Why not maggma's ``MontyStore``: montydb's SQLite backend reads and decodes every record
for every query, and ``MontyStore.update`` is a ``replace_one`` query per document, so
each write costs O(N) (measured: 2.9 ms per update at 0 documents, 12.6 ms at 800; see
``benchmarks/store_updates.py``). Here each document is one row; indexed fields (the
store key, jobflow's ``uuid``/``index`` and anything passed to ``ensure_index``) live in
a side table, so an update or a lookup by an indexed field costs O(log N).

Queries accept any MongoDB filter: indexed equality / ``$in`` conditions narrow the
candidate rows in SQL, and mongomock's filter engine (the one maggma's ``MemoryStore``
uses) decides the match, so answers are the same as maggma's in-memory store.

Values round-trip as they do through MongoDB (BSON): datetimes are stored as naive UTC
with millisecond precision; NaN and ±Infinity, ``bson.ObjectId`` and datetimes are kept
as the one-key objects ``{"$float": "nan"}``, ``{"$oid": "..."}`` and ``{"$date": "..."}``
(JSON has no such values) and decoded back on reading.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from bson import ObjectId
from maggma.core import Sort, Store, StoreError
from mongomock_ng.filtering import BsonComparable, filter_applies, iter_key_candidates, resolve_sort_key
from mongomock_ng.helpers import NOTHING, patch_datetime_awareness_in_document
from monty.json import jsanitize
from pydash import get, has
from pymongo.errors import DuplicateKeyError

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_MARKERS = ('"$date"', '"$float"', '"$oid"')
_MARKER_BYTES = tuple(marker.encode() for marker in _MARKERS)
_NULL_TEXT = "z:"  # index text of a missing/null value; written for unique fields only


def _bson_datetime(value: datetime) -> datetime:
    """``value`` as MongoDB stores it: naive UTC, truncated to milliseconds."""
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _float_marker(value: float) -> float | dict:
    """A finite float unchanged; NaN and ±Infinity as ``{"$float": ...}`` (JSON cannot hold them)."""
    if math.isfinite(value):
        return value
    return {"$float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _storable(obj: Any) -> Any:
    """A copy of ``obj`` with its non-finite floats replaced by ``$float`` markers."""
    if isinstance(obj, float):
        return _float_marker(obj)
    if isinstance(obj, dict):
        return {k: _storable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_storable(v) for v in obj]
    return obj


def _encode_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return {"$date": _bson_datetime(obj).isoformat()}
    if isinstance(obj, float):  # float subclasses such as pymatgen's FloatWithUnit
        return float(obj)
    if isinstance(obj, ObjectId):
        return {"$oid": str(obj)}
    if isinstance(obj, np.generic):
        return _storable(obj.item())
    if isinstance(obj, np.ndarray):
        return _storable(obj.tolist())
    raise TypeError(f"cannot store a {type(obj).__name__} in the embedded store")


def _decode(obj: Any) -> Any:
    """``obj`` with the ``$date``/``$float``/``$oid`` markers turned back into values."""
    if isinstance(obj, dict):
        if len(obj) == 1:
            (key, value), *_ = obj.items()
            if key == "$date" and isinstance(value, str):
                return _bson_datetime(datetime.fromisoformat(value))  # files written before: aware
            if key == "$float" and value in _NONFINITE:
                return _NONFINITE[value]
            if key == "$oid" and isinstance(value, str) and ObjectId.is_valid(value):
                return ObjectId(value)
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def _dumps(doc: dict) -> bytes:
    return orjson.dumps(_storable(doc), default=_encode_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def _loads(raw: bytes | str) -> dict:
    """A stored document; only documents whose text holds a marker are walked."""
    doc = orjson.loads(raw)
    markers = _MARKER_BYTES if isinstance(raw, bytes) else _MARKERS
    return _decode(doc) if any(marker in raw for marker in markers) else doc


def _index_value(value: Any) -> str | None:
    """Canonical text of an indexable scalar; numbers compare as MongoDB does (1 == 1.0, -0.0 == 0.0)."""
    if isinstance(value, bool):
        return "b:1" if value else "b:0"
    if isinstance(value, int | float):
        return f"n:{float(value) + 0.0!r}"  # nan, inf and -inf give n:nan, n:inf, n:-inf
    if isinstance(value, str):
        return "s:" + value
    if isinstance(value, ObjectId):
        return "o:" + str(value)
    return None


def _get_path(doc: Any, path: str) -> list[Any]:
    """All values at a dotted path (lists are traversed, as MongoDB does)."""
    values = [doc]
    for part in path.split("."):
        nxt = []
        for value in values:
            if isinstance(value, dict) and part in value:
                nxt.append(value[part])
            elif isinstance(value, list):
                if part.isdigit() and int(part) < len(value):
                    nxt.append(value[int(part)])
                else:
                    nxt.extend(v[part] for v in value if isinstance(v, dict) and part in v)
        values = nxt
    out = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _null_at(doc: dict, path: str) -> bool:
    """True when a unique index on ``path`` holds null for ``doc`` (missing or null somewhere)."""
    candidates = list(iter_key_candidates(path, doc))
    return not candidates or any(c is NOTHING or c is None for c in candidates) or None in _get_path(doc, path)


def _hashable(value: Any) -> Any:
    """A hashable stand-in for ``value`` that is equal where MongoDB's values are equal."""
    if isinstance(value, dict):
        return ("object", tuple((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_hashable(v) for v in value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, float) and math.isnan(value):
        return ("number", "nan")
    if isinstance(value, int | float):
        return ("number", value)
    return (type(value).__name__, value)


def _expression_value(doc: Any, path: str) -> Any:
    """The value of the aggregation expression ``"$path"``: arrays of subdocuments map to arrays."""
    value = doc
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return NOTHING
            value = value[part]
        elif isinstance(value, list):
            mapped = (_expression_value(v, part) for v in value if isinstance(v, dict | list))
            value = [v for v in mapped if v is not NOTHING]
        else:
            return NOTHING
    return value


def _set_path(doc: dict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[leaf] = value


def _projection_tree(paths: list[str]) -> dict:
    """Dotted paths as a nested dict; ``True`` marks a whole field (``a`` covers ``a.b``)."""
    tree: dict = {}
    for path in paths:
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if node is True:
                break
        else:
            node[leaf] = True
    return tree


def _include(doc: dict, tree: dict) -> dict:
    out = {}
    for key, value in doc.items():
        sub = tree.get(key)
        if sub is True:
            out[key] = value
        elif sub is not None and isinstance(value, dict):
            out[key] = _include(value, sub)
        elif sub is not None and isinstance(value, list):  # MongoDB keeps only the subdocuments
            out[key] = _include_array(value, sub)
    return out


def _include_array(values: list, tree: dict) -> list:
    return [
        _include(v, tree) if isinstance(v, dict) else _include_array(v, tree)
        for v in values
        if isinstance(v, dict | list)
    ]


def _exclude(doc: dict, tree: dict) -> dict:
    out = {}
    for key, value in doc.items():
        sub = tree.get(key)
        if sub is True:
            continue
        out[key] = value if sub is None else _exclude_value(value, sub)
    return out


def _exclude_value(value: Any, tree: dict) -> Any:
    if isinstance(value, dict):
        return _exclude(value, tree)
    if isinstance(value, list):
        return [_exclude_value(v, tree) for v in value]
    return value


def _projector(properties: dict | list | None) -> Callable[[dict], dict]:
    """MongoDB's projection as a function: ``_id`` kept unless excluded, arrays mapped over."""
    if not properties:
        return lambda doc: doc
    spec = dict(properties) if isinstance(properties, dict) else dict.fromkeys(properties, 1)
    keep_id = bool(spec.pop("_id", True))
    include = [path for path, on in spec.items() if on]
    tree = _projection_tree(include or list(spec))

    def project(doc: dict) -> dict:
        if include:
            out = _include(doc, tree)
        elif spec:
            out = _exclude(doc, tree)
        else:
            out = {} if keep_id else dict(doc)
        if not keep_id:
            out.pop("_id", None)
        elif "_id" in doc:
            out["_id"] = doc["_id"]
        return out

    return project


def _in_chunks(values: list, size: int = 500) -> Iterator[tuple[list, str]]:
    """``values`` in slices small enough for one SQL ``IN (...)``, with their ``?`` marks."""
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        yield chunk, ",".join("?" * len(chunk))


def _fast_paths(criteria: dict, properties: dict | list | None, sort: dict | None) -> list[str] | None:
    """The field paths a projected query needs, or None when the whole document must be read."""
    if not properties:
        return None
    if isinstance(properties, dict):
        if not all(on for path, on in properties.items() if path != "_id"):  # an exclusion projection
            return None
        include = [path for path, on in properties.items() if on and path != "_id"]
    else:
        include = list(properties)
    if not include:  # {"_id": 0}: the whole document
        return None
    if any(key.startswith("$") for key in criteria):  # $and / $or / $where: paths are not plain
        return None
    paths = {*include, *criteria, *(sort or {}), "_id"}
    if any(not path or '"' in path or any(part.startswith("$") for part in path.split(".")) for path in paths):
        return None
    # keep only the outermost paths: a.b covers a.b.c
    return sorted(p for p in paths if not any(p != q and p.startswith(q + ".") for q in paths))


def _json_path(path: str) -> str:
    return "$" + "".join(f'."{part}"' for part in path.split("."))


def _extraction_sql(paths: list[str]) -> str:
    """SQL for one JSON object holding each path's value, its type and its parents' types.

    ``m{i}`` is 1 when the path is missing because a parent is a ``$date``/``$float``/``$oid``
    value (evaluated only for missing paths).
    """
    items = []
    for i, path in enumerate(paths):
        parts = path.split(".")
        items.append(f"'v{i}', json_extract(doc, '{_json_path(path)}')")
        items.append(f"'t{i}', json_type(doc, '{_json_path(path)}')")
        parents = [_json_path(".".join(parts[:k])) for k in range(1, len(parts))]
        for k, parent in enumerate(parents, start=1):
            items.append(f"'p{i}_{k}', json_type(doc, '{parent}')")
        if parents:
            marker_tests = " OR ".join(
                f"json_type(doc, '{parent}.{marker}') IS NOT NULL" for parent in parents for marker in _MARKERS
            )
            items.append(f"'m{i}', CASE WHEN json_type(doc, '{_json_path(path)}') IS NULL THEN ({marker_tests}) END")
    return f"json_object({', '.join(items)})"


def _partial_doc(raw: str, paths: list[str]) -> dict | None:
    """The document restricted to ``paths`` (markers decoded); None if one of them crosses an array."""
    found = orjson.loads(raw)
    marked = any(marker in raw for marker in _MARKERS)
    doc: dict = {}
    for i, path in enumerate(paths):
        *parents, leaf = path.split(".")
        kinds = [found.get(f"p{i}_{k}") for k in range(1, len(parents) + 1)]
        if "array" in kinds:
            return None
        present = found.get(f"t{i}") is not None
        # missing under a scalar, null or $date/$float/$oid parent: filters such as
        # {"a.b": None} tell these apart from a missing parent, so read the whole document
        if not present and (found.get(f"m{i}") or any(kind not in {None, "object"} for kind in kinds)):
            return None
        target = doc
        for part, kind in zip(parents, kinds, strict=True):
            if kind != "object":  # a missing parent: the path is left out
                break
            target = target.setdefault(part, {})  # an existing parent stays, even if empty
        else:
            if present:
                target[leaf] = found[f"v{i}"]
    return _decode(doc) if marked else doc


def use_write_ahead_log(conn: sqlite3.Connection, timeout_s: float, pause_s: float = 0.05) -> None:
    """Switch ``conn``'s file to WAL, retrying while another process holds the lock.

    SQLite does not call the busy handler for this switch: two processes opening a new file at
    the same moment can get "database is locked" at once, whatever the connection timeout
    (about 1 in 200 simultaneous first opens here). So retry until ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause_s)


class SQLiteStore(Store):
    """A maggma Store in one SQLite file; safe for several processes (WAL, busy timeout).

    ``update`` raises ``pymongo.errors.DuplicateKeyError`` (an ``OperationFailure``, as
    MongoDB's is) when a document would repeat a value of a field indexed with
    ``ensure_index(field, unique=True)``; the whole batch is then rolled back.
    """

    def __init__(
        self,
        database_path: str | Path,
        collection_name: str,
        key: str = "task_id",
        indexes: list[str] | None = None,
        timeout_s: float = 60.0,
        **kwargs: Any,
    ):
        """Store ``collection_name`` as a table in the SQLite file ``database_path``."""
        self.database_path = str(database_path)
        self.collection_name = collection_name
        self.indexes = list(indexes or [])
        self.timeout_s = timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self.kwargs = kwargs
        super().__init__(key=key, **kwargs)

    # -- maggma Store interface --------------------------------------------------------
    @property
    def name(self) -> str:
        """A string naming this data source."""
        return f"sqlite://{self.database_path}#{self.collection_name}"

    @property
    def _collection(self):
        raise NotImplementedError("SQLiteStore has no pymongo collection; use the Store methods")

    def connect(self, force_reset: bool = False) -> None:
        """Open the file (creating folders and tables as needed)."""
        if self._conn is not None and not force_reset:
            return
        path = Path(self.database_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=self.timeout_s, check_same_thread=False, isolation_level=None)
        use_write_ahead_log(conn, self.timeout_s)
        conn.execute("PRAGMA synchronous=NORMAL")
        table, idx = self._tables()
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id INTEGER PRIMARY KEY AUTOINCREMENT, doc BLOB NOT NULL)')
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{idx}" (field TEXT NOT NULL, value TEXT NOT NULL, '
            "doc_id INTEGER NOT NULL, PRIMARY KEY (field, value, doc_id)) WITHOUT ROWID"
        )
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{idx}_doc" ON "{idx}" (doc_id)')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}__fields" (field TEXT PRIMARY KEY)')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}__unique" (field TEXT PRIMARY KEY)')
        self._conn = conn
        for field in [self.key, *self.indexes]:
            self.ensure_index(field)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def count(self, criteria: dict | None = None) -> int:
        """Number of documents matching ``criteria``."""
        if not criteria:
            table, _ = self._tables()
            return self._db().execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        return sum(1 for _ in self._matching(criteria))

    def query(
        self,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[dict]:
        """Documents matching a MongoDB filter, optionally sorted, projected and paged.

        With an inclusion projection and a filter on plain field paths, only the fields
        involved are read out of SQLite (``json_extract``): big documents are not parsed
        whole. A row whose path crosses an array falls back to the full document, so
        MongoDB's array traversal still applies. Sorting follows mongomock's BSON order.
        """
        paths = _fast_paths(criteria or {}, properties, sort)
        docs = (doc for _, doc in self._matching(criteria or {}, paths=paths))
        if sort:
            materialised = list(docs)
            for field, direction in reversed(list(sort.items())):
                reverse = (direction.value if isinstance(direction, Sort) else direction) < 0
                materialised.sort(key=lambda d, f=field: resolve_sort_key(f, d), reverse=reverse)
            docs = iter(materialised)
        project = _projector(properties)
        for n, doc in enumerate(docs):
            if n < skip:
                continue
            if limit and n >= skip + limit:
                break
            yield project(doc)

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """Insert or replace documents, as MongoStore's ``replace_one(..., upsert=True)`` per document.

        Each document replaces the first stored document (in insertion order) whose ``key``
        fields (the store's key by default) equal its own, keeping that document's ``_id``;
        other matches are left alone. A document lacking a key field raises ``KeyError``,
        one that is not a dict ``AttributeError`` and a repeated value of a unique field
        ``DuplicateKeyError``; each rolls back the whole batch. A key value the index
        cannot hold (None, a list, a subdocument, a datetime) is matched by a table scan.
        """
        docs = docs if isinstance(docs, list) else [docs]
        key = key or self.key
        key_fields = list(key) if isinstance(key, list) else [key]
        for field in key_fields:
            self.ensure_index(field)
        table, idx = self._tables()
        db = self._db()
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                indexed, unique = self._indexed_fields(), self._unique_fields()
                for raw_doc in docs:
                    doc = jsanitize(raw_doc, allow_bson=True)
                    if self.validator and not self.validator.is_valid(doc):
                        if self.validator.strict:
                            raise ValueError(self.validator.validation_errors(doc))
                        self.logger.error(self.validator.validation_errors(doc))
                        continue
                    if not isinstance(doc, dict):
                        raise AttributeError(f"a document must be a dict, not a {type(doc).__name__}")
                    matches = self._matching({f: doc[f] for f in key_fields}, db=db)
                    match = next(matches, None)
                    matches.close()
                    if match is None:
                        doc_id = db.execute(f'INSERT INTO "{table}" (doc) VALUES (?)', (_dumps(doc),)).lastrowid
                    else:
                        doc_id, old = match
                        if "_id" in old and "_id" not in doc:  # MongoDB keeps the replaced document's _id
                            doc = {"_id": old["_id"], **doc}
                        db.execute(f'UPDATE "{table}" SET doc = ? WHERE id = ?', (_dumps(doc), doc_id))
                        db.execute(f'DELETE FROM "{idx}" WHERE doc_id = ?', (doc_id,))
                    self._write_index_rows(db, doc_id, doc, indexed, unique)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """Index ``key`` (dotted paths allowed); existing documents are indexed now.

        With ``unique``, later writes repeating a value (missing counts as null, as in
        MongoDB) raise ``DuplicateKeyError``. Returns False, leaving the index as it was,
        when the stored documents already repeat a value (MongoStore returns False when
        MongoDB refuses to build such an index).
        """
        table, idx = self._tables()
        db = self._db()
        with self._lock:
            if key in self._indexed_fields() and (not unique or key in self._unique_fields()):
                return True
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(f'INSERT OR IGNORE INTO "{table}__fields" (field) VALUES (?)', (key,))
                if unique:
                    db.execute(f'INSERT OR IGNORE INTO "{table}__unique" (field) VALUES (?)', (key,))
                db.execute(f'DELETE FROM "{idx}" WHERE field = ?', (key,))
                fields, unique_fields = [key], {key} if unique else set()
                for doc_id, raw in db.execute(f'SELECT id, doc FROM "{table}"').fetchall():
                    self._write_index_rows(db, doc_id, _loads(raw), fields, unique_fields)
                db.execute("COMMIT")
            except DuplicateKeyError:
                db.execute("ROLLBACK")
                return False
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True

    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        """Distinct values of ``field``: arrays contribute their elements, missing fields nothing."""
        seen: dict[Any, Any] = {}
        for doc in self.query(criteria, properties=[field]):
            for value in iter_key_candidates(field, doc):
                if value is NOTHING:
                    continue
                for item in value if isinstance(value, list) else [value]:
                    seen.setdefault(_hashable(item), item)
        return list(seen.values())

    def groupby(
        self,
        keys: list[str] | str,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """Group matching documents by the whole values of ``keys`` (an array is one value).

        As in MemoryStore, documents lacking a key are left out, and with ``properties``
        the grouped documents hold the keys and those properties; without, they are whole
        (as MongoStore returns them). ``sort``/``skip``/``limit`` apply to the documents
        before grouping; groups come in BSON order of their values.
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        fields = list(properties or [])
        projection = [*keys, *fields] if fields else None
        groups: dict[tuple, tuple[list, list[dict]]] = {}
        for doc in self.query(criteria=criteria, properties=projection, sort=sort, skip=skip, limit=limit):
            values = [_expression_value(doc, k) for k in keys]
            if any(v is NOTHING for v in values):
                continue
            groups.setdefault(tuple(_hashable(v) for v in values), (values, []))[1].append(doc)
        for values, members in sorted(groups.values(), key=lambda group: BsonComparable(group[0])):
            group_doc: dict = {}
            for k, v in zip(keys, values, strict=True):
                _set_path(group_doc, k, v)
            yield group_doc, members

    def remove_docs(self, criteria: dict) -> None:
        """Delete the documents matching ``criteria``."""
        table, idx = self._tables()
        db = self._db()
        with self._lock:
            ids = [doc_id for doc_id, _ in self._matching(criteria)]
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(f'DELETE FROM "{table}" WHERE id = ?', [(i,) for i in ids])
                db.executemany(f'DELETE FROM "{idx}" WHERE doc_id = ?', [(i,) for i in ids])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @property
    def last_updated(self) -> datetime:
        """The newest ``last_updated_field`` value; ``datetime.min`` for an empty store.

        Raises ``StoreError`` when the newest document lacks the field, as maggma's
        Store does (it relies on MongoDB always projecting ``_id``, which rows here need
        not have, so the check is made here).
        """
        field = self.last_updated_field
        doc = next(self.query(properties=[field], sort={field: -1}, limit=1), None)
        if doc is None:
            return datetime.min
        if not has(doc, field):
            raise StoreError(
                f"No field '{field}' in store document. Please ensure Store.last_updated_field "
                "is a datetime field in your store that represents the time of "
                "last update to each document."
            )
        value = get(doc, field)
        return datetime.min if value is None else self._lu_func[0](value)

    def __eq__(self, other: object) -> bool:
        """Two stores are equal when they point to the same table of the same file."""
        return isinstance(other, SQLiteStore) and (self.database_path, self.collection_name) == (
            other.database_path,
            other.collection_name,
        )

    def __hash__(self) -> int:
        return hash((self.database_path, self.collection_name))

    # -- internals --------------------------------------------------------------------
    def _tables(self) -> tuple[str, str]:
        safe = "".join(c if c.isalnum() or c == "_" else "_" for c in self.collection_name)
        return safe, f"{safe}__idx"

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.name} is not connected; call connect() first")
        return self._conn

    def _indexed_fields(self) -> list[str]:
        table, _ = self._tables()
        return [row[0] for row in self._db().execute(f'SELECT field FROM "{table}__fields"')]

    def _unique_fields(self) -> set[str]:
        table, _ = self._tables()
        return {row[0] for row in self._db().execute(f'SELECT field FROM "{table}__unique"')}

    def _write_index_rows(
        self, db: sqlite3.Connection, doc_id: int, doc: dict, fields: list[str], unique: set[str]
    ) -> None:
        """Index ``doc``'s values of ``fields``; a value a unique field already holds raises."""
        _, idx = self._tables()
        rows = set()
        for field in fields:
            texts = {text for value in _get_path(doc, field) if (text := _index_value(value)) is not None}
            if field in unique:
                if _null_at(doc, field):
                    texts.add(_NULL_TEXT)
                for text in texts:
                    clash = db.execute(
                        f'SELECT 1 FROM "{idx}" WHERE field = ? AND value = ? AND doc_id != ? LIMIT 1',
                        (field, text, doc_id),
                    ).fetchone()
                    if clash:
                        shown = "null" if text == _NULL_TEXT else repr(text[2:])
                        raise DuplicateKeyError(
                            f"E11000 duplicate key: another document already has {field} = {shown} "
                            f"(unique index on {field!r} of {self.name})",
                            11000,
                        )
            rows.update((field, text, doc_id) for text in texts)
        db.executemany(f'INSERT OR IGNORE INTO "{idx}" (field, value, doc_id) VALUES (?, ?, ?)', rows)

    def _candidate_ids(self, criteria: dict, db: sqlite3.Connection) -> list[int] | None:
        """Row ids that may match, from one indexed equality/$in condition; None = scan all.

        Only the most selective condition is used: the one whose values the index holds
        for the fewest documents (counted on the index, cheap). Intersecting a condition
        that matches most rows (``index == 1``) would cost O(N). The full filter is
        applied to the candidates afterwards.
        """
        _, idx = self._tables()
        indexed = set(self._indexed_fields())
        options = []
        for field, condition in criteria.items():
            if field.startswith("$") or field not in indexed:
                continue
            if isinstance(condition, dict):
                if set(condition) == {"$eq"}:
                    values = [condition["$eq"]]
                elif set(condition) == {"$in"} and isinstance(condition["$in"], list | tuple):
                    values = list(condition["$in"])
                else:
                    continue
            else:
                values = [condition]
            texts = [_index_value(v) for v in values]
            if any(t is None for t in texts):  # None, lists, dicts: MongoDB semantics differ; scan
                continue
            options.append((field != self.key, self._index_count(db, idx, field, texts), field, texts))
        if not options:
            return None
        *_, field, texts = min(options)
        ids: set[int] = set()
        for chunk, marks in _in_chunks(texts):
            ids.update(
                row[0]
                for row in db.execute(
                    f'SELECT doc_id FROM "{idx}" WHERE field = ? AND value IN ({marks})', (field, *chunk)
                )
            )
        return sorted(ids)

    @staticmethod
    def _index_count(db: sqlite3.Connection, idx: str, field: str, texts: list[str]) -> int:
        total = 0
        for chunk, marks in _in_chunks(texts):
            total += db.execute(
                f'SELECT COUNT(*) FROM "{idx}" WHERE field = ? AND value IN ({marks})', (field, *chunk)
            ).fetchone()[0]
        return total

    def _matching(
        self, criteria: dict, db: sqlite3.Connection | None = None, paths: list[str] | None = None
    ) -> Iterator[tuple[int, dict]]:
        """``(row id, document)`` of the matches in insertion order, read in chunks as consumed.

        Datetimes in ``criteria`` are compared as MongoDB stores them (naive UTC, ms).
        """
        db = db or self._db()
        table, _ = self._tables()
        criteria = patch_datetime_awareness_in_document(criteria) if criteria else {}
        ids = self._candidate_ids(criteria, db) if criteria else None
        if ids is None:
            ids = [row[0] for row in db.execute(f'SELECT id FROM "{table}" ORDER BY id')]
        column = "doc" if paths is None else _extraction_sql(paths)
        for chunk, marks in _in_chunks(ids):
            rows = db.execute(f'SELECT id, {column} FROM "{table}" WHERE id IN ({marks}) ORDER BY id', chunk).fetchall()
            for doc_id, raw in rows:
                doc = _loads(raw) if paths is None else _partial_doc(raw, paths)
                if doc is None:  # a path crossed an array: use the whole document
                    doc = _loads(db.execute(f'SELECT doc FROM "{table}" WHERE id = ?', (doc_id,)).fetchone()[0])
                if not criteria or filter_applies(criteria, doc):
                    yield doc_id, doc
