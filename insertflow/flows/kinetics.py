"""Working-ion migration barriers as a jobflow DAG: relaxed host -> hops -> relaxed endpoints -> NEB -> barriers.

The host relaxation (cell and positions) is an ordinary content-keyed calculation, reused from
any earlier study. A planning job then finds the symmetry-distinct hops on the *relaxed* host
(``sampling.hops``), builds both endpoints of each hop in the supercell and relaxes them with the
cell held (``fixed_cell``), again content-keyed. Each NEB starts from its relaxed endpoints and is
itself content-keyed (the initial path, the calculator's identity and the NEB settings), so a
rerun computes nothing. The NEB runs through the calculator's ``make_neb_job`` (atomate2's NEB
makers for the ML potentials). Nothing here knows which calculator it drives.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from jobflow import CURRENT_JOB, Flow, Maker, OnMissing, Response, job
from monty.json import MSONable
from pymatgen.core import Structure

from insertflow import progress
from insertflow.analysis.barriers import (
    DEFAULT_ATTEMPT_FREQUENCY,
    DEFAULT_TIME_SCALE,
    diffusivity,
    endpoint_mismatch,
    hop_rate,
    kinetic_limit,
    moving_atoms,
    path_barrier,
)
from insertflow.analysis.geometry import minimum_image
from insertflow.calculators.base import (
    Calculator,
    NebSettings,
    as_structure,
    fixed_cell,
    package_version,
    supports_neb,
)
from insertflow.errors import CalculatorError, InsertflowError, RecipeError
from insertflow.flows.calculation import CalculationMaker, LayerGuard, finished_record
from insertflow.flows.compose import ComposableMaker
from insertflow.hosts import Host
from insertflow.sampling.hops import HOP_MODES, Hop, distinct_hops, hop_endpoints, initial_path
from insertflow.schemas import BarrierStudyDoc, CalculationRecord, FailedCalculation, HopResult, NebRecord

STAGE = "nebs"
ANALYSIS_STAGE = "analysis"
#: Endpoint relaxation: the hopping atom must move at least this far (A) between the endpoints.
ENDPOINT_DRIFT = 0.5
#: Another atom moving more than this fraction of the hop (a neighbour falling into the vacancy
#: moves a whole hop) makes it another hop; anions relaxing around a moved TM (0.5-0.8 A in
#: Li2MnO3) do not.
OTHER_ATOM_DRIFT = 0.5


@dataclass
class BarrierSettings(MSONable):
    """Which hops a barrier study computes, in which cell, and what its rates assume."""

    max_hop_length: float = 5.0  # A between working-ion sites
    hops: list[int] | None = None  # indices into the distinct hops, shortest first; None: all
    modes: list[str] = field(default_factory=lambda: ["vacancy"])
    supercell: list[int] | None = None  # diagonal multiples of the host cell; None: the smallest with images apart
    min_image_distance: float = 8.0  # A between the hopping ion and its periodic images
    temperature: float = 300.0  # K
    attempt_frequency: float = DEFAULT_ATTEMPT_FREQUENCY  # Hz
    time_scale: float = DEFAULT_TIME_SCALE  # s
    particle_size: float = 100.0  # nm: the ion must cross this in time_scale (D tau >= L^2)

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in HOP_MODES]
        if unknown:
            raise RecipeError(f"unknown hop mode(s) {unknown}; use {', '.join(HOP_MODES)}")
        if self.max_hop_length <= 0 or self.temperature <= 0:
            raise RecipeError("barriers.max_hop_length and barriers.temperature must be positive")


def chosen_hops(host: Host, settings: BarrierSettings) -> tuple[list[Hop], list[Hop]]:
    """The direct hops of the host's working ion the settings ask for, and the indirect ones left out.

    One clear error when an asked-for hop does not exist.
    """
    every = distinct_hops(host.structure, host.working_ion, settings.max_hop_length, direct_only=False)
    hops = [replace(h, label=index) for index, h in enumerate(h for h in every if h.direct)]
    indirect = [h for h in every if not h.direct]
    if settings.hops is None:
        return hops, indirect
    missing = [i for i in settings.hops if not 0 <= i < len(hops)]
    if missing:
        raise RecipeError(
            f"barriers.hops {missing} do not exist: this host has {len(hops)} distinct hops up to "
            f"{settings.max_hop_length} A ({', '.join(h.name for h in hops)})"
        )
    return [hops[i] for i in settings.hops], indirect


def supercell_for(structure: Structure, settings: BarrierSettings) -> list[int]:
    """The recipe's multiples, else the smallest diagonal supercell with every length >= min_image_distance."""
    if settings.supercell is not None:
        multiples = [int(m) for m in settings.supercell]
        if len(multiples) != 3 or min(multiples) < 1:
            raise RecipeError(f"barriers.supercell must be 3 positive integers (got {settings.supercell})")
        return multiples
    return [max(1, int(np.ceil(settings.min_image_distance / length - 1e-9))) for length in structure.lattice.abc]


