"""Read studies back from a store (the notebook API grows from here)."""

from __future__ import annotations

from jobflow import JobStore

from insertflow.store import open_store, resolve_store_config


def connect(store: str | None = None, recipe_store: dict | None = None) -> JobStore:
    """Open the store the CLI would use (``store`` overrides, as ``--store`` does)."""
    return open_store(resolve_store_config(recipe_store, store))


def latest_study(store: JobStore, study: str) -> dict | None:
    """The most recent stored study document named ``study`` (a plain dict), or None."""
    doc = store.query_one(
        {"metadata.insertflow.kind": "study", "metadata.insertflow.study": study, "output": {"$ne": None}},
        properties=["output", "uuid", "completed_at"],
        sort={"completed_at": -1},
    )
    return None if doc is None else doc["output"]


def study_names(store: JobStore) -> list[str]:
    """Names of all studies in the store."""
    return sorted(store.docs_store.distinct("metadata.insertflow.study", {"metadata.insertflow.kind": "study"}))
