"""Insertion-level screening of LiCoO2 through the shipped pipeline: what the tiers save, in one run.

Runs the ``licoo2_levels_chgnet`` recipe as ``insertflow run`` does (icet enumeration ->
Ewald -> CHGNet single points in ``screen_orderings`` -> reuse-aware CHGNet relaxations ->
hull), counts what the pipeline itself relaxed, and checks the hull against the naive
protocol: the same pipeline with no screening and every enumerated ordering relaxed. All runs
share one embedded store, so the naive run reuses the tiered relaxations (same content keys)
and pays only for the rest; give ``--store`` to resume an interrupted naive run.

    python benchmarks/levels.py [--max-size 8] [--naive-max-size 5] [--compare-keep 2 3 4] [--store FILE]

The recipe's own settings (max_size aside) are the defaults compared: the recipe, the
settings' defaults and this benchmark use one set of numbers.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import tempfile
import time
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

from insertflow.recipe import LevelsSpec, ScreenSpec, load_recipe
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store

EVERY_ORDERING = 10**9


def run_levels(store, max_size: int, keep: int | None, ewald_keep: int, log) -> tuple[dict, float]:
    """One pipeline run of the shipped recipe; ``keep=None`` relaxes every Ewald survivor (no screening)."""
    recipe = load_recipe("licoo2_levels_chgnet")
    recipe.name = f"bench-levels-{max_size}-{'naive' if keep is None else keep}"
    recipe.levels.max_size = max_size
    recipe.levels.ewald_keep = ewald_keep
    recipe.levels.max_enumerated = 10**6
    recipe.levels.screen = None if keep is None else ScreenSpec(keep=keep)
    start = time.perf_counter()
    doc = run_recipe(recipe, store=store, stream=log)
    return doc, time.perf_counter() - start


def relaxed(doc: dict) -> int:
    """Orderings the pipeline relaxed (bcc Li aside)."""
    return sum(t["kept_screen"] for t in doc["tiers"])


def new_relaxation_seconds(doc: dict) -> float:
    return sum(c["wall_time_s"] or 0.0 for c in doc["calculations"] if not c["reused"] and c["label"] != "working_ion")


def lowest_per_x(doc: dict) -> dict[float, tuple[float, int]]:
    """x -> (lowest relaxed energy per framework unit, its atoms per framework unit)."""
    best: dict[float, tuple[float, int]] = {}
    for row in doc["orderings"]:
        if row["energy_per_fu"] is None:
            continue
        x = round(row["x"], 6)
        atoms = row["n_atoms"] / row["cells"]
        if x not in best or row["energy_per_fu"] < best[x][0]:
            best[x] = (row["energy_per_fu"], atoms)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = load_recipe("licoo2_levels_chgnet").levels
    parser.add_argument("--max-size", type=int, default=8)
    parser.add_argument("--naive-max-size", type=int, default=5)
    parser.add_argument("--compare-keep", type=int, nargs="+", default=[2, 3, defaults.screen.keep])
    parser.add_argument("--store", help="embedded store file to keep (resumes a long naive run)")
    parser.add_argument("--log", default=os.devnull, help="file for the pipeline's progress lines")
    args = parser.parse_args()
    assert defaults.ewald_keep == LevelsSpec().ewald_keep and defaults.screen.keep == ScreenSpec().keep, (
        "the recipe must use the settings' defaults"
    )
    keep, ewald_keep = defaults.screen.keep, defaults.ewald_keep

    with tempfile.TemporaryDirectory() as tmp, open(args.log, "a") as log:
        path = Path(args.store) if args.store else Path(tmp) / "bench.sqlite"
        store = open_store(StoreConfig(type="embedded", path=str(path)))
        print(
            f"LiCoO2 insertion levels, CHGNet 0.3.0, the shipped recipe: Ewald keeps {ewald_keep}/x, "
            f"CHGNet single points keep {keep}/x"
        )
        doc, wall = run_levels(store, args.max_size, keep, ewald_keep, log)
        enumerated = sum(t["enumerated"] for t in doc["tiers"])
        print(f"\nUp to {args.max_size} formula units ({len(doc['tiers'])} x values), through the pipeline:")
        print(f"  enumerated        {enumerated:6d}")
        print(f"  kept after Ewald  {sum(t['kept_ewald'] for t in doc['tiers']):6d}")
        print(f"  kept after ML     {relaxed(doc):6d}")
        print(f"  relaxed (ok)      {sum(t['relaxed_ok'] for t in doc['tiers']):6d}")
        print(
            f"  wall time: {wall:.0f} s (enumeration + Ewald {doc['enumeration']['seconds']:.1f} s, "
            f"new relaxations {new_relaxation_seconds(doc):.0f} s)"
        )
        print(
            f"  relaxations / naive = {relaxed(doc)} / {enumerated} = {relaxed(doc) / enumerated:.3f} (goal <= 0.200)"
        )
        print(f"  hull x: {', '.join(f'{x:.3f}' for x in doc['hull_x'])}; average {doc['average_voltage']:.3f} V")

        n = args.naive_max_size
        naive, naive_wall = run_levels(store, n, None, EVERY_ORDERING, log)
        total = relaxed(naive)
        print(
            f"\nNaive check up to {n} formula units: every one of {total} distinct orderings relaxed by the pipeline "
            f"({naive['new_calculations']} new, {naive_wall:.0f} s; the rest reused from the tiered runs)"
        )
        print(
            f"  naive hull x: {', '.join(f'{x:.3f}' for x in naive['hull_x'])}; "
            f"average {naive['average_voltage']:.3f} V"
        )
        naive_best = lowest_per_x(naive)
        for variant in args.compare_keep:
            tiered, _ = run_levels(store, n, variant, ewald_keep, log)
            best = lowest_per_x(tiered)
            worst = max(1000 * (best[x][0] - naive_best[x][0]) / naive_best[x][1] for x in naive_best)
            same = [round(x, 6) for x in tiered["hull_x"]] == [round(x, 6) for x in naive["hull_x"]]
            share = relaxed(tiered) / total
            print(
                f"  ML keeps {variant}/x{' (the shipped default)' if variant == keep else ''}: "
                f"{relaxed(tiered)} / {total} = {share:.3f} of naive; same hull compositions: {same}; "
                f"lowest energy per x at most {worst:.2f} meV/atom above naive's; "
                f"average {tiered['average_voltage']:.3f} V"
            )
            if not same:
                print(f"      tiered hull x: {', '.join(f'{x:.3f}' for x in tiered['hull_x'])}")


if __name__ == "__main__":
    main()
