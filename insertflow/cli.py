"""The ``insertflow`` command: run a recipe, show what is stored."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from insertflow.errors import InsertflowError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Ion-insertion studies as jobflow workflows.")

RecipeArg = Annotated[str, typer.Argument(help="Recipe YAML file, or the name of a shipped recipe")]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store to use instead of the configured one: embedded:///file.sqlite, memory://"),
]
EXIT_BAD_INPUT = 2
EXIT_STUDY_INCOMPLETE = 3


@app.command()
def run(
    recipe: RecipeArg,
    store: StoreOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show jobflow's job log")] = False,
) -> None:
    """Run a study on this machine, reusing every calculation already in the store."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from insertflow.recipe import load_recipe
    from insertflow.runner import run_recipe
    from insertflow.store import describe, open_store, resolve_store_config

    with _one_line_errors():
        loaded = load_recipe(recipe)
        config = resolve_store_config(loaded.store, store, loaded.folder)
        doc = run_recipe(loaded, store=open_store(config), verbose=verbose)
        typer.echo(render_summary(doc, describe(config)))
    if doc.get("average_voltage") is None or doc.get("failed"):
        raise typer.Exit(EXIT_STUDY_INCOMPLETE)


@app.command()
def show(
    recipe: RecipeArg,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored study document as JSON")] = False,
) -> None:
    """Show the latest stored result of a recipe's study."""
    from insertflow.db import latest_study
    from insertflow.recipe import load_recipe
    from insertflow.store import describe, open_store, resolve_store_config

    with _one_line_errors():
        loaded = load_recipe(recipe)
        config = resolve_store_config(loaded.store, store, loaded.folder)
        doc = latest_study(open_store(config), loaded.name)
        if doc is None:
            raise InsertflowError(
                f"no stored study '{loaded.name}' in {describe(config)}; run `insertflow run {recipe}` first"
            )
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        typer.echo(render_summary(doc, describe(config)))


def render_summary(doc: dict, where: str) -> str:
    """A short table of calculations and the voltage."""
    host, calc = doc["host"], doc["calculator"]
    lines = [
        f"Study {doc['study']}: {host['formula']} ({host['source']}) with {calc['name']} [{calc['version']}]",
        f"  {'role':<12} {'formula':<10} {'status':<8} {'source':<7} {'E (eV/atom)':>12}  note",
    ]
    for record in doc.get("calculations", []):
        energy = record.get("energy_per_atom")
        note = record.get("reason") or ("relaxed with fixed stacking spacing" if record.get("constrained") else "")
        lines.append(
            f"  {record['label']:<12} {record['formula']:<10} {record['status']:<8} "
            f"{'reused' if record['reused'] else 'new':<7} {'' if energy is None else f'{energy:.4f}':>12}  {note}"
        )
    voltage = doc.get("average_voltage")
    ion = host["working_ion"]
    if voltage is not None:
        extra = ""
        if doc.get("capacity_grav"):
            extra = f" (capacity {doc['capacity_grav']:.0f} mAh/g, specific energy {doc['energy_grav']:.0f} Wh/kg)"
        charged = (doc.get("electrode") or {}).get("formula_charge") or "charged host"
        lines.append(f"Average voltage {host['formula']} -> {charged}: {voltage:.3f} V vs {ion}/{ion}+{extra}")
    else:
        lines.append("Average voltage: not computed; missing " + "; ".join(doc.get("missing", [])))
    failed = len(doc.get("failed", []))
    lines.append(
        f"Calculations: {doc['new_calculations']} new, {doc['reused_calculations']} reused, {failed} failed or flagged."
        f" Stored in {where}"
    )
    return "\n".join(lines)


class _one_line_errors:
    """Print insertflow errors as one line on stderr and exit non-zero."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, InsertflowError):
            print(f"insertflow: error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT)
        return False


if __name__ == "__main__":
    app()
