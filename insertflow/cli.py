"""The ``insertflow`` command: run a recipe, show what is stored."""

from __future__ import annotations

import json
import logging
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
    from insertflow.store import describe, resolve_store_config

    with _one_line_errors():
        loaded = load_recipe(recipe)
        config = resolve_store_config(loaded.store, store, loaded.folder)
        doc = run_recipe(loaded, store=config, verbose=verbose)
        typer.echo(render_summary(doc, describe(config)))
    if not study_complete(doc):
        raise typer.Exit(EXIT_STUDY_INCOMPLETE)


@app.command()
def show(
    recipe: RecipeArg,
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stored study document as JSON")] = False,
) -> None:
    """Show the latest stored result of a recipe's study (a recipe file, a shipped recipe or a study name)."""
    with _one_line_errors():
        doc, where = _stored_study(recipe, store)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        typer.echo(render_summary(doc, where))
    if not study_complete(doc):
        raise typer.Exit(EXIT_STUDY_INCOMPLETE)


def _stored_study(recipe: str, store: str | None) -> tuple[dict, str]:
    """The latest stored document of a recipe's study (or of the study named ``recipe``) and where it was found."""
    from pathlib import Path

    from insertflow.db import latest_study
    from insertflow.errors import RecipeError
    from insertflow.recipe import load_recipe
    from insertflow.store import describe, open_store, resolve_store_config

    try:
        loaded = load_recipe(recipe)
        name, config = loaded.name, resolve_store_config(loaded.store, store, loaded.folder)
    except RecipeError:
        if Path(recipe).suffix in (".yaml", ".yml") or Path(recipe).exists():
            raise  # a recipe file that is broken or missing: say so
        name, config = recipe, resolve_store_config(None, store)  # a study name, as results are shown under it
    doc = latest_study(open_store(config, create=False), name)
    if doc is None:
        where = describe(config)
        raise InsertflowError(f"no stored study '{name}' in {where}; run `insertflow run RECIPE` for it first")
    return doc, describe(config)


def study_complete(doc: dict) -> bool:
    """Whether a study document has its headline result and no failed calculation."""
    kind = doc.get("kind")
    if kind == "defects":
        complete = doc.get("hysteresis") is not None
    elif kind == "electronic_structure":
        complete = bool(doc.get("points")) and all(p.get("descriptors") for p in doc["points"])
    elif kind == "barriers":
        complete = bool(doc.get("hops")) and all(h.get("forward_barrier") is not None for h in doc["hops"])
    elif kind == "committee":
        return doc.get("average_voltage") is not None and not doc.get("failed_by_member")
    else:
        complete = doc.get("average_voltage") is not None
    return complete and not doc.get("failed")


@app.command()
def plot(
    recipe: RecipeArg,
    store: StoreOpt = None,
    out: Annotated[str, typer.Option("--out", help="Folder for the PNG files")] = "plots",
) -> None:
    """Write PNGs of the formation-energy hull and the voltage profile vs x and vs capacity."""
    from insertflow.plotting import write_plots

    with _one_line_errors():
        doc, _ = _stored_study(recipe, store)
        for path in write_plots(doc, out):
            typer.echo(str(path))


@app.command()
def submit(
    recipe: RecipeArg,
    store: StoreOpt = None,
    engine: Annotated[str, typer.Option("--engine", help="fireworks or jobflow-remote")] = "fireworks",
    launchpad: Annotated[str | None, typer.Option("--launchpad", help="my_launchpad.yaml (FireWorks)")] = None,
    project: Annotated[str | None, typer.Option("--project", help="jobflow-remote project name")] = None,
    worker: Annotated[str | None, typer.Option("--worker", help="jobflow-remote worker name")] = None,
) -> None:
    """Submit a study to FireWorks or jobflow-remote (calculations already stored are reused when it runs)."""
    from insertflow.recipe import load_recipe
    from insertflow.store import resolve_store_config
    from insertflow.submit import submit as submit_study

    with _one_line_errors():
        loaded = load_recipe(recipe)
        config = resolve_store_config(loaded.store, store, loaded.folder)
        typer.echo(submit_study(loaded, config, engine, launchpad, project, worker))


