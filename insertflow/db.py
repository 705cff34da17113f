"""The notebook API: read studies from a store as pandas DataFrames and pymatgen objects.

    import insertflow
    profile = insertflow.voltage_profile("licoo2-levels-mock")    # the default store
    profile.plot(x="x_low", y="voltage", drawstyle="steps-post")

Every function takes ``store=``: a ``JobStore`` (e.g. from ``connect``), a store string as
``--store`` takes it (``embedded:///file.sqlite``, ``mongodb://...``, ``memory://``), or None
for the store the CLI would use. Queries filter on indexed fields (study name, document kind).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from jobflow import JobStore
from pymatgen.core import Structure

from insertflow.errors import InsertflowError
from insertflow.store import open_store, resolve_store_config

# "output.study" exists rather than "output" != None: the embedded store then reads only the
# fields a query asks for, not whole study documents.
STUDY_QUERY = {"metadata.insertflow.kind": "study", "output.study": {"$exists": True}}


def connect(store: str | None = None, recipe_store: dict | None = None) -> JobStore:
    """Open the store the CLI would use (``store`` overrides, as ``--store`` does)."""
    return open_store(resolve_store_config(recipe_store, store))


def _store(store: JobStore | str | None) -> JobStore:
    return store if isinstance(store, JobStore) else connect(store)


def latest_study(store: JobStore, study: str) -> dict | None:
    """The most recent stored study document named ``study`` (a plain dict), or None."""
    doc = store.query_one(
        {**STUDY_QUERY, "metadata.insertflow.study": study},
        properties=["output", "uuid", "completed_at"],
        sort={"completed_at": -1},
    )
    return None if doc is None else doc["output"]


def study_names(store: JobStore) -> list[str]:
    """Names of all studies in the store."""
    return sorted(store.docs_store.distinct("metadata.insertflow.study", {"metadata.insertflow.kind": "study"}))


def study(name: str, store: JobStore | str | None = None, kind: str | None = None, failed_ok: bool = False) -> dict:
    """The latest document of study ``name``; a clear error if there is none (or it is another kind).

    A study whose planning job refused its input raises with the reason, unless ``failed_ok``
    (then its ``FailedStudyDoc`` comes back).
    """
    doc = latest_study(_store(store), name)
    if doc is None:
        names = study_names(_store(store))
        listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise InsertflowError(f"no study '{name}' in this store; studies here: {listed or 'none'}")
    if doc.get("status") == "failed" and not failed_ok:  # its planning job refused the input
        raise InsertflowError(f"study '{name}' failed: {doc.get('error')}")
    if kind is not None and doc.get("kind") != kind:
        found = doc.get("kind") or "unknown"
        article = "an" if found[0] in "aeiou" else "a"
        raise InsertflowError(f"study '{name}' is {article} {found} study, not {kind}")
    return doc


def studies(
    store: JobStore | str | None = None, host: str | None = None, calculator: str | None = None
) -> pd.DataFrame:
    """One row per study (its latest document): kind, host, calculator, headline numbers."""
    opened = _store(store)
    rows = []
    seen = set()
    for item in opened.query(
        STUDY_QUERY,
        properties=[
            "output.study",
            "output.kind",
            "output.host",
            "output.calculator",
            "output.members",
            "output.average_voltage",
            "output.new_calculations",
            "output.reused_calculations",
            "output.hysteresis.average_hysteresis",
            "completed_at",
        ],
        sort={"completed_at": -1},
    ):
        doc = item["output"]
        if doc["study"] in seen:
            continue
        seen.add(doc["study"])
        if host and doc["host"]["formula"] != host and doc["host"].get("name") != host:
            continue
        identity, voltage = doc.get("calculator") or {}, doc.get("average_voltage")
        if doc.get("kind") == "committee":  # several calculators; the voltage is their mean
            identity = {"name": "committee: " + ", ".join(m["label"] for m in doc.get("members", []))}
            voltage = (voltage or {}).get("mean")
        if calculator and identity.get("name") != calculator:
            continue
        rows.append(
            {
                "study": doc["study"],
                "kind": doc.get("kind", "end_member_voltage"),
                "host": doc["host"]["formula"],
                "calculator": identity.get("name"),
                "calculator_version": identity.get("version"),
                "average_voltage": voltage,
                "average_hysteresis": (doc.get("hysteresis") or {}).get("average_hysteresis"),
                "new_calculations": doc.get("new_calculations"),
                "reused_calculations": doc.get("reused_calculations"),
                "completed_at": item.get("completed_at"),
            }
        )
    return pd.DataFrame(rows, columns=_STUDY_COLUMNS)


_STUDY_COLUMNS = [
    "study",
    "kind",
    "host",
    "calculator",
    "calculator_version",
    "average_voltage",
    "average_hysteresis",
    "new_calculations",
    "reused_calculations",
    "completed_at",
]


def voltage_profile(name: str, store: JobStore | str | None = None) -> pd.DataFrame:
    """One row per voltage step (x_low, x_high, voltage V, capacity mAh/g, cumulative capacity)."""
    doc = study(name, store)
    if doc.get("kind") == "insertion_levels":
        steps = doc.get("steps", [])
    elif doc.get("kind") == "defects":
        steps = doc.get("pristine_steps", [])
    elif doc.get("average_voltage") is not None:  # end members: one step over the whole range
        electrode = doc.get("electrode") or {}
        steps = [
            {
                "x_low": 0.0,
                "x_high": 1.0,
                "voltage": doc["average_voltage"],
                "capacity_grav": doc.get("capacity_grav"),
                "label_low": electrode.get("formula_charge", "charged"),
                "label_high": electrode.get("formula_discharge", "discharged"),
            }
        ]
    else:
        steps = []
    frame = pd.DataFrame(steps, columns=["x_low", "x_high", "voltage", "capacity_grav", "label_low", "label_high"])
    frame = frame.sort_values("x_low", ascending=False, ignore_index=True)  # discharge order: high x first
    frame["cumulative_capacity"] = frame["capacity_grav"].cumsum()
    frame.insert(0, "study", name)
    return frame


def orderings(
    name: str, store: JobStore | str | None = None, x_min: float | None = None, x_max: float | None = None
) -> pd.DataFrame:
    """Every ordering of an insertion-levels study with its tiers, energies and energy above hull."""
    doc = study(name, store, kind="insertion_levels")
    frame = pd.DataFrame(doc.get("orderings", []))
    return _x_window(frame, x_min, x_max)


def defects(
    name: str, store: JobStore | str | None = None, x_min: float | None = None, x_max: float | None = None
) -> pd.DataFrame:
    """Every defect of a defect study: kind, x, site, energy, concentrations, geometry and its kind's class."""
    doc = study(name, store, kind="defects")
    classes = {c["kind"]: c["classification"] for c in doc.get("classes", [])}
    frame = pd.DataFrame(doc.get("defects", []))
    if not frame.empty:
        frame["classification"] = frame["kind"].map(classes)
    return _x_window(frame, x_min, x_max)


