"""Pipeline overhead: insertflow wall time / bare CHGNet time for the same 10 relaxations.

Bare: one CHGNet model, ASE FIRE + FrechetCellFilter, the same fmax and step limit, in a
loop. Pipeline: insertflow's reuse-aware calculation jobs (content keys, atomate2 makers,
records) run by jobflow on a fresh embedded store. Both in this one process, one run.
Target: ratio <= 1.05.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib
import io
import tempfile
import time
import warnings

warnings.simplefilter("ignore")

import torch
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from chgnet.model import CHGNet
from chgnet.model.dynamics import CHGNetCalculator as AseCHGNet
from jobflow import Flow, run_locally
from pymatgen.io.ase import AseAtomsAdaptor

from insertflow.calculators import get_calculator
from insertflow.flows.calculation import CalculationMaker
from insertflow.hosts import load_host
from insertflow.progress import ProgressReporter, reporting
from insertflow.store import StoreConfig, open_store

FMAX, STEPS = 0.05, 500
REPEATS = 3


def structures():
    """10 distinct LiCoO2-derived cells: 5 volume strains of LiCoO2 and of CoO2."""
    base = load_host("LiCoO2").structure.get_primitive_structure()
    out = []
    for remove_li in (False, True):
        for scale in (0.96, 0.98, 1.0, 1.02, 1.04):
            s = base.copy()
            if remove_li:
                s.remove_species(["Li"])
            s.scale_lattice(s.volume * scale)
            out.append(s)
    return out


def bare(structs):
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(io.StringIO()):
        calc = AseCHGNet(model=CHGNet.load(model_name="0.3.0", verbose=False))
    energies = []
    for s in structs:
        atoms = AseAtomsAdaptor.get_atoms(s)
        atoms.calc = calc
        FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=FMAX, steps=STEPS)
        energies.append(atoms.get_potential_energy())
    return energies


def atomate2_alone(structs):
    """The same CHGNet makers insertflow uses, as plain jobflow jobs: no keys, no records."""
    from insertflow.calculators.chgnet import CHGNetRelaxMaker

    maker = CHGNetRelaxMaker(steps=STEPS, relax_kwargs={"fmax": FMAX}, optimizer_kwargs={"optimizer": "FIRE"})
    jobs = [maker.make(s) for s in structs]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(StoreConfig(type="embedded", path=f"{tmp}/bench.sqlite"))
        run_locally(Flow(jobs), store=store, root_dir=tmp, create_folders=True, log=False)


def pipeline(structs):
    calculator = get_calculator("chgnet", {"fmax": FMAX, "steps": STEPS})
    jobs = [
        CalculationMaker(calculator=calculator, label=f"s{i}", study="bench").make(s) for i, s in enumerate(structs)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(StoreConfig(type="embedded", path=f"{tmp}/bench.sqlite"))
        with reporting(ProgressReporter({"calculations": len(structs)}, io.StringIO())):
            responses = run_locally(Flow(jobs), store=store, root_dir=tmp, create_folders=True, log=False)
    return [responses[j.uuid][max(responses[j.uuid])].output for j in jobs]


def main():
    structs = structures()
    bare(structs[:1])  # warm up torch and the model files once for all
    times = {"bare": [], "atomate2": [], "pipeline": []}
    for _ in range(REPEATS):  # interleaved, minimum of each: 5 s runs are noisy to +-5 %
        for name, runner in (("bare", bare), ("atomate2", atomate2_alone), ("pipeline", pipeline)):
            t0 = time.perf_counter()
            result = runner(structs)
            times[name].append(time.perf_counter() - t0)
            if name == "bare":
                bare_energies = result
    t_bare, t_atomate2, t_pipe = (min(times[k]) for k in ("bare", "atomate2", "pipeline"))
    print(f"repeats: {REPEATS} interleaved; minimum of each reported")
    print(f"structures: {len(structs)} (LiCoO2 and CoO2 at 5 volume strains), fmax {FMAX} eV/A")
    print(f"bare CHGNet + ASE:        {t_bare:7.2f} s")
    print(f"atomate2 + jobflow alone: {t_atomate2:7.2f} s")
    print(f"insertflow pipeline:      {t_pipe:7.2f} s")
    print(f"overhead ratio pipeline/bare: {t_pipe / t_bare:.3f}  (target <= 1.05)")
    print(f"ratio atomate2+jobflow/bare:  {t_atomate2 / t_bare:.3f}")
    print(f"ratio pipeline/atomate2+jobflow (insertflow's own layer): {t_pipe / t_atomate2:.3f}")
    print(f"energy range (bare): {min(bare_energies):.3f} .. {max(bare_energies):.3f} eV")


if __name__ == "__main__":
    main()