@app.command()
def status(recipe: RecipeArg, store: StoreOpt = None) -> None:
    """Per-stage progress of a recipe's study, read from the store (works while it runs elsewhere)."""
    from insertflow.recipe import load_recipe
    from insertflow.runner import build_study
    from insertflow.status import study_status
    from insertflow.store import open_store, resolve_store_config

    with _one_line_errors():
        loaded = load_recipe(recipe)
        config = resolve_store_config(loaded.store, store, loaded.folder)
        _, _, plan = build_study(loaded)
        report = study_status(loaded, open_store(config), plan.get("calculations", 0))
    typer.echo(report.render())


def render_summary(doc: dict, where: str) -> str:
    """A short table of calculations and the voltage (per study kind)."""
    if doc.get("kind") == "insertion_levels":
        return render_levels(doc, where)
    if doc.get("kind") == "defects":
        return render_defects(doc, where)
    if doc.get("kind") == "electronic_structure":
        return render_electronic(doc, where)
    if doc.get("kind") == "barriers":
        return render_barriers(doc, where)
    if doc.get("kind") == "committee":
        return render_committee(doc, where)
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


def render_committee(doc: dict, where: str) -> str:
    """Each member, the committee's voltage with its spread, the steps it resolves and the uncertain hull."""
    host = doc["host"]
    lines = [f"Committee {doc['study']} ({doc['study_type']}): {host['formula']} with {len(doc['members'])} members"]
    for member in doc["members"]:
        identity = member.get("calculator") or {}
        lines.append(f"  {member['label']:<24} [{identity.get('version', '?')}] stored as '{member['study']}'")
    voltage = doc.get("average_voltage")
    if voltage:
        each = ", ".join(f"{v:.3f}" for v in voltage["values"])
        lines.append(f"Average voltage {voltage['mean']:.3f} +- {voltage['spread']:.3f} V (members: {each})")
    if doc.get("segments"):
        lines.append(f"  {'x':<13} {'V mean':>7} {'spread':>7}  members")
        for seg in doc["segments"]:
            each = ", ".join(f"{v:.3f}" for v in seg["members"].values())
            lines.append(f"  {seg['x_low']:.3f}-{seg['x_high']:.3f}  {seg['mean']:7.3f} {seg['spread']:7.3f}  {each}")
        resolved = [s for s in doc.get("steps", []) if s["resolved"]]
        lines.append(
            f"Steps resolved beyond the spread: {len(resolved)} of {len(doc.get('steps', []))}"
            + "".join(f"; x={s['x']:.3f} ({s['jump']:.3f} V > {s['spread']:.3f})" for s in resolved)
        )
    possibly = [o for o in doc.get("orderings", []) if o["possibly_on_hull"]]
    if possibly:
        lines.append(
            "Possibly on the hull (within the spread): "
            + ", ".join(f"{o['label']} ({o['mean'] * 1000:.1f} +- {o['spread'] * 1000:.1f} meV/f.u.)" for o in possibly)
        )
    lines.extend(_committee_defect_lines(doc))
    for label, failed in doc.get("failed_by_member", {}).items():
        lines.append(f"  FAILED for {label}: {', '.join(failed)}")
    lines.extend(f"  Missing: {item}" for item in doc.get("missing", []))
    lines.append(f"Calculations: {doc['new_calculations']} new, {doc['reused_calculations']} reused. Stored in {where}")
    return "\n".join(lines)


def _committee_defect_lines(doc: dict) -> list[str]:
    """Defects and barriers of a committee: what every member agrees on, and what the spread leaves undecided."""
    lines = []
    if doc.get("defects"):
        undecided = [d for d in doc["defects"] if d["verdict"] == "undecided"]
        lines.append(
            f"Defect energies compared: {len(doc['defects'])}; undecided in sign: {len(undecided)}"
            + "".join(f"; {d['label']} ({d['mean']:+.3f} +- {d['spread']:.3f} eV)" for d in undecided)
        )
    for pick in doc.get("lowest_defects", []):
        if not pick["same_configuration"]:
            lines.append(f"  {pick['kind']} at x={pick['x']:.3f}: the members' lowest configurations differ")
    for cls in doc.get("classes", []):
        if not cls["agree"]:
            each = ", ".join(f"{m}: {c}" for m, c in cls["classification"].items())
            lines.append(f"  {cls['kind']} classified differently: {each}")
    if doc.get("barriers"):
        limit = doc.get("kinetic_limit")
        head = (
            f"Barriers (eV; kinetic limit {limit:.2f} eV at {doc['temperature']:.0f} K)" if limit else "Barriers (eV)"
        )
        lines.append(head)
        for b in doc["barriers"]:
            each = ", ".join(f"{v:.3f}" for v in b["forward_barrier"].values())
            verdict = b.get("verdict", "")
            lines.append(
                f"  {b['label']:<52} {b['mean']:.3f} +- {b['spread']:.3f} ({each}) {verdict}; "
                f"rates differ by x{b['rate_factor']:.3g}"
            )
    onsets = doc.get("migration_onset_x") or {}
    if onsets and len({v for v in onsets.values()}) > 1:
        each = ", ".join(f"{m}: {'none' if x is None else f'x={x:.3f}'}" for m, x in onsets.items())
        lines.append(f"  TM migration onset differs: {each}")
    if doc.get("hysteresis"):
        loop = doc["hysteresis"]
        lines.append(f"Average hysteresis {loop['mean']:.3f} +- {loop['spread']:.3f} V")
    return lines