@dataclass
class BarrierStudyMaker(ComposableMaker, Maker):
    """Relax the host, then one NEB per distinct hop and mode from relaxed endpoints."""

    study_kind = "barriers"

    name: str = "barriers"
    calculator: Calculator | None = None
    settings: BarrierSettings = field(default_factory=BarrierSettings)
    neb: NebSettings = field(default_factory=NebSettings)
    guard: LayerGuard = field(default_factory=LayerGuard)
    study: str = ""

    def check(self, host: Host) -> tuple[list[Hop], list[Hop]]:
        """Refuse, before any job exists, a calculator without NEBs or a host without the hops asked for.

        Returns the hops asked for and the indirect ones left out (``chosen_hops``).
        """
        if self.calculator is None:
            raise CalculatorError("BarrierStudyMaker needs a calculator")
        if not supports_neb(self.calculator):
            raise CalculatorError(
                f"{self.calculator.name} does not run NEB paths here; use chgnet, gpaw or vasp (mock for tests)"
            )
        hops, indirect = chosen_hops(host, self.settings)
        multiples = supercell_for(host.structure, self.settings)
        for hop in hops:
            along = np.abs(np.asarray(host.structure.lattice.get_fractional_coords(hop.vector)))
            if np.any(along * 2 >= np.asarray(multiples) - 1e-6):  # half a cell: two ends equally near
                raise RecipeError(
                    f"{hop.name} spans more than half the {multiples} supercell: the ion would meet its own "
                    "image; use a larger barriers.supercell"
                )
        return hops, indirect

    def planned(self, host: Host) -> dict[str, int]:
        """Progress totals: the host and two endpoints per path; one NEB per path."""
        paths = len(self.check(host)[0]) * len(self.settings.modes)
        return {"calculations": 1 + 2 * paths, STAGE: paths, ANALYSIS_STAGE: 1}

    def make_for_host(self, host: Host) -> Flow:
        """The host relaxation, then the planning job that adds the endpoints and the NEBs."""
        relax = CalculationMaker(
            calculator=self.calculator, label="host", task="relax", study=self.study, guard=self.guard
        ).make(host.structure)
        hops, indirect = self.check(host)
        context = {
            "study": self.study,
            "host": {"formula": host.formula, "working_ion": host.working_ion, "source": host.source},
            "supercell": supercell_for(host.structure, self.settings),
            "input_structure": host.structure.as_dict(),
            "hops": [asdict(h) for h in hops],
            "indirect": [h.name for h in indirect],
        }
        plan = plan_barriers(relax.output, self.calculator, self.guard, self.settings, self.neb, context)
        plan.name = f"plan barriers {host.formula}"
        plan.config.on_missing_references = OnMissing.NONE
        return Flow([relax, plan], output=plan.output, name=f"barriers {host.formula}")


