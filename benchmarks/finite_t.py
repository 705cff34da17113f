"""Cost of the finite-temperature step on the shipped code: fit, ground-state search, Monte Carlo.

Runs the mock LiCoO2 levels study (seconds), then times, on its document:
- the cluster-expansion fit (mapping + trainstation CV) and the ground-state search;
- the Monte Carlo with the default settings: 3 temperatures x 30 SGC chemical potentials plus the
  VCSGC grid and the jump refinements, on the default supercell (no T_c scans: --transitions adds them).

Prints sweeps per second (one sweep = one trial per active site) and the total. Goal: minutes on 2 cores.

    OMP_NUM_THREADS=1 python benchmarks/finite_t.py [--transitions]
"""

from __future__ import annotations

import argparse
import time

from insertflow.analysis.cluster_expansion import cluster_space, fit_cluster_expansion, ground_states
from insertflow.flows.finite_temperature import (
    FiniteTemperatureSettings,
    _expansion_doc,
    lattice_from_dict,
    monte_carlo_key,
    run_monte_carlo,
    training_points,
)
from insertflow.recipe import recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transitions", action="store_true", help="also the heat-capacity scans of every vertex")
    args = parser.parse_args()
    recipe = recipe_from_dict(
        {
            "name": "finite-t-benchmark",
            "study": "insertion_levels",
            "host": "LiCoO2",
            "calculator": {"name": "mock"},
            "levels": {"max_size": 4, "ewald_keep": 4},
            "finite_temperature": {
                "ground_state_iterations": 0,
                "temperatures": [50.0],
                "n_mu": 3,
                "n_x": 2,
                "production": 10,
                "equilibration": 1,
                "transitions": [],
            },
        }
    )
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")))
    lattice_data = doc["cluster_expansion"]["lattice"]
    lattice = lattice_from_dict(lattice_data)
    settings = FiniteTemperatureSettings(transitions=None if args.transitions else [])

    start = time.perf_counter()
    points = training_points(doc, [], lattice, settings.max_drift)
    space = cluster_space(lattice, settings.cutoffs)
    fit = fit_cluster_expansion(space, points, lattice, settings.fit_method, settings.n_splits, settings.seed)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    states, searched = ground_states(fit, lattice, settings.ground_state_cells)
    search_seconds = time.perf_counter() - start
    ce_doc = _expansion_doc(doc, doc["study"], lattice_data, space, fit, points, states, searched, settings, 0)

    start = time.perf_counter()
    finite = run_monte_carlo(
        doc, ce_doc.model_dump(), settings, doc["study"], monte_carlo_key(ce_doc.model_dump(), settings, doc)
    )
    mc_seconds = time.perf_counter() - start
    sweeps = finite.trials / finite.active_sites
    print(
        f"fit: {fit.n_structures} orderings, {fit.n_parameters} parameters, {fit_seconds:.2f} s "
        f"(CV RMSE {fit.cv_rmse:.3f} meV/site)"
    )
    print(
        f"ground-state search: {searched} orderings of up to {settings.ground_state_cells} cells in "
        f"{search_seconds:.2f} s"
    )
    print(
        f"Monte Carlo: {len(settings.temperatures)} T x {settings.n_mu} SGC mu + {settings.n_x} VCSGC x "
        f"(+ refinements{', T_c scans' if args.transitions else ''}) = {finite.runs} runs on "
        f"{finite.active_sites} sites (supercell {finite.supercell})"
    )
    print(
        f"  {sweeps:.0f} sweeps in {mc_seconds:.1f} s: {sweeps / mc_seconds:.0f} sweeps/s, "
        f"{finite.trials / mc_seconds:.0f} trials/s"
    )
    print(f"total (fit + search + Monte Carlo): {fit_seconds + search_seconds + mc_seconds:.1f} s")


if __name__ == "__main__":
    main()