def render_barriers(doc: dict, where: str) -> str:
    """One line per hop: barrier both ways, rate and diffusivity at the study temperature."""
    host, calc = doc["host"], doc["calculator"]
    t = doc["temperature"]
    lines = [
        f"Study {doc['study']}: {host['formula']} ({host['source']}) with {calc['name']} [{calc['version']}], "
        f"{doc['supercell_atoms']}-atom supercell, {doc['neb']['images']} images",
        f"  {'hop':<32} {'x':>6} {'E_a (eV)':>9} {'reverse':>8} {f'rate {t:g} K':>12} {'D (cm2/s)':>10}  note",
    ]
    for hop in doc.get("hops", []):
        if hop.get("forward_barrier") is None:
            lines.append(
                f"  {hop['label']:<32} {hop['x']:6.3f} {'-':>9} {'-':>8} {'-':>12} {'-':>10}  {hop.get('reason')}"
            )
            continue
        note = "" if hop.get("within_kinetic_limit") else "above the kinetic limit"
        if hop.get("crosses_particle") is False:
            reach = f"{hop['diffusion_length']:.1f} nm in {doc['time_scale']:g} s"
            note = f"{reach}: does not cross {doc['particle_size']:g} nm"
        lines.append(
            f"  {hop['label']:<32} {hop['x']:6.3f} {hop['forward_barrier']:9.3f} {hop['reverse_barrier']:8.3f} "
            f"{hop['rate']:12.2e} {hop['diffusivity']:10.1e}  {note}"
        )
    lines.append(
        f"  Kinetic limit {doc['kinetic_limit']:.2f} eV: kT ln(nu tau) at {t:g} K, "
        f"nu {doc['attempt_frequency']:.0e} Hz, tau {doc['time_scale']:g} s. "
        "D: dilute random walk, z nu a^2 exp(-E_a/kT) / 2d"
    )
    lines += [f"  Note: {note}" for note in doc.get("notes", [])]
    lines += [f"  Missing: {item}" for item in doc.get("missing", [])]
    lines.append(
        f"Calculations: {doc['new_calculations']} new, {doc['reused_calculations']} reused; "
        f"NEBs: {doc['new_nebs']} new, {doc['reused_nebs']} reused. Stored in {where}"
    )
    return "\n".join(lines)