@job
def plan_barriers(
    host_raw,
    calculator: Calculator,
    guard: LayerGuard,
    settings: BarrierSettings,
    neb: NebSettings,
    context: dict,
) -> Response | BarrierStudyDoc:
    """On the relaxed host: the hops, their endpoints (relaxed with the cell held) and one NEB each."""
    host_record = None if host_raw is None else CalculationRecord.model_validate(host_raw)
    if host_record is None or host_record.status != "ok":
        doc = _new_document(context, calculator.identity(), neb, settings)
        reason = "did not finish" if host_record is None else host_record.reason
        doc.missing.append(f"the host relaxation has no usable result ({reason}): no hops")
        if host_record is not None:
            doc.calculations = [host_record]
        return doc
    relaxed = host_record.entry.structure
    ion = context["host"]["working_ion"]
    # the hops chosen on the input host, carried into the relaxed cell by fractional coordinates:
    # re-deriving them could renumber near-equal hops (Li2MnO3 has a dozen within 0.2 A)
    given = as_structure(context["input_structure"])
    hops = [Hop(**h).in_cell(given, relaxed) for h in context["hops"]]
    supercell = relaxed * context["supercell"]
    endpoint_calculator = fixed_cell(calculator)

    def relax(label: str, structure: Structure):
        maker = CalculationMaker(
            calculator=endpoint_calculator, label=label, task="relax", study=context["study"], guard=guard
        )
        return maker.make(structure)

    jobs, paths = [], []
    for hop in hops:
        for mode in settings.modes:
            label = f"{hop.name} {mode}"
            try:
                ends = hop_endpoints(supercell, hop, relaxed, ion, mode)
            except InsertflowError as exc:
                paths.append({"label": label, "hop": asdict(hop), "mode": mode, "reason": str(exc)})
                continue
            relax_start, relax_end = relax(f"{label} start", ends.start), relax(f"{label} end", ends.end)
            run = neb_from_endpoints(
                relax_start.output, relax_end.output, ends.moving, ends.waypoint, calculator, neb, label
            )
            run.name = f"NEB {label}"
            run.config.on_missing_references = OnMissing.NONE
            run.config.expose_store = True
            jobs += [relax_start, relax_end, run]
            paths.append(
                {
                    "label": label,
                    "hop": asdict(hop),
                    "mode": mode,
                    "x": ends.x,
                    "neb": run.output,
                    "endpoints": [relax_start.output, relax_end.output],
                }
            )
    final = analyse_barriers(
        [p.get("neb") for p in paths],
        [p.get("endpoints") for p in paths],
        [{k: v for k, v in p.items() if k not in ("neb", "endpoints")} for p in paths],
        host_record.model_dump(),
        calculator.identity(),
        settings,
        neb,
        context,
    )
    final.name = f"barrier study {context['host']['formula']}"
    final.config.on_missing_references = OnMissing.NONE
    final.metadata["insertflow"] = {"kind": "study", "study": context["study"]}
    return Response(replace=Flow([*jobs, final], output=final.output))


def neb_key(images: list[Structure], identity: dict, settings: NebSettings) -> str:
    """SHA-256 of the initial path (lattice, species and ordered positions), the calculator and the settings."""
    path = [
        {
            "lattice": np.round(image.lattice.matrix, 4).tolist(),
            "species": [site.species_string for site in image],
            "frac": np.round(np.mod(np.round(image.frac_coords, 4), 1.0), 4).tolist(),
        }
        for image in images
    ]
    payload = {"path": path, "calculator": identity, "task": "neb", "settings": asdict(settings)}
    payload["engine"] = {name: package_version(name) for name in ("ase", "atomate2")}  # their NEB and FIRE
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@job
def neb_from_endpoints(
    start_raw, end_raw, moving: int, waypoint, calculator: Calculator, settings: NebSettings, label: str
) -> NebRecord | Response:
    """Check the relaxed endpoints, build the initial path, reuse a finished NEB of its key or run it."""
    base = {"label": label, "calculator": calculator.identity(), "settings": asdict(settings)}
    item = f"NEB {label} ({calculator.name})"

    def not_run(reason: str, progress_text: str | None = None) -> NebRecord:
        progress.emit(STAGE, item, f"not run: {progress_text or reason}")
        return NebRecord(status="failed", reason=reason, **base)

    records = [None if raw is None else CalculationRecord.model_validate(raw) for raw in (start_raw, end_raw)]
    for name, record in zip(("start", "end"), records, strict=True):
        if record is None or record.status != "ok":
            reason = "did not finish" if record is None else record.reason
            return not_run(
                f"the {name} endpoint has no usable result ({reason})", f"the {name} endpoint has no usable result"
            )
    start, end = (r.entry.structure for r in records)
    base["endpoint_keys"] = [r.content_key for r in records]
    mismatch = endpoint_mismatch(start, end)
    if mismatch:
        return not_run("the endpoints do not map onto each other: " + "; ".join(mismatch[:5]))
    hop_length = float(start[moving].distance(end[moving]))
    if hop_length < ENDPOINT_DRIFT:
        return not_run(
            f"the hopping {start[moving].species_string} ({moving}) is back where it started after relaxing "
            f"({hop_length:.2f} A apart): there is no hop, and no barrier"
        )
    allowed = max(ENDPOINT_DRIFT, OTHER_ATOM_DRIFT * hop_length)
    drifted = [(i, d) for i, d in moving_atoms(start, end, allowed) if i != moving]
    if drifted:
        names = ", ".join(f"{start[i].species_string} {i} ({d:.2f} A)" for i, d in drifted[:5])
        return not_run(
            f"the relaxed endpoints differ in more than the hopping atom: {names} moved "
            f"> {allowed:.2f} A (half the hop; a neighbour fell into the vacancy?): not this hop"
        )
    images = initial_path(start, end, settings.images, moving, waypoint)
    key = neb_key(images, calculator.identity(), settings)
    store = CURRENT_JOB.store
    cached = finished_record(store, key)
    if cached is not None:
        record = NebRecord.model_validate(cached["output"]).model_copy(update={"label": label, "reused": True})
        progress.emit(STAGE, item, f"reused (key {key[:10]})")
        return record
    progress.emit(STAGE, item, f"running ({settings.images} images)...")
    calc_job = calculator.make_neb_job(images, settings)
    calc_job.name = f"{calculator.name} NEB {label} [{key[:10]}]"
    calc_job.update_metadata({"insertflow": {"kind": "raw_calculation", "content_key": key}})
    ends = [{"energy": r.entry.uncorrected_energy, "structure": r.entry.structure.as_dict()} for r in records]
    record_job = record_neb(
        calc_job.output, calculator, {**base, "content_key": key}, calc_job.name, calc_job.uuid, ends
    )
    record_job.name = f"record NEB {label}"
    record_job.config.on_missing_references = OnMissing.NONE
    return Response(replace=Flow([calc_job, record_job], output=record_job.output, name=f"NEB {label}"))


