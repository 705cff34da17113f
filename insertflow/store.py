"""Build the jobflow ``JobStore`` insertflow reads and writes, from configuration.

Where the configuration comes from, first match wins:

1. an explicit ``StoreConfig`` / ``--store`` argument;
2. the environment: ``INSERTFLOW_STORE`` (``embedded:///path/file.sqlite``, ``memory://``,
   ``jobflow://`` or a ``mongodb://`` / ``mongodb+srv://`` URI);
3. the recipe's ``store:`` section (no credentials allowed there);
4. the user's config file ``$INSERTFLOW_HOME/store.yaml`` (default ``~/.insertflow``);
5. the embedded default ``$INSERTFLOW_HOME/insertflow.sqlite``.

Credentials live only in the environment (``INSERTFLOW_MONGODB_URI`` or ``INSERTFLOW_STORE``)
or in the user's config file, never in code or recipes.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Literal

import yaml
from jobflow import JobStore
from maggma.core import Store
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from insertflow.errors import StoreError
from insertflow.sqlite_store import SQLiteStore

#: Fields queried by jobflow and insertflow; indexed in every store that supports indexes.
INDEXED_FIELDS = (
    "uuid",
    "index",
    "metadata.insertflow.kind",
    "metadata.insertflow.content_key",
    "output.content_key",  # reuse lookups read the record itself: runtime metadata is not kept on FireWorks
    "output.key",
    "metadata.insertflow.study",
    "output.status",
)

StoreType = Literal["embedded", "mongodb", "memory", "jobflow"]


class StoreConfig(BaseModel):
    """Where results go. ``uri`` may hold credentials only outside recipes."""

    model_config = ConfigDict(extra="forbid")

    type: StoreType = "embedded"
    path: str | None = Field(None, description="embedded: the SQLite file")
    uri: str | None = Field(None, description="mongodb: connection URI (environment or user config only)")
    uri_env: str = Field("INSERTFLOW_MONGODB_URI", description="mongodb: variable holding the URI")
    database: str = "insertflow"
    collection_name: str = "outputs"
    timeout_s: float = Field(5.0, description="mongodb: give up reaching the server after this long")


def insertflow_home() -> Path:
    """The user's insertflow folder (``$INSERTFLOW_HOME`` or ``~/.insertflow``)."""
    return Path(os.environ.get("INSERTFLOW_HOME", "~/.insertflow")).expanduser()


def resolve_store_config(
    recipe_store: dict | None = None, explicit: str | StoreConfig | None = None, recipe_folder: Path | None = None
) -> StoreConfig:
    """Pick the store configuration by the precedence in this module's docstring.

    A relative embedded path in a recipe is relative to the recipe's folder.
    """
    if isinstance(explicit, StoreConfig):
        return explicit
    if explicit:
        return config_from_uri(explicit)
    if os.environ.get("INSERTFLOW_STORE"):
        return config_from_uri(os.environ["INSERTFLOW_STORE"])
    if recipe_store:
        if recipe_store.get("uri") and _has_credentials(recipe_store["uri"]):
            raise StoreError(
                "the recipe's store.uri holds credentials; move the URI to the INSERTFLOW_MONGODB_URI "
                "environment variable or to your own $INSERTFLOW_HOME/store.yaml"
            )
        config = _validated(recipe_store, "the recipe's store section")
        if config.path and recipe_folder is not None and not Path(config.path).expanduser().is_absolute():
            config.path = str(recipe_folder / config.path)
        return config
    user_file = insertflow_home() / "store.yaml"
    if user_file.exists():
        try:
            data = yaml.safe_load(user_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise StoreError(f"{user_file} is not valid YAML: {exc}") from exc
        return _validated(data.get("store", data), str(user_file))
    return StoreConfig()


def config_from_uri(text: str) -> StoreConfig:
    """``embedded:///abs/file.sqlite``, ``embedded:relative.sqlite``, ``memory://``, ``jobflow://`` or MongoDB."""
    if text.startswith(("mongodb://", "mongodb+srv://")):
        return StoreConfig(type="mongodb", uri=text)
    if text.startswith("memory:"):
        return StoreConfig(type="memory")
    if text.startswith("jobflow:"):
        return StoreConfig(type="jobflow")
    if text.startswith("embedded:"):
        path = re.sub(r"^embedded:(//)?", "", text)
        return StoreConfig(type="embedded", path=path or None)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text) and not re.match(r"^[A-Za-z]:[\\/]", text):
        scheme = text.split(":", 1)[0]
        raise StoreError(
            f"unknown store scheme '{scheme}:' in '{text}'; use embedded:///path/file.sqlite, memory://, "
            "jobflow:// or a mongodb:// URI"
        )
    if text.endswith((".sqlite", ".db")):
        return StoreConfig(type="embedded", path=text)
    raise StoreError(
        f"cannot understand the store '{text}'; use embedded:///path/file.sqlite, memory://, jobflow:// "
        "or a mongodb:// URI"
    )