def render_levels(doc: dict, where: str) -> str:
    """Tiers per x, the hull, the voltage steps and what is missing."""
    host, calc = doc["host"], doc["calculator"]
    screen = doc.get("screen_calculator")
    enumeration = doc.get("enumeration", {})
    lines = [
        f"Study {doc['study']}: insertion levels of {host['formula']} ({host['source']}) with {calc['name']} "
        f"[{calc['version']}]" + (f", screened with {screen['name']}" if screen else ""),
        f"  Enumeration: {enumeration.get('cell', '?')}, active sites {', '.join(enumeration.get('active_sites', []))}",
    ]
    lines.extend(f"  Note: {note}" for note in enumeration.get("notes", []))
    best: dict[str, float] = {}
    for row in doc.get("orderings", []):
        if row.get("e_above_hull_per_atom") is not None:
            key = f"{row['x']:.4f}"
            best[key] = min(best.get(key, float("inf")), row["e_above_hull_per_atom"])
    hull = {f"{x:.4f}" for x in doc.get("hull_x", [])}
    lines.append(
        f"  {'x':>6} {'enumerated':>10} {'Ewald':>6} {'screened':>8} {'relaxed':>7}  {'E_hull (meV/atom)':>17}"
    )
    for tier in doc.get("tiers", []):
        x = tier["x"]
        e_hull = best.get(f"{x:.4f}")
        mark = "on hull" if f"{x:.4f}" in hull else ("" if e_hull is None else f"{1000 * e_hull:.1f}")
        lines.append(
            f"  {x:6.3f} {tier['enumerated']:>10} {tier['kept_ewald']:>6} {tier['kept_screen']:>8} "
            f"{tier['relaxed_ok']:>7}  {mark:>17}"
        )
    totals = [
        sum(t[k] for t in doc.get("tiers", [])) for k in ("enumerated", "kept_ewald", "kept_screen", "relaxed_ok")
    ]
    lines.append(f"  {'total':>6} {totals[0]:>10} {totals[1]:>6} {totals[2]:>8} {totals[3]:>7}")
    ion = host["working_ion"]
    for step in doc.get("steps", []):
        span = f"{step['x_low']:.3f}-{step['x_high']:.3f}"
        lines.append(f"  step x {span}: {step['voltage']:.3f} V ({step['capacity_grav']:.0f} mAh/g)")
    if doc.get("average_voltage") is not None:
        low, high = doc["x_range"]
        lines.append(
            f"Average voltage over x {low:g}-{high:g}: {doc['average_voltage']:.3f} V vs {ion}/{ion}+ "
            f"(capacity {doc['capacity_grav']:.0f} mAh/g, specific energy {doc['energy_grav']:.0f} Wh/kg)"
        )
    else:
        lines.append("Voltage profile: not computed")
    lines += _spot_check_lines(doc.get("spot_checks"))
    lines += _finite_temperature_lines(doc)
    screening = ""
    if screen:
        screening = " Screening " + ("reused." if doc.get("screening_reused") else "computed.")
    return "\n".join(lines + _footer(doc, where, screening))


def _finite_temperature_lines(doc: dict) -> list[str]:
    """The cluster expansion's fit and ground states, and the Monte Carlo's plateaus and T_c."""
    ce, finite = doc.get("cluster_expansion"), doc.get("finite_temperature")
    if not ce:
        return []
    lines = [
        f"Cluster expansion: {ce['n_structures']} orderings, {ce['n_parameters']} parameters (cutoffs "
        f"{ce['cutoffs']} A), CV RMSE {ce['cv_rmse']:.2f} meV/site; ground states at x = "
        + ", ".join(f"{g['x']:.3f}" for g in ce["ground_states"])
        + f" ({ce['iterations']} search round(s), {len(ce['added'])} ordering(s) added)"
    ]
    lines += [f"  warning: {w}" for w in ce["warnings"]]
    if finite:
        reused = " (reused)" if finite.get("reused") else ""
        lines.append(
            f"Monte Carlo{reused}: {finite['runs']} runs on {finite['active_sites']} sites, {finite['seconds']:.0f} s"
        )
        for temperature in sorted({c["temperature"] for c in finite["curves"]}):
            regions = [p for p in finite["plateaus"] if p["temperature"] == temperature]
            text = "; ".join(f"x {p['x_low']:.2f}-{p['x_high']:.2f} at {p['voltage']:.3f} V" for p in regions)
            lines.append(f"  {temperature:g} K: two-phase {text or 'none'}")
        for scan in finite["transitions"]:
            method = scan.get("method", "heat capacity")
            tc = f"T_c {scan['critical_temperature']:g} K ({method})" if scan["critical_temperature"] else scan["note"]
            if scan.get("heat_capacity_peak") and method != "heat capacity":
                tc += f", heat-capacity peak {scan['heat_capacity_peak']:g} K"
            lines.append(f"  ordering at x={scan['x']:.3f}: {tc}")
        checked = [c for c in finite["expansion_step_checks"] if c["difference"] is not None]
        if checked:
            worst = max(abs(c["difference"]) for c in checked)
            lines.append(
                f"  {checked[0]['temperature']:g} K against the expansion's 0 K steps: largest difference "
                f"{1000 * worst:.0f} mV over {len(checked)} steps"
            )
        if finite["not_equilibrated"]:
            lines.append(f"  {len(finite['not_equilibrated'])} run(s) not equilibrated (see not_equilibrated)")
    return lines


