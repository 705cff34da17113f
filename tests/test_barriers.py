"""Migration barriers: hop geometry, the analytic mock path, reuse, failures and the arithmetic of rates."""

import io
import math

import numpy as np
import pytest

from insertflow.analysis.barriers import (
    diffusivity,
    endpoint_mismatch,
    hop_rate,
    kinetic_limit,
    path_barrier,
)
from insertflow.analysis.concentrations import BOLTZMANN
from insertflow.hosts import load_host
from insertflow.recipe import recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.sampling.hops import distinct_hops, hop_endpoints, initial_path
from insertflow.store import StoreConfig, open_store


def barrier_recipe(**barriers):
    calculator = barriers.pop("calculator", {"name": "mock"})
    return recipe_from_dict(
        {
            "name": "barriers",
            "study": "barriers",
            "host": barriers.pop("host", "LiCoO2"),
            "calculator": calculator,
            "barriers": {"hops": [0], "supercell": [3, 3, 1], **barriers},
        }
    )


def test_path_barrier_reads_both_directions_and_where_the_saddle_is():
    found = path_barrier([0.0, 0.3, 0.7, 0.5, 0.2])
    assert (found.forward, found.reverse, found.reaction_energy) == pytest.approx((0.7, 0.5, 0.2))
    assert found.saddle_index == 2 and found.saddle_is_interior
    downhill = path_barrier([0.0, -0.1, -0.3])
    assert downhill.forward == 0.0 and not downhill.saddle_is_interior
    # a resting point on the way (a TM in the tetrahedral site): the climb out of it limits the hop
    resting = path_barrier([0.0, 0.4, -0.3, 0.5, -0.5])
    assert resting.forward == pytest.approx(0.8) and resting.reverse == pytest.approx(1.0)
    assert not resting.trapped  # -0.3 is above the end: the product is still the end
    assert path_barrier([0.0, 0.3, -0.6, 0.2, -0.1]).trapped  # a minimum below both ends: another product
    with pytest.raises(ValueError, match="at least one image"):
        path_barrier([0.0, 1.0])


def test_kinetic_limit_rate_and_diffusivity_by_hand():
    kt = BOLTZMANN * 300.0
    assert kinetic_limit(300.0) == pytest.approx(kt * math.log(1e13 * 3600), rel=1e-12)
    assert 0.95 < kinetic_limit(300.0) < 1.02  # ~1 eV: an hour at room temperature
    assert hop_rate(0.3, 300.0) == pytest.approx(1e13 * math.exp(-0.3 / kt), rel=1e-12)
    # a 1D channel, 3 A hops both ways, 0.3 eV: D = 2 nu a^2 e^(-Ea/kT) / 2 = 8.5e-8 cm^2/s
    expected = 2 * 1e13 * math.exp(-0.3 / kt) * 9.0 * 1e-16 / 2
    assert diffusivity(0.3, 3.0, 300.0, dimensionality=1, equivalent_hops=2) == pytest.approx(expected, rel=1e-12)


def test_the_gate_opens_where_migration_is_downhill_and_fast_and_has_no_verdict_without_a_barrier():
    from insertflow.analysis.barriers import migration_gate

    limit = 0.99
    uphill = migration_gate([(1.0, 0.5, 0.3, 0.2), (0.5, 0.1, 0.4, 0.3)], limit)
    assert uphill.onset_x is None and uphill.determined and "uphill" in uphill.reason
    slow = migration_gate([(1.0, 0.5, 0.3, 0.2), (0.5, -0.4, 1.4, 1.8), (0.0, -0.8, 1.3, 2.1)], limit)
    assert slow.onset_x is None and slow.determined and "above the 0.99 eV kinetic limit" in slow.reason
    fast = migration_gate([(1.0, 0.5, 0.3, 0.2), (0.5, -0.4, 0.6, 1.0), (0.0, -0.8, 0.5, 1.3)], limit)
    assert fast.onset_x == 0.5  # the highest x where it is both
    back = migration_gate([(1.0, 0.3, 1.2, 0.9), (0.5, -0.4, 0.6, 1.0)], limit)
    assert back.onset_x == 0.5 and back.returns_at == 1.0  # uphill to stay there, and an easy way back
    unknown = migration_gate([(0.5, -0.4, None, None), (0.0, -0.8, 1.3, 2.1)], limit)
    assert not unknown.determined and unknown.onset_x is None and "unresolved at x=0.500" in unknown.reason


