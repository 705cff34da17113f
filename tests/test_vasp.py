"""VASP through atomate2: inputs generated and checked without any POTCAR, outputs corrected like MP."""

import pytest
from pymatgen.entries.computed_entries import ComputedEntry

from insertflow.calculators import get_calculator
from insertflow.errors import CalculatorError
from insertflow.hosts import load_host
from insertflow.recipe import recipe_from_dict
from insertflow.runner import build_study


@pytest.fixture(autouse=True)
def no_potcars(monkeypatch, tmp_path):
    monkeypatch.setenv("PMG_VASP_PSP_DIR", str(tmp_path / "no-potcars-here"))


@pytest.fixture(scope="module")
def vasp():
    return get_calculator("vasp")


def incar_for(vasp, host: str, task: str):
    structure = load_host(host).structure
    inputs = vasp.input_set(structure, task, potcar_spec=True)
    return structure, inputs


def test_licoo2_static_dos_inputs_without_potcars(vasp):
    structure, inputs = incar_for(vasp, "LiCoO2", "static")
    assert set(inputs) == {"INCAR", "KPOINTS", "POSCAR", "POTCAR.spec"}
    incar = inputs["INCAR"]
    assert incar["ISPIN"] == 2
    assert incar["LDAU"] is True
    symbols = [el.symbol for el in inputs["POSCAR"].structure.composition.elements]
    u = dict(zip(symbols, incar["LDAUU"], strict=True))
    assert u == {"Li": 0, "Co": 3.32, "O": 0}  # MP's U on Co-d, only in oxides
    assert dict(zip(symbols, incar["LDAUL"], strict=True))["Co"] == 2
    assert incar["LORBIT"] == 11 and incar["NEDOS"] == 3001 and incar["ISMEAR"] == -5
    magmom = dict(zip([s.specie.symbol for s in inputs["POSCAR"].structure], incar["MAGMOM"], strict=True))
    assert magmom["Co"] == 0.6
    assert inputs["POTCAR.spec"].split() == ["Li_sv", "Co", "O"]
    kpoints = inputs["KPOINTS"].kpts[0]
    assert kpoints[0] * kpoints[1] * kpoints[2] * len(structure) >= 1000  # MP's k-point density per atom


@pytest.mark.parametrize(
    ("host", "tm", "u", "moment"),
    [("LiFePO4", "Fe", 5.3, 5.0), ("LiNiO2", "Ni", 6.2, 5.0), ("Li2MnO3", "Mn", 3.9, 5.0)],
)
def test_u_values_and_moments_follow_the_preset(vasp, host, tm, u, moment):
    _, inputs = incar_for(vasp, host, "relax")
    incar = inputs["INCAR"]
    symbols = [el.symbol for el in inputs["POSCAR"].structure.composition.elements]
    assert dict(zip(symbols, incar["LDAUU"], strict=True))[tm] == u
    per_site = [s.specie.symbol for s in inputs["POSCAR"].structure]
    assert {m for sym, m in zip(per_site, incar["MAGMOM"], strict=True) if sym == tm} == {moment}
    assert incar["ISIF"] == 3 and incar["NSW"] > 0


def test_user_settings_override_and_change_the_identity(vasp):
    tight = get_calculator("vasp", {"user_incar_settings": {"EDIFF": 1e-7}})
    _, inputs = incar_for(tight, "LiCoO2", "relax")
    assert inputs["INCAR"]["EDIFF"] == 1e-7
    assert tight.identity() != vasp.identity()
    with pytest.raises(CalculatorError, match="unknown VASP preset 'mp_r2scan'"):
        get_calculator("vasp", {"preset": "mp_r2scan"})


def test_a_charged_cell_sets_nelect_through_the_structure_charge(vasp):
    structure = load_host("LiCoO2").structure
    charged = vasp.with_charge(-1)
    # pymatgen's sets read NELECT = valence electrons - structure charge (use_structure_charge)
    assert charged.charged(structure).charge == -1 and vasp.charged(structure).charge == 0
    assert charged._generator(structure, "static").use_structure_charge
    assert not vasp._generator(structure, "static").use_structure_charge
    assert charged.identity() != vasp.identity() and charged.identity()["settings"]["charge"] == -1