def _spot_check_lines(spot: dict | None) -> list[str]:
    """ML against DFT per spot-checked ordering, and the profile from DFT energies on ML geometries."""
    if not spot:
        return []
    lines = [
        f"Spot checks with {spot['calculator']['name']} on {spot['geometry_from']['name']} geometries "
        f"({spot['statics']} statics; relaxing every ordering: {spot['naive_relaxations']} relaxations):",
        f"  {'ordering':<16} {'E_f ML':>8} {'E_f DFT':>8} {'diff':>7}  hull ML/DFT",
    ]
    for point in spot.get("points", []):
        hull = "/".join("yes" if point[key] else "no" for key in ("on_hull_ml", "on_hull_dft"))
        lines.append(
            f"  {point['label']:<16} {point['formation_energy_ml']:8.3f} {point['formation_energy_dft']:8.3f} "
            f"{point['difference']:+7.3f}  {hull}"
        )
    if spot.get("average_voltage") is not None:
        lines.append(f"  DFT energies on ML geometries: average {spot['average_voltage']:.3f} V")
    if spot.get("skipped_vertices"):
        lines.append(f"  Hull vertices not checked (max_atoms): {', '.join(spot['skipped_vertices'])}")
    lines.extend(f"  Spot check failed: {item}" for item in spot.get("failed", []))
    return lines


def _defect_spot_check_lines(spot: dict | None) -> list[str]:
    """ML against DFT per spot-checked defect (DFT chemical potentials), and which signs DFT flips."""
    if not spot:
        return []
    lines = [
        f"Spot checks with {spot['calculator']['name']} on {spot['geometry_from']['name']} geometries at "
        f"{spot['limit']} ({spot['statics']} statics; an all-DFT study: {spot['naive_relaxations']} relaxations):",
        f"  {'defect':<58} {'E ML':>7} {'E DFT':>7} {'diff':>7}  forms ML/DFT",
    ]
    for point in spot.get("points", []):
        forms = "/".join("yes" if point[key] else "no" for key in ("favourable_ml", "favourable_dft"))
        tag = "  (the loop's migrated TM)" if point["migrated_state"] else ""
        lines.append(
            f"  {point['label'][:58]:<58} {point['energy_ml']:+7.3f} {point['energy_dft']:+7.3f} "
            f"{point['difference']:+7.3f}  {forms}{tag}"
        )
    lines.extend(f"  Spot check note: {note}" for note in spot.get("notes", []))
    lines.extend(f"  Spot check failed: {item}" for item in spot.get("failed", []))
    return lines


