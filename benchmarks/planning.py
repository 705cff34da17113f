"""Where planning runs: Flow construction of a levels study from a Host (plans at once) and from a Structure.

``InsertionLevelsMaker.make(host)`` enumerates and ranks the orderings while the Flow is built;
``make(structure)`` builds one planning job and does that work when the job runs. This script
builds the LiCoO2 levels study of up to ``--max-size`` formula units both ways, then times the
planning job's own work (``make_for_host`` on the same host, what the job calls), all in one run.

    python benchmarks/planning.py [--max-size 8] [--repeats 3]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import time
import warnings

warnings.simplefilter("ignore")

from insertflow.calculators import get_calculator
from insertflow.flows.levels import InsertionLevelsMaker
from insertflow.hosts import load_host
from insertflow.sampling.orderings import OrderingSettings


def best_of(repeats: int, build) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = build()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mock = get_calculator("mock")
    maker = InsertionLevelsMaker(
        calculator=mock, screen_calculator=mock, orderings=OrderingSettings(max_size=args.max_size), study="bench"
    )
    host = load_host("LiCoO2")
    structure = host.structure
    eager, eager_flow = best_of(args.repeats, lambda: maker.make(host))
    deferred, deferred_flow = best_of(args.repeats, lambda: maker.make(structure))
    job_work, _ = best_of(args.repeats, lambda: maker.make_for_host(load_host(structure)))
    print(f"LiCoO2 levels, up to {args.max_size} f.u., best of {args.repeats}:")
    print(f"  Flow from a Host:      {eager:8.3f} s ({len(eager_flow.jobs)} jobs, planned)")
    print(f"  Flow from a Structure: {deferred * 1000:8.3f} ms ({len(deferred_flow.jobs)} job, the planner)")
    print(f"  the planning job's work when it runs: {job_work:8.3f} s")


if __name__ == "__main__":
    main()