def hysteresis(name: str, store: JobStore | str | None = None) -> pd.DataFrame:
    """The loop's segments: x_low, x_high, V_charge, V_discharge, dV."""
    doc = study(name, store, kind="defects")
    loop = doc.get("hysteresis") or {}
    frame = pd.DataFrame(loop.get("segments", []), columns=["x_low", "x_high", "v_charge", "v_discharge", "dv"])
    frame.attrs.update({k: loop.get(k) for k in ("average_hysteresis", "energy_lost", "coupled", "definition")})
    return frame


def barriers(name: str, store: JobStore | str | None = None) -> pd.DataFrame:
    """Migration barriers: a barriers study's hops, or a defect study's TM hops per x (eV, Hz, cm^2/s)."""
    doc = study(name, store)
    if doc.get("kind") == "barriers":
        columns = ["label", "mode", "x", "length", "dimensionality", "forward_barrier", "reverse_barrier"]
        columns += ["rate", "diffusivity", "diffusion_length", "crosses_particle", "within_kinetic_limit"]
        columns += ["status", "reason"]
        frame = pd.DataFrame(doc.get("hops", []), columns=columns)
    elif doc.get("kind") == "defects":
        columns = ["x", "label", "migration_energy", "forward_barrier", "reverse_barrier", "within_kinetic_limit"]
        frame = pd.DataFrame(doc.get("migration_barriers", []), columns=[*columns, "status", "reason"])
    else:
        raise InsertflowError(f"study '{name}' is a {doc.get('kind')} study: no barriers")
    keys = ("kinetic_limit", "temperature", "attempt_frequency", "time_scale", "particle_size")
    frame.attrs.update({k: doc.get(k) for k in keys})
    return frame


