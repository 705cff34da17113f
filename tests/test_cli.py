import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from insertflow.cli import EXIT_BAD_INPUT, EXIT_STUDY_INCOMPLETE, app

RECIPES = Path(__file__).resolve().parents[1] / "workflows"
runner = CliRunner()


def write_recipe(tmp_path, filename="recipe.yaml", **changes) -> Path:
    import yaml

    data = yaml.safe_load((RECIPES / "licoo2_mock.yaml").read_text())
    data.update(changes)
    path = tmp_path / filename
    path.write_text(yaml.safe_dump(data))
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_run_twice_then_show_json(tmp_path):
    recipe = write_recipe(tmp_path)
    first = invoke("run", recipe)
    assert first.exit_code == 0, first.output
    assert "Calculations: 3 new, 0 reused, 0 failed" in first.output
    assert "[calculations 3/3]" in first.output  # progress: stage, i of n
    second = invoke("run", recipe)
    assert "Calculations: 0 new, 3 reused" in second.output
    shown = invoke("show", recipe, "--json")
    doc = json.loads(shown.output)
    assert (doc["new_calculations"], doc["reused_calculations"]) == (0, 3)
    assert doc["average_voltage"] == pytest.approx(3.0861, abs=1e-3)
    assert doc["electrode"]["average_voltage"] == pytest.approx(doc["average_voltage"], abs=1e-9)


def one_line_error(result) -> str:
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("insertflow: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "missing.cif"}, "neither a file"),
        ({"host": "broken.cif"}, "could not read"),
        ({"host": "FePO4.json"}, "contains no Li"),
        ({"host": "disordered.json"}, "partially occupied"),
        ({"calculator": {"name": "gaussian"}}, "unknown calculator 'gaussian'"),
        ({"calculatr": {"name": "mock"}}, "unknown key 'calculatr'"),
        ({"layer_guard": {"policy": "maybe"}}, "'layer_guard.policy'"),
        ({"store": {"type": "embedded", "path": "blocker/store.sqlite"}}, "is a file, not a folder"),
    ],
)
def test_bad_input_is_one_line_and_keeps_stored_results(tmp_path, changes, message):
    from insertflow.hosts import load_host

    (tmp_path / "broken.cif").write_text("data_broken\nnot a cif at all\n")
    fepo4 = load_host("LiFePO4").structure
    fepo4.remove_species(["Li"])
    (tmp_path / "FePO4.json").write_text(json.dumps(fepo4.as_dict()))
    disordered = load_host("LiCoO2").structure
    disordered.replace(next(i for i, s in enumerate(disordered) if s.species_string == "Li"), {"Li": 0.5})
    (tmp_path / "disordered.json").write_text(json.dumps(disordered.as_dict()))
    (tmp_path / "blocker").write_text("")

    good = write_recipe(tmp_path)
    assert invoke("run", good).exit_code == 0
    before = invoke("show", good, "--json").output

    bad = write_recipe(tmp_path, "bad.yaml", **changes)
    assert message in one_line_error(invoke("run", bad))
    # nothing previously stored is lost
    assert invoke("show", good, "--json").output == before


def test_unknown_recipe_file_and_show_without_run(tmp_path):
    assert "not found (shipped recipes:" in one_line_error(invoke("run", tmp_path / "nope.yaml"))
    recipe = write_recipe(tmp_path)
    assert "run `insertflow run" in one_line_error(invoke("show", recipe))


def test_calculator_failure_finishes_others_and_exits_nonzero(tmp_path):
    recipe = write_recipe(tmp_path, calculator={"name": "mock", "settings": {"faults": {"CoO2": "raise"}}})
    result = invoke("run", recipe)
    assert result.exit_code == EXIT_STUDY_INCOMPLETE
    assert "charged      CoO2       failed" in result.output
    assert "mock fault 'raise' injected for CoO2" in result.output
    assert "discharged   LiCoO2     ok" in result.output and "working_ion  Li         ok" in result.output
    assert "Average voltage: not computed; missing charged (CoO2): failed" in result.output


def test_console_script_runs_in_a_fresh_process(tmp_path):
    exe = shutil.which("insertflow")
    if exe is None:
        pytest.skip("console script not installed (pip install -e .)")
    recipe = write_recipe(tmp_path)
    done = subprocess.run([exe, "run", str(recipe)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "insertflow.cli", "show", str(recipe), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["new_calculations"] == 3
