"""Defect generators, energies, classification and hysteresis (hand-made numbers and the mock)."""

import io
import math

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure
from pymatgen.entries.computed_entries import ComputedEntry

from insertflow.analysis.concentrations import (
    BOLTZMANN,
    concentration,
    decades,
    exclusive_concentration,
    total_concentration,
)
from insertflow.analysis.defects import DefectPoint, classify, defect_energy, ion_chemical_potential
from insertflow.analysis.hysteresis import hysteresis_loop
from insertflow.analysis.profile import FARADAY_MAH_PER_MOL, voltage_profile
from insertflow.errors import RecipeError
from insertflow.hosts import load_host
from insertflow.recipe import load_recipe, recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.sampling.defects import (
    MIN_DEFECT_DISTANCE,
    DefectSettings,
    check_host_can_have,
    choose_supercell,
    generate_defects,
    image_distance,
    pristine_orderings,
)
from insertflow.store import StoreConfig, open_store

ALL = ["V_TM", "TM_Li", "Li_TM", "F_O", "migration", "exchange"]


@pytest.fixture(scope="module")
def licoo2():
    return load_host("LiCoO2")


def defects_of(host, **settings):
    chosen = DefectSettings(**settings)
    matrix = choose_supercell(host, chosen)
    made = {}
    for ordering in pristine_orderings(host, matrix, chosen):
        if ordering.ewald_rank == 1:
            made[round(ordering.x, 4)] = (ordering, generate_defects(host, matrix, ordering, chosen)[0])
    return matrix, made


def test_generated_defects_have_the_right_composition_distances_and_records(licoo2):
    matrix, made = defects_of(licoo2, kinds=ALL, x=[0.0, 0.5, 1.0], supercell=[2, 2, 1])
    assert matrix == [[2, 0, 0], [0, 2, 0], [0, 0, 1]]
    for x, (ordering, candidates) in made.items():
        kinds = {c.kind for c in candidates}
        # no Li to replace or exchange in CoO2; no empty site to move a Co into in LiCoO2
        absent = {0.0: {"TM_Li", "exchange"}, 0.5: {"exchange"}, 1.0: {"migration"}}[x]
        assert kinds == set(ALL) - absent
        for c in candidates:
            expected = ordering.structure.composition + Composition({k: v for k, v in c.change.items() if v > 0})
            expected -= Composition({k: -v for k, v in c.change.items() if v < 0})
            assert c.structure.composition == expected
            *_, distances = c.structure.get_neighbor_list(MIN_DEFECT_DISTANCE)
            assert len(distances) == 0  # nothing closer than 1.5 A, even after the rattle
            assert c.x == ordering.x and c.host_label == ordering.label and c.site
            assert len(c.structure) == 48 + sum(c.change.values()) - (12 - ordering.structure.composition["Li"])
    labels = [c.label for _, cs in made.values() for c in cs]
    assert len(labels) == len(set(labels))


def test_migration_hops_into_the_empty_li_layer(licoo2):
    _, made = defects_of(licoo2, kinds=["migration", "exchange"], x=[0.0, 1.0], supercell=[2, 2, 1], rattle=0.0)
    (_, empty) = made[0.0]
    assert len(empty) == 1  # CoO2: one distinct Co, one distinct nearest empty octahedral site
    hop = empty[0]
    assert hop.multiplicity == 6.0  # each Co has 3 empty octahedra above and 3 below, per formula unit
    assert hop.hop_distance == pytest.approx(2.85, abs=0.05)  # the Co -> Li-layer octahedron distance in CoO2
    assert hop.destination == "3a"
    assert hop.change == {}
    # the moved Co really sits in the Li layer (the same height as a former Li site)
    co_z = sorted(s.frac_coords[2] % 1 for s in hop.structure if s.specie.symbol == "Co")
    assert any(abs(z - 0.0) < 0.01 or abs(z - 1.0) < 0.01 or abs(z - 1 / 3) < 0.01 for z in co_z)
    (_, full) = made[1.0]
    assert [(c.kind, c.destination) for c in full] == [("exchange", "exchange")]  # no empty site: the pair
    assert full[0].multiplicity == 6.0  # 6 Li octahedra share an edge with each Co octahedron


def test_tetrahedral_sites_are_optional_and_face_sharing(licoo2):
    _, made = defects_of(licoo2, kinds=["migration"], x=[0.0], supercell=[2, 2, 1], tetrahedral=True, rattle=0.0)
    tet = [c for c in made[0.0][1] if c.destination == "tet"]
    assert tet
    assert all(1.5 < c.hop_distance < 2.0 for c in tet)  # through the shared face of the Co octahedron


def test_li2mno3_migration_samples_both_li_layer_sites():
    host = load_host("Li2MnO3")
    _, made = defects_of(host, kinds=["migration"], x=[0.5], active_sites=["2c", "4h"], supercell=[1, 1, 1])
    destinations = {c.destination for c in made[0.5][1]}
    assert destinations == {"2c", "4h"}
    assert all(c.structure.composition == made[0.5][0].structure.composition for c in made[0.5][1])


def test_supercell_is_chosen_once_and_checked(licoo2):
    settings = DefectSettings(min_image_distance=5.0)
    matrix = choose_supercell(licoo2, settings)
    cell = licoo2.structure.copy()
    cell.make_supercell(matrix)
    assert image_distance(cell) >= 5.0
    assert len(cell) == 48  # 2x2x1 of the 12-atom hexagonal cell is the smallest that works
    with pytest.raises(RecipeError, match=r"2\.82 A apart, below the minimum defects\.min_image_distance = 4\.5 A"):
        choose_supercell(licoo2, DefectSettings(supercell=[1, 1, 1]))