def committee(name: str, store: JobStore | str | None = None, table: str | None = None) -> pd.DataFrame:
    """A committee's numbers with mean, spread (population std) and one column per member.

    ``table``: ``voltage`` (segments: x range, V), ``defects`` (energy per configuration, eV) or
    ``barriers`` (forward barrier per path, eV); by default the one the members' study type is about.
    """
    doc = study(name, store, kind="committee")
    table = table or {"defects": "defects", "barriers": "barriers"}.get(doc.get("study_type"), "voltage")
    if table == "voltage":
        rows = [
            {"x_low": s["x_low"], "x_high": s["x_high"], "mean": s["mean"], "spread": s["spread"], **s["members"]}
            for s in doc.get("segments", [])
        ]
    elif table == "defects":
        rows = [
            {
                "label": d["label"],
                "kind": d["kind"],
                "x": d["x"],
                "mean": d["mean"],
                "spread": d["spread"],
                "verdict": d["verdict"],
                **d["energy"],
            }
            for d in doc.get("defects", [])
        ]
    elif table == "barriers":
        rows = [
            {
                "label": b["label"],
                "x": b["x"],
                "mean": b["mean"],
                "spread": b["spread"],
                "verdict": b.get("verdict"),
                "rate_factor": b["rate_factor"],
                **b["forward_barrier"],
            }
            for b in doc.get("barriers", [])
        ]
    else:
        raise InsertflowError(f"unknown committee table '{table}'; choose one of: voltage, defects, barriers")
    frame = pd.DataFrame(rows)
    frame.attrs.update(
        {
            "average_voltage": doc.get("average_voltage"),
            "members": [m["label"] for m in doc.get("members", [])],
            "possibly_on_hull": [o["label"] for o in doc.get("orderings", []) if o["possibly_on_hull"]],
            "kinetic_limit": doc.get("kinetic_limit"),
            "spread_definition": doc.get("spread_definition"),
        }
    )
    return frame


def spot_checks(name: str, store: JobStore | str | None = None) -> pd.DataFrame:
    """ML against DFT per spot-checked ordering (levels) or defect (defects), or of a committee's first member."""
    doc = study(name, store)
    spot = doc.get("spot_checks")
    if not spot:
        raise InsertflowError(f"study '{name}' has no spot checks (a levels study with spot_check: makes them)")
    if doc.get("kind") == "defects":
        columns = ["label", "kind", "x", "n_atoms", "energy_ml", "energy_dft", "difference"]
        columns += ["favourable_ml", "favourable_dft", "migrated_state", "reused"]
    else:
        columns = ["label", "x", "n_atoms", "formation_energy_ml", "formation_energy_dft", "difference"]
        columns += ["on_hull_ml", "on_hull_dft", "reused"]
    frame = pd.DataFrame(spot.get("points", []), columns=columns)
    frame.attrs.update(
        {
            "calculator": spot["calculator"]["name"],
            "geometry_from": spot["geometry_from"]["name"],
            "average_voltage_dft": spot.get("average_voltage"),
            "statics": spot.get("statics"),
            "naive_relaxations": spot.get("naive_relaxations"),
        }
    )
    return frame