def render_defects(doc: dict, where: str) -> str:
    """Defect energies per x, classes, hysteresis and what is missing."""
    host, calc = doc["host"], doc["calculator"]
    lines = [
        f"Study {doc['study']}: defects of {host['formula']} ({host['source']}) with {calc['name']} "
        f"[{calc['version']}]",
        f"  Supercell {doc['supercell']} of the host cell ({doc['supercell_atoms']} atoms)",
    ]
    if doc.get("competing_phases"):
        lines.append(f"  Chemical potentials from the stability region against {', '.join(doc['competing_phases'])}")
    for region in doc.get("stability_regions", []):
        limits = "; ".join(
            f"{lim['name']}: "
            + ", ".join(f"{el} {mu:.2f}" for el, mu in lim["mu"].items())
            + f" (with {' + '.join(lim['bounded_by']) or '-'})"
            for lim in region["limits"]
        )
        state = "stable" if region["stable"] else f"{region['above_competing']:.3f} eV/f.u. above its competing phases"
        lines.append(f"    x={region['x']:.3f} ({state}): {limits}")
        if region.get("synthesis"):
            point = region["synthesis"]
            mu = ", ".join(f"{el} {value:.2f}" for el, value in point["mu"].items())
            lines.append(f"      synthesis, {point['name']}: {mu}" + "".join(f" ({n})" for n in point["notes"]))
    limit = doc.get("chemical_potential_limit")
    classes = doc.get("classes", [])
    t_op = next((c["operating_temperature"] for c in classes if c.get("operating_temperature")), None)
    header = f"  {'defect':<58} {'x':>6} {'status':<8} {'E (eV)':>8} {'c/f.u.':>8}"
    lines.append(header + (f"  E at {limit}" if limit else "") + (f", c at {t_op:g} K" if t_op else ""))
    for row in doc.get("defects", []):
        energy = "" if row.get("energy") is None else f"{row['energy']:+.3f}"
        share = "" if row.get("concentration_operating") is None else f"{row['concentration_operating']:.1e}"
        flag = "" if row.get("counted", True) else f"  not counted: {row.get('geometry')}"
        lines.append(
            f"  {row['label'][:58]:<58} {row['x']:6.3f} {row.get('status') or '-':<8} {energy:>8} {share:>8}{flag}"
        )
    for row in doc.get("defects", []):
        charged = row.get("charged") or {}
        chosen = {k: v for k, v in charged.items() if limit and limit in k.split(" / ")} or charged
        for name, summary in chosen.items():
            levels = ", ".join(f"{e:.2f} eV" for e, _ in summary["transition_levels"]) or "none in the gap"
            lines.append(
                f"  {row['label'][:48]} at {name}: transition levels {levels} above the VBM; stable "
                f"{summary['at_vbm']['charge']:+d} at the VBM ({summary['at_vbm']['energy']:+.2f} eV), "
                f"{summary['at_cbm']['charge']:+d} at the CBM ({summary['at_cbm']['energy']:+.2f} eV)"
            )
    if doc.get("charge_treatment"):
        lines.append(f"  Charges: {doc['charge_treatment']}")
    fermi = doc.get("fermi_level")
    if fermi:
        pinned = f", pinned beyond the {fermi['pinned']}" if fermi.get("pinned") else ""
        lines.append(
            f"  As made ({fermi['point']}): E_F {fermi['fermi_level']:.2f} eV above the VBM (gap "
            f"{fermi['band_gap']:.2f} eV){pinned}; electrons {fermi['electrons']:.1e}, holes {fermi['holes']:.1e} cm^-3"
        )
    for cls in classes:
        text = f"  {cls['kind']}: {cls['classification']}"
        shares = [c for _, c in cls.get("concentrations", [])]
        if shares:
            text += f" ({min(shares):.1e}-{max(shares):.1e} per f.u. across x at {cls['operating_temperature']:g} K"
            quenched = cls.get("quenched_concentration")
            text += "" if quenched is None else f"; {quenched:.1e} quenched from {cls['synthesis_temperature']:g} K"
            text += ")"
        if cls.get("onset_x") is not None:
            text += f", forms below x = {cls['onset_x']:.3f} ({cls['onset_site']})"
        lines.append(text)
    lines.extend(f"  F_O: {report}" for report in doc.get("f_o_reduction", []))
    lines += _barrier_lines(doc)
    lines += _loop_lines(doc)
    lines += _defect_spot_check_lines(doc.get("spot_checks"))
    lines.extend(f"  Note: {note}" for note in doc.get("notes", []))
    return "\n".join(lines + _footer(doc, where))


def _loop_lines(doc: dict) -> list[str]:
    """The first cycle's loop and, when the TM migrated, the second cycle and the fade."""
    loop = doc.get("hysteresis")
    if not loop:
        return []
    if not loop["coupled"]:
        return ["Hysteresis: 0 V (no coupled defect forms; the discharge retraces the charge)"]
    lines = [
        f"Hysteresis through {loop['migrated_label']}: average {loop['average_hysteresis']:.3f} V, "
        f"energy lost {loop['energy_lost']:.0f} Wh/kg per cycle over x {loop['x_range'][0]:g}-"
        f"{loop['x_range'][1]:g}"
    ]
    second = doc.get("second_cycle")
    if second:
        lines.append(
            f"Second cycle: average {second['average_hysteresis']:.3f} V, "
            f"{second['energy_lost']:.0f} Wh/kg; voltage fade {doc['voltage_fade']:+.3f} V "
            + ("(the TM goes back on discharge)" if doc.get("tm_returns_at") is not None else "(the TM stays)")
        )
    return lines