def test_defects_the_host_cannot_have_are_refused():
    graphite = Structure(
        Lattice.hexagonal(4.32, 3.7), ["Li", "C", "C"], [[0, 0, 0.5], [1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0]]
    )
    lic = load_host(graphite, check_oxidation_states=False)
    with pytest.raises(RecipeError, match="V_TM: host LiC2 has no transition metal"):
        check_host_can_have(lic, ["V_TM"])
    sulfide = Structure(
        Lattice.hexagonal(3.4, 6.2),
        ["Li", "Ti", "S", "S"],
        [[0, 0, 0.5], [0, 0, 0], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]],
    )
    with pytest.raises(RecipeError, match="F_O: host LiTiS2 has no O"):
        check_host_can_have(load_host(sulfide), ["F_O"])
    with pytest.raises(RecipeError, match="unknown V_O"):
        DefectSettings(kinds=["V_O"])


def test_defect_energy_and_ion_chemical_potential_by_hand():
    assert defect_energy(-100.0, -105.0, {"Co": -1}, {"Co": -7.0}) == pytest.approx(-100 + 105 - 7.0)
    assert defect_energy(-100.0, -101.0, {"F": 1, "O": -1}, {"F": -2.0, "O": -5.0}) == pytest.approx(
        1 - (1 * -2.0 + -1 * -5.0)
    )
    with pytest.raises(KeyError, match="no chemical potential for Co"):
        defect_energy(0, 0, {"Co": -1}, {})
    li = ComputedEntry("Li", -2.0)
    entries = [
        (str(x), ComputedEntry(Composition({"Li": n, "Co": 2, "O": 4}), e))
        for x, n, e in [(0, 0, -40.0), (0.5, 1, -45.4), (1, 2, -50.0)]
    ]
    profile = voltage_profile(entries, li, "Li")  # steps 3.4 V and 2.6 V
    assert ion_chemical_potential(profile, 0.25) == pytest.approx(-2.0 - 3.4)
    assert ion_chemical_potential(profile, 0.5) == pytest.approx(-2.0 - 3.0)  # a vertex: mean of both steps
    assert ion_chemical_potential(profile, 1.0) == pytest.approx(-2.0 - 2.6)


def test_concentration_arithmetic():
    kt = BOLTZMANN * 1000.0
    assert concentration(0.0, 2.0, 1000.0) == pytest.approx(1.0)  # E = 0: half of the 2 sites taken
    assert concentration(1.0, 3.0, 1000.0) == pytest.approx(3.0 * math.exp(-1.0 / kt), rel=1e-4)  # Boltzmann tail
    assert concentration(-1.0, 3.0, 300.0) == pytest.approx(3.0, rel=1e-12)  # saturates: every site taken
    assert concentration(80.0, 1.0, 300.0) == 0.0 or concentration(80.0, 1.0, 300.0) < 1e-300  # no overflow
    assert total_concentration([(0.0, 2.0), (0.0, 4.0)], 500.0) == pytest.approx(3.0)
    assert decades(1e-2, 1e-6) == pytest.approx(4.0) and decades(1e-3, 0.0) == math.inf
    # a moved TM is in one state at a time: 6 hops at E = 0 put 6/7 of the TMs away, never more than all
    assert exclusive_concentration([(0.0, 6.0)], 1.0, 300.0) == pytest.approx(6 / 7)
    assert exclusive_concentration([(-2.0, 6.0), (-1.0, 3.0)], 1.0, 300.0) == pytest.approx(1.0)
    z = 6 * math.exp(-0.36 / (BOLTZMANN * 1000))  # the dilute limit: ~ m exp(-E/kT) when Z << 1
    assert exclusive_concentration([(0.36, 6.0)], 1.0, 1000.0) == pytest.approx(z / (1 + z))
    with pytest.raises(ValueError, match="temperature must be positive"):
        concentration(0.1, 1.0, 0.0)


def _classes(points, **kwargs):
    return classify(points[0][0], [DefectPoint(x, e, site, m) for _, x, e, site, m in points], **kwargs)


#: Hand-made energies (eV) and multiplicities per f.u., each case far from every threshold.
MIGRATION = [("migration", 0.0, -0.40, "oct", 6.0), ("migration", 0.5, -0.25, "oct", 2.0)]
QUENCHED_V_TM = [("V_TM", 1.0, 0.30, "a", 1.0), ("V_TM", 0.5, 0.60, "a", 1.0), ("V_TM", 0.0, 0.90, "a", 1.0)]
NEGLIGIBLE_V_TM = [("V_TM", 1.0, 1.50, "a", 1.0), ("V_TM", 0.0, 1.80, "a", 1.0)]
UNSTABLE_F_O = [("F_O", 1.0, -0.50, "a", 2.0), ("F_O", 0.0, -0.40, "a", 2.0)]
FOLLOWS_X = [("V_TM", 1.0, 1.40, "a", 1.0), ("V_TM", 0.5, 0.70, "a", 1.0), ("V_TM", 0.0, 0.15, "a", 1.0)]


