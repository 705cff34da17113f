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
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from itertools import groupby as _groupby
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from maggma.core import Sort, Store
from mongomock_ng.filtering import filter_applies
from monty.json import jsanitize

_SCALARS = (str, int, float, bool)


def _encode_default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return {"$date": obj.isoformat()}
    if isinstance(obj, float):  # float subclasses such as pymatgen's FloatWithUnit
        return float(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if type(obj).__name__ == "ObjectId":
        return str(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} in the embedded store")


def _decode_dates(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and "$date" in obj:
            return datetime.fromisoformat(obj["$date"])
        return {k: _decode_dates(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode_dates(v) for v in obj]
    return obj


def _dumps(doc: dict) -> bytes:
    return orjson.dumps(doc, default=_encode_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def _loads(raw: bytes | str) -> dict:
    doc = orjson.loads(raw)
    return _decode_dates(doc) if b'"$date"' in (raw if isinstance(raw, bytes) else raw.encode()) else doc


def _index_value(value: Any) -> str | None:
    """Canonical text of an indexable scalar; numbers compare as MongoDB does (1 == 1.0)."""
    if isinstance(value, bool):
        return "b:1" if value else "b:0"
    if isinstance(value, int | float):
        return f"n:{float(value)!r}"
    if isinstance(value, str):
        return "s:" + value
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


def _project(doc: dict, properties: dict | list | None) -> dict:
    if not properties:
        return doc
    if isinstance(properties, dict):
        include = [k for k, v in properties.items() if v]
        exclude = [k for k, v in properties.items() if not v]
    else:
        include, exclude = list(properties), []
    if include:
        out: dict = {}
        for path in include:
            _copy_path(doc, out, path.split("."))
        return out
    out = orjson.loads(orjson.dumps(doc, default=_encode_default)) if exclude else doc
    for path in exclude:
        parts = path.split(".")
        target = out
        for part in parts[:-1]:
            target = target.get(part, {}) if isinstance(target, dict) else {}
        if isinstance(target, dict):
            target.pop(parts[-1], None)
    return out


def _copy_path(src: Any, dst: dict, parts: list[str]) -> None:
    if not isinstance(src, dict) or parts[0] not in src:
        return
    if len(parts) == 1:
        dst[parts[0]] = src[parts[0]]
        return
    child = src[parts[0]]
    if isinstance(child, dict):
        _copy_path(child, dst.setdefault(parts[0], {}), parts[1:])


def _sort_key(value_list: list[Any]) -> tuple:
    value = value_list[0] if value_list else None
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (3, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (4, value.isoformat())
    return (5, orjson.dumps(value, default=_encode_default))


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
        if not all(properties.values()):
            return None
        include = list(properties)
    else:
        include = list(properties)
    if any(key.startswith("$") for key in criteria):  # $and / $or / $where: paths are not plain
        return None
    paths = {*include, *criteria, *(sort or {}), "_id"}
    if any(not path or path.startswith("$") or '"' in path for path in paths):
        return None
    # keep only the outermost paths: a.b covers a.b.c
    return sorted(p for p in paths if not any(p != q and p.startswith(q + ".") for q in paths))


def _json_path(path: str) -> str:
    return "$" + "".join(f'."{part}"' for part in path.split("."))


def _extraction_sql(paths: list[str]) -> str:
    """SQL for one JSON object holding each path's value, its type and its parents' types."""
    items = []
    for i, path in enumerate(paths):
        parts = path.split(".")
        items.append(f"'v{i}', json_extract(doc, '{_json_path(path)}')")
        items.append(f"'t{i}', json_type(doc, '{_json_path(path)}')")
        for k in range(1, len(parts)):
            items.append(f"'p{i}_{k}', json_type(doc, '{_json_path('.'.join(parts[:k]))}')")
    return f"json_object({', '.join(items)})"


def _partial_doc(raw: str, paths: list[str]) -> dict | None:
    """The document restricted to ``paths``; None if one of them crosses an array."""
    found = orjson.loads(raw)
    doc: dict = {}
    for i, path in enumerate(paths):
        parts = path.split(".")
        if any(found.get(f"p{i}_{k}") == "array" for k in range(1, len(parts))):
            return None
        if found.get(f"t{i}") is None:  # missing: leave it out, as a projection would
            continue
        target = doc
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = found[f"v{i}"]
    return _decode_dates(doc) if "$date" in raw else doc


class SQLiteStore(Store):
    """A maggma Store in one SQLite file; safe for several processes (WAL, busy timeout)."""

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
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        table, idx = self._tables()
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id INTEGER PRIMARY KEY AUTOINCREMENT, doc BLOB NOT NULL)')
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{idx}" (field TEXT NOT NULL, value TEXT NOT NULL, '
            "doc_id INTEGER NOT NULL, PRIMARY KEY (field, value, doc_id)) WITHOUT ROWID"
        )
        conn.execute(f'CREATE INDEX IF NOT EXISTS "{idx}_doc" ON "{idx}" (doc_id)')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}__fields" (field TEXT PRIMARY KEY)')
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
        MongoDB's array traversal still applies.
        """
        paths = _fast_paths(criteria or {}, properties, sort)
        if paths is not None:
            docs = (doc for _, doc in self._matching(criteria or {}, paths=paths))
        else:
            docs = (doc for _, doc in self._matching(criteria or {}))
        if sort:
            materialised = list(docs)
            for field, direction in reversed(list(sort.items())):
                reverse = (direction.value if isinstance(direction, Sort) else direction) < 0
                materialised.sort(key=lambda d, f=field: _sort_key(_get_path(d, f)), reverse=reverse)
            docs = iter(materialised)
        for n, doc in enumerate(docs):
            if n < skip:
                continue
            if limit and n >= skip + limit:
                break
            yield _project(doc, properties)

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """Insert or replace documents, matched on ``key`` (the store's key by default)."""
        docs = docs if isinstance(docs, list) else [docs]
        key_fields = [key] if isinstance(key, str) else list(key or [self.key])
        for field in key_fields:
            self.ensure_index(field)
        table, idx = self._tables()
        db = self._db()
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                indexed = self._indexed_fields()
                for raw_doc in docs:
                    doc = jsanitize(raw_doc, allow_bson=True)
                    if self.validator and not self.validator.is_valid(doc):
                        if self.validator.strict:
                            raise ValueError(self.validator.validation_errors(doc))
                        self.logger.error(self.validator.validation_errors(doc))
                        continue
                    criteria = {f: doc.get(f) for f in key_fields}
                    existing = [doc_id for doc_id, _ in self._matching(criteria, db=db)]
                    blob = _dumps(doc)
                    if existing:
                        doc_id = existing[0]
                        db.execute(f'UPDATE "{table}" SET doc = ? WHERE id = ?', (blob, doc_id))
                        db.execute(f'DELETE FROM "{idx}" WHERE doc_id = ?', (doc_id,))
                        for extra in existing[1:]:
                            db.execute(f'DELETE FROM "{table}" WHERE id = ?', (extra,))
                            db.execute(f'DELETE FROM "{idx}" WHERE doc_id = ?', (extra,))
                    else:
                        doc_id = db.execute(f'INSERT INTO "{table}" (doc) VALUES (?)', (blob,)).lastrowid
                    self._write_index_rows(db, doc_id, doc, indexed)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """Index ``key`` (dotted paths allowed); existing documents are indexed now."""
        table, _ = self._tables()
        db = self._db()
        with self._lock:
            if key in self._indexed_fields():
                return True
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(f'INSERT OR IGNORE INTO "{table}__fields" (field) VALUES (?)', (key,))
                for doc_id, raw in db.execute(f'SELECT id, doc FROM "{table}"').fetchall():
                    self._write_index_rows(db, doc_id, _loads(raw), [key])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return True

    def groupby(
        self,
        keys: list[str] | str,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """Group matching documents by the values of ``keys``."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        docs = list(self.query(criteria=criteria, sort=sort, skip=skip, limit=limit))

        def group_of(doc: dict) -> tuple:
            return tuple(orjson.dumps(_get_path(doc, k)[:1], default=_encode_default) for k in keys)

        docs.sort(key=group_of)
        for _, grouped in _groupby(docs, key=group_of):
            members = list(grouped)
            group: dict = {}
            for k in keys:
                values = _get_path(members[0], k)
                if values:
                    target = group
                    parts = k.split(".")
                    for part in parts[:-1]:
                        target = target.setdefault(part, {})
                    target[parts[-1]] = values[0]
            yield group, [_project(m, properties) for m in members]

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
            raise RuntimeError(f"{self.name} is not connected; call connect() first")
        return self._conn

    def _indexed_fields(self) -> list[str]:
        table, _ = self._tables()
        return [row[0] for row in self._db().execute(f'SELECT field FROM "{table}__fields"')]

    def _write_index_rows(self, db: sqlite3.Connection, doc_id: int, doc: dict, fields: list[str]) -> None:
        _, idx = self._tables()
        rows = {
            (field, text, doc_id)
            for field in fields
            for value in _get_path(doc, field)
            if (text := _index_value(value)) is not None
        }
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
        db = db or self._db()
        table, _ = self._tables()
        ids = self._candidate_ids(criteria, db) if criteria else None
        column = "doc" if paths is None else _extraction_sql(paths)
        if ids is None:
            rows = db.execute(f'SELECT id, {column} FROM "{table}" ORDER BY id').fetchall()
        else:
            rows = []
            for chunk, marks in _in_chunks(ids):
                rows.extend(db.execute(f'SELECT id, {column} FROM "{table}" WHERE id IN ({marks}) ORDER BY id', chunk))
        for doc_id, raw in rows:
            doc = _loads(raw) if paths is None else _partial_doc(raw, paths)
            if doc is None:  # a path crossed an array: use the whole document
                doc = _loads(db.execute(f'SELECT doc FROM "{table}" WHERE id = ?', (doc_id,)).fetchone()[0])
            if not criteria or filter_applies(criteria, doc):
                yield doc_id, doc