def test_olivine_has_a_channel_hop_and_a_longer_cross_channel_hop():
    host = load_host("LiFePO4")
    channel, cross = distinct_hops(host.structure, "Li", 5.0)
    assert channel.length == pytest.approx(3.0, abs=0.05) and channel.dimensionality == 1
    assert cross.length == pytest.approx(host.structure.lattice.c, abs=0.01)  # along c, to the next cell's site
    along_b = np.abs(host.structure.lattice.get_fractional_coords(channel.vector))
    assert along_b[1] == pytest.approx(0.5, abs=0.01)  # the channel runs along b (Pnma)
    assert channel.equivalent == 2  # one hop each way along the channel


def spinel_limn2o4(a: float = 8.24, u: float = 0.388):
    """LiMn2O4 spinel, Fd-3m origin choice 1: Li 8a (0,0,0), Mn 16d (5/8,5/8,5/8), O 32e (u,u,u)."""
    from pymatgen.core import Lattice, Structure

    positions = [[0, 0, 0], [0.625, 0.625, 0.625], [u, u, u]]
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(a), ["Li", "Mn", "O"], positions)


def test_spinel_8a_hops_run_through_the_empty_16c_octahedron():
    """8a tetrahedra share faces with the empty 16c octahedra; the 8a-8a hop (a sqrt(3)/4, 4 per site, 3D)
    runs straight through 16c, the site six O surround at ~2.1 A and no Mn is within 2.5 A of."""
    cubic = spinel_limn2o4()
    primitive = cubic.get_primitive_structure()
    (hop,) = distinct_hops(primitive, "Li", 5.0)  # the hop through 16d-sharing octahedra is not direct
    assert hop.length == pytest.approx(8.24 * math.sqrt(3) / 4, abs=1e-3)
    assert hop.equivalent == 4 and hop.dimensionality == 3
    supercell = primitive * [2, 2, 2]
    ends = hop_endpoints(supercell, hop, primitive, "Li", "vacancy")
    path = initial_path(ends.start, ends.end, 5, ends.moving, ends.waypoint)
    at_middle = path[3][ends.moving].coords  # images 0..6: the 4th is half-way
    others = [n for n in path[3].get_sites_in_sphere(at_middle, 2.5) if n.index != ends.moving]
    # an empty octahedron: six O at 2.1 A, no cation (the 16d octahedra hold Mn, and 8a is 1.78 A off)
    assert sorted(n.specie.symbol for n in others) == ["O"] * 6
    assert all(1.9 < n.nn_distance < 2.3 for n in others)
    assert hop.clearance > 1.8  # the O triangle each 8a-16c shared face opens
    assert ends.x == pytest.approx(1 - 1 / 16)  # 16 Li sites in the 2x2x2 primitive cell, one empty


