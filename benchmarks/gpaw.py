"""GPAW through insertflow over bare GPAW for the same statics, and GPAW's cost per atom x k-point.

Bare: ``gpaw.GPAW`` with the parameters insertflow would pass (``gpaw_parameters``), energy,
forces, stress and moments read through ASE, and the same spin- and m-projected PDOS through
GPAW's ``DOSCalculator`` (equal outputs on both sides). Pipeline: insertflow's reuse-aware static
jobs (content key, claim, record with band descriptors) run by jobflow on a fresh embedded store.
Both sides run in this process, interleaved, in one run; the energies must agree to 1e-6 eV.
Target: ratio <= 1.05.

Usage: python benchmarks/gpaw.py [--repeats 2]
"""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
# this file is named gpaw.py: drop its folder from the path, or "import gpaw" would import it
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse
import tempfile
import time
import warnings
from pathlib import Path

warnings.simplefilter("ignore")

import numpy as np
from gpaw import GPAW
from gpaw.dos import DOSCalculator
from jobflow import Flow, run_locally
from pymatgen.io.ase import AseAtomsAdaptor

from insertflow.calculators import get_calculator
from insertflow.calculators.gpaw import DOS_STEP, ORBITALS
from insertflow.flows.calculation import CalculationMaker
from insertflow.hosts import load_host
from insertflow.references import working_ion_reference
from insertflow.store import StoreConfig, open_store

SETTINGS = {"ecut": 350.0}


def cases():
    """(name, structure, k-point density): 1 to 4 atoms, 4 to 216 k-points in the full zone."""
    licoo2 = load_host("LiCoO2").structure.get_primitive_structure()
    lithium = working_ion_reference("Li")
    return [
        ("Li k1.5", lithium, 1.5),
        ("Li k3.0", lithium, 3.0),
        ("LiCoO2 k1.0", licoo2, 1.0),
        ("LiCoO2 k2.0", licoo2, 2.0),
    ]


def bare(structure, calculator, folder):
    """Plain GPAW and ASE: energy, forces, stress, moments, site potentials and the same PDOS as the pipeline."""
    parameters = calculator.gpaw_parameters(structure)
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.set_initial_magnetic_moments(calculator.initial_magmoms(structure))
    atoms.calc = GPAW(**parameters, txt=str(folder / "bare.txt"))
    energy = atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_stress()
    if parameters["spinpol"]:
        atoms.get_magnetic_moments()
    atoms.calc.get_atomic_electrostatic_potentials()
    dos = DOSCalculator.from_calculator(atoms.calc, shift_fermi_level=False)
    low, high, efermi = dos.eig_skn.min(), dos.eig_skn.max(), atoms.calc.get_fermi_level()
    grid = np.arange(low - 3.0, min(high, efermi + 8.0) + DOS_STEP, DOS_STEP)  # the pipeline's grid
    spins = [0, 1] if dos.nspins == 2 else [None]
    for index in range(len(atoms)):
        for l_value in sorted({int(v) for v in dos.setups[index].l_j} & set(ORBITALS)):
            for m in range(2 * l_value + 1):
                for spin in spins:
                    dos.raw_pdos(grid, a=index, l=l_value, m=m, spin=spin, width=calculator.dos_width)
    irreducible = len(atoms.calc.get_ibz_k_points())
    return energy, irreducible


def pipeline(structure, calculator, store):
    """One reuse-aware static through jobflow; its recorded energy."""
    job = CalculationMaker(calculator=calculator, label="bench", task="static", study="bench").make(structure)
    responses = run_locally(Flow([job]), store=store, log=False, ensure_success=True)
    record = [r[1].output for r in responses.values() if getattr(r[1].output, "entry", None) is not None][-1]
    return record.entry.energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats per case (best of)")
    args = parser.parse_args()
    rows, totals = [], {"bare": 0.0, "pipeline": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        for name, structure, density in cases():
            calculator = get_calculator("gpaw", {**SETTINGS, "kpoint_density": density})
            best = {"bare": float("inf"), "pipeline": float("inf")}
            for repeat in range(args.repeats):
                start = time.perf_counter()
                e_bare, irreducible = bare(structure, calculator, folder)
                best["bare"] = min(best["bare"], time.perf_counter() - start)
                store = open_store(StoreConfig(type="embedded", path=str(folder / f"s{repeat}-{name}.sqlite")))
                start = time.perf_counter()
                e_pipe = pipeline(structure, calculator, store)
                best["pipeline"] = min(best["pipeline"], time.perf_counter() - start)
                assert abs(e_bare - e_pipe) < 1e-6, (name, e_bare, e_pipe)
            mesh = calculator.kpoint_mesh(structure)
            per = best["bare"] / (len(structure) * irreducible)
            rows.append((name, len(structure), mesh, irreducible, best["bare"], best["pipeline"], per))
            for side in totals:
                totals[side] += best[side]
            print(f"{name}: bare {best['bare']:.1f} s, pipeline {best['pipeline']:.1f} s", flush=True)
    print()
    header = ("case", "atoms", "mesh", "IBZ k", "bare s", "pipe s", "ratio", "s/(atom k)")
    print("{:<13} {:>5} {:>10} {:>6} {:>7} {:>7} {:>6} {:>10}".format(*header))
    for name, atoms, mesh, irreducible, t_bare, t_pipe, per in rows:
        print(
            f"{name:<13} {atoms:>5} {'x'.join(map(str, mesh)):>10} {irreducible:>6} {t_bare:>7.1f} {t_pipe:>7.1f} "
            f"{t_pipe / t_bare:>6.3f} {per:>10.3f}"
        )
    print(f"\npipeline / bare over all statics: {totals['pipeline'] / totals['bare']:.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
