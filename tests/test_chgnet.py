"""Real CHGNet 0.3.0 on small LiCoO2 cells, checked against bare CHGNet + ASE and pymatgen."""

import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("chgnet")

from pymatgen.apps.battery.insertion_battery import InsertionElectrode
from pymatgen.entries.computed_entries import ComputedStructureEntry

from insertflow.db import latest_study
from insertflow.recipe import load_recipe
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store

pytestmark = pytest.mark.chgnet


def test_licoo2_voltage_and_stored_document_reads_back(tmp_path, bare_voltage):
    recipe = load_recipe("licoo2_chgnet")
    path = str(tmp_path / "chgnet.sqlite")
    doc = run_recipe(recipe, store=open_store(StoreConfig(type="embedded", path=path)))
    # The pipeline adds nothing to the physics: bare CHGNet + ASE FIRE on the same three cells
    # gives the same voltage (same model, optimizer, fmax and cell filter).
    structures = {c["label"]: c for c in doc["calculations"]}
    assert doc["average_voltage"] == pytest.approx(bare_chgnet_voltage(bare_voltage), abs=1e-3)
    assert doc["average_voltage"] == pytest.approx(3.49, abs=0.01)  # the README's number (MP GGA+U level)
    assert set(structures) == {"discharged", "charged", "working_ion"}
    charged = next(c for c in doc["calculations"] if c["label"] == "charged")
    assert charged["layer_gap_growth"] < 1.0  # CoO2 layers stayed together
    # A fresh connection (as another process would open it) reads back the identical document.
    reread = latest_study(open_store(StoreConfig(type="embedded", path=path)), recipe.name)
    assert json.dumps(reread, sort_keys=True, default=str) == json.dumps(doc, sort_keys=True, default=str)
    # CHGNet magnetic moments: Co3+ in LiCoO2 is low-spin (~0 muB).
    discharged = next(c for c in doc["calculations"] if c["label"] == "discharged")
    co = [
        m
        for m, site in zip(discharged["magmoms"], discharged["entry"]["structure"]["sites"], strict=True)
        if site["species"][0]["element"] == "Co"
    ]
    assert co and max(abs(m) for m in co) < 0.3


def test_licoo2_levels_profile_matches_end_members_and_stays_layered(tmp_path):
    store = open_store(StoreConfig(type="embedded", path=str(tmp_path / "levels.sqlite")))
    levels = load_recipe("licoo2_levels_chgnet")
    levels.levels.max_size = 3  # x = 0, 1/3, 1/2, 2/3, 1: six relaxations of <= 12 atoms
    levels.levels.ewald_keep = 3
    levels.levels.screen.keep = 1
    doc = run_recipe(levels, store=store)
    end_members = run_recipe(load_recipe("licoo2_chgnet"), store=store)
    # The same thermodynamic quantity two ways: the capacity-weighted profile average over
    # 0 <= x <= 1 and the end-member voltage (its entries were reused from the levels run).
    assert doc["x_range"] == [0.0, 1.0]
    assert end_members["reused_calculations"] == 3  # the same entries, so the identity holds exactly
    assert doc["average_voltage"] == pytest.approx(end_members["average_voltage"], abs=1e-9)
    voltages = [s["voltage"] for s in doc["steps"]]
    assert voltages == sorted(voltages, reverse=True)
    # the steps against pymatgen's own insertion electrode built from the same relaxed entries
    records = {c["label"]: c for c in doc["calculations"]}
    entries = [ComputedStructureEntry.from_dict(records[r["label"]]["entry"]) for r in doc["orderings"] if r["on_hull"]]
    li = ComputedStructureEntry.from_dict(records["working_ion"]["entry"])
    electrode = InsertionElectrode.from_entries(entries, li)
    assert [p.voltage for p in electrode.voltage_pairs] == pytest.approx(voltages, abs=1e-6)
    hull = [r for r in doc["orderings"] if r["on_hull"]]
    assert {r["x"] for r in hull} >= {0.0, 1.0}
    for row in hull:
        assert row["status"] == "ok"
        assert row["layer_gap_growth"] < 1.0  # no exfoliated CoO2 slabs
        assert row["spacegroup_final"] == row["spacegroup_initial"]  # the ordering kept its symmetry