@job
def record_neb(
    output, calculator: Calculator, base: dict, calc_job_name: str, calc_job_uuid: str, ends: list[dict] | None = None
) -> NebRecord:
    """Turn an NEB output into a record: the path and its barriers, or why there is none.

    ``ends``: the endpoint relaxations' uncorrected energies and structures, joined to an NEB that
    gives its moving images only (VASP).
    """
    item = f"NEB {base['label']} ({calculator.name})"
    base = {**base, "job_uuid": calc_job_uuid}
    if output is None:
        detail = progress.job_error(calc_job_name)
        reason = f"the {calculator.name} NEB job raised an exception" + (f": {detail}" if detail else "")
        progress.emit(STAGE, item, f"FAILED: {reason}")
        return NebRecord(status="failed", reason=reason, **base)
    try:
        outcome = calculator.neb_outcome(output)
        if outcome.interior_only:
            if not ends:
                raise ValueError("the NEB gave its moving images only and no endpoint energies were passed")
            outcome.images = [as_structure(ends[0]["structure"]), *outcome.images, as_structure(ends[1]["structure"])]
            outcome.energies = [ends[0]["energy"], *outcome.energies, ends[1]["energy"]]
        barrier = path_barrier(outcome.energies)
    except (CalculatorError, ValueError, TypeError, KeyError) as exc:
        progress.emit(STAGE, item, f"FAILED: {exc}")
        return NebRecord(status="failed", reason=f"could not read the NEB output: {exc}", **base)
    found = {
        "energies": outcome.energies,
        "images": outcome.images,
        "forward_barrier": barrier.forward,
        "reverse_barrier": barrier.reverse,
        "reaction_energy": barrier.reaction_energy,
        "saddle_index": barrier.saddle_index,
        "converged": outcome.converged,
        "n_steps": outcome.n_steps,
        "wall_time_s": outcome.wall_time_s,
    }
    if not outcome.converged:
        reason = (
            f"the NEB did not converge to fmax {base['settings']['fmax']} eV/A in {base['settings']['steps']} steps: "
            "its barrier is unresolved (raise steps, or add images)"
        )
        progress.emit(STAGE, item, f"FAILED: {reason}")
        return NebRecord(status="failed", reason=reason, **base, **found)
    progress.emit(STAGE, item, f"new, barrier {barrier.forward:.3f} eV")
    return NebRecord(status="ok", **base, **found)


def _new_document(context: dict, identity: dict, neb: NebSettings, settings: BarrierSettings) -> BarrierStudyDoc:
    multiples = context["supercell"]
    return BarrierStudyDoc(
        study=context["study"],
        host=context["host"],
        calculator=identity,
        supercell=np.diag(multiples).astype(int).tolist(),
        supercell_atoms=0,
        neb=asdict(neb),
        temperature=settings.temperature,
        attempt_frequency=settings.attempt_frequency,
        time_scale=settings.time_scale,
        kinetic_limit=kinetic_limit(settings.temperature, settings.attempt_frequency, settings.time_scale),
        particle_size=settings.particle_size,
    )


