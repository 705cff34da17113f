"""Query latency at 10,000 stored documents: the embedded store vs maggma's in-memory store, one run.

    python benchmarks/queries.py [--docs 10000]

The store is filled with copies of a real mock insertion-levels study (its job documents:
calculations, screening, profile), each copy under its own study name and content keys, until
it holds --docs documents. Then the main queries of the notebook API, ``insertflow status`` and the
reuse lookup each run 5 times; the median latency is printed in ms. Goal: every main query under
100 ms at 10k documents on the embedded store.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import copy
import io
import statistics
import tempfile
import time
import uuid
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

import insertflow
from insertflow.recipe import load_recipe
from insertflow.runner import run_recipe
from insertflow.status import study_status
from insertflow.store import StoreConfig, open_store


def template_docs() -> list[dict]:
    store = open_store(StoreConfig(type="memory"))
    run_recipe(load_recipe("licoo2_levels_mock"), store=store, stream=io.StringIO())
    return list(store.docs_store.query({}))


def copies(template: list[dict], total: int):
    n = 0
    copy_index = 0
    while n < total:
        name = f"study-{copy_index:05d}"
        uuids: dict[str, str] = {}
        batch = []
        for doc in template:
            new = copy.deepcopy(doc)
            new.pop("_id", None)
            new["uuid"] = uuids.setdefault(doc["uuid"], str(uuid.uuid4()))
            meta = new.setdefault("metadata", {}).setdefault("insertflow", {})
            if "study" in meta:
                meta["study"] = name
            output = new.get("output")
            if isinstance(output, dict):
                if "study" in output:
                    output["study"] = name
                if "content_key" in output:
                    output["content_key"] = f"{copy_index:05d}{output['content_key'][5:]}"
            batch.append(new)
        yield from batch[: total - n]
        n += len(batch)
        copy_index += 1


def median_ms(function, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    args = parser.parse_args()
    template = template_docs()
    docs = list(copies(template, args.docs))
    name = f"study-{args.docs // len(template) // 2:05d}"  # a complete copy in the middle of the store
    key = next(
        d["output"]["content_key"]
        for d in docs
        if d.get("metadata", {}).get("insertflow", {}).get("study") == name
        and isinstance(d.get("output"), dict)
        and "content_key" in d["output"]
    )
    recipe = load_recipe("licoo2_levels_mock")
    recipe.name = name

    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "embedded": open_store(StoreConfig(type="embedded", path=str(Path(tmp) / "bench.sqlite"))),
            "memory": open_store(StoreConfig(type="memory")),  # maggma MemoryStore (mongomock)
        }
        for label, store in stores.items():
            start = time.perf_counter()
            store.docs_store.update(docs, key=["uuid", "index"])
            print(f"{label}: filled with {store.docs_store.count()} documents in {time.perf_counter() - start:.1f} s")

        queries = {
            "voltage_profile(study)": lambda s: insertflow.voltage_profile(name, store=s),
            "orderings(study, x window)": lambda s: insertflow.orderings(name, store=s, x_min=0.25, x_max=0.75),
            "get_structure(study, label)": lambda s: insertflow.get_structure(name, "x=0.500 #3", store=s),
            "reuse lookup (content key)": lambda s: s.query_one(
                {"output.content_key": key, "output.status": {"$in": ["ok", "flagged"]}}, properties=["output"]
            ),
            "status(study)": lambda s: study_status(recipe, s, 13),
            "studies() (all studies)": lambda s: insertflow.studies(store=s),
        }
        print(f"\nmedian of 5, ms, at {args.docs} documents ({len(template)} per study)")
        print(f"  {'query':<30} {'embedded':>9} {'memory':>9}")
        for label, query in queries.items():
            timings = [median_ms(lambda q=query, s=s: q(s)) for s in stores.values()]
            flag = "" if timings[0] < 100 else "  (over the 100 ms goal)"
            print(f"  {label:<30} {timings[0]:9.1f} {timings[1]:9.1f}{flag}")


if __name__ == "__main__":
    main()