def test_jobs_are_atomate2_mp_makers_that_write_our_inputs(vasp):
    from atomate2.vasp.jobs.mp import MPGGARelaxMaker, MPGGAStaticMaker

    structure = load_host("LiCoO2").structure
    relax = vasp.make_job(structure, "relax")
    static = vasp.make_job(structure, "static")
    assert isinstance(relax.maker, MPGGARelaxMaker) and isinstance(static.maker, MPGGAStaticMaker)
    # what atomate2 will write in the job folder is what input_set shows (and the tests above check)
    for job, task in ((relax, "relax"), (static, "static")):
        written = job.maker.input_set_generator.get_input_set(structure, potcar_spec=True)
        assert dict(written["INCAR"]) == dict(vasp.input_set(structure, task, potcar_spec=True)["INCAR"])
    relax_incar = relax.maker.input_set_generator.get_input_set(structure, potcar_spec=True)["INCAR"]
    static_incar = static.maker.input_set_generator.get_input_set(structure, potcar_spec=True)["INCAR"]
    assert relax_incar["ISIF"] == 3 and relax_incar["NSW"] > 0 and relax_incar.get("NEDOS") != 3001
    assert static_incar.get("NSW", 0) == 0 and static_incar["NEDOS"] == 3001


def calculation_jobs(flow):
    return [j for j in flow.jobs if (j.metadata.get("insertflow") or {}).get("kind") == "calculation"]


def test_every_study_builds_with_vasp_and_plans_what_it_builds():
    from insertflow.calculators.vasp import VaspCalculator

    end_member = recipe_from_dict({"name": "v", "host": "LiCoO2", "calculator": {"name": "vasp"}})
    _, flow, plan = build_study(end_member)
    jobs = calculation_jobs(flow)
    assert sorted(j.function_args[0].composition.reduced_formula for j in jobs) == ["CoO2", "Li", "LiCoO2"]
    assert all(isinstance(j.function_args[1], VaspCalculator) for j in jobs)
    assert plan["calculations"] == len(jobs) == 3
    levels = recipe_from_dict(
        {
            "name": "v",
            "host": "LiCoO2",
            "study": "insertion_levels",
            "calculator": {"name": "vasp"},
            "levels": {"max_size": 2, "ewald_keep": 2},
        }
    )
    _, flow, plan = build_study(levels)
    jobs = [j for sub in flow.jobs for j in getattr(sub, "jobs", [sub])]
    relaxations = [j for j in jobs if (j.metadata.get("insertflow") or {}).get("kind") == "calculation"]
    # x = 0, 1/2 (two orderings in cells of 2), 1, and bcc Li: every one a VASP relaxation
    assert plan["calculations"] == len(relaxations) == 5
    assert all(isinstance(j.function_args[1], VaspCalculator) for j in relaxations)
    defects = recipe_from_dict(
        {
            "name": "v",
            "host": "LiCoO2",
            "study": "defects",
            "calculator": {"name": "vasp"},
            "defects": {"x": [1.0, 0.0], "supercell": [2, 2, 1]},
        }
    )
    _, flow, plan = build_study(defects)
    jobs = calculation_jobs(flow)
    assert plan["calculations"] == len(jobs)
    formulas = {j.function_args[0].composition.reduced_formula for j in jobs}
    assert formulas >= {"LiCoO2", "CoO2", "Li", "Co", "O2", "CoO", "Co3O4", "Li2O", "Li2O2"}
    # competing phases (Li 1, Co and O2 and CoO 2, Li2O 3, Li2O2 8, Co3O4 14 atoms), or the one 2x2x1
    # supercell: 48 atoms at x = 1, 36 at x = 0, one less with V_TM
    assert {len(j.function_args[0]) for j in jobs} == {1, 2, 3, 8, 14, 35, 36, 47, 48}
    o2 = next(j for j in jobs if j.function_args[0].composition.reduced_formula == "O2")
    assert o2.function_args[3] == "static"  # a molecule in its box: a cell relaxation would collapse it