def test_layered_hops_in_plane_and_the_divacancy_path_through_a_tetrahedral_site():
    host = load_host("LiCoO2")
    hop = distinct_hops(host.structure, "Li", 5.0)[0]
    assert hop.length == pytest.approx(host.structure.lattice.a, abs=0.01) and hop.dimensionality == 2
    assert hop.equivalent == 6  # six in-plane neighbours
    every = distinct_hops(host.structure, "Li", 5.0, direct_only=False)
    indirect = sorted(round(h.length, 2) for h in every if not h.direct)
    # sqrt(3) a passes between two Li sites (two a-hops in a row); 4.96 A crosses the CoO2 slab
    assert indirect == [4.88, 4.96] and [h.length for h in distinct_hops(host.structure, "Li", 5.0)] == [hop.length]
    supercell = host.structure * [3, 3, 1]
    single = hop_endpoints(supercell, hop, host.structure, "Li", "vacancy")
    double = hop_endpoints(supercell, hop, host.structure, "Li", "divacancy")
    for ends in (single, double):
        assert not endpoint_mismatch(ends.start, ends.end)  # same atoms, same order
        moved = [i for i in range(len(ends.start)) if ends.start[i].distance(ends.end[i]) > 0.1]
        assert moved == [ends.moving]
        assert ends.start[ends.moving].distance(ends.end[ends.moving]) == pytest.approx(hop.length, abs=1e-6)
    assert single.x == pytest.approx(26 / 27) and double.x == pytest.approx(25 / 27)
    # the second vacancy is beside the hop (a triangle with both ends), not further along its line
    full = {tuple(np.round(s.frac_coords % 1, 3)) for s in supercell if s.species_string == "Li"}
    kept = {tuple(np.round(s.frac_coords % 1, 3)) for s in double.start if s.species_string == "Li"}
    (third,) = [f for f in full - kept if not np.allclose(f, np.round(double.end[double.moving].frac_coords % 1, 3))]
    for end in (double.start[double.moving], double.end[double.moving]):
        distance, _ = supercell.lattice.get_distance_and_image(end.frac_coords, np.array(third))
        assert distance == pytest.approx(hop.length, abs=0.01)
    # the divacancy path is started through a tetrahedral void: four O at equal distance, nothing closer
    lattice = double.start.lattice
    point = lattice.get_fractional_coords(np.asarray(double.waypoint))
    others = [s for i, s in enumerate(double.start) if i != double.moving]
    distances = lattice.get_all_distances([point], [s.frac_coords for s in others])[0]
    nearest = sorted(zip(distances, (s.species_string for s in others), strict=True))[:4]
    assert [el for _, el in nearest] == ["O"] * 4
    assert max(d for d, _ in nearest) - min(d for d, _ in nearest) < 0.05
    path = initial_path(double.start, double.end, 5, double.moving, double.waypoint)
    middle = path[3][double.moving].coords
    assert np.linalg.norm(middle - np.asarray(double.waypoint)) < 1e-6  # the middle image sits on the void
    # the single-vacancy path runs straight through the O-O edge
    straight = initial_path(single.start, single.end, 5, single.moving, None)
    a, b = single.start[single.moving].frac_coords, single.end[single.moving].frac_coords
    halfway = a + ((b - a) - np.round(b - a)) / 2
    distance, _ = lattice.get_distance_and_image(straight[3][single.moving].frac_coords, halfway)
    assert distance < 1e-6


def test_a_supercell_too_small_for_the_hop_is_refused_in_one_line():
    from insertflow.errors import RecipeError
    from insertflow.runner import build_study

    with pytest.raises(RecipeError, match="meet its own image"):
        build_study(barrier_recipe(host="LiFePO4", hops=[1], supercell=[1, 1, 1]))
    with pytest.raises(RecipeError, match="meet its own image"):  # half a cell: two ends equally near
        build_study(barrier_recipe(host="LiCoO2", hops=[0], supercell=[2, 2, 1]))


def test_the_mock_barrier_is_the_analytic_maximum_and_a_rerun_computes_nothing(tmp_path):
    from insertflow.calculators.mock import MOCK_ION_BARRIER, mock_path_energy

    store = open_store(StoreConfig(type="memory"))
    recipe = barrier_recipe(modes=["vacancy", "divacancy"])
    doc = run_recipe(recipe, store=store, stream=io.StringIO())
    assert [h["status"] for h in doc["hops"]] == ["ok", "ok"]
    energies = {c["label"]: c["entry"]["energy"] for c in doc["calculations"]}
    for hop in doc["hops"]:
        start, end = energies[f"{hop['label']} start"], energies[f"{hop['label']} end"]
        fine = np.linspace(0, 1, 200001)
        expected = mock_path_energy(fine, start, end, MOCK_ION_BARRIER).max() - start
        assert hop["forward_barrier"] == pytest.approx(expected, abs=1e-6)  # the climbing image found it
        assert hop["within_kinetic_limit"] and hop["saddle_interior"]
    assert doc["new_calculations"] == 5 and doc["new_nebs"] == 2  # host + 2 x 2 endpoints, 2 paths
    again = run_recipe(recipe, store=store, stream=io.StringIO())
    assert again["new_calculations"] == 0 and again["new_nebs"] == 0 and again["reused_nebs"] == 2
    assert [h["forward_barrier"] for h in again["hops"]] == [h["forward_barrier"] for h in doc["hops"]]
    import insertflow
    from insertflow.plotting import write_plots

    table = insertflow.barriers("barriers", store)
    assert list(table["forward_barrier"]) == [h["forward_barrier"] for h in doc["hops"]]
    assert table.attrs["kinetic_limit"] == pytest.approx(doc["kinetic_limit"])
    (figure,) = write_plots(doc, tmp_path)
    assert figure.name == "barriers_paths.png" and figure.stat().st_size > 10_000


