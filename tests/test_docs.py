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


def _maker_defaults(*classes) -> dict:
    import dataclasses

    found = {}
    for cls in classes:
        for item in dataclasses.fields(cls):
            if item.default is not dataclasses.MISSING:
                found.setdefault(item.name, item.default)
            elif item.default_factory is not dataclasses.MISSING:
                found.setdefault(item.name, item.default_factory())
    return found


def test_recipe_sections_are_views_of_the_maker_fields():
    # one source of truth: every recipe key is a maker or settings field of the same name and default,
    # or one of the few keys named here that the runner maps (calculators, and the defects' NEB keys)
    from insertflow.calculators.base import NebSettings
    from insertflow.flows.defects import DefectStudyMaker
    from insertflow.flows.finite_temperature import FiniteTemperatureSettings
    from insertflow.flows.kinetics import BarrierSettings
    from insertflow.flows.spot_checks import SpotCheckSettings
    from insertflow.sampling.defects import DefectSettings
    from insertflow.sampling.orderings import OrderingSettings

    neb = _maker_defaults(NebSettings)
    mapped = {
        "spot_check.calculator": None,  # a calculator spec, built by get_calculator
        "levels.screen": None,  # screen_calculator, screen_keep, screen_window on InsertionLevelsMaker
        "defects.competing_phases": None,  # files read into DefectStudyMaker.extra_phases
        "defects.migration_barriers": None,  # a NebSettings (or None) on DefectStudyMaker
        "defects.neb_images": neb["images"],
        "defects.neb_fmax": neb["fmax"],
        "defects.neb_steps": neb["steps"],
    }
    sections = [
        ("finite_temperature", FiniteTemperatureSpec, (FiniteTemperatureSettings,)),
        ("barriers", BarriersSpec, (BarrierSettings, NebSettings)),
        ("spot_check", SpotCheckSpec, (SpotCheckSettings,)),
        ("levels", LevelsSpec, (OrderingSettings,)),
        ("defects", DefectsSpec, (DefectSettings, DefectStudyMaker)),
    ]
    for section, spec, makers in sections:
        fields = _maker_defaults(*makers)
        for name, item in spec.model_fields.items():
            key = f"{section}.{name}"
            default = item.get_default(call_default_factory=True)
            if key in mapped:
                if mapped[key] is not None:
                    assert default == mapped[key], key
                continue
            assert name in fields, f"{key} is no field of {', '.join(m.__name__ for m in makers)}"
            assert default == fields[name], f"{key}: recipe default {default!r}, maker default {fields[name]!r}"
