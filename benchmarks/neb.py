"""Pipeline NEB against a bare ASE NEB on the same path, in one run, and endpoint reuse on a rerun.

    python benchmarks/neb.py [--recipe lifepo4_barriers_chgnet] [--hop 0]

1. The recipe runs once (host, endpoints and NEB computed; one hop).
2. Its NEB record is removed and the recipe runs again: the endpoints are reused, so the
   second run's wall time is the pipeline's NEB (content keys, jobflow, records included).
3. A bare ASE NEB (``ase.mep.NEB``, climbing image, improved tangent, FIRE, one
   ``CHGNetCalculator`` per image on the same model) on the same initial path.
4. A third run: it must compute nothing (0 new endpoint relaxations, 0 new NEBs).

Prints both barriers, their difference and the time ratio (goal <= 1.05).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import io
import time
import warnings

warnings.simplefilter("ignore")

from insertflow.recipe import load_recipe
from insertflow.runner import run_recipe
from insertflow.store import StoreConfig, open_store


def bare_ase_neb(images, settings, model_version: str) -> tuple[float, float, bool]:
    """Barrier (eV), seconds and convergence of ASE's NEB on ``images`` with one CHGNet calculator per image."""
    from ase.mep import NEB
    from ase.optimize import FIRE
    from chgnet.model.dynamics import CHGNetCalculator
    from pymatgen.io.ase import AseAtomsAdaptor

    from insertflow.calculators.chgnet import _load_model

    model = _load_model(model_version)
    atoms = [AseAtomsAdaptor.get_atoms(image) for image in images]
    for image in atoms:
        image.calc = CHGNetCalculator(model=model)
    start = time.perf_counter()
    neb = NEB(atoms, k=settings["spring"], climb=settings["climb"], method=settings["method"])
    converged = FIRE(neb, logfile=None).run(fmax=settings["fmax"], steps=settings["steps"])
    seconds = time.perf_counter() - start
    energies = [image.get_potential_energy() for image in atoms]
    return max(energies) - energies[0], seconds, bool(converged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="lifepo4_barriers_chgnet")
    parser.add_argument("--hop", type=int, default=0)
    args = parser.parse_args()

    from insertflow.calculators.base import NebSettings
    from insertflow.flows.kinetics import neb_key
    from insertflow.sampling.hops import initial_path  # noqa: F401  (the pipeline's own path builder)

    recipe = load_recipe(args.recipe)
    recipe.barriers.hops = [args.hop]
    store = open_store(StoreConfig(type="memory"))
    first = run_recipe(recipe, store=store, stream=io.StringIO())
    (hop,) = first["hops"]
    (record,) = first["nebs"]
    print(f"{hop['label']}: pipeline barrier {hop['forward_barrier']:.4f} eV ({first['new_calculations']} relaxations)")

    store.docs_store.remove_docs({"output.content_key": record["content_key"]})
    start = time.perf_counter()
    second = run_recipe(recipe, store=store, stream=io.StringIO())
    pipeline_seconds = time.perf_counter() - start
    assert second["new_calculations"] == 0 and second["new_nebs"] == 1, "only the NEB should run again"

    from pymatgen.core import Structure

    initial = [Structure.from_dict(s) if isinstance(s, dict) else s for s in _initial_images(second, store)]
    settings = {k: v for k, v in second["neb"].items()}
    assert neb_key(initial, second["calculator"], NebSettings(**settings)) == record["content_key"]
    model = second["calculator"]["version"].split("model ")[-1]
    bare_barrier, bare_seconds, bare_converged = bare_ase_neb(initial, settings, model)

    third = run_recipe(recipe, store=store, stream=io.StringIO())
    print(f"bare ASE NEB barrier {bare_barrier:.4f} eV (converged {bare_converged})")
    print(f"barrier difference (pipeline - bare): {second['hops'][0]['forward_barrier'] - bare_barrier:+.4f} eV")
    print(
        f"time: pipeline NEB {pipeline_seconds:.1f} s, bare ASE NEB {bare_seconds:.1f} s, "
        f"ratio {pipeline_seconds / bare_seconds:.3f} (goal <= 1.05)"
    )
    print(f"rerun: {third['new_calculations']} new endpoint relaxations, {third['new_nebs']} new NEBs")


def _initial_images(doc: dict, store) -> list:
    """The initial path the pipeline's NEB started from, rebuilt from its stored relaxed endpoints."""
    from insertflow.sampling.hops import initial_path
    from insertflow.schemas import CalculationRecord

    by_label = {c["label"]: CalculationRecord.model_validate(c) for c in doc["calculations"]}
    label = doc["hops"][0]["label"]
    start = by_label[f"{label} start"].entry.structure
    end = by_label[f"{label} end"].entry.structure
    moving = max(range(len(start)), key=lambda i: start[i].distance(end[i]))
    return initial_path(start, end, doc["neb"]["images"], moving, None)


if __name__ == "__main__":
    main()