def test_classification_from_concentrations():
    # a TM cannot take an empty site of the as-made host (x = 1 has none): zero there, saturated below
    migration = _classes(MIGRATION, synthesis_x=1.0, absent_at=(1.0,), hosts=1.0)
    assert migration.classification == "coupled" and migration.quenched == 0.0
    assert migration.onset_x == 0.5 and migration.favourable_x == [0.0, 0.5]
    # 6 downhill hops per Co, but one Co per f.u.: at most one migrated TM per f.u., not six
    assert migration.concentrations[0.0] == pytest.approx(1.0, abs=1e-6)
    # 0.3 eV at synthesis: ~3 % quenched at 1000 K; at 300 K it would follow x, but never reaches that population
    quenched = _classes(QUENCHED_V_TM, synthesis_x=1.0)
    assert quenched.classification == "static"
    assert quenched.quenched == pytest.approx(1 / (1 + math.exp(0.30 / (BOLTZMANN * 1000))))
    assert quenched.span_decades > 9  # it changes by decades across x, and still is not coupled
    assert _classes(NEGLIGIBLE_V_TM, synthesis_x=1.0).classification == "negligible"
    unstable = _classes(UNSTABLE_F_O, synthesis_x=1.0)
    assert unstable.classification == "host unstable" and "unstable" in unstable.notes[0]
    # 1.4 eV at synthesis (1e-7 quenched) falling to 0.15 eV at x = 0: a population that follows x ...
    follows = _classes(FOLLOWS_X, synthesis_x=1.0, reservoir_bound=False)
    assert follows.classification == "coupled" and follows.onset_x == 0.0
    assert follows.concentrations[0.0] > 1e3 * follows.quenched
    # ... unless it trades TM atoms with a reservoir, which a cycling cell cannot: frozen at synthesis
    frozen = _classes(FOLLOWS_X, synthesis_x=1.0, reservoir_bound=True)
    assert frozen.classification == "static" and "reservoir" in frozen.notes[0]
    # no energy at the synthesis composition: the quenched population is unknown, and so is the class
    assert _classes(FOLLOWS_X[1:], synthesis_x=1.0).classification == "undetermined"


@pytest.mark.parametrize("seed", range(5))
def test_no_meV_of_noise_flips_a_class(seed):
    rng = np.random.default_rng(seed)
    for case, absent in (
        (MIGRATION, (1.0,)),
        (QUENCHED_V_TM, ()),
        (NEGLIGIBLE_V_TM, ()),
        (UNSTABLE_F_O, ()),
        (FOLLOWS_X, ()),
    ):
        noisy = [(k, x, e + rng.normal(0, 0.005), site, m) for k, x, e, site, m in case]
        clean = _classes(case, synthesis_x=1.0, absent_at=absent)
        assert _classes(noisy, synthesis_x=1.0, absent_at=absent).classification == clean.classification


def _profile(energies, ion=-2.0):
    entries = [(f"x{x}", ComputedEntry(Composition({"Li": x, "Co": 1, "O": 2}), e)) for x, e in energies]
    return voltage_profile(entries, ComputedEntry("Li", ion), "Li")


def test_hysteresis_arithmetic_by_hand():
    charge = _profile([(0, -20.0), (0.5, -22.7), (1, -25.0)])  # 3.4 V, 2.6 V
    discharge = _profile([(0, -20.4), (0.5, -22.8), (1, -25.0)])  # migrated at x=0: 2.8 V, 2.4 V
    loop = hysteresis_loop(charge, discharge)
    assert [s.voltage for s in loop.discharge] == pytest.approx([2.8, 2.4])
    assert loop.dv(0.25) == pytest.approx(0.6)
    assert loop.dv(0.75) == pytest.approx(0.2)
    assert loop.average_hysteresis == pytest.approx(0.4)  # = 0.4 eV gained by migrating, per unit x
    capacity_per_x = FARADAY_MAH_PER_MOL / Composition("LiCoO2").weight
    assert loop.energy_lost == pytest.approx(0.4 * capacity_per_x)  # ~110 Wh/kg per cycle
    assert loop.coupled
    none = hysteresis_loop(charge, None)
    assert none.average_hysteresis == 0.0 and none.energy_lost == 0.0 and not none.coupled
    assert all(v_ch == v_dis for _, _, v_ch, v_dis in none.segments)


def test_hysteresis_on_a_shorter_discharge_range():
    charge = _profile([(0, -20.0), (1, -25.0)])  # 3.0 V
    discharge = _profile([(0, -20.3), (0.75, -23.9)])  # the blocked site caps x at 0.75
    loop = hysteresis_loop(charge, discharge)
    assert loop.x_range == (0, 0.75)
    assert loop.discharge[0].voltage == pytest.approx(-(-23.9 + 20.3 + 1.5) / 0.75)
    assert loop.average_hysteresis == pytest.approx(3.0 - 2.8)


