"""Cost of a committee of N calculators against its members run one by one, in one run.

    python benchmarks/committee.py [--recipe licoo2_levels_mock] [--members 3] [--ml]

1. Each member alone: the recipe with one calculator, on a fresh in-memory store (wall time each).
2. The committee of all of them, on a fresh in-memory store.
3. The committee again on its store: it must compute nothing.
4. DFT spot checks (a mock checker) of the LiCoO2 levels and defects studies: how many statics they
   need against the relaxations of the same study done all in DFT.

Mock members differ only in the mock's Li site energy, so they cost the same: the committee over one
member should cost N (goal: close to N, nothing more), and over the sum of the members 1.0. ``--ml``
runs the LiCoO2 end-member study with CHGNet and SevenNet instead (members of unequal cost: the
ratio to their sum is the one that counts).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import io
import time
import warnings

warnings.simplefilter("ignore")

from insertflow.recipe import load_recipe, recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def timed(recipe: dict, store) -> tuple[dict, float]:
    start = time.perf_counter()
    doc = run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())
    return doc, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="licoo2_levels_mock")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--ml", action="store_true", help="CHGNet + SevenNet on licoo2_chgnet")
    args = parser.parse_args()
    if args.ml:
        base = load_recipe("licoo2_chgnet").model_dump(exclude={"folder"})
        members = [{"name": "chgnet", "settings": {}}, {"name": "sevennet", "settings": {}}]
    else:
        base = load_recipe(args.recipe).model_dump(exclude={"folder"})
        members = [{"name": "mock", "settings": {"voltage": round(3.9 - 0.1 * i, 3)}} for i in range(args.members)]
    timed({**base, "calculator": members[0]}, open_store(StoreConfig(type="memory")))  # imports and models loaded
    alone = []
    for member in members:
        doc, seconds = timed({**base, "calculator": member}, open_store(StoreConfig(type="memory")))
        alone.append(seconds)
        print(f"alone   {member['name']} {member['settings']}: {seconds:7.2f} s, {doc['new_calculations']} new")
    store = open_store(StoreConfig(type="memory"))
    committee = {**base, "calculator": members[0], "committee": members[1:]}
    doc, seconds = timed(committee, store)
    again, rerun = timed(committee, store)
    print(f"committee of {len(members)}: {seconds:7.2f} s, {doc['new_calculations']} new")
    print(f"rerun: {rerun:7.2f} s, {again['new_calculations']} new (goal 0)")
    print(f"committee / first member alone: {seconds / alone[0]:.2f} (N = {len(members)})")
    print(f"committee / sum of members alone: {seconds / sum(alone):.3f} (goal ~1.0)")
    voltage = doc["average_voltage"]
    each = ", ".join(f"{v:.3f}" for v in voltage["values"])
    print(f"average voltage {voltage['mean']:.3f} +- {voltage['spread']:.3f} V (members {each})")
    checker = {"calculator": {"name": "mock", "settings": {"voltage": 3.8}}}  # default window and max_points
    for name in ("licoo2_levels_mock", "licoo2_defects_mock"):
        recipe = {**load_recipe(name).model_dump(exclude={"folder"}), "spot_check": checker}
        doc, _ = timed(recipe, open_store(StoreConfig(type="memory")))
        spot = doc["spot_checks"]
        print(
            f"spot checks {name}: {spot['statics']} statics for {len(spot['points'])} points; an all-DFT study: "
            f"{spot['naive_relaxations']} relaxations ({spot['statics'] / spot['naive_relaxations']:.2f})"
        )


if __name__ == "__main__":
    main()