def task_doc(state="successful"):
    structure = load_host("LiCoO2").structure.get_primitive_structure()
    entry = ComputedEntry(
        structure.composition,
        -23.0,
        parameters={
            "run_type": "GGA+U",
            "is_hubbard": True,
            "hubbards": {"Li": 0.0, "Co": 3.32, "O": 0.0},
            "potcar_symbols": ["PBE Li_sv", "PBE Co", "PBE O"],
        },
    )
    return {
        "state": state,
        "output": {"structure": structure.as_dict(), "magmoms": [0.0, 0.1, 0.0, 0.0]},
        "entry": entry.as_dict(),
    }


def test_outputs_get_mp2020_corrections(vasp):
    outcome = vasp.outcome(task_doc())
    entry = outcome.entry
    assert entry.uncorrected_energy == pytest.approx(-23.0)
    names = " ".join(a.name for a in entry.energy_adjustments)
    assert "oxide" in names and "Co" in names  # the anion and the U corrections, as in MP
    assert entry.energy < entry.uncorrected_energy
    assert outcome.magmoms == [0.0, 0.1, 0.0, 0.0]


def test_unconverged_vasp_runs_are_failures(vasp):
    with pytest.raises(CalculatorError, match="ended in state 'failed'"):
        vasp.outcome(task_doc("failed"))


def test_descriptors_come_from_the_dos_atomate2_stores():
    # atomate2's TaskDoc keeps the CompleteDos under vasp_objects["dos"] (in the data store) and the
    # eigenvalue edges in calcs_reversed[0].output: a real HSE vasprun stands in for a DOS static
    from pathlib import Path

    from pymatgen.io.vasp import Vasprun

    from insertflow.analysis.descriptors import band_descriptors
    from insertflow.calculators.vasp import vasp_electronic_structure

    run = Vasprun(str(Path(__file__).parent / "data" / "vasp" / "Na3Mn8O16_hse_vasprun.xml.gz"))
    gap, cbm, vbm, _ = run.eigenvalue_band_properties
    task = {
        "vasp_objects": {"dos": run.complete_dos.as_dict()},  # as a store hands it back
        "calcs_reversed": [{"output": {"bandgap": gap, "cbm": cbm, "vbm": vbm}}],
    }
    dos, edges = vasp_electronic_structure(task)
    assert edges == (gap, cbm, vbm)
    found = band_descriptors(dos, band_edges=edges)
    direct = band_descriptors(run.complete_dos, band_edges=(gap, cbm, vbm))
    assert found.anion_p_centre == pytest.approx(direct.anion_p_centre, abs=1e-9)
    assert found.spin_polarized and len(found.anion_sites) == 16
    assert vasp_electronic_structure({"vasp_objects": None}) == (None, None)  # a relaxation: no DOS


def test_site_potentials_are_read_from_the_outcar_of_the_run_folder(tmp_path, monkeypatch):
    # atomate2 keeps no core potentials in its TaskDoc: they come from OUTCAR in dir_name ("host:/path");
    # pymatgen's Outcar needs a whole OUTCAR, so its reader stands in here (not checked on a real one)
    from insertflow.calculators import vasp as vasp_module

    read = []

    class FakeOutcar:
        def __init__(self, path):
            read.append(path)

        def read_avg_core_poten(self):
            return [[-40.0, -60.0, -80.0, -80.0], [-40.5, -60.5, -80.5, -80.4]]  # two ionic steps

    monkeypatch.setattr(vasp_module, "Outcar", FakeOutcar)
    (tmp_path / "OUTCAR.gz").write_bytes(b"")
    potentials = vasp_module.vasp_site_potentials({"dir_name": f"node042:{tmp_path}"})
    assert potentials == [-40.5, -60.5, -80.5, -80.4]  # the last ionic step: the final structure
    assert read == [str(tmp_path / "OUTCAR.gz")]
    assert vasp_module.vasp_site_potentials({"dir_name": f"node042:{tmp_path / 'gone'}"}) is None
    assert vasp_module.vasp_site_potentials({}) is None