def finite_temperature(name: str, store: JobStore | str | None = None) -> pd.DataFrame:
    """V(x) per temperature of a levels study run with finite_temperature: (T, x, voltage) rows."""
    doc = study(name, store, kind="insertion_levels")
    finite = doc.get("finite_temperature")
    if not finite:
        raise InsertflowError(f"study '{name}' has no Monte Carlo (a levels study with finite_temperature: runs it)")
    rows = [
        {"temperature": c["temperature"], "x": x, "voltage": v}
        for c in finite["curves"]
        for x, v in zip(c["x"], c["voltage"], strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["temperature", "x", "voltage"])
    frame.attrs.update(
        {
            "plateaus": finite["plateaus"],
            "transitions": [
                {
                    "x": t["x"],
                    "critical_temperature": t["critical_temperature"],
                    "method": t.get("method", "heat capacity"),
                    "heat_capacity_peak": t.get("heat_capacity_peak"),
                    "note": t["note"],
                }
                for t in finite["transitions"]
            ],
            "step_checks": finite["step_checks"],
            "cv_rmse": doc["cluster_expansion"]["cv_rmse"],
            "calculator": doc["calculator"]["name"],
        }
    )
    return frame


def cluster_expansion(name: str, store: JobStore | str | None = None) -> pd.DataFrame:
    """The ECIs of a levels study's cluster expansion, one row per orbit; the fit's numbers in ``attrs``."""
    doc = study(name, store, kind="insertion_levels")
    ce = doc.get("cluster_expansion")
    if not ce:
        raise InsertflowError(f"study '{name}' has no cluster expansion (a levels study with finite_temperature:)")
    frame = pd.DataFrame(ce["orbits"])
    frame["parameter"] = ce["parameters"]
    frame.attrs.update({k: ce[k] for k in ("cv_rmse", "train_rmse", "n_structures", "cutoffs", "fit_method")})
    frame.attrs["ground_states_x"] = [g["x"] for g in ce["ground_states"]]
    return frame


def descriptors(
    name: str, store: JobStore | str | None = None, x_min: float | None = None, x_max: float | None = None
) -> pd.DataFrame:
    """Band descriptors per x (and per defect) of an electronic-structure study."""
    doc = study(name, store, kind="electronic_structure")
    rows = []
    for point in doc.get("points", []):
        found = point.get("descriptors") or {}
        rows.append(
            {
                "label": point["label"],
                "x": point["x"],
                "kind": point.get("kind", "pristine"),
                "site": point.get("site"),
                "band_gap": found.get("band_gap"),
                "reference": found.get("reference"),
                "o2p_centre": found.get("anion_p_centre"),
                "tm_d_centre": found.get("tm_d_centre"),
                "o2p_near_ef": found.get("anion_p_near_ef"),
                "o2p_centre_ef": found.get("anion_p_centre_ef"),
                "tm_d_centre_ef": found.get("tm_d_centre_ef"),
                "spin_polarized": found.get("spin_polarized"),
                "o2p_near_ef_undercoordinated": found.get("near_ef_undercoordinated"),
                "o2p_near_ef_bulk_like": found.get("near_ef_bulk_like"),
                "o_moment_undercoordinated": found.get("moment_undercoordinated"),
                "o_moment_bulk_like": found.get("moment_bulk_like"),
                "fermi_shift": point.get("fermi_shift"),
                "fermi_shift_reference": point.get("fermi_shift_reference"),
                "fermi_shift_anion_p": point.get("fermi_shift_anion_p"),
                "alignment_spread": (point.get("potential_alignment") or {}).get("spread"),
                "moment_changes": point.get("moment_changes") or [],
                "implied_oxidation": point.get("implied_oxidation"),
            }
        )
    return _x_window(pd.DataFrame(rows), x_min, x_max)


def get_structure(name: str, label: str, store: JobStore | str | None = None) -> Structure:
    """The final (relaxed) structure of the calculation ``label`` in study ``name``."""
    doc = study(name, store)
    for record in doc.get("calculations", []):
        if label in (record["label"], f"relax {label}") and record.get("entry"):
            return _structure_of(record["entry"])
    labels = ", ".join(r["label"] for r in doc.get("calculations", [])[:8])
    raise InsertflowError(f"study '{name}' has no finished calculation '{label}' (some labels: {labels}, ...)")


def _structure_of(entry: dict[str, Any]) -> Structure:
    structure = entry["structure"]
    return structure if isinstance(structure, Structure) else Structure.from_dict(structure)


def _x_window(frame: pd.DataFrame, x_min: float | None, x_max: float | None) -> pd.DataFrame:
    if frame.empty or "x" not in frame:
        return frame
    if x_min is not None:
        frame = frame[frame["x"] >= x_min - 1e-9]
    if x_max is not None:
        frame = frame[frame["x"] <= x_max + 1e-9]
    return frame.reset_index(drop=True)