def test_a_barrier_above_the_kinetic_limit_is_marked_and_the_climbing_image_is_exact_off_symmetry():
    store = open_store(StoreConfig(type="memory"))
    recipe = barrier_recipe(calculator={"name": "mock", "settings": {"ion_barrier": 1.3}}, images=4)
    doc = run_recipe(recipe, store=store, stream=io.StringIO())
    (hop,) = doc["hops"]
    # four images put none at s = 1/2; the climbing one moves there: the bump itself, not 1.3 sin^2(2 pi / 5)
    assert hop["forward_barrier"] == pytest.approx(1.3, abs=1e-6)
    assert not hop["within_kinetic_limit"]
    assert hop["rate"] == pytest.approx(1e13 * math.exp(-1.3 / (BOLTZMANN * 300.0)), rel=1e-9)


def test_an_neb_that_does_not_converge_is_recorded_and_its_sibling_finishes():
    store = open_store(StoreConfig(type="memory"))
    faults = {"Li25(CoO2)27": "neb"}  # the divacancy cells only
    recipe = barrier_recipe(calculator={"name": "mock", "settings": {"faults": faults}}, modes=["vacancy", "divacancy"])
    doc = run_recipe(recipe, store=store, stream=io.StringIO())
    by_mode = {h["mode"]: h for h in doc["hops"]}
    assert by_mode["vacancy"]["status"] == "ok" and by_mode["vacancy"]["forward_barrier"] is not None
    assert by_mode["divacancy"]["status"] == "failed" and by_mode["divacancy"]["forward_barrier"] is None
    assert "did not converge" in by_mode["divacancy"]["reason"] and "unresolved" in by_mode["divacancy"]["reason"]
    assert any("divacancy" in m and "did not converge" in m for m in doc["missing"])
    from insertflow.cli import render_summary, study_complete

    assert not study_complete(doc)
    assert "did not converge" in render_summary(doc, "memory")


def test_endpoints_that_do_not_map_onto_each_other_are_named():
    host = load_host("LiCoO2")
    cell = host.structure * [2, 2, 1]
    other = cell.copy()
    first_li = next(i for i, s in enumerate(cell) if s.species_string == "Li")
    first_co = next(i for i, s in enumerate(cell) if s.species_string == "Co")
    other.replace(first_li, "Co", coords=cell[first_li].frac_coords)
    other.replace(first_co, "Li", coords=cell[first_co].frac_coords)
    problems = endpoint_mismatch(cell, other)
    assert problems == [
        f"site {first_li} is Li at the start and Co at the end",
        f"site {first_co} is Co at the start and Li at the end",
    ]
    shorter = cell.copy()
    shorter.remove_sites([0])
    assert endpoint_mismatch(cell, shorter) == [f"{len(cell)} atoms at the start, {len(cell) - 1} at the end"]


def test_a_calculator_without_nebs_and_a_host_without_the_ion_are_refused_in_one_line():
    from insertflow.errors import CalculatorError, InsertflowError
    from insertflow.runner import build_study

    with pytest.raises(CalculatorError, match="does not run NEB paths"):
        build_study(barrier_recipe(calculator={"name": "xtb"}))
    with pytest.raises(InsertflowError, match="hops"):
        build_study(barrier_recipe(hops=[7]))


def test_a_divacancy_hop_where_no_site_neighbours_both_ends_is_recorded_and_the_rest_runs():
    # an olivine channel has no third Li next to both ends of a hop: no second vacancy to hop beside
    recipe = barrier_recipe(host="LiFePO4", hops=[0], modes=["vacancy", "divacancy"], supercell=[1, 2, 1])
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    by_mode = {h["mode"]: h for h in doc["hops"]}
    assert by_mode["vacancy"]["status"] == "ok"
    assert by_mode["divacancy"]["status"] == "failed" and "next to both ends" in by_mode["divacancy"]["reason"]
    assert doc["new_calculations"] == 3  # the host and the vacancy hop's two endpoints


def test_an_endpoint_reused_from_another_hop_comes_back_in_this_hops_atom_order():
    # in olivine both hops end in the same cell (one vacancy where the ion started), built with the
    # atoms listed differently: the second is reused from the first and must be reordered, or the
    # NEB would move the wrong atoms (CHGNet run: "Li 1 (7.72 A) ... moved")
    recipe = barrier_recipe(host="LiFePO4", hops=[0, 1], supercell=[1, 2, 3])
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    assert [h["status"] for h in doc["hops"]] == ["ok", "ok"], [h["reason"] for h in doc["hops"]]
    assert doc["reused_calculations"] == 1  # that shared endpoint