def test_cycles_dissipate_the_migration_energy_at_the_onset_and_the_second_cycle_fades():
    """Both branches end in the same state at x = 1 (E = -25.0 for both hosts), so the area of the closed first
    cycle is the energy the migration released where it happened: E_pristine(x_on) - E_migrated(x_on) per f.u."""
    from insertflow.analysis.hysteresis import cycles

    pristine = _profile([(0, -20.0), (0.5, -22.7), (1, -25.0)])  # 3.4 V, 2.6 V
    migrated = _profile([(0, -20.4), (0.5, -22.8), (1, -25.0)])  # 2.8 V, 2.4 V
    per_x = FARADAY_MAH_PER_MOL / Composition("LiCoO2").weight
    energies = {0.0: (-20.0, -20.4), 0.5: (-22.7, -22.8)}
    for onset, (e_pristine, e_migrated) in energies.items():
        found = cycles(pristine, migrated, onset)
        area = found.first.average_hysteresis * (found.first.x_range[1] - found.first.x_range[0])
        assert area == pytest.approx(e_pristine - e_migrated)  # 0.4 eV at x = 0, 0.1 eV at x = 0.5
        assert found.first.energy_lost == pytest.approx(area * per_x)
        assert found.second.average_hysteresis == 0.0 and found.second.charge == migrated.steps
    late = cycles(pristine, migrated, 0.5)
    assert [s.voltage for s in late.first.charge] == pytest.approx([2.8, 2.6])  # migrated below the onset
    assert late.voltage_fade == pytest.approx((2.8 + 2.6) / 2 - (2.8 + 2.4) / 2)
    assert cycles(pristine, migrated, 0.0).voltage_fade == pytest.approx(3.0 - 2.6)
    mid = cycles(pristine, migrated, 0.25)  # the onset cuts the pristine 3.4 V step
    assert [(s.x_low, s.x_high) for s in mid.first.charge] == [(0, 0.25), (0.25, 0.5), (0.5, 1)]
    assert sum(s.capacity_grav for s in mid.first.charge) == pytest.approx(sum(s.capacity_grav for s in pristine.steps))
    assert mid.first.average_hysteresis == pytest.approx(0.25 * 0.6 + 0.5 * 0.2)
    back = cycles(pristine, migrated, 0.0, returns_at=0.5)  # the TM goes back at x = 0.5 on discharge
    assert [s.voltage for s in back.first.discharge] == pytest.approx([2.8, 2.6])
    assert back.first.average_hysteresis == pytest.approx(0.5 * 0.6)
    assert back.second is back.first and back.voltage_fade == pytest.approx(0.0)


def mock_defects(**changes):
    recipe = load_recipe("licoo2_defects_mock").model_dump(exclude={"folder"})
    for key, value in changes.items():
        recipe["defects" if key != "calculator" else key] = value
    return recipe_from_dict(recipe)


def test_mock_study_records_every_defect_and_reports_zero_hysteresis():
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(load_recipe("licoo2_defects_mock"), store=store, stream=io.StringIO())
    assert doc["kind"] == "defects" and doc["supercell_atoms"] == 48
    assert {d["kind"] for d in doc["defects"]} == set(ALL)
    assert all(d["status"] == "ok" and d["energy"] is not None for d in doc["defects"])
    classes = {c["kind"]: c for c in doc["classes"]}
    migration = classes["migration"]
    # by design: the moved Co sheds one TM-TM edge (+0.5 eV) at every x. At x = 0.5 the defects are made
    # in the lowest-Ewald ordering (#1), but the lowest relaxed one is #2: the energies are measured from
    # their own host and the gap is reported. The Li-Li term adds only rattle noise of a few meV.
    pristine = {p["label"]: p for p in doc["pristine"]}
    reference = {p["x"]: p for p in doc["pristine"] if p["reference"]}
    assert reference[0.5]["label"] == "pristine x=0.500 #2"
    ordering_gap = pristine["pristine x=0.500 #1"]["energy"] - reference[0.5]["energy"]
    assert ordering_gap > 0.05  # the Ewald ranking and the energy disagree here: the test means something
    assert dict(migration["energies"]) == pytest.approx({0.0: 0.5, 0.5: 0.5}, abs=0.02)
    at_half = [d for d in doc["defects"] if d["x"] == 0.5]
    assert all(d["reference_label"] == "pristine x=0.500 #1" for d in at_half)
    assert all(d["host_above_reference"] == pytest.approx(ordering_gap, abs=1e-6) for d in at_half)
    assert any("above the lowest ordering there" in note for note in doc["notes"])
    # 6 empty octahedra per Co at 0.5 eV: 6 exp(-0.5 eV / kT) = 2e-8 per f.u. at 300 K, under 1e-6 at every x
    assert migration["classification"] == "negligible"
    assert max(c for _, c in migration["concentrations"]) == pytest.approx(6 / (1 + math.exp(0.5 / 0.025852)), rel=0.6)
    assert all("stayed (octahedral" in d["geometry"] for d in doc["defects"] if d["kind"] == "migration")
    # the Li/Co exchange exists only in the full host: 6 pairs per f.u. at ~0.5 eV, ~2 % quenched at 1000 K
    exchange = classes["exchange"]
    (e_exchange,) = [e for _, e in exchange["energies"]]
    # one Co per f.u. is at home or in one of its 6 exchanges: c = Z / (1 + Z), Z = 6 exp(-E/kT)
    z = 6 * math.exp(-e_exchange / (BOLTZMANN * 1000))
    assert exchange["quenched_concentration"] == pytest.approx(z / (1 + z))
    assert exchange["classification"] == "static" and exchange["quenched_concentration"] > 1e-3
    assert doc["hysteresis"]["coupled"] is False
    assert doc["hysteresis"]["average_hysteresis"] == 0.0  # zero, not a small negative number
    v_tm = [d for d in doc["defects"] if d["kind"] == "V_TM"]
    assert all(d["change"] == {"Co": -1} for d in v_tm)
    # V_TM energy = E(def) - E(pristine) + mu_Co(x). With mu_Li held by the electrode and mu_O by the
    # recipe, the host at x fixes mu_Co = [E(host) - n_Li mu_Li(x) - n_O mu_O] / n_Co (not the Co metal)
    mu = doc["chemical_potentials"]
    for d in v_tm:
        host = next(p for p in doc["pristine"] if p["label"] == d["reference_label"])
        n_li, n_co = 12 * d["x"], 12
        tag = f"(x={d['x']:.3f})"
        mu_co = (host["energy"] - n_li * mu[f"Li{tag}"] - 24 * mu[f"O{tag}"]) / n_co
        assert mu[f"O{tag}"] == -4.0 and mu[f"Co{tag}"] == pytest.approx(mu_co, abs=1e-5)
        assert d["energy"] == pytest.approx(d["raw_difference"] + mu_co, abs=1e-5)
    # the mock's binaries are not a physical phase diagram: the regions say the host lies above them
    assert all(not r["stable"] and r["notes"] for r in doc["stability_regions"])
    assert "CoO" in doc["competing_phases"] and "hcp" not in str(doc["competing_phases"])
    assert doc["energy_scale"]["scale"] == "mock"  # which scale the energies are on is stated
    assert len(doc["f_o_reduction"]) == 4
    again = run_recipe(load_recipe("licoo2_defects_mock"), store=store, stream=io.StringIO())
    assert again["new_calculations"] == 0 and again["reused_calculations"] == doc["new_calculations"]


