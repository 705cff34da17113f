"""CPU time per DOS calculation vs cell size for the shipped electronic-structure code, in one run.

    python benchmarks/descriptors.py

GFN1-xTB (tblite) single point + Mulliken-projected DOS + descriptors for LiCoO2 cells of
4, 16, 36 and 108 atoms (the 4-atom primitive cell repeated 1x1x1, 2x2x1, 3x3x1, 3x3x3; the
calculator's own supercell step is switched off with min_length 0). CPU time is
process time, so the number is comparable across loaded machines. VASP is not timed here:
it does not run on these machines.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time
import warnings

warnings.simplefilter("ignore")

from insertflow.analysis.descriptors import band_descriptors
from insertflow.calculators.xtb import XTBCalculator, run_tblite
from insertflow.hosts import load_host

REPEATS = {4: [1, 1, 1], 16: [2, 2, 1], 36: [3, 3, 1], 108: [3, 3, 3]}


def main() -> None:
    primitive = load_host("LiCoO2").structure.get_primitive_structure()
    calculator = XTBCalculator(min_length=0.0)
    print("GFN1-xTB (tblite), LiCoO2, Gamma point, projected DOS + descriptors")
    print(f"  {'atoms':>5} {'cpu s':>7} {'wall s':>7} {'gap eV':>7} {'O-2p centre':>12}")
    base_cpu = None
    for atoms, repeat in REPEATS.items():
        cell = primitive * repeat
        cpu, wall = time.process_time(), time.perf_counter()
        doc = run_tblite(cell, calculator.method, 0.0, calculator.smearing, calculator.electronic_temperature)
        outcome = calculator.outcome(doc)
        found = band_descriptors(outcome.dos, band_edges=outcome.band_edges)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        base_cpu = base_cpu or cpu
        print(
            f"  {atoms:5d} {cpu:7.2f} {wall:7.2f} {found.band_gap:7.2f} {found.anion_p_centre:12.2f}"
            f"   (x{cpu / base_cpu:.0f} the 4-atom cost)"
        )


if __name__ == "__main__":
    main()
