"""GFN1-xTB electronic structure (tblite) in CI: LiCoO2 vs CoO2, the electronic-structure study, failures."""

import io

import pytest

pytest.importorskip("tblite")

from pymatgen.core import Lattice, Structure

from insertflow.analysis.descriptors import band_descriptors
from insertflow.analysis.magnetism import implied_oxidation_state, oxidation_census
from insertflow.calculators import get_calculator
from insertflow.calculators.xtb import run_tblite
from insertflow.errors import CalculatorError
from insertflow.hosts import load_host
from insertflow.recipe import recipe_from_dict
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store

SMALL = 6.0  # A: 3x3x2 supercells of the 4-atom cell, ~5 s each


def es_recipe(name: str, **electronic) -> dict:
    """An electronic-structure recipe on LiCoO2: mock relaxations, xtb statics."""
    return {
        "name": name,
        "study": "electronic_structure",
        "host": "LiCoO2",
        "calculator": {"name": "mock"},
        "electronic": electronic,
    }


@pytest.fixture(scope="module")
def licoo2_and_coo2():
    xtb = get_calculator("xtb", {"min_length": SMALL})
    lithiated = load_host("LiCoO2").structure.get_primitive_structure()
    empty = lithiated.copy()
    empty.remove_species(["Li"])
    results = []
    for structure in (lithiated, empty):
        outcome = xtb.outcome(run_tblite(structure, "GFN1-xTB", SMALL, 0.1, 300.0))
        results.append(band_descriptors(outcome.dos, band_edges=outcome.band_edges))
    return results


def test_licoo2_has_a_gap_and_coo2_does_not(licoo2_and_coo2):
    licoo2, coo2 = licoo2_and_coo2
    assert licoo2.band_gap > 0.5  # GFN1-xTB: ~1.9 eV (PBE ~1.1, experiment ~2.7)
    assert licoo2.reference == "VBM"
    assert coo2.band_gap < 0.2 * licoo2.band_gap  # delithiated: (nearly) metallic
    assert coo2.reference == "E_F"
    assert not licoo2.spin_polarized and licoo2.anion_p_near_ef_by_spin is None  # xTB is spin-restricted
    # the E_F-referenced centre is always there, the VBM-referenced one only for the insulator
    assert coo2.anion_p_centre_vbm is None and licoo2.anion_p_centre_vbm == pytest.approx(licoo2.anion_p_centre)
    assert licoo2.anion_p_centre_ef < licoo2.anion_p_centre  # E_F lies above the VBM of the insulator


def test_o2p_states_rise_to_the_fermi_level_on_delithiation(licoo2_and_coo2):
    licoo2, coo2 = licoo2_and_coo2
    assert coo2.anion_p_near_ef > licoo2.anion_p_near_ef  # holes go into O-2p as well as Co-d
    assert coo2.anion_p_centre > licoo2.anion_p_centre  # the O-2p band moves up (GPAW/CP2K/ABINIT agree)


def test_xtb_refuses_relaxations_and_unsupported_elements():
    xtb = get_calculator("xtb")
    structure = load_host("LiCoO2").structure
    with pytest.raises(CalculatorError, match="static single points only"):
        xtb.make_job(structure, "relax")
    uranium = Structure(Lattice.cubic(5.47), ["U", "O"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    with pytest.raises(CalculatorError, match="Z >86"):
        run_tblite(uranium, "GFN1-xTB", 5.0, 0.1, 300.0)
    with pytest.raises(CalculatorError, match="method 'GFN9-xTB'"):
        get_calculator("xtb", {"method": "GFN9-xTB"})


@pytest.mark.slow  # tens of seconds; runs in CI
def test_electronic_study_end_to_end_and_unconverged_scf_is_a_failure():
    store = open_store(StoreConfig(type="memory"))
    recipe = es_recipe("es", calculator={"name": "xtb", "settings": {"min_length": SMALL}}, x=[1.0, 0.0], max_size=1)
    doc = run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())
    points = {p["x"]: p for p in doc["points"]}
    assert sorted(points) == [0.0, 1.0]
    assert points[1.0]["descriptors"]["band_gap"] > 0.5
    assert points[0.0]["descriptors"]["anion_p_near_ef"] > points[1.0]["descriptors"]["anion_p_near_ef"]
    pdos = points[1.0]["descriptors"]["pdos"]
    assert set(pdos["curves"]) == {"O-p", "Co-d"} and len(pdos["energies"]) == len(pdos["curves"]["O-p"])
    again = run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())
    assert again["new_calculations"] == 0
    from insertflow.db import descriptors

    frame = descriptors("es", store).set_index("x")
    assert not frame["spin_polarized"].any()  # the notebook table says the xTB DOS is spin-restricted
    assert frame.loc[0.0, "o2p_centre_ef"] > frame.loc[1.0, "o2p_centre_ef"]  # O-2p rises on delithiation

    recipe["name"] = "es-unconverged"
    recipe["electronic"]["calculator"]["settings"]["max_iterations"] = 2
    broken = run_recipe(recipe_from_dict(recipe), store=store, stream=io.StringIO())
    assert all(p["descriptors"] is None for p in broken["points"])
    statics = [f for f in broken["failed"] if f["label"].startswith("electronic")]
    assert len(statics) == 2 and all("SCF not converged" in f["reason"] for f in statics)


