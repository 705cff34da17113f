"""Embedded store write cost vs store size: maggma MontyStore (sqlite) against insertflow's SQLiteStore.

Prints ms per jobflow-style update (key uuid+index) at growing document counts, and the ratio
of the two at the largest size, measured in this one run.
"""

import tempfile
import time
import uuid

from maggma.stores import MontyStore

from insertflow.sqlite_store import SQLiteStore

BATCH, ROUNDS = 200, 5


def docs(n):
    return [{"uuid": str(uuid.uuid4()), "index": 1, "output": {"payload": "x" * 2000}} for _ in range(n)]


def cost_curve(store):
    store.connect()
    curve = []
    for _ in range(ROUNDS):
        batch = docs(BATCH)
        size = store.count()
        t0 = time.perf_counter()
        for doc in batch:
            store.update(doc, key=["uuid", "index"])
        curve.append((size, (time.perf_counter() - t0) / BATCH * 1000))
    return curve


def main():
    with tempfile.TemporaryDirectory() as tmp:
        monty = cost_curve(MontyStore("outputs", database_path=tmp, storage="sqlite", database_name="m"))
        ours = cost_curve(SQLiteStore(f"{tmp}/s.sqlite", "outputs", key="uuid"))
    print(f"{'docs in store':>14} {'MontyStore ms/update':>22} {'SQLiteStore ms/update':>22}")
    for (n, a), (_, b) in zip(monty, ours, strict=True):
        print(f"{n:>14} {a:>22.2f} {b:>22.3f}")
    print(
        f"growth first->last batch: MontyStore x{monty[-1][1] / monty[0][1]:.1f}, "
        f"SQLiteStore x{ours[-1][1] / ours[0][1]:.1f}"
    )
    print(f"MontyStore / SQLiteStore at {monty[-1][0]} docs: {monty[-1][1] / ours[-1][1]:.0f}x")


if __name__ == "__main__":
    main()