def bare_chgnet_voltage(bare_voltage) -> float:
    """LiCoO2/CoO2 voltage from CHGNet 0.3.0 + ASE FIRE (FrechetCellFilter), no insertflow in between."""
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    with contextlib.redirect_stdout(io.StringIO()):
        calculator = CHGNetCalculator(model=CHGNet.load(model_name="0.3.0", verbose=False))
    return bare_voltage(calculator, "LiCoO2")


def test_drifting_coo2_is_relaxed_again_with_its_stacking_spacing_fixed(tmp_path):
    """CHGNet CoO2 at fmax 0.01 exfoliates (measured: the (001) gap grows ~2.9 A); the guard re-relaxes it."""
    from jobflow import run_locally
    from pymatgen.core.operations import SymmOp

    from insertflow.analysis.layers import widest_gaps
    from insertflow.calculators import get_calculator
    from insertflow.flows.calculation import CalculationMaker, LayerGuard
    from insertflow.hosts import load_host
    from insertflow.schemas import CalculationRecord

    coo2 = load_host("LiCoO2").structure.get_primitive_structure()
    coo2.remove_species(["Li"])
    # tilt the cell so the drifting (001) normal is not Cartesian z: the guard must rotate it there
    coo2.apply_operation(SymmOp.from_axis_angle_and_translation([1, 1, 0], 35.0))
    store = open_store(StoreConfig(type="memory"))
    calculator = get_calculator("chgnet", {"fmax": 0.01, "steps": 2000})
    job = CalculationMaker(calculator=calculator, label="charged", guard=LayerGuard(policy="constrain")).make(coo2)
    run_locally(job, store=store, log=False, root_dir=tmp_path, create_folders=True)  # atomate2 writes files
    stored = store.query_one({"output.label": "charged", "output.status": {"$exists": True}}, sort={"completed_at": -1})
    record = CalculationRecord.model_validate(stored["output"])
    assert record.status == "ok" and record.constrained
    assert record.layer_gap_growth < 0.5  # the fixed spacing held: no exfoliation
    final = record.entry.structure
    # the spacing of the (001) planes (the drifting family) is the input's; the in-plane cell relaxed
    spacing = [s.lattice.d_hkl((0, 0, 1)) for s in (coo2, final)]
    assert spacing[1] == pytest.approx(spacing[0], abs=1e-6)
    assert widest_gaps(final)[(0, 0, 1)] == pytest.approx(widest_gaps(coo2)[(0, 0, 1)], abs=0.5)
    assert not np.allclose(final.lattice.abc[:2], coo2.lattice.abc[:2], atol=1e-3)


@pytest.mark.parametrize(
    ("output", "converged"),
    [
        ({"input": {"steps": 1}, "state": "failed", "is_force_converged": False}, True),  # a single point
        ({"input": {"steps": 500}, "state": "successful", "is_force_converged": False}, True),  # 0.0501 vs 0.05
        ({"input": {"steps": 500}, "state": "failed", "is_force_converged": False, "output": {"n_steps": 1}}, False),
        ({"input": {"steps": 500}, "state": "failed", "is_force_converged": True}, False),
    ],
)
def test_a_relaxation_counts_as_converged_when_its_optimizer_says_so(output, converged):
    from insertflow.calculators.chgnet import relaxation_converged

    assert relaxation_converged(output) is converged