@job
def analyse_barriers(
    neb_raws: list,
    endpoint_raws: list,
    paths: list[dict],
    host_raw: dict,
    identity: dict,
    settings: BarrierSettings,
    neb: NebSettings,
    context: dict,
) -> BarrierStudyDoc:
    """Barriers per hop and mode, their rates and diffusivities at the study temperature; the final document."""
    host_record = CalculationRecord.model_validate(host_raw)
    doc = _new_document(context, identity, neb, settings)
    doc.supercell_atoms = len(host_record.entry.structure) * int(np.prod(context["supercell"]))
    calculations = [host_record]
    for path, neb_raw, ends in zip(paths, neb_raws, endpoint_raws, strict=True):
        hop = path["hop"]
        result = HopResult(
            label=path["label"],
            hop=hop["label"],
            mode=path["mode"],
            length=round(hop["length"], 4),
            dimensionality=hop["dimensionality"],
            equivalent=hop["equivalent"],
            x=round(path.get("x", float("nan")), 6),
        )
        doc.hops.append(result)
        if "reason" in path:
            result.status, result.reason = "failed", path["reason"]
            doc.missing.append(f"{path['label']}: {path['reason']}")
            continue
        for raw in ends or []:
            if raw is not None:
                calculations.append(CalculationRecord.model_validate(raw))
        record = None if neb_raw is None else NebRecord.model_validate(neb_raw)
        if record is None:
            result.status, result.reason = "failed", "the NEB job did not finish"
            doc.missing.append(f"{path['label']}: the NEB job did not finish")
            continue
        doc.nebs.append(record)
        result.status, result.reason = record.status, record.reason
        result.neb_key, result.reused = record.content_key, record.reused
        if record.status != "ok":
            doc.missing.append(f"{path['label']}: {record.reason}")
            continue
        _fill_barrier(result, record, hop, settings, doc)
    if context.get("indirect"):
        doc.notes.append(
            "left out as not hops of their own (through another ion site, or squeezing past an atom): "
            + ", ".join(context["indirect"])
        )
    doc.calculations = calculations
    doc.failed = [
        FailedCalculation(label=r.label, formula=r.formula, status=r.status, reason=r.reason or "")
        for r in calculations
        if r.status != "ok"
    ]
    doc.new_calculations = sum(1 for r in calculations if not r.reused)
    doc.reused_calculations = sum(1 for r in calculations if r.reused)
    doc.new_nebs = sum(1 for r in doc.nebs if not r.reused)
    doc.reused_nebs = sum(1 for r in doc.nebs if r.reused)
    done = [h for h in doc.hops if h.forward_barrier is not None]
    summary = ", ".join(f"{h.label} {h.forward_barrier:.3f} eV" for h in done) or "no barrier"
    progress.emit(ANALYSIS_STAGE, f"barriers {context['host']['formula']}", summary)
    return doc


def _fill_barrier(result: HopResult, record: NebRecord, hop: dict, settings: BarrierSettings, doc) -> None:
    """Barriers, path, rate, diffusivity and the verdicts of one converged hop."""
    label = result.label
    barrier = path_barrier(record.energies)
    result.forward_barrier = round(barrier.forward, 6)
    result.reverse_barrier = round(barrier.reverse, 6)
    result.reaction_energy = round(barrier.reaction_energy, 6)
    result.saddle_interior = barrier.saddle_is_interior
    result.path = _path_profile(record)
    result.rate = hop_rate(barrier.forward, settings.temperature, settings.attempt_frequency)
    result.within_kinetic_limit = barrier.forward <= doc.kinetic_limit
    if hop["dimensionality"] in (1, 2, 3):
        result.diffusivity = diffusivity(
            barrier.forward,
            hop["length"],
            settings.temperature,
            hop["dimensionality"],
            hop["equivalent"],
            settings.attempt_frequency,
        )
        result.diffusion_length = math.sqrt(result.diffusivity * settings.time_scale) * 1e7  # cm -> nm
        result.crosses_particle = result.diffusion_length >= settings.particle_size
    else:
        doc.notes.append(f"{label}: these hops alone connect no network (0D): no diffusivity")
    if barrier.trapped:
        doc.notes.append(f"{label}: an image lies below both ends: the path finds another minimum")
    if not barrier.saddle_is_interior:
        doc.notes.append(f"{label}: the highest image is an endpoint; the barrier is the endpoint difference")


def _path_profile(record: NebRecord) -> list[list[float]]:
    """(A along the path, eV above the start) per image: the reaction coordinate is the summed image spacing."""
    images = [as_structure(image) for image in record.images]
    distance, profile = 0.0, []
    for index, image in enumerate(images):
        if index:
            step = minimum_image(image.frac_coords - images[index - 1].frac_coords)
            distance += float(np.linalg.norm(image.lattice.get_cartesian_coords(step)))
        profile.append([round(distance, 4), round(record.energies[index] - record.energies[0], 6)])
    return profile