def open_store(config: StoreConfig, create: bool = True) -> JobStore:
    """Build and connect the ``JobStore``; raise ``StoreError`` if it cannot be used.

    ``create=False`` (reading: ``show``, ``status``, ``plot``) refuses an embedded store file
    that does not exist instead of creating an empty one.
    """
    if config.type == "embedded" and not create and not embedded_path(config).exists():
        raise StoreError(
            f"no store at {embedded_path(config)}: nothing has been run into it yet; run `insertflow run RECIPE` first"
        )
    if config.type == "embedded" and embedded_path(config).is_dir():
        raise StoreError(f"the embedded store {embedded_path(config)} is a folder; give a .sqlite file path")
    if config.type == "jobflow":
        from jobflow import SETTINGS

        store = SETTINGS.JOB_STORE
    else:
        docs, data = _maggma_stores(config)
        store = JobStore(docs, additional_stores={"data": data})
    try:
        store.connect()
        for field in INDEXED_FIELDS:
            store.docs_store.ensure_index(field)
        store.count({"uuid": "__insertflow_probe__"})
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot use the store {describe(config)}: {_reason(exc, config)}") from exc
    if config.type == "embedded":
        _check_writable(Path(store.docs_store.database_path))
    return store


def describe(config: StoreConfig) -> str:
    """Human-readable, credential-free name of a store."""
    if config.type == "embedded":
        return f"embedded:{embedded_path(config)}"
    if config.type == "mongodb":
        uri = config.uri or os.environ.get(config.uri_env, "")
        return "mongodb:" + re.sub(r"//[^@/]*@", "//***@", uri) + f"/{config.database}.{config.collection_name}"
    return f"{config.type}://"


def embedded_path(config: StoreConfig) -> Path:
    """The SQLite file of an embedded store."""
    return Path(config.path).expanduser() if config.path else insertflow_home() / "insertflow.sqlite"


def _maggma_stores(config: StoreConfig) -> tuple[Store, Store]:
    if config.type == "embedded":
        path = embedded_path(config)
        _check_parent(path)
        return (
            SQLiteStore(path, config.collection_name, key="uuid", indexes=list(INDEXED_FIELDS)),
            SQLiteStore(path, f"{config.collection_name}_data", key="blob_uuid", indexes=["blob_uuid"]),
        )
    if config.type == "memory":
        from maggma.stores import MemoryStore

        return MemoryStore(config.collection_name), MemoryStore(f"{config.collection_name}_data")
    from maggma.stores import MongoStore

    uri = config.uri or os.environ.get(config.uri_env)
    if not uri:
        raise StoreError(
            f"the MongoDB store needs a URI: set {config.uri_env} (or INSERTFLOW_STORE) in the environment"
        )
    timeout_ms = int(config.timeout_s * 1000)
    client_kwargs = {"serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms}
    return (
        MongoStore.from_uri(
            uri, config.collection_name, database=config.database, key="uuid", mongoclient_kwargs=client_kwargs
        ),
        MongoStore.from_uri(
            uri,
            f"{config.collection_name}_data",
            database=config.database,
            key="blob_uuid",
            mongoclient_kwargs=client_kwargs,
        ),
    )


def _check_parent(path: Path) -> None:
    parent = path.parent
    existing = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise StoreError(f"cannot create the embedded store at {path}: {existing} is a file, not a folder")
    if existing is not None and not os.access(existing, os.W_OK):
        raise StoreError(f"cannot write the embedded store at {path}: {existing} is not writable")


def _check_writable(path: Path) -> None:
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreError(f"the embedded store {path} is read-only; choose another path or fix its permissions")


def _validated(data: dict, where: str) -> StoreConfig:
    try:
        return StoreConfig(**data)
    except (ValidationError, TypeError) as exc:
        raise StoreError(f"{where} is not a valid store configuration: {_first_line(exc)}") from exc


def _has_credentials(uri: str) -> bool:
    return bool(re.match(r"^mongodb(\+srv)?://[^/@]+:[^/@]*@", uri))


def _reason(exc: BaseException, config: StoreConfig) -> str:
    from pymongo.errors import ServerSelectionTimeoutError

    if isinstance(exc, ServerSelectionTimeoutError):
        cause = re.search(r"\[Errno -?\d+\] ([^(]+)|(timed out)", str(exc))
        why = (cause.group(1) or cause.group(2)).strip() if cause else "no answer"
        return f"no MongoDB server answered within {config.timeout_s:g} s ({why}); check the URI and the network"
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
        return f"{_first_line(exc)}: the file is not an insertflow store (corrupt, or another kind of file)"
    if isinstance(exc, OSError | sqlite3.Error):
        return f"{_first_line(exc)} (check that the path is on a writable local disk)"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
    return text.splitlines()[0] if text else type(exc).__name__
