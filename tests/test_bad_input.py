"""Every bad input: exit 2, one line on stderr, no traceback, and the stored results untouched."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from insertflow.cli import EXIT_BAD_INPUT, EXIT_STUDY_INCOMPLETE, app
from insertflow.hosts import load_host

RECIPES = Path(__file__).resolve().parents[1] / "workflows"
GOOD = yaml.safe_load((RECIPES / "licoo2_mock.yaml").read_text())


@pytest.fixture(scope="module")
def prefilled(tmp_path_factory) -> Path:
    """A store with a finished study, written by another process (so no write-ahead log is left open)."""
    folder = tmp_path_factory.mktemp("prefilled")
    recipe = folder / "good.yaml"
    recipe.write_text(yaml.safe_dump(GOOD))
    path = folder / "store.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "insertflow.cli", "run", str(recipe), "--store", f"embedded://{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_inputs(folder: Path) -> None:
    """Broken host files, as a user's would be."""
    licoo2 = load_host("LiCoO2").structure
    (folder / "garbage.cif").write_text("data_x\nthis is not a cif\n")
    (folder / "empty.cif").write_text("")
    (folder / "binary.cif").write_bytes(bytes(range(256)) * 8)
    cif = (RECIPES.parent / "inputs" / "hosts" / "LiCoO2.cif").read_text()
    (folder / "truncated.cif").write_text(cif[: len(cif) // 3])
    lines = cif.splitlines()
    first_atom = next(i for i, line in enumerate(lines) if line.split()[:1] == ["Li"] or line.startswith("Li"))
    (folder / "cut.cif").write_text("\n".join(lines[: first_atom + 1]) + "\n")
    fepo4 = load_host("LiFePO4").structure
    fepo4.remove_species(["Li"])
    (folder / "FePO4.json").write_text(json.dumps(fepo4.as_dict()))
    partial = licoo2.copy()
    partial.replace(0, {"Li": 0.5})
    (folder / "partial.json").write_text(json.dumps(partial.as_dict()))
    overlapping = licoo2.copy()
    overlapping.append("O", overlapping[0].frac_coords + 0.01)
    (folder / "overlap.json").write_text(json.dumps(overlapping.as_dict()))
    from pymatgen.io.vasp import Poscar

    poscar = Poscar(licoo2).get_str().splitlines()
    poscar[6] = "2 2 5"  # 9 atoms declared over 12 coordinate lines
    (folder / "POSCAR").write_text("\n".join(poscar) + "\n")
    (folder / "a-file").write_text("")
    (folder / "corrupt.sqlite").write_bytes(b"not a database" * 100)
    (folder / "store-dir.sqlite").mkdir()


#: (recipe changes, extra CLI arguments, text the one error line must contain)
CASES = {
    "missing host": ({"host": "missing.cif"}, [], "neither a file"),
    "garbage host": ({"host": "garbage.cif"}, [], "could not read"),
    "empty host": ({"host": "empty.cif"}, [], "could not read"),
    "binary host": ({"host": "binary.cif"}, [], "could not read"),
    "truncated CIF": ({"host": "truncated.cif"}, [], "Is the file complete?"),
    "CIF cut in its atom list": ({"host": "cut.cif"}, [], "the atom list looks cut short"),
    "POSCAR counts": ({"host": "POSCAR"}, [], "disagree with the 12 coordinate lines"),
    "no working ion": ({"host": "FePO4.json"}, [], "contains no Li"),
    "partial occupancy": ({"host": "partial.json"}, [], "partially occupied"),
    "overlapping atoms": ({"host": "overlap.json"}, [], "apart (minimum 0.7 A)"),
    "unknown calculator": ({"calculator": {"name": "gaussian"}}, [], "unknown calculator 'gaussian'"),
    "unknown key": ({"calculatr": {"name": "mock"}}, [], "unknown key 'calculatr'"),
    "typo beside a missing key": ({"calculater": {"name": "mock"}, "calculator": None}, [], "unknown key 'calculater'"),
    "wrong type": ({"layer_guard": {"max_gap_growth": "big"}}, [], "'layer_guard.max_gap_growth'"),
    "bad policy": ({"layer_guard": {"policy": "maybe"}}, [], "'layer_guard.policy'"),
    "setting of the wrong type": (
        {"calculator": {"name": "mock", "settings": {"voltage": "high"}}},
        [],
        "setting 'voltage' = 'high' is not valid",
    ),
    "faults as a string": (
        {"calculator": {"name": "mock", "settings": {"faults": "raise"}}},
        [],
        "setting 'faults' = 'raise' is not valid",
    ),
    "workdir is a file": ({"workdir": "a-file"}, [], "is a file, not a folder"),
    "workdir cannot be created": ({"workdir": "a-file/jobs"}, [], "cannot be created"),
    "unknown store scheme": ({}, ["--store", "sqlite:///x.sqlite"], "unknown store scheme 'sqlite:'"),
    "credentials in the recipe": (
        {"store": {"type": "mongodb", "uri": "mongodb://alice:secret@db.example/x"}},
        [],
        "holds credentials",
    ),
    "corrupt store": ({"store": {"type": "embedded", "path": "corrupt.sqlite"}}, [], "not an insertflow store"),
    "store is a folder": ({"store": {"type": "embedded", "path": "store-dir.sqlite"}}, [], "is a folder"),
    "store under a file": ({"store": {"type": "embedded", "path": "a-file/s.sqlite"}}, [], "is a file, not a folder"),
    "unreachable MongoDB": (
        {"store": {"type": "mongodb", "uri": "mongodb://127.0.0.1:9/x", "timeout_s": 1}},
        [],
        "no MongoDB server answered within 1 s",
    ),
    "charge states from a calculator without electrons": (
        {"study": "defects", "calculator": {"name": "chgnet"}, "defects": {"kinds": ["F_O"], "charge_states": "auto"}},
        [],
        "chgnet cannot compute charged defects",
    ),
    "charge states without a dielectric constant": (
        {"study": "defects", "defects": {"kinds": ["F_O"], "charge_states": {"F_O": [0, 1]}}},
        [],
        "defects.charge_states needs defects.dielectric",
    ),
    "defects at an x the cell cannot reach": (
        {"study": "defects", "defects": {"x": [0.3], "supercell": [2, 2, 1]}},
        [],
        "defects.x: x=0.3 is not reachable",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_loses_nothing(tmp_path, prefilled, case):
    changes, extra, message = CASES[case]
    write_inputs(tmp_path)
    recipe = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    before = digest(prefilled)
    store = [] if extra or "store" in changes else ["--store", f"embedded://{prefilled}"]
    result = CliRunner().invoke(app, ["run", str(path), *store, *extra])
    assert result.exit_code == EXIT_BAD_INPUT, (result.output, result.exception)
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("insertflow: error: "), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert digest(prefilled) == before  # byte-identical: nothing stored was touched


def test_yaml_errors_name_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nhost: LiCoO2\ncalculator: {name: mock\n")
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "is not valid YAML (line 4" in result.output


def test_an_element_chgnet_does_not_know_is_refused_before_any_job(tmp_path, prefilled):
    pytest.importorskip("chgnet")
    from pymatgen.core import Lattice, Structure

    host = Structure(Lattice.cubic(4.0), ["Li", "Cm", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]])
    (tmp_path / "LiCmO2.json").write_text(json.dumps(host.as_dict()))
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "host": "LiCmO2.json", "calculator": {"name": "chgnet"}}))
    before = digest(prefilled)
    result = CliRunner().invoke(app, ["run", str(path), "--store", f"embedded://{prefilled}"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "calculator 'chgnet' cannot treat Cm" in result.output
    assert digest(prefilled) == before


def test_show_takes_a_study_name_does_not_create_stores_and_flags_failures(tmp_path, prefilled):
    runner = CliRunner()
    shown = runner.invoke(app, ["show", GOOD["name"], "--store", f"embedded://{prefilled}"])
    assert shown.exit_code == 0, shown.output
    assert "Average voltage" in shown.output
    nowhere = tmp_path / "nowhere.sqlite"
    missing = runner.invoke(app, ["show", GOOD["name"], "--store", f"embedded://{nowhere}"])
    assert missing.exit_code == EXIT_BAD_INPUT and "no store at" in missing.output
    assert not nowhere.exists()  # looking did not create an empty store
    broken = {**GOOD, "name": "broken", "calculator": {"name": "mock", "settings": {"faults": {"CoO2": "raise"}}}}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    store = ["--store", f"embedded://{tmp_path / 'b.sqlite'}"]
    assert runner.invoke(app, ["run", str(path), *store]).exit_code == EXIT_STUDY_INCOMPLETE
    assert runner.invoke(app, ["show", str(path), *store]).exit_code == EXIT_STUDY_INCOMPLETE


def test_a_poscar_host_is_named_by_its_formula(tmp_path):
    from pymatgen.io.vasp import Poscar

    (tmp_path / "POSCAR").write_text(Poscar(load_host("LiCoO2").structure).get_str())
    host = load_host(tmp_path / "POSCAR")
    assert host.name == "LiCoO2" and host.formula == "LiCoO2"


def test_workdir_resolves_against_the_recipe_like_the_host(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "r.yaml").write_text(yaml.safe_dump({**GOOD, "workdir": "jobs"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["run", str(folder / "r.yaml"), "--store", "memory://"])
    assert result.exit_code == 0, result.output
    assert (folder / "jobs").is_dir() and not (elsewhere / "jobs").exists()


@pytest.fixture(scope="module")
def rattled_supercell_host(tmp_path_factory) -> Path:
    """LiCoO2 as an 8x8x8 supercell (2048 atoms) rattled by 0.15 A: its primitive cell is itself."""
    import numpy as np

    cell = load_host("LiCoO2").structure.get_primitive_structure()
    cell.make_supercell([8, 8, 8])
    shifts = np.random.default_rng(0).normal(0.0, 0.15, (len(cell), 3))
    for index, shift in enumerate(shifts):
        cell.translate_sites([index], shift, frac_coords=False)
    path = tmp_path_factory.mktemp("rattled") / "rattled.json"
    path.write_text(json.dumps(cell.as_dict()))
    return path


@pytest.mark.parametrize(
    "study", [{"study": "insertion_levels"}, {"study": "defects", "defects": {"kinds": ["V_TM"], "x": [1.0]}}]
)
def test_a_rattled_supercell_host_is_refused_with_advice_that_works(tmp_path, rattled_supercell_host, study):
    # 512 Li sites in the smallest cell: no max_size or supercell setting can help, only the symmetric cell.
    # The defects study once built 216 supercells of the 2048 atoms before it said anything (minutes).
    recipe = {**GOOD, "host": str(rattled_supercell_host), **study}
    path = tmp_path / "rattled.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", str(path), "--store", "memory://"])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "512 active Li sites" in lines[0], result.output
    assert "give the symmetric host cell" in lines[0]
    assert "smaller" not in lines[0].replace("no smaller primitive", "")  # no advice that cannot help