#: Migration favourable where few Li are left, unfavourable at x = 1 (see insertflow.calculators.mock).
COUPLED = {"tm_tm_contact": 0.8, "tm_ion_contact": 1.0, "voltage": 9.9}


@pytest.mark.slow  # tens of seconds; runs in CI
def test_mock_coupled_migration_builds_the_discharge_branch():
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    from insertflow.calculators.mock import mock_energy

    recipe = mock_defects(
        calculator={"name": "mock", "settings": COUPLED},
        defects={
            "kinds": ["migration", "exchange"],
            "x": [1.0, 0.5, 0.0],
            "supercell": [2, 2, 1],
            "orderings_per_x": 1,  # one host per x keeps the hand calculation below short
        },
    )
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    classes = {c["kind"]: c for c in doc["classes"]}
    migration = classes["migration"]
    # absent from the as-made host (no empty site), saturated where Li has left: it follows x
    assert migration["classification"] == "coupled" and migration["quenched_concentration"] == 0.0
    assert migration["onset_x"] == 0.5
    # by counting edges: -0.8 eV for the TM-TM edge the moved Co leaves (x = 0, and the Co(f) hop at
    # x = 0.5, whose new layer has as many Li next to it as its old one). The Li-Li term adds only
    # rattle noise (meV).
    assert dict(migration["energies"]) == pytest.approx({0.0: -0.8, 0.5: -0.8}, abs=0.02)
    # the x = 1 exchange is another reaction, another kind: two more TM-Li edges, -0.8 + 2 x 1.0 = +1.2 eV
    assert dict(classes["exchange"]["energies"]) == pytest.approx({1.0: 1.2}, abs=0.02)
    assert classes["exchange"]["classification"] == "static"  # 6 exp(-1.2 eV / kT) = 5e-6 per f.u. at 1000 K
    loop = doc["hysteresis"]
    assert loop["coupled"] and loop["migrated_label"].startswith("migration Co")
    discharge = [c for c in doc["calculations"] if c["label"].startswith("discharge")]
    assert [round(float(c["label"].split("=")[1].split()[0]), 3) for c in discharge] == [0.5, 0.917]
    # x = 11/12 at most: the Li site the Co took stays blocked
    assert loop["x_range"] == pytest.approx([0.0, 11 / 12])

    # Hand calculation of the loop from the two branches' end points, independent of the step
    # voltages: the x-average of V_charge - V_discharge over [0, x_top] is
    # {[E_dis(x_top) - E_dis(0)] - [E_ch(x_top) - E_ch(0)]} / (N_fu x_top), E_ch(x_top) on the charge hull.
    def energy(label):
        record = next(c for c in doc["calculations"] if c["label"] == label)
        return mock_energy(ComputedStructureEntry.from_dict(record["entry"]).structure, **COUPLED)

    pristine = {p["x"]: energy(p["label"]) for p in doc["pristine"]}
    x_top = 11 / 12
    charge_top = pristine[0.5] + (pristine[1.0] - pristine[0.5]) * (x_top - 0.5) / 0.5  # the hull is 0, 0.5, 1
    discharge_top = energy(next(c["label"] for c in discharge if "x=0.917" in c["label"]))
    discharge_low = energy(loop["migrated_label"])
    n_fu = 12
    by_hand = ((discharge_top - discharge_low) - (charge_top - pristine[0.0])) / (n_fu * x_top)
    assert loop["average_hysteresis"] == pytest.approx(by_hand, abs=1e-9)
    # the discharge keeps the migrated Co: at x = 0 it starts 0.8 eV below the charge branch, and it ends
    # above it, so the loop is open by ~0.06 V, hundreds of times the meV-scale noise
    assert discharge_low - pristine[0.0] == pytest.approx(-0.8, abs=1e-9)
    assert by_hand > 0.03


