"""Figures from stored study documents (plain dicts, as ``insertflow.db`` returns them)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files, not windows: the CLI runs on clusters and in CI

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from insertflow.errors import InsertflowError


def _legend_below(fig, ax) -> None:
    """The legend under the axes, never across the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False, fontsize="small")


def _require_levels(doc: dict) -> None:
    if doc.get("kind") != "insertion_levels":
        raise InsertflowError(
            f"study '{doc.get('study')}' is a {doc.get('kind', 'different')} study; hull and profile plots need "
            "study: insertion_levels"
        )
    if not doc.get("steps"):
        raise InsertflowError(f"study '{doc['study']}' has no voltage profile to plot: " + "; ".join(doc["missing"]))


def hull_figure(doc: dict) -> Figure:
    """Formation energy (meV/atom) of every relaxed ordering vs x, hull vertices joined."""
    _require_levels(doc)
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    rows = [r for r in doc["orderings"] if r.get("formation_energy") is not None]
    off = [r for r in rows if not r["on_hull"]]
    on = sorted((r for r in rows if r["on_hull"]), key=lambda r: r["x"])
    ax.scatter(
        [r["x"] for r in off], [_mev_per_atom(r) for r in off], s=22, color="0.6", label="orderings off the hull"
    )
    ax.plot([r["x"] for r in on], [_mev_per_atom(r) for r in on], "o-", color="C3", label="hull")
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ion = doc["host"]["working_ion"]
    ax.set_xlabel(f"x in {ion}$_x$ host (per formula unit)")
    ax.set_ylabel("formation energy (meV/atom)")
    ax.set_title(f"{doc['host']['formula']}: {doc['calculator']['name']}")
    _legend_below(fig, ax)
    return fig


def _mev_per_atom(row: dict) -> float:
    return 1000 * row["formation_energy_per_atom"]


def profile_xy(doc: dict, against: str = "x") -> tuple[list[float], list[float]]:
    """Staircase coordinates of the voltage profile vs ``x`` or ``capacity`` (mAh/g)."""
    _require_levels(doc)
    xs, vs = loop_xy(doc["steps"])
    if against == "x":
        return xs, vs
    if against != "capacity":
        raise InsertflowError(f"plot against 'x' or 'capacity', not '{against}'")
    # every step stores its capacity: mAh/g per unit of x is the same for all of them
    step = doc["steps"][0]
    per_x = step["capacity_grav"] / (step["x_high"] - step["x_low"])
    x_max = doc["x_range"][1]
    return [(x_max - x) * per_x for x in xs], vs


def profile_figure(doc: dict, against: str = "x") -> Figure:
    """The 0 K voltage staircase with its average, vs x or vs capacity."""
    xs, vs = profile_xy(doc, against)
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    ax.plot(xs, vs, color="C0", lw=2, label="0 K profile (hull steps)")
    ax.axhline(doc["average_voltage"], color="C1", ls="--", lw=1, label=f"average {doc['average_voltage']:.2f} V")
    spot = doc.get("spot_checks") or {}
    if against == "x" and spot.get("steps"):
        name = spot["calculator"]["name"]
        ax.plot(*loop_xy(spot["steps"]), color="C3", lw=1.5, ls="--", label=f"{name} energies on these geometries")
    ion = doc["host"]["working_ion"]
    ax.set_xlabel(f"x in {ion}$_x$ host" if against == "x" else "charge capacity from the discharged host (mAh/g)")
    ax.set_ylabel(f"voltage vs {ion}/{ion}$^+$ (V)")
    ax.set_title(f"{doc['host']['formula']}: {doc['calculator']['name']}")
    _legend_below(fig, ax)
    return fig


def loop_xy(steps: list[dict]) -> tuple[list[float], list[float]]:
    """Staircase coordinates of one branch's steps."""
    xs: list[float] = []
    vs: list[float] = []
    for step in sorted(steps, key=lambda s: s["x_low"]):
        xs += [step["x_low"], step["x_high"]]
        vs += [step["voltage"], step["voltage"]]
    return xs, vs