def _barrier_lines(doc: dict) -> list[str]:
    """The TM-migration barriers per x and, when they close the gate, the loop energies alone would give."""
    lines = []
    for barrier in doc.get("migration_barriers", []):
        if barrier["forward_barrier"] is None:
            lines.append(f"  TM barrier x={barrier['x']:.3f}: unresolved ({barrier['reason']})")
            continue
        lines.append(
            f"  TM barrier x={barrier['x']:.3f}: dE {barrier['migration_energy']:+.3f} eV, oct->tet->oct "
            f"{barrier['forward_barrier']:.3f} eV out, {barrier['reverse_barrier']:.3f} eV back "
            f"({'below' if barrier['within_kinetic_limit'] else 'above'} the {doc['kinetic_limit']:.2f} eV limit)"
        )
    ungated = doc.get("hysteresis_ungated")
    if ungated:
        lines.append(
            f"Hysteresis from energies alone: {ungated['average_hysteresis']:.3f} V through {ungated['migrated_label']}"
            "; the barriers keep the TM home"
        )
    return lines


def render_electronic(doc: dict, where: str) -> str:
    """Descriptors and implied oxidation states per x."""
    host, calc, es = doc["host"], doc["calculator"], doc["electronic_calculator"]
    lines = [
        f"Study {doc['study']}: electronic structure of {host['formula']}, relaxed with {calc['name']}, "
        f"electronic structure with {es['name']} [{es['version']}]",
        f"  {'x':>6} {'gap':>6} {'ref':>4} {'O-2p':>7} {'TM-d':>7} {'O-2p<E_F':>9}  oxidation (from moments)",
    ]
    for point in doc.get("points", []):
        d = point.get("descriptors") or {}
        census = "; ".join(
            f"{el} " + ", ".join(f"{n}x{state}" for state, n in states.items())
            for el, states in point.get("implied_oxidation", {}).items()
        )
        if point.get("kind", "pristine") != "pristine":
            shift = ""
            if point.get("fermi_shift") is not None:
                aligned = "aligned on" if point.get("fermi_shift_reference") == "electrostatic" else "from"
                on = "potential" if point.get("fermi_shift_reference") == "electrostatic" else "O-2p centre"
                shift = f"E_F shift {point['fermi_shift']:+.2f} eV ({aligned} {on}), "
            changed = ", ".join(
                f"{c['element']}{c['site']} {c['pristine']:.2f}->{c['defect']:.2f} muB at {c['distance']:.1f} A"
                for c in point.get("moment_changes") or []
            )
            shift += f"moments changed: {changed}, " if changed else ""
            o2p = "" if not d else f"O-2p<E_F {d['anion_p_near_ef']:.3f}, gap {d['band_gap']:.2f}"
            lines.append(f"  {'':6}   {point['kind']} {point.get('site') or ''}: {shift}{o2p}")
            if point.get("reason"):
                lines.append(f"  {'':6}     note: {point['reason']}")
        elif d:
            tm_d = "" if d.get("tm_d_centre") is None else f"{d['tm_d_centre']:7.2f}"
            lines.append(
                f"  {point['x']:6.3f} {d['band_gap']:6.2f} {d['reference']:>4} {d['anion_p_centre']:7.2f} {tm_d:>7} "
                f"{d['anion_p_near_ef']:9.3f}  {census}"
            )
        else:
            lines.append(f"  {point['x']:6.3f} {'-':>6}  {census}")
    lines.append(
        "  (eV; centres relative to the reference: VBM if gapped, else E_F; window -10..0 eV; "
        "O-2p<E_F: states per O in the last 1 eV)"
    )
    return "\n".join(lines + _footer(doc, where))


def _footer(doc: dict, where: str, extra: str = "") -> list[str]:
    """Failures, missing pieces and the calculation counts, as every study summary ends."""
    lines = [
        f"  {failure['status'].upper()}: {failure['label']} ({failure['formula']}): {failure['reason']}"
        for failure in doc.get("failed", [])
    ]
    lines.extend(f"  Missing: {item}" for item in doc.get("missing", []))
    lines.append(
        f"Calculations: {doc['new_calculations']} new, {doc['reused_calculations']} reused, "
        f"{len(doc.get('failed', []))} failed or flagged.{extra} Stored in {where}"
    )
    return lines


class _one_line_errors:
    """Print insertflow errors as one line on stderr and exit non-zero."""

    def __enter__(self):
        # a driver's debug chatter is not an insertflow message (pymongo logs every server probe at DEBUG
        # when something in the process configured the root logger, as some test tools do)
        logging.getLogger("pymongo").setLevel(logging.WARNING)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, InsertflowError):
            print(f"insertflow: error: {exc}", file=sys.stderr)
            raise typer.Exit(EXIT_BAD_INPUT)
        return False


if __name__ == "__main__":
    app()
