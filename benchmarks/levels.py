"""Insertion-level screening of LiCoO2: how many expensive relaxations the tiers save, in one run.

Tiers: icet enumeration -> Ewald (keep K per x) -> CHGNet single points (keep M per x) ->
CHGNet relaxations (ASE FIRE + FrechetCellFilter, fmax 0.05, as the pipeline). Prints the
counts per tier and the wall time per stage for supercells up to --max-size formula units,
and the ratio of relaxations to the naive protocol (relax every enumerated ordering).

Relaxing all 1435 orderings up to 8 formula units takes hours on 2 cores, so the hull of
the naive protocol is computed up to --naive-max-size (default 5: 102 relaxations) and
compared with the tiered hull over the same cells. Relaxations are cached by structure
within the run, so the naive pass only pays for orderings the tiers did not relax.

    python benchmarks/levels.py [--max-size 8] [--naive-max-size 5] [--ewald-keep 8] [--keep 4]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import contextlib
import io
import time
import warnings

warnings.simplefilter("ignore")

import torch
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from chgnet.model import CHGNet
from chgnet.model.dynamics import CHGNetCalculator as AseCHGNet
from pymatgen.entries.computed_entries import ComputedEntry
from pymatgen.io.ase import AseAtomsAdaptor

from insertflow.analysis.profile import voltage_profile
from insertflow.calculators.chgnet import CHGNetCalculator
from insertflow.hosts import load_host
from insertflow.references import working_ion_reference
from insertflow.sampling.orderings import OrderingSettings, select_orderings, x_key

FMAX, STEPS = 0.05, 500


class Relaxer:
    """CHGNet relaxations with a per-run cache keyed by the structure's JSON."""

    def __init__(self):
        torch.set_num_threads(1)
        with contextlib.redirect_stdout(io.StringIO()):
            self.calculator = AseCHGNet(model=CHGNet.load(model_name="0.3.0", verbose=False))
        self.cache: dict[str, float] = {}
        self.seconds = 0.0
        self.count = 0

    def energy(self, structure) -> float:
        key = structure.to_json()
        if key not in self.cache:
            start = time.perf_counter()
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = self.calculator
            FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=FMAX, steps=STEPS)
            self.cache[key] = float(atoms.get_potential_energy())
            self.seconds += time.perf_counter() - start
            self.count += 1
        return self.cache[key]


def hull_of(orderings, relaxer: Relaxer, li_entry: ComputedEntry):
    entries = [
        (o.label + f" ({o.cells})", ComputedEntry(o.structure.composition, relaxer.energy(o.structure)))
        for o in orderings
    ]
    return voltage_profile(entries, li_entry, "Li")


def tiered(host, max_size, ewald_keep, keep, relaxer, li_entry, screen, window=0.0):
    timings = {}
    start = time.perf_counter()
    orderings, summary = select_orderings(host, OrderingSettings(max_size=max_size, ewald_keep=ewald_keep))
    timings["enumerate + Ewald"] = time.perf_counter() - start
    start = time.perf_counter()
    energies = screen.single_point_energies([o.structure for o in orderings])
    timings["CHGNet single points"] = time.perf_counter() - start
    per_x: dict[str, list] = {}
    for o, e in zip(orderings, energies, strict=True):
        per_x.setdefault(x_key(o.x), []).append((e / o.formula_units, o))
    survivors = []
    for group in per_x.values():
        ranked = sorted(group, key=lambda item: item[0])
        lowest = ranked[0][0]
        survivors += [
            o
            for rank, (e, o) in enumerate(ranked)
            if rank < keep or 1000 * (e - lowest) * o.formula_units / len(o.structure) <= window
        ]
    before = relaxer.seconds
    profile = hull_of(survivors, relaxer, li_entry)
    timings["CHGNet relaxations"] = relaxer.seconds - before
    return summary, orderings, survivors, profile, timings