def hysteresis_figure(doc: dict) -> Figure:
    """Charge (pristine) and discharge (through the coupled defect) branches vs x."""
    loop = doc.get("hysteresis") if doc.get("kind") == "defects" else None
    if not loop:
        raise InsertflowError(f"study '{doc.get('study')}' has no hysteresis loop (it needs study: defects)")
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    ax.plot(*loop_xy(loop["charge"]), color="C3", lw=2, label="first charge")
    kept = "coupled defect kept" if loop["coupled"] else "retraces the charge"
    ax.plot(*loop_xy(loop["discharge"]), color="C0", lw=2, ls="--", label=f"first discharge ({kept})")
    second = doc.get("second_cycle")
    if second and second["charge"] != loop["charge"]:
        fade = doc.get("voltage_fade") or 0.0
        ax.plot(*loop_xy(second["charge"]), color="C2", lw=1.2, ls=":", label=f"second charge (fade {fade:.2f} V)")
    ion = doc["host"]["working_ion"]
    ax.set_xlabel(f"x in {ion}$_x$ host")
    ax.set_ylabel(f"voltage vs {ion}/{ion}$^+$ (V)")
    title = f"{doc['host']['formula']}: average hysteresis {loop['average_hysteresis']:.2f} V"
    ax.set_title(title if loop["coupled"] else f"{doc['host']['formula']}: no coupled defect, no hysteresis")
    _legend_below(fig, ax)
    return fig


def path_figure(doc: dict) -> Figure:
    """Energy along each NEB path (eV above its start vs A along the path): working-ion hops or TM hops."""
    if doc.get("kind") == "barriers":
        paths = [(h["label"], h["path"]) for h in doc.get("hops", []) if h.get("path")]
        title = f"{doc['host']['formula']}: {doc['host']['working_ion']} hops"
    else:
        paths = []
        for barrier in doc.get("migration_barriers", []):
            if barrier.get("path"):
                steps = np.linspace(0.0, 1.0, len(barrier["path"]))
                paths.append(
                    (f"TM hop x={barrier['x']:.3f}", [[s, e] for s, e in zip(steps, barrier["path"], strict=True)])
                )
        title = f"{doc['host']['formula']}: TM oct -> tet -> oct"
    if not paths:
        raise InsertflowError(f"study '{doc.get('study')}' has no converged NEB path to plot")
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    for index, (label, profile) in enumerate(paths):
        xs, es = zip(*profile, strict=True)
        ax.plot(xs, es, "o-", color=f"C{index}", label=f"{label}: {max(es):.2f} eV")
    limit = doc.get("kinetic_limit")
    if limit is not None:
        ax.axhline(limit, color="0.4", ls=":", lw=1, label=f"kinetic limit {limit:.2f} eV")
    ax.set_xlabel(
        "distance along the path (A)" if doc.get("kind") == "barriers" else "reaction coordinate (image / images)"
    )
    ax.set_ylabel("energy above the start (eV)")
    ax.set_title(title)
    _legend_below(fig, ax)
    return fig


def barrier_vs_x_figure(doc: dict) -> Figure:
    """TM-migration barrier (out and back) and dE_mig against x, with the kinetic limit."""
    points = [b for b in doc.get("migration_barriers", []) if b.get("forward_barrier") is not None]
    if not points:
        raise InsertflowError(f"study '{doc.get('study')}' has no resolved TM-migration barrier")
    points.sort(key=lambda b: b["x"])
    xs = [b["x"] for b in points]
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    ax.plot(xs, [b["forward_barrier"] for b in points], "o-", color="C3", label="barrier, out")
    ax.plot(xs, [b["reverse_barrier"] for b in points], "s--", color="C0", label="barrier, back")
    ax.plot(xs, [b["migration_energy"] for b in points], "^:", color="C2", label="dE_mig")
    ax.axhline(doc["kinetic_limit"], color="0.4", ls=":", lw=1, label=f"kinetic limit {doc['kinetic_limit']:.2f} eV")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ion = doc["host"]["working_ion"]
    ax.set_xlabel(f"x in {ion}$_x$ host")
    ax.set_ylabel("energy (eV)")
    ax.set_title(f"{doc['host']['formula']}: TM migration against x")
    _legend_below(fig, ax)
    return fig


