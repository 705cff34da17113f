"""Cluster expansion and Monte Carlo V(x, T): exact enumeration, a mock lattice gas, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from icet import ClusterExpansion
from pymatgen.core import Composition, Lattice, Structure

import insertflow
from insertflow.analysis.cluster_expansion import ActiveLattice, cluster_space
from insertflow.analysis.thermodynamics import K_B, MonteCarloSettings, Sampler, transition_scan
from insertflow.analysis.voltage import framework_unit
from insertflow.cli import render_levels
from insertflow.hosts import load_host
from insertflow.plotting import write_plots
from insertflow.recipe import recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def licoo2_lattice() -> ActiveLattice:
    host = load_host("LiCoO2")
    primitive = host.structure.get_primitive_structure()
    active = [i for i, site in enumerate(primitive) if site.specie.symbol == "Li"]
    return ActiveLattice(primitive, active, "Li", framework_unit(host.formula, "Li"))


def exact_x(expansion, lattice: ActiveLattice, repeat: tuple[int, int, int], temperature: float, dmu: float) -> float:
    """<x> in the semi-grand-canonical ensemble by summing over every occupation of the supercell."""
    atoms = lattice.atoms().repeat(repeat)
    sites = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Li"]
    weights, xs = [], []
    for occupation in itertools.product((True, False), repeat=len(sites)):
        trial = atoms.copy()
        symbols = trial.get_chemical_symbols()
        for index, filled in zip(sites, occupation, strict=True):
            symbols[index] = "Li" if filled else "X"
        trial.set_chemical_symbols(symbols)
        ions = sum(occupation)
        energy = expansion.predict(trial) * len(trial)
        weights.append(-(energy - dmu * ions) / (K_B * temperature))
        xs.append(ions / len(sites))
    weights = np.exp(np.array(weights) - max(weights))
    return float(np.dot(weights, xs) / weights.sum())


@pytest.mark.parametrize(("temperature", "dmu"), [(300.0, 0.1), (600.0, -0.12)])
def test_sgc_monte_carlo_equals_exact_enumeration(temperature, dmu):
    # a 3x3x1 cell (9 Li sites, 512 occupations) with an in-plane nearest-neighbour repulsion: the
    # 3-cell repeat keeps a site's six neighbours distinct, so Monte Carlo and the sum see one energy
    lattice = licoo2_lattice()
    space = cluster_space(lattice, [3.0])
    expansion = ClusterExpansion(space, np.array([0.0, 0.004, 0.006]))
    exact = exact_x(expansion, lattice, (3, 3, 1), temperature, dmu)
    sampler = Sampler(expansion, lattice, MonteCarloSettings([3, 3, 1], 500, 20000, seed=3), 3.5, 1)
    point, _ = sampler.sgc(temperature, dmu)
    # 20000 sweeps: the standard error of <x> is below 0.005; a sign error on mu or a wrong energy scale
    # moves <x> by more than 0.1 at these points (exact <x> is far from 0, 1/2 and 1)
    assert 0.1 < exact < 0.9 and abs(exact - 0.5) > 0.05
    assert point.x == pytest.approx(exact, abs=0.02)
    assert point.equilibrated


def test_order_parameter_finds_the_3d_ising_critical_temperature():
    # A simple-cubic lattice gas (Li on the corners of a CsCl-type cell, Cl inert) with a nearest-
    # neighbour repulsion is the 3D Ising antiferromagnet at x = 1/2: kT_c = 4.5115 J (Ferrenberg and
    # Landau 1991), J from the expansion's own energies of the full lattice and the rocksalt ordering.
    # The susceptibility of the checkerboard's order parameter peaks there; the scan's neighbours sit
    # 15 % away, so a T_c off by one grid point fails, and so does heating from the wrong ordering.
    primitive = Structure(Lattice.cubic(3.0), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    lattice = ActiveLattice(primitive, [0], "Li", Composition("Cl"))
    expansion = ClusterExpansion(cluster_space(lattice, [3.1]), np.array([0.0, 0.0, 0.004]))
    full = lattice.atoms().repeat((2, 2, 2))
    checkerboard = full.copy()
    checkerboard.set_chemical_symbols(
        ["X" if a.symbol == "Li" and round(a.position.sum() / 3.0) % 2 else a.symbol for a in full]
    )
    per_ion = 2 * (expansion.predict(full) - expansion.predict(checkerboard))  # two sites per Li
    exact = 4.5115 * per_ion / 6 / K_B  # E_full - E_rocksalt = 6 J per ion (3 bonds, -1 -> +1)
    assert 100 < exact < 200
    sampler = Sampler(expansion, lattice, MonteCarloSettings([6, 6, 6], 200, 600, seed=5), 3.0, 1)
    temperatures = [f * exact for f in (0.7, 0.85, 1.0, 1.15, 1.3)]
    scan = transition_scan(sampler, 0.5, sampler.voltage(0.0), temperatures, checkerboard)
    assert scan.method == "order parameter" and "repeated 3x3x3 (216 active sites" in scan.start
    assert scan.critical_temperature == pytest.approx(exact, rel=0.07)
    assert scan.order_parameter[0] > 0.8 and scan.order_parameter[-1] < 0.35  # ordered, then melted
    assert all(abs(x - 0.5) < 0.01 for x in scan.x_mean)  # dmu = 0 is the particle-hole symmetric point


def test_order_parameter_counts_rotated_variants_as_ordered():
    # LiCoO2's Li lattice (R-3m): Li on every second plane along a1 is one x = 1/2 ordering, and the
    # 3-fold axis turns it into the same ordering along a2. Both are perfectly ordered (eta = 1); a
    # random occupation is not. Without the star of q-points the variant read as eta ~ 0.
    lattice = licoo2_lattice()
    expansion = ClusterExpansion(cluster_space(lattice, [3.0]), np.zeros(3))
    sampler = Sampler(expansion, lattice, MonteCarloSettings([4, 4, 4]), 3.5, 1)
    cell = lattice.primitive.lattice.matrix
    index = np.round(sampler.start.positions[sampler.active_indices] @ np.linalg.inv(cell)).astype(int)

    def occupation(ions):
        atoms = sampler.start.copy()
        symbols = atoms.get_chemical_symbols()
        for site, filled in zip(sampler.active_indices, ions, strict=True):
            symbols[site] = "Li" if filled else "X"
        atoms.set_chemical_symbols(symbols)
        return atoms

    stripes = occupation(index[:, 0] % 2 == 0)
    turned = occupation(index[:, 1] % 2 == 0)
    ordering_cell = np.diag([2, 1, 1]) @ cell
    order = sampler.order_parameter(stripes, ordering_cell)
    assert order.star > order.peaks  # the rotations added the variants' peaks
    assert order(sampler.occupied(stripes)) == pytest.approx(1.0, abs=1e-9)
    assert order(sampler.occupied(turned)) == pytest.approx(1.0, abs=1e-9)
    random = np.random.default_rng(1).random(len(index)) < 0.5
    assert order(random.astype(float)) < 0.4


def mean_field_tc(ce_doc: dict) -> float:
    """K: the mean-field critical temperature of a pair-only expansion, an upper bound on the true T_c.

    icet's parameters multiply orbit averages of +-1 cluster functions per lattice site, so a pair of
    orbit a carries J_a = p_a * sites / m_a and each active site has 2 m_a / n_active such neighbours.
    """
    sites = len(ce_doc["lattice"]["primitive"]["sites"])
    active = len(ce_doc["lattice"]["active"])
    pairs = [(p, o) for p, o in zip(ce_doc["parameters"], ce_doc["orbits"], strict=True) if o["order"] == 2]
    return sum(2 * sites * abs(p) / active for p, _ in pairs) / K_B


def gas_recipe(temperatures: list[float]) -> dict:
    return {
        "name": "lattice-gas",
        "study": "insertion_levels",
        "host": "LiCoO2",
        "calculator": {"name": "mock", "settings": {"interaction": -0.2}},  # attraction: a miscibility gap
        "levels": {"max_size": 4, "ewald_keep": 4},
        "finite_temperature": {
            "temperatures": temperatures,
            "n_mu": 12,
            "n_x": 7,
            "supercell": [6, 6, 6],
            "equilibration": 100,
            "production": 200,
            "transitions": [],
            "ground_state_cells": 6,
        },
    }


def test_mock_lattice_gas_plateau_at_the_symmetric_voltage_and_no_gap_above_tc(tmp_path):
    store = open_store(StoreConfig(type="memory"))
    recipe = recipe_from_dict(gas_recipe([150.0, 3000.0]))
    doc = run_recipe(recipe, store=store)
    ce, finite = doc["cluster_expansion"], doc["finite_temperature"]
    # the mock is a pair model within 6 A: the 6 A pair expansion is exact
    assert ce["cv_rmse"] < 0.01
    assert ce["ground_states_agree"] and ce["calculator_hull_x"] == [0.0, 1.0]
    tc = mean_field_tc(ce)
    assert 0.35 * tc > 150.0 and 1.2 * tc < 3000.0  # the test's premise: well below and above T_c
    cold = [p for p in finite["plateaus"] if p["temperature"] == 150.0]
    hot = [p for p in finite["plateaus"] if p["temperature"] == 3000.0]
    assert len(cold) == 1
    assert cold[0]["x_low"] < 0.1 and cold[0]["x_high"] > 0.9  # nearly the whole range is two-phase
    # particle-hole symmetry of a pair gas puts coexistence at the end members' average voltage
    assert cold[0]["voltage"] == pytest.approx(finite["voltage_reference"], abs=0.03)
    assert hot == []
    sweep = sorted(
        (p for p in finite["points"] if p["ensemble"] == "sgc" and p["temperature"] == 3000.0), key=lambda p: p["dmu"]
    )
    assert max(b["x"] - a["x"] for a, b in itertools.pairwise(sweep)) < 0.3  # x(mu) continuous above T_c
    # more ions at a higher ion chemical potential, which is a lower voltage (measured: x 0.17 -> 0.83)
    assert sweep[0]["x"] < 0.35 and sweep[-1]["x"] > 0.65 and sweep[0]["voltage"] > sweep[-1]["voltage"]
    # a rerun reuses every relaxation and the Monte Carlo
    again = run_recipe(recipe, store=store)
    assert again["new_calculations"] == 0 and again["finite_temperature"]["reused"]
    assert again["finite_temperature"]["plateaus"] == finite["plateaus"]
    # the notebook API, the CLI summary and the figure show the same numbers
    curves = insertflow.finite_temperature("lattice-gas", store)
    assert set(curves["temperature"]) == {150.0, 3000.0} and curves.attrs["plateaus"] == finite["plateaus"]
    assert len(insertflow.cluster_expansion("lattice-gas", store)) == ce["n_parameters"]
    text = render_levels(again, "memory")
    assert f"at {cold[0]['voltage']:.3f} V" in text and "3000 K: two-phase none" in text
    assert "Monte Carlo (reused)" in text
    paths = write_plots(again, tmp_path)
    assert any(p.name == "lattice-gas_finite_temperature.png" and p.stat().st_size > 10_000 for p in paths)


def test_too_few_orderings_and_a_poor_fit_are_reported():
    quick = {
        "temperatures": [300.0],
        "n_mu": 3,
        "n_x": 2,
        "supercell": [6, 6, 6],
        "equilibration": 1,
        "production": 10,
        "transitions": [],
    }
    store = open_store(StoreConfig(type="memory"))
    few = recipe_from_dict(
        {
            "name": "few",
            "study": "insertion_levels",
            "host": "LiCoO2",
            "calculator": {"name": "mock"},
            "levels": {"max_size": 1},
            "finite_temperature": quick,
        }
    )
    doc = run_recipe(few, store=store)
    assert doc["finite_temperature"] is None
    line = next(m for m in doc["missing"] if m.startswith("finite temperature"))
    assert "needs at least 8 usable orderings" in line and "gives 2" in line
    # the default mock repels over 6 A; a nearest-neighbour-only expansion cannot reproduce it
    poor = recipe_from_dict(
        {
            "name": "poor",
            "study": "insertion_levels",
            "host": "LiCoO2",
            "calculator": {"name": "mock"},
            "levels": {"max_size": 4, "ewald_keep": 4},
            "finite_temperature": {**quick, "cutoffs": [3.0], "max_cv_rmse": 0.5},
        }
    )
    doc = run_recipe(poor, store=store)
    ce = doc["cluster_expansion"]
    assert ce["cv_rmse"] > 2.0  # meV/site: the missing longer pairs are tens of meV per pair
    assert any("exceeds finite_temperature.max_cv_rmse" in w for w in ce["warnings"])
    assert doc["finite_temperature"] is not None  # warned, stored, and the Monte Carlo still ran
    assert math.isfinite(doc["finite_temperature"]["voltage_reference"])