#: F_O as a donor (0, +1) at x = 1 in the 2x2x1 cell, on the mock's 3 eV gap.
CHARGED_F_O = {
    "kinds": ["F_O"],
    "x": [1.0],
    "supercell": [2, 2, 1],
    "charge_states": {"F_O": [0, 1]},
    "dielectric": 10.0,
}


def test_charged_states_reach_the_formation_energy_diagram_with_their_correction():
    """The charged path on the mock: E(q) = E(0) + q charge_level, a flat potential, VBM 0, gap 3 eV.

    The mock has no electrons, so this checks bookkeeping: every charge state is a calculation of
    its own, the Freysoldt correction of a flat potential is the model-charge term alone, and the
    (0/+) level of the donor sits where the lines cross, -charge_level - E_corr(+1) above the VBM.
    """
    from insertflow.analysis.alignment import locate_defect
    from insertflow.analysis.charged import freysoldt_correction, planar_averages
    from insertflow.calculators.mock import MOCK_GAP

    recipe = mock_defects(defects=CHARGED_F_O | {"chemical_potentials": {"O": -4.0, "F": -3.5}})
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    assert "Freysoldt" in doc["charge_treatment"] and "dielectric 10.0" in doc["charge_treatment"]
    (row,) = [d for d in doc["defects"] if d["kind"] == "F_O"]
    (plus,) = row["charge_states"]
    assert plus["charge"] == 1 and plus["status"] == "ok"
    assert plus["energy"] == pytest.approx(mock_energy_of(doc, row["label"]) - 2.0, abs=1e-9)  # charge_level
    host = next(c for c in doc["calculations"] if c["label"] == row["reference_label"])
    defect = next(c for c in doc["calculations"] if c["label"] == plus["label"])
    pristine = Structure.from_dict(host["entry"]["structure"])
    centre = locate_defect(Structure.from_dict(defect["entry"]["structure"]), pristine).centre
    flat = planar_averages(np.zeros((24, 24, 24)))
    expected, _ = freysoldt_correction(1, 10.0, flat, flat, pristine.lattice, centre)
    assert plus["correction"] == pytest.approx(expected, abs=1e-6)
    # its parts: the model charge's own energy (positive), and the alignment of a flat potential
    # against the model's long-range potential (negative), which nearly cancel in this cell
    assert plus["electrostatic"] > 0.05 and plus["alignment"] < -0.05
    for summary in row["charged"].values():
        ((level, _),) = summary["transition_levels"]
        assert level == pytest.approx(2.0 - expected, abs=1e-4)  # the (0/+) donor level
        assert summary["at_vbm"]["charge"] == 1 and summary["at_cbm"]["charge"] == 0
    assert 0 < 2.0 - expected < MOCK_GAP
    from insertflow.cli import render_defects

    shown = render_defects(doc, "memory")
    assert "transition levels" in shown and "Charges: charge states from mock" in shown


def test_the_as_made_fermi_level_balances_the_charged_donor_against_free_electrons():
    """F_O+ donates an electron to the mock's parabolic bands; neutrality fixes E_F at 1000 K in air.

    Checked against the document's own lines with the sites counted per cm^3 by hand: the
    multiplicity per CoO2 unit times the CoO2 units per cm^3 of the host supercell.
    """
    import math

    from insertflow.analysis.concentrations import BOLTZMANN
    from insertflow.calculators.mock import MOCK_GAP

    recipe = mock_defects(defects=CHARGED_F_O)  # mu_O free: the synthesis point is O2 at 1000 K
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    fermi = doc["fermi_level"]
    assert fermi is not None and fermi["temperature"] == 1000.0 and fermi["point"].startswith("O2 at 1000 K")
    rows = [d for d in doc["defects"] if d["kind"] == "F_O" and d["charged"]]
    host = next(c for c in doc["calculations"] if c["label"] == rows[0]["reference_label"])
    cell = Structure.from_dict(host["entry"]["structure"])
    kt = BOLTZMANN * 1000.0
    ef = fermi["fermi_level"]
    donors = 0.0
    for row in rows:
        sites = row["multiplicity"] * cell.composition["Co"] / (cell.volume * 1e-24)
        weights = {q: math.exp(-(b + q * ef) / kt) for q, b in row["charged"][fermi["point"]]["lines"]}
        donors += sites * weights[1] / (1 + sum(weights.values()))
    reported = sum(d["concentration"] for d in fermi["defects"] if d["charge"] == 1)
    assert reported == pytest.approx(donors, rel=1e-3)
    assert fermi["electrons"] == pytest.approx(donors + fermi["holes"], rel=1e-2)  # neutrality
    # a donor can only raise E_F above the mirror-symmetric bands' midgap
    assert MOCK_GAP / 2 - 1e-3 < ef < MOCK_GAP
    from insertflow.cli import render_defects

    assert f"E_F {ef:.2f} eV above the VBM" in render_defects(doc, "memory")


def mock_energy_of(doc, label):
    return next(c for c in doc["calculations"] if c["label"] == label)["entry"]["energy"]


def test_failed_defect_relaxation_is_recorded_and_the_rest_completes():
    recipe = mock_defects(calculator={"name": "mock", "settings": {"faults": {"Li12Co11O24": "raise"}}})
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    failed = [d for d in doc["defects"] if d["status"] == "failed"]
    assert [d["kind"] for d in failed] == ["V_TM"] and failed[0]["x"] == 1.0
    assert "mock fault 'raise'" in failed[0]["reason"]
    assert any(f["label"] == failed[0]["label"] for f in doc["failed"])
    v_tm = next(c for c in doc["classes"] if c["kind"] == "V_TM")
    assert sorted(x for x, _ in v_tm["energies"]) == [0.0, 0.5]  # classified from what finished
    assert doc["hysteresis"] is not None