def pdos_figure(doc: dict, x: float, label: str | None = None) -> Figure:
    """Projected DOS (O-2p, TM-d) at composition ``x`` (or of the point ``label``, e.g. a defect), E_ref marked."""
    points = [p for p in doc.get("points", []) if p.get("descriptors")]
    if label is not None:
        points = [p for p in points if p["label"] == label]
        if not points:
            raise InsertflowError(f"study '{doc.get('study')}' has no point '{label}' with a projected DOS")
    else:
        points = [p for p in points if p.get("kind", "pristine") == "pristine"]
    if not points:
        raise InsertflowError(f"study '{doc.get('study')}' has no projected DOS to plot")
    point = min(points, key=lambda p: abs(p["x"] - x))
    pdos = point["descriptors"]["pdos"]
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    for index, (name, curve) in enumerate(pdos["curves"].items()):
        ax.plot(pdos["energies"], curve, color=f"C{index}", label=name)
    ax.axvline(0.0, color="0.3", ls="--", lw=1, label=pdos["reference"])
    ax.set_xlabel(f"energy relative to {pdos['reference']} (eV)")
    ax.set_ylabel("projected DOS (states/eV/cell)")
    gap = point["descriptors"]["band_gap"]
    what = point["formula"] if point.get("kind", "pristine") == "pristine" else f"{point['kind']} {point.get('site')}"
    ax.set_title(f"{what} (x = {point['x']:.3f}): gap {gap:.2f} eV, {doc['electronic_calculator']['name']}")
    _legend_below(fig, ax)
    return fig


def committee_figure(doc: dict) -> Figure:
    """Voltage vs x of a committee: the mean with a band of one spread, and each member's steps."""
    segments = doc.get("segments") or []
    if not segments:
        raise InsertflowError(f"committee '{doc['study']}' has no common voltage profile to plot")
    fig, ax = plt.subplots(figsize=(5.5, 4.6), layout="constrained")
    for index, label in enumerate(segments[0]["members"]):
        steps = [{"x_low": s["x_low"], "x_high": s["x_high"], "voltage": s["members"][label]} for s in segments]
        ax.plot(*loop_xy(steps), color=f"C{index + 1}", lw=1, alpha=0.8, label=label)
    mean = [{"x_low": s["x_low"], "x_high": s["x_high"], "voltage": s["mean"]} for s in segments]
    xs, vs = loop_xy(mean)
    spread = np.repeat([s["spread"] for s in segments], 2)
    ax.fill_between(
        xs, np.asarray(vs) - spread, np.asarray(vs) + spread, color="0.6", alpha=0.35, label="mean +- spread"
    )
    ax.plot(xs, vs, color="k", lw=2, label="committee mean")
    ion = doc["host"]["working_ion"]
    ax.set_xlabel(f"x in {ion}$_x$ host")
    ax.set_ylabel(f"voltage vs {ion}/{ion}$^+$ (V)")
    resolved = sum(1 for s in doc.get("steps", []) if s["resolved"])
    ax.set_title(f"{doc['host']['formula']}: {resolved} of {len(doc.get('steps', []))} steps beyond the spread")
    _legend_below(fig, ax)
    return fig


def committee_spread_figure(doc: dict, table: str) -> Figure:
    """A committee's defect energies or barriers: each member's value and the mean +- spread, per path or defect."""
    rows = doc.get(table) or []
    if not rows:
        raise InsertflowError(f"committee '{doc['study']}' has no {table} every member computed")
    key = "energy" if table == "defects" else "forward_barrier"
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.32 * len(rows)), layout="constrained")
    ys = np.arange(len(rows))
    for index, member in enumerate(rows[0][key]):
        ax.plot([r[key][member] for r in rows], ys, "o", ms=4, color=f"C{index + 1}", label=member)
    ax.errorbar(
        [r["mean"] for r in rows],
        ys,
        xerr=[r["spread"] for r in rows],
        fmt="|",
        color="k",
        capsize=3,
        label="mean +- spread",
    )
    if table == "barriers" and doc.get("kinetic_limit"):
        ax.axvline(doc["kinetic_limit"], color="C3", ls="--", lw=1, label=f"kinetic limit at {doc['temperature']:g} K")
    else:
        ax.axvline(0, color="0.6", lw=0.8)
    ax.set_yticks(ys, [f"{r['label'][:46]} ({r.get('verdict', '')})" for r in rows], fontsize="x-small")
    ax.invert_yaxis()
    ax.set_xlabel("defect energy (eV)" if table == "defects" else "forward barrier (eV)")
    ax.set_title(f"{doc['host']['formula']}: {table} over {len(doc['members'])} members")
    _legend_below(fig, ax)
    return fig