def test_planar_potentials_are_read_from_the_locpot_of_the_run_folder(tmp_path, monkeypatch, vasp):
    # LVHAR makes LOCPOT the electrostatic potential; its planar averages feed the Freysoldt correction
    # (pymatgen's Locpot needs a whole LOCPOT, so its reader stands in here: not checked on a real one)
    from insertflow.calculators import vasp as vasp_module

    class FakeLocpot:
        @classmethod
        def from_file(cls, path):
            assert path == str(tmp_path / "LOCPOT.gz")
            return cls()

        def get_average_along_axis(self, axis):
            return [float(axis), float(axis) + 0.5]

    monkeypatch.setattr(vasp_module, "Locpot", FakeLocpot)
    (tmp_path / "LOCPOT.gz").write_bytes(b"")
    planar = vasp_module.vasp_planar_potential({"dir_name": f"node042:{tmp_path}"})
    assert planar == {"0": [0.0, 0.5], "1": [1.0, 1.5], "2": [2.0, 2.5]}
    assert vasp_module.vasp_planar_potential({"dir_name": str(tmp_path / "gone")}) is None
    structure = load_host("LiCoO2").structure
    assert vasp.incar_settings(structure, "static")["LVHAR"] is True
    assert "LVHAR" not in vasp.incar_settings(structure, "relax")  # a neutral relaxation needs no LOCPOT
    assert vasp.with_charge(1).incar_settings(structure, "relax")["LVHAR"] is True


def test_the_neb_runs_on_the_endpoints_gga_u_footing_and_joins_their_energies(vasp):
    """atomate2's NebSetGenerator starts from r2SCAN with PREC Normal; endpoints relaxed with MPRelaxSet
    (GGA+U, PREC Accurate) would then sit on another energy scale than the images. The NEB INCAR must equal
    the endpoint relaxation's INCAR in everything but the NEB and ionic-step keys."""
    from atomate2.vasp.jobs.neb import NebFromImagesMaker

    from insertflow.calculators.base import NebSettings, fixed_cell
    from insertflow.flows.kinetics import record_neb
    from insertflow.sampling.hops import distinct_hops, hop_endpoints, initial_path

    host = load_host("LiCoO2").structure
    hop = distinct_hops(host, "Li", 5.0)[0]
    ends = hop_endpoints(host * [3, 3, 1], hop, host, "Li", "vacancy")
    endpoint_vasp = fixed_cell(vasp)
    assert endpoint_vasp.identity() != vasp.identity()
    endpoint_incar = endpoint_vasp.input_set(ends.start, "relax", potcar_spec=True)["INCAR"]
    assert endpoint_incar["ISIF"] == 2  # positions only: both endpoints keep the host's cell
    settings = NebSettings(images=3, spring=5.0, fmax=0.05, steps=200)
    images = initial_path(ends.start, ends.end, settings.images, ends.moving, ends.waypoint)
    job = vasp.make_neb_job(images, settings)
    assert isinstance(job.maker, NebFromImagesMaker)
    generator = job.maker.input_set_generator
    generator.num_images = settings.images  # what the job sets before it writes the inputs
    incar = generator.get_input_set(images[0], potcar_spec=True)["INCAR"]
    assert "METAGGA" not in incar and incar["LDAU"] and incar["PREC"] == "Accurate"
    assert (incar["IMAGES"], incar["LCLIMB"], incar["SPRING"], incar["EDIFFG"], incar["NSW"]) == (
        3,
        True,
        -5.0,
        -0.05,
        200,
    )
    neb_keys = {"IMAGES", "LCLIMB", "SPRING", "EDIFFG", "NSW", "IBRION", "POTIM", "IOPT", "EDIFF", "LCHARG"}
    differing = {
        k for k in set(endpoint_incar) | set(incar) if k not in neb_keys and endpoint_incar.get(k) != incar.get(k)
    }
    assert differing == set(), differing
    # VASP leaves the endpoints out of the NEB's images: the record adds the endpoint relaxations' energies
    interior = {
        "state": "successful",
        "images": [i.as_dict() for i in images[1:-1]],
        "energies": [-100.2, -99.9, -100.1],
    }
    ends_given = [
        {"energy": -100.5, "structure": images[0].as_dict()},
        {"energy": -100.4, "structure": images[-1].as_dict()},
    ]
    base = {
        "label": "hop 0",
        "calculator": vasp.identity(),
        "settings": {"fmax": 0.05, "steps": 200},
        "content_key": "k",
    }
    record = record_neb.original(interior, vasp, base, "VASP NEB", "uuid", ends_given)
    assert record.status == "ok" and len(record.energies) == 5
    assert record.forward_barrier == pytest.approx(0.6) and record.reverse_barrier == pytest.approx(0.5)