def describe_hull(profile) -> str:
    return ", ".join(f"{p.x:.3f}" for p in profile.hull)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=8)
    parser.add_argument("--naive-max-size", type=int, default=5)
    parser.add_argument("--ewald-keep", type=int, default=8)
    # measured: 4 per x keeps the naive hull up to 5 f.u.; 2 per x does not
    parser.add_argument("--keep", type=int, default=4)
    parser.add_argument("--compare-keep", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--compare-window", type=float, nargs="+", default=[5.0, 10.0])
    args = parser.parse_args()

    host = load_host("LiCoO2")
    relaxer = Relaxer()
    screen = CHGNetCalculator()
    li = working_ion_reference("Li")
    li_entry = ComputedEntry(li.composition, relaxer.energy(li))

    print(
        f"LiCoO2 insertion levels, CHGNet 0.3.0, fmax {FMAX}; Ewald keeps {args.ewald_keep}/x, ML keeps {args.keep}/x"
    )
    summary, orderings, survivors, profile, timings = tiered(
        host, args.max_size, args.ewald_keep, args.keep, relaxer, li_entry, screen
    )
    print(f"\nUp to {args.max_size} formula units ({len(summary.enumerated)} x values):")
    print(f"  enumerated        {summary.total_enumerated:6d}")
    print(f"  kept after Ewald  {len(orderings):6d}")
    print(f"  kept after ML     {len(survivors):6d}")
    print(f"  relaxed           {len(survivors):6d}")
    for stage, seconds in timings.items():
        print(f"  wall time {stage:<22s} {seconds:8.1f} s")
    print(
        f"  relaxations / naive = {len(survivors)} / {summary.total_enumerated} = "
        f"{len(survivors) / summary.total_enumerated:.3f} (goal <= 0.200)"
    )
    print(f"  hull x: {describe_hull(profile)}; average {profile.average_voltage:.3f} V")

    n = args.naive_max_size
    naive_orderings, naive_summary = select_orderings(host, OrderingSettings(max_size=n, ewald_keep=10**9))
    before_count, before_seconds = relaxer.count, relaxer.seconds
    naive_profile = hull_of(naive_orderings, relaxer, li_entry)
    print(
        f"\nNaive check up to {n} formula units: every one of {naive_summary.total_enumerated} orderings relaxed "
        f"({relaxer.count - before_count} new, {relaxer.seconds - before_seconds:.0f} s; the rest cached)"
    )
    print(f"  naive hull x: {describe_hull(naive_profile)}; average {naive_profile.average_voltage:.3f} V")
    naive_best = best_per_x(naive_profile)
    variants = [(keep, 0.0) for keep in args.compare_keep] + [(args.keep, w) for w in args.compare_window]
    for keep, window in variants:
        _, _, survivors, profile, _ = tiered(host, n, args.ewald_keep, keep, relaxer, li_entry, screen, window)
        best = best_per_x(profile)
        worst = max(1000 * (best[x][0] - naive_best[x][0]) / naive_best[x][1] for x in naive_best)
        same = [round(p.x, 6) for p in profile.hull] == [round(p.x, 6) for p in naive_profile.hull]
        print(
            f"  ML keeps {keep}/x" + (f" + within {window:g} meV/atom" if window else "") + ": "
            f"{len(survivors)} / {naive_summary.total_enumerated} = "
            f"{len(survivors) / naive_summary.total_enumerated:.3f} of naive; same hull compositions: {same}; "
            f"lowest energy per x at most {worst:.2f} meV/atom above naive's; "
            f"average {profile.average_voltage:.3f} V"
        )
        if not same:
            print(f"      tiered hull x: {describe_hull(profile)}")


def best_per_x(profile) -> dict[float, tuple[float, float]]:
    """x -> (lowest energy per formula unit, atoms per formula unit)."""
    best: dict[float, tuple[float, float]] = {}
    for point in profile.points:
        x = round(point.x, 6)
        if x not in best or point.energy_per_fu < best[x][0]:
            best[x] = (point.energy_per_fu, point.atoms_per_fu)
    return best


if __name__ == "__main__":
    main()