def finite_temperature_figure(doc: dict) -> Figure:
    """V(x) at each Monte Carlo temperature over the 0 K staircase, and -dx/dV (what a dQ/dV plot shows)."""
    finite = doc["finite_temperature"]
    fig, (ax, dq) = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    ax.plot(*loop_xy(doc["steps"]), color="k", lw=1.5, label="0 K (levels hull)")
    for number, curve in enumerate(finite["curves"]):
        color = f"C{number}"
        ax.plot(curve["x"], curve["voltage"], "o-", ms=3, lw=1, color=color, label=f"{curve['temperature']:g} K")
        sweep = sorted(
            (p for p in finite["points"] if p["ensemble"] == "sgc" and p["temperature"] == curve["temperature"]),
            key=lambda p: p["voltage"],
        )
        volts = np.array([p["voltage"] for p in sweep])
        xs = np.array([p["x"] for p in sweep])
        if len(volts) > 2:
            middle = 0.5 * (volts[1:] + volts[:-1])
            dq.plot(middle, -np.diff(xs) / np.diff(volts), color=color, label=f"{curve['temperature']:g} K")
    for plateau in finite["plateaus"]:
        ax.hlines(plateau["voltage"], plateau["x_low"], plateau["x_high"], colors="C3", lw=3, alpha=0.4)
    ion = doc["host"]["working_ion"]
    ax.set_xlabel(f"x in {ion}$_x$ host")
    ax.set_ylabel(f"voltage vs {ion}/{ion}$^+$ (V)")
    ax.set_title(f"{doc['host']['formula']}: {doc['calculator']['name']} + cluster expansion")
    dq.set_xlabel(f"voltage vs {ion}/{ion}$^+$ (V)")
    dq.set_ylabel("-dx/dV (1/V), SGC")
    dq.set_title("differential capacity")
    _legend_below(fig, ax)
    return fig


def write_plots(doc: dict, folder: str | Path) -> list[Path]:
    """Write a study's figures as PNGs (levels: hull and profiles; defects: the loop); return their paths."""
    if doc.get("kind") == "defects":
        figures = {"hysteresis": hysteresis_figure(doc)}
        if any(b.get("forward_barrier") is not None for b in doc.get("migration_barriers", [])):
            figures |= {"tm_paths": path_figure(doc), "tm_barriers": barrier_vs_x_figure(doc)}
    elif doc.get("kind") == "barriers":
        figures = {"paths": path_figure(doc)}
    elif doc.get("kind") == "committee" and doc.get("study_type") in ("defects", "barriers"):
        figures = {f"{t}_committee": committee_spread_figure(doc, t) for t in ("defects", "barriers") if doc.get(t)}
        if not figures:
            raise InsertflowError(f"committee '{doc['study']}' has nothing every member computed to plot")
    elif doc.get("kind") == "committee":
        figures = {"voltage_committee": committee_figure(doc)}
    elif doc.get("kind") == "electronic_structure":
        figures = {
            f"pdos_x{p['x']:.3f}": pdos_figure(doc, p["x"])
            for p in doc["points"]
            if p.get("descriptors") and p.get("kind", "pristine") == "pristine"
        }
        if not figures:
            raise InsertflowError(f"study '{doc['study']}' has no projected DOS to plot")
    else:
        figures = {  # all built before anything is written: a refused study leaves no folder behind
            "hull": hull_figure(doc),
            "voltage_vs_x": profile_figure(doc, "x"),
            "voltage_vs_capacity": profile_figure(doc, "capacity"),
        }
        if doc.get("finite_temperature"):
            figures["finite_temperature"] = finite_temperature_figure(doc)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = folder / f"{doc['study']}_{name}.png"
        fig.savefig(path, dpi=150)
        plt.close(fig)
        paths.append(path)
    return paths
