"""Defect study cost, in one run: time per stage and calculation counts for the Li-rich recipe,
then the same recipe with one extra x on the same store (reused vs new calculations).

    python benchmarks/defects.py [--recipe li2mno3_defects_chgnet] [--extra-x 1.25]

Stages: planning (supercell, Ewald orderings, defect generation: no calculator), relaxations
grouped by role (references, pristine hosts, defects, discharge re-lithiation; wall time
summed from the records), and the whole run.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import io
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

warnings.simplefilter("ignore")

from insertflow.calculators import get_calculator
from insertflow.flows.calculation import LayerGuard
from insertflow.flows.defects import DefectStudyMaker
from insertflow.hosts import load_host
from insertflow.recipe import load_recipe
from insertflow.runner import run_recipe
from insertflow.sampling.defects import DefectSettings
from insertflow.status import stage_of
from insertflow.store import StoreConfig, open_store


def plan_seconds(recipe) -> float:
    spec = recipe.defects
    host = load_host(recipe.host, working_ion=recipe.working_ion)
    maker = DefectStudyMaker(
        calculator=get_calculator(recipe.calculator.name, recipe.calculator.settings),
        settings=DefectSettings(**spec.model_dump(exclude={"chemical_potentials", "threshold", "discharge_orderings"})),
        chemical_potentials=spec.chemical_potentials,
        guard=LayerGuard(),
    )
    start = time.perf_counter()
    _, pristine, candidates, _ = maker.plan(host)
    seconds = time.perf_counter() - start
    print(f"  planning: {len(pristine)} pristine orderings, {len(candidates)} defects in {seconds:.1f} s")
    return seconds


def report(doc: dict, wall: float) -> None:
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in doc["calculations"]:
        name = stage_of(record["label"])
        counts[name][1 if record["reused"] else 0] += 1
        if not record["reused"]:
            seconds[name] += record.get("wall_time_s") or 0.0
    for name in ("references", "pristine hosts", "defects", "discharge re-lithiation"):
        new, reused = counts[name]
        print(f"  {name:<25} {new:3d} new {reused:3d} reused   {seconds[name]:7.1f} s relaxing")
    print(f"  whole run {wall:.1f} s wall; {doc['new_calculations']} new, {doc['reused_calculations']} reused")
    loop = doc.get("hysteresis") or {}
    print(f"  hysteresis {loop.get('average_hysteresis', float('nan')):.3f} V (coupled: {loop.get('coupled')})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="li2mno3_defects_chgnet")
    parser.add_argument("--extra-x", type=float, default=1.25)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(StoreConfig(type="embedded", path=str(Path(tmp) / "bench.sqlite")))
        print(f"{recipe.name}: x = {recipe.defects.x}")
        plan_seconds(recipe)
        start = time.perf_counter()
        doc = run_recipe(recipe, store=store, stream=io.StringIO())
        report(doc, time.perf_counter() - start)

        recipe.defects.x = sorted({*recipe.defects.x, args.extra_x}, reverse=True)
        print(f"\nRerun with one extra x ({args.extra_x}): x = {recipe.defects.x}")
        plan_seconds(recipe)
        start = time.perf_counter()
        again = run_recipe(recipe, store=store, stream=io.StringIO())
        report(again, time.perf_counter() - start)
        new, reused = again["new_calculations"], again["reused_calculations"]
        print(f"  reused / new = {reused} / {new} = {reused / max(new, 1):.2f}")


if __name__ == "__main__":
    main()