def test_single_points_keep_the_reason_a_structure_failed():
    from pymatgen.core import Lattice, Structure

    from insertflow.calculators import get_calculator

    chgnet = get_calculator("chgnet")
    curium = Structure(Lattice.cubic(3.5), ["Cm", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # Z = 96: not in CHGNet
    rocksalt = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    failed, fine = chgnet.single_points([curium, rocksalt])
    assert not failed.ok and "Error" in failed.reason  # the model's exception type and message, not a bare NaN
    assert fine.ok and fine.reason is None and fine.energy < 0


def test_chgnet_energies_are_already_on_the_mp2020_scale(li_co_o_phases):
    # CHGNet 0.3.0 learned MP2020-corrected energies: from its own metals and O2 it gives formation
    # energies close to experiment. Applying MP2020 again would count the U and oxide terms twice
    from pymatgen.entries.compatibility import MaterialsProject2020Compatibility

    from insertflow.calculators import get_calculator

    entries, formation = li_co_o_phases(get_calculator("chgnet"))
    assert all(not e.energy_adjustments for e in entries.values())  # no correction applied

    experiment = {"CoO": -2.46, "Li2O": -6.20, "Co3O4": -9.20}  # eV per formula unit (NIST-JANAF / Wagman)
    for label, value in experiment.items():
        assert formation(label) == pytest.approx(value, abs=0.25), label  # measured: -2.46, -6.20, -9.35
    twice = MaterialsProject2020Compatibility(check_potcar=False).get_adjustments(
        ComputedStructureEntry(
            entries["CoO"].structure,
            entries["CoO"].energy,
            parameters={"run_type": "GGA+U", "software": "chgnet", "hubbards": {"Co": 3.32}},
        )
    )
    assert sum(a.value for a in twice) / entries["CoO"].composition["Co"] < -2.0  # what a second pass would add


def test_a_pipeline_neb_equals_a_bare_ase_neb_on_the_same_path():
    """LiFePO4 channel hop, 1x2x1 (55 atoms), 3 images, settings other than atomate2's defaults.

    The pipeline runs atomate2's force-field NEB maker; the bare run is ASE's NEB with FIRE and one
    CHGNetCalculator per image, with the same springs (2 eV/A^2, not 5), no climbing image and
    fmax 0.05 (not 0.1): dropping any of them in the plumbing moves the barrier (a climbing image
    climbs to the saddle). They must agree within 0.02 eV (the issue's bar).
    """
    from ase.mep import NEB
    from ase.optimize import FIRE
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    from insertflow.calculators.chgnet import _load_model
    from insertflow.recipe import recipe_from_dict
    from insertflow.sampling.hops import initial_path
    from insertflow.schemas import CalculationRecord

    settings = {"hops": [0], "supercell": [1, 2, 1], "images": 3, "spring": 2.0, "climb": False, "fmax": 0.05}
    recipe = recipe_from_dict(
        {
            "name": "neb",
            "study": "barriers",
            "host": "LiFePO4",
            "calculator": {"name": "chgnet", "settings": {"fmax": 0.05}},
            "barriers": {**settings, "steps": 400},
        }
    )
    store = open_store(StoreConfig(type="memory"))
    doc = run_recipe(recipe, store=store, stream=io.StringIO())
    (hop,) = doc["hops"]
    assert hop["status"] == "ok", hop["reason"]
    assert doc["neb"]["climb"] is False and doc["neb"]["spring"] == 2.0
    records = {c["label"]: CalculationRecord.model_validate(c) for c in doc["calculations"]}
    start = records[f"{hop['label']} start"].entry.structure
    end = records[f"{hop['label']} end"].entry.structure
    moving = max(range(len(start)), key=lambda i: start[i].distance(end[i]))
    atoms = [AseAtomsAdaptor.get_atoms(image) for image in initial_path(start, end, 3, moving, None)]
    for image in atoms:
        image.calc = CHGNetCalculator(model=_load_model("0.3.0"))
    with contextlib.redirect_stdout(io.StringIO()):
        band = NEB(atoms, k=2.0, climb=False, method="improvedtangent")
        assert FIRE(band, logfile=None).run(fmax=0.05, steps=400)
    energies = [image.get_potential_energy() for image in atoms]
    bare = max(energies) - energies[0]
    assert hop["forward_barrier"] == pytest.approx(bare, abs=0.02)
    assert 0.05 < hop["forward_barrier"] < 1.0  # a Li hop along the open channel
    assert hop["reverse_barrier"] == pytest.approx(hop["forward_barrier"], abs=0.05)  # equivalent sites


def test_the_neb_settings_reach_atomates_neb_maker():
    # a symmetric hop's barrier hardly depends on springs or climbing, so the plumbing is checked here
    from insertflow.calculators import get_calculator
    from insertflow.calculators.base import NebSettings
    from insertflow.hosts import load_host

    images = [load_host("LiCoO2").structure] * 4
    job = get_calculator("chgnet").make_neb_job(
        images, NebSettings(images=2, spring=2.5, climb=False, fmax=0.03, steps=7)
    )
    maker = job.function.__self__
    assert maker.neb_kwargs == {"k": 2.5, "climb": False, "method": "improvedtangent"}
    assert maker.relax_kwargs == {"fmax": 0.03} and maker.steps == 7
    assert maker.model_version == "0.3.0"  # the pinned model, not atomate2's default