def test_a_competing_phase_that_fails_is_named_and_the_regions_use_the_rest():
    recipe = mock_defects(calculator={"name": "mock", "settings": {"faults": {"Co3O4": "raise"}}})
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    assert any(f["label"] == "competing Co3O4" and "mock fault" in f["reason"] for f in doc["failed"])
    assert any("competing phase Co3O4 has no usable result" in note for note in doc["notes"])
    assert "Co3O4" not in doc["competing_phases"] and "CoO" in doc["competing_phases"]
    assert all(d["energy"] is not None for d in doc["defects"] if d["kind"] == "V_TM")  # the rest finished


def test_an_element_without_an_elemental_phase_is_refused_with_what_to_give(tmp_path):
    from pymatgen.core import Lattice, Structure

    # LiTiS2 (P-3m1): insertflow has no built-in elemental S (alpha-S has 128 atoms per cell)
    lattice = Lattice.hexagonal(3.46, 6.19)
    Structure(lattice, ["Li", "Ti", "S", "S"], [[0, 0, 0.5], [0, 0, 0], [1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]).to(
        filename=str(tmp_path / "LiTiS2.cif")
    )
    recipe = {
        "name": "lts",
        "study": "defects",
        "host": str(tmp_path / "LiTiS2.cif"),
        "calculator": {"name": "mock"},
        "defects": {"kinds": ["V_TM"], "x": [1.0, 0.0], "supercell": [2, 2, 2]},
    }
    with pytest.raises(RecipeError, match=r"no elemental phase of S .*defects\.competing_phases"):
        run_recipe(recipe_from_dict(recipe), store=open_store(StoreConfig(type="memory")), stream=io.StringIO())


def test_rattle_is_reproducible(licoo2):
    _, first = defects_of(licoo2, kinds=["V_TM"], x=[0.5], supercell=[2, 2, 1])
    _, second = defects_of(licoo2, kinds=["V_TM"], x=[0.5], supercell=[2, 2, 1])
    a, b = first[0.5][1][0].structure, second[0.5][1][0].structure
    assert np.allclose(a.cart_coords, b.cart_coords)  # same content key on every run


def test_cli_shows_and_plots_a_defect_study(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from insertflow.cli import app
    from insertflow.plotting import hysteresis_figure

    recipe = load_recipe("licoo2_defects_mock").model_dump(exclude={"folder"}, exclude_none=True)
    recipe["store"] = {"type": "embedded", "path": "store.sqlite"}
    path = tmp_path / "defects.yaml"
    path.write_text(yaml.safe_dump(recipe))
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    # 1 Li metal + 9 competing phases (Co, O2, F2, Li2O, Li2O2, LiF, CoO, Co3O4, CoF2) + 4 pristine + 18 defects
    assert "[calculations 32/32]" in result.output
    assert "migration: negligible (" in result.output and "quenched from 1000 K" in result.output
    assert "Hysteresis: 0 V (no coupled defect forms" in result.output
    shown = runner.invoke(app, ["show", str(path)])
    assert "Calculations: 0 new" not in shown.output and "32 new" in shown.output
    plotted = runner.invoke(app, ["plot", str(path), "--out", str(tmp_path / "figs")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "figs" / "licoo2-defects-mock_hysteresis.png").read_bytes()[:4] == b"\x89PNG"
    from insertflow.db import latest_study

    doc = latest_study(
        open_store(StoreConfig(type="embedded", path=str(tmp_path / "store.sqlite"))), "licoo2-defects-mock"
    )
    lines = hysteresis_figure(doc).axes[0].lines
    assert list(lines[0].get_ydata()) == list(lines[1].get_ydata())  # the branches coincide: no loop


def gated_mock_defects(settings: dict):
    """The coupled mock at x = 1, 0.5, 0 with TM-migration barriers; ``settings`` added to the mock's."""
    return mock_defects(
        calculator={"name": "mock", "settings": {**COUPLED, **settings}},
        defects={
            "kinds": ["migration"],
            "x": [1.0, 0.5, 0.0],
            "supercell": [2, 2, 1],
            "orderings_per_x": 1,
            "migration_barriers": True,
        },
    )


@pytest.mark.slow  # tens of seconds; runs in CI
def test_tm_barriers_gate_the_loop_a_high_barrier_closes_it_a_low_one_keeps_it(tmp_path):
    """The coupled mock (migration -0.8 eV at x = 0.5 and 0) with the mock NEB's TM bump.

    The kinetic limit at 300 K, 1e13 Hz and 1 h is 0.99 eV: a 1.8 eV bump (1.41 eV barrier) keeps the Co home on
    charge (no loop, the energies-only loop kept aside); a 0.6 eV one (0.23 eV) lets it migrate at x = 0.5.
    The mock path is E(s) = (1 - s) 0 + s (-0.8) + B sin^2(pi s): its maximum is the barrier.
    """
    from insertflow.calculators.mock import mock_path_energy

    def gated(tm_barrier):
        recipe = gated_mock_defects({"tm_barrier": tm_barrier})
        return run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())

    closed = gated(1.8)
    assert closed["kinetic_limit"] == pytest.approx(0.9855, abs=1e-3)
    barriers = {b["x"]: b for b in closed["migration_barriers"]}
    assert sorted(barriers) == [0.0, 0.5]  # where a migrated Co stayed: not the full host
    fine = np.linspace(0, 1, 200001)
    for point in barriers.values():
        expected = mock_path_energy(fine, 0.0, point["migration_energy"], 1.8).max()
        assert point["forward_barrier"] == pytest.approx(expected, abs=2e-3)  # endpoints differ by rattle only
        assert point["reverse_barrier"] == pytest.approx(expected - point["migration_energy"], abs=2e-3)
        assert not point["within_kinetic_limit"]
    assert closed["migration_onset_x"] is None
    assert closed["hysteresis"]["coupled"] is False and closed["hysteresis"]["average_hysteresis"] == 0.0
    assert closed["hysteresis_ungated"]["coupled"] and closed["hysteresis_ungated"]["average_hysteresis"] > 0.03
    assert "kinetic limit" in closed["hysteresis"]["definition"]
    from insertflow.cli import render_defects

    shown = render_defects(closed, "memory")
    assert "oct->tet->oct" in shown and "above the 0.99 eV limit" in shown and "keep the TM home" in shown
    from insertflow.plotting import write_plots

    names = sorted(path.name for path in write_plots(closed, tmp_path))
    assert names == [f"{closed['study']}_{n}.png" for n in ("hysteresis", "tm_barriers", "tm_paths")]

    opened = gated(0.6)
    assert opened["migration_onset_x"] == 0.5  # the highest x where it is downhill and fast
    assert opened["hysteresis"]["coupled"] and opened["hysteresis_ungated"] is None
    first, ungated = opened["hysteresis"], closed["hysteresis_ungated"]
    below, above = first["segments"][0], first["segments"][-1]
    # migrated at x = 0.5: below it both branches run on the migrated host, so the loop opens only above
    assert below["x_high"] == pytest.approx(0.5) and below["dv"] == pytest.approx(0.0, abs=1e-9)
    assert ungated["segments"][0]["dv"] < -0.1  # energies alone charge the pristine host down to x = 0
    assert above == pytest.approx(ungated["segments"][-1])
    second = opened["second_cycle"]
    assert second["average_hysteresis"] == 0.0 and opened["tm_returns_at"] is None  # the TM stays
    # the second charge retraces the first discharge, so the fade is the first loop's average
    assert opened["voltage_fade"] == pytest.approx(first["average_hysteresis"], abs=1e-6)
    assert first["average_hysteresis"] > 0.1
    assert f"voltage fade {opened['voltage_fade']:+.3f} V (the TM stays)" in render_defects(opened, "memory")
    assert all(b["within_kinetic_limit"] for b in opened["migration_barriers"])
    assert len(opened["nebs"]) == 2 and all(n["status"] == "ok" for n in opened["nebs"])


@pytest.mark.slow  # tens of seconds; runs in CI
def test_an_unresolved_tm_barrier_leaves_the_loop_ungated_and_says_so():
    recipe = gated_mock_defects({"faults": {"*": "neb"}})
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    assert all(b["forward_barrier"] is None and "did not converge" in b["reason"] for b in doc["migration_barriers"])
    assert doc["hysteresis"]["coupled"] and doc["hysteresis_ungated"] is None  # no verdict: not "too slow"
    assert any(m.startswith("TM migration gate undetermined") for m in doc["missing"])
    from insertflow.cli import study_complete

    assert not study_complete(doc) or doc["missing"]


def test_a_migrated_tm_that_relaxed_back_gives_no_barrier():
    from jobflow import run_locally

    from insertflow.calculators import get_calculator
    from insertflow.calculators.base import NebSettings
    from insertflow.flows.kinetics import neb_from_endpoints
    from insertflow.hosts import load_host
    from insertflow.schemas import CalculationRecord

    host = load_host("LiCoO2").structure * [2, 2, 1]
    calculator = get_calculator("mock")

    def record(structure, label):
        from pymatgen.entries.computed_entries import ComputedStructureEntry

        entry = ComputedStructureEntry(structure, -1.0)
        return CalculationRecord(
            label=label, formula="LiCoO2", task="relax", content_key=label, calculator={}, status="ok", entry=entry
        ).model_dump()

    returned = host.copy()
    returned.translate_sites([3], [0.01, 0.0, 0.0])  # the Co came back to within 0.03 A of home
    job = neb_from_endpoints(record(host, "home"), record(returned, "back"), 3, None, calculator, NebSettings(), "TM")
    store = open_store(StoreConfig(type="memory"))
    responses = run_locally(job, store=store, log=False)
    result = responses[job.uuid][1].output
    assert result.status == "failed" and "back where it started" in result.reason
    assert result.forward_barrier is None
    # the Co moved, but so did a Li, by a whole hop (it fell into a site): another hop, refused and named
    lithium = [i for i, site in enumerate(host) if site.species_string == "Li"]
    other = host.copy()
    other.translate_sites([3], [0.25, 0.0, 0.0])
    other.translate_sites([lithium[0]], [0.5, 0.0, 0.0])
    job = neb_from_endpoints(record(host, "home"), record(other, "two"), 3, None, calculator, NebSettings(), "TM")
    result = run_locally(job, store=store, log=False)[job.uuid][1].output
    assert result.status == "failed" and f"Li {lithium[0]} (2.82 A)" in result.reason
