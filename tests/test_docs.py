"""The documentation stays true: the site builds strictly, every recipe key is documented, notebooks are clean."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from insertflow.recipe import (
    BarriersSpec,
    CalculatorSpec,
    DefectsSpec,
    ElectronicSpec,
    FiniteTemperatureSpec,
    LayerGuardSpec,
    LevelsSpec,
    Recipe,
    ScreenSpec,
    SpotCheckSpec,
)

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    if not mkdocs.exists() and shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install '.[test]')")
    result = subprocess.run(
        [str(mkdocs if mkdocs.exists() else "mkdocs"), "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    site = tmp_path / "site"
    assert (site / "physics" / "index.html").exists()
    # every notebook ran during the build and its page shows its figures (hull, V(x), loop, PDOS, NEB)
    notebooks = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
    for notebook in notebooks:
        page = (site / "notebooks" / notebook.stem / "index.html").read_text()
        assert page.count("data:image/png;base64") >= 1, f"{notebook.name} has no figure on its page"
    # the API reference is generated from the docstrings
    api = (site / "api" / "index.html").read_text()
    for name in ("insertflow.db.voltage_profile", "insertflow.flows.levels.InsertionLevelsMaker"):
        assert f'id="{name}"' in api, name
    assert "The latest document of study" in api  # a docstring's text, rendered


@pytest.mark.parametrize(
    ("model", "prefix"),
    [
        (Recipe, ""),
        (CalculatorSpec, "calculator."),
        (LayerGuardSpec, "layer_guard."),
        (LevelsSpec, "levels."),
        (ScreenSpec, "levels.screen."),
        (DefectsSpec, "defects."),
        (ElectronicSpec, "electronic."),
        (BarriersSpec, "barriers."),
        (SpotCheckSpec, "spot_check."),
        (FiniteTemperatureSpec, "finite_temperature."),
    ],
)
def test_every_recipe_key_is_documented_with_a_meaning(model, prefix):
    page = (ROOT / "docs" / "recipes.md").read_text()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        assert f"`{prefix}{name}`" in page, f"{prefix}{name} is missing from docs/recipes.md"
        assert field.description, f"{prefix}{name} has no description"


def test_notebooks_are_committed_without_stale_outputs():
    notebooks = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 3
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