def test_oxidation_states_from_chgnet_like_moments():
    assert implied_oxidation_state("Co", 0.06) == 3  # CHGNet, LiCoO2
    assert implied_oxidation_state("Co", 1.1) == 4  # CHGNet, CoO2
    assert implied_oxidation_state("Mn", 3.0) == 4 and implied_oxidation_state("Fe", 4.2) == 2
    assert implied_oxidation_state("Zn", 0.0) is None
    census = oxidation_census(["Li", "Co", "Co", "O"], [0.0, 0.05, 1.05, 0.0], ["Co"])
    assert census == {"Co": {"+3": 1, "+4": 1}}


@pytest.mark.slow  # tens of seconds; runs in CI
def test_f_o_raises_and_v_tm_lowers_the_fermi_level_in_licoo2():
    from insertflow.analysis.descriptors import fermi_level_shift

    xtb = get_calculator("xtb", {"min_length": 0.0})
    pristine = load_host("LiCoO2").structure * [2, 2, 1]
    fluorinated = pristine.copy()
    fluorinated.replace(next(i for i, s in enumerate(pristine) if s.specie.symbol == "O"), "F")
    vacancy = pristine.copy()
    vacancy.remove_sites([next(i for i, s in enumerate(pristine) if s.specie.symbol == "Co")])
    dos = {}
    for name, structure in (("pristine", pristine), ("F_O", fluorinated), ("V_TM", vacancy)):
        dos[name] = xtb.outcome(run_tblite(structure, "GFN1-xTB", 0.0, 0.1, 300.0)).dos
    assert fermi_level_shift(dos["F_O"], dos["pristine"]) > 0.4  # donor: E_F from mid-gap up to the Co-eg band
    assert fermi_level_shift(dos["V_TM"], dos["pristine"]) < -0.4  # acceptor: holes at the valence-band top
    near_ef = {name: band_descriptors(d).anion_p_near_ef for name, d in dos.items()}
    assert near_ef["V_TM"] > near_ef["pristine"]  # under-coordinated O: non-bonding O-2p at E_F


@pytest.mark.slow  # tens of seconds; runs in CI
def test_electronic_study_stores_defect_fermi_shifts_per_x():
    recipe = es_recipe(
        "es-defects",
        calculator={"name": "xtb", "settings": {"min_length": 0.0}},
        x=[1.0],
        defects=["F_O"],
        supercell=[2, 2, 1],
    )
    doc = run_recipe(recipe_from_dict(recipe), store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    f_o = {round(p["x"], 3): p for p in doc["points"] if p["kind"] == "F_O"}
    assert sorted(f_o) == [0.0, 1.0]  # the end members are always there
    assert f_o[1.0]["host_label"] == "x=1.000 #1" and f_o[1.0]["site"].startswith("F on O")
    assert f_o[1.0]["fermi_shift"] > 0.4  # the donor electron lifts E_F in the insulator
    assert abs(f_o[0.0]["fermi_shift"]) < 0.2  # metallic CoO2 screens it
    # xTB gives no site potentials: the shift is measured from the O-2p centre, and says so
    assert {p["fermi_shift_reference"] for p in f_o.values()} == {"anion_p_centre"}
    assert f_o[1.0]["fermi_shift"] == f_o[1.0]["fermi_shift_anion_p"] and f_o[1.0]["potential_alignment"] is None


@pytest.mark.slow  # tens of seconds; runs in CI
def test_pdos_plot_for_a_chosen_defect():
    from insertflow.errors import InsertflowError
    from insertflow.plotting import pdos_figure

    recipe = es_recipe(
        "es-pdos",
        calculator={"name": "xtb", "settings": {"min_length": 0.0}},
        x=[1.0],
        defects=["V_TM"],
        supercell=[2, 2, 1],
    )
    doc = run_recipe(recipe_from_dict(recipe), store=open_store(StoreConfig(type="memory")), stream=io.StringIO())
    label = next(p["label"] for p in doc["points"] if p["kind"] == "V_TM" and p["x"] == 1.0)
    figure = pdos_figure(doc, 1.0, label=label)
    assert figure.axes[0].get_title().startswith("V_TM Co")
    curves = {line.get_label(): line for line in figure.axes[0].lines}
    assert {"O-p", "Co-d"} <= set(curves)
    point = next(p for p in doc["points"] if p["label"] == label)
    assert list(curves["O-p"].get_ydata()) == point["descriptors"]["pdos"]["curves"]["O-p"]
    with pytest.raises(InsertflowError, match="no point 'nope'"):
        pdos_figure(doc, 1.0, label="nope")
