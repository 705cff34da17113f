"""Claims: one worker computes a content key at a time, even when a study is submitted twice.

Before a calculation starts, its job inserts a claim for the content key atomically: a row in
the embedded store's file (``BEGIN IMMEDIATE``), or a document in a ``<collection>_claims``
collection of MongoDB (a unique ``_id``). A claim carries its owner (host, process, job) and a
lease; a killed worker's claim expires and the next run takes the key over (at once, when the
worker ran on the same host and its process is gone). The record job
releases the claim when the outcome (success or failure) is stored. A store without either
backend (jobflow's own configured store) computes without claims.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass

from jobflow import JobStore

#: Seconds a claim holds before another worker may take the key over (killed workers).
DEFAULT_LEASE_S = 6 * 3600.0


def lease_seconds() -> float:
    """The lease: ``INSERTFLOW_CLAIM_LEASE_S`` or six hours (a long VASP relaxation)."""
    return float(os.environ.get("INSERTFLOW_CLAIM_LEASE_S") or DEFAULT_LEASE_S)


def owner_of(job_uuid: str) -> str:
    """Who holds a claim: host, process and job."""
    return f"{socket.gethostname()}:{os.getpid()}:{job_uuid}"


def dead_here(owner: str) -> bool:
    """Whether ``owner`` was a process on this host that no longer runs (killed, Ctrl-C): its claim is void.

    An owner on another host cannot be checked from here; only its lease ends its claim.
    """
    host, pid, _ = [*owner.split(":"), "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def same_process(owner: str) -> bool:
    """Whether ``owner`` is this process (a single-process engine cannot wait for itself)."""
    host, pid, _ = [*owner.split(":"), "", ""][:3]
    return host == socket.gethostname() and pid == str(os.getpid())


@dataclass
class Claim:
    """The outcome of trying to claim a key."""

    granted: bool
    holder: str | None = None  # the owner holding it, when not granted
    supported: bool = True  # False: this store keeps no claims (computed without one)


def claim(store: JobStore, key: str, owner: str, lease_s: float | None = None) -> Claim:
    """Take the key for ``owner`` unless another owner holds an unexpired claim."""
    lease = lease_seconds() if lease_s is None else lease_s
    now = time.time()
    backend = _backend(store)
    if backend is None:
        return Claim(granted=True, supported=False)
    if isinstance(backend, str):
        return _claim_sqlite(backend, key, owner, now, now + lease)
    return _claim_mongo(backend, key, owner, now, now + lease)


#: A released claim still holds this long (s): the record job's output reaches the store just after
#: the job returns, and a waiter must find that record, not an empty key it would compute again.
RELEASE_GRACE_S = 10.0


def release(store: JobStore, key: str, owner: str, grace_s: float | None = None) -> None:
    """Give the key back (only ``owner``'s own claim), ``grace_s`` (default ``RELEASE_GRACE_S``) from now."""
    backend = _backend(store)
    if backend is None:
        return
    expires = time.time() + (RELEASE_GRACE_S if grace_s is None else grace_s)
    if isinstance(backend, str):
        with _sqlite(backend) as db:
            db.execute("UPDATE insertflow_claims SET expires = ? WHERE key = ? AND owner = ?", (expires, key, owner))
        return
    backend.update_one({"_id": key, "owner": owner}, {"$set": {"expires": expires}})


def holder(store: JobStore, key: str) -> str | None:
    """The owner of an unexpired claim on ``key``, if any."""
    backend = _backend(store)
    now = time.time()
    if backend is None:
        return None
    if isinstance(backend, str):
        with _sqlite(backend) as db:
            row = db.execute("SELECT owner, expires FROM insertflow_claims WHERE key = ?", (key,)).fetchone()
        return row[0] if row and row[1] > now else None
    doc = backend.find_one({"_id": key})
    return doc["owner"] if doc and doc["expires"] > now else None


def _backend(store: JobStore):
    """The SQLite file path (embedded), a MongoDB-like claims collection, or None."""
    docs = store.docs_store
    path = getattr(docs, "database_path", None)
    if path is not None:
        return str(path)
    try:
        collection = docs._collection  # MongoStore and MemoryStore (mongomock)
    except Exception:  # not a MongoDB-like store
        return None
    return collection.database[f"{collection.name}_claims"]


class _sqlite:
    """A short transaction on the embedded store's file (its own table, its own connection)."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self) -> sqlite3.Connection:
        self.db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS insertflow_claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL)"
        )
        self.db.execute("BEGIN IMMEDIATE")  # one writer at a time: check-and-insert is atomic
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        self.db.close()


def _claim_sqlite(path: str, key: str, owner: str, now: float, expires: float) -> Claim:
    with _sqlite(path) as db:
        row = db.execute("SELECT owner, expires FROM insertflow_claims WHERE key = ?", (key,)).fetchone()
        if row is not None and row[0] != owner and row[1] > now and not dead_here(row[0]):
            return Claim(granted=False, holder=row[0])
        db.execute(
            "INSERT OR REPLACE INTO insertflow_claims (key, owner, expires) VALUES (?, ?, ?)", (key, owner, expires)
        )
    return Claim(granted=True)


def _claim_mongo(collection, key: str, owner: str, now: float, expires: float) -> Claim:
    try:
        collection.find_one_and_update(
            {"_id": key, "$or": [{"expires": {"$lt": now}}, {"owner": owner}]},
            {"$set": {"owner": owner, "expires": expires}},
            upsert=True,
        )
    except Exception as exc:  # pymongo's and mongomock's DuplicateKeyError: someone else holds it
        if "DuplicateKey" not in type(exc).__name__:
            raise
        doc = collection.find_one({"_id": key}) or {}
        held_by = doc.get("owner")
        if held_by is not None and dead_here(held_by):
            taken = collection.find_one_and_update(
                {"_id": key, "owner": held_by}, {"$set": {"owner": owner, "expires": expires}}
            )
            if taken is not None:  # nobody else took it over first
                return Claim(granted=True)
        return Claim(granted=False, holder=held_by)
    return Claim(granted=True)
