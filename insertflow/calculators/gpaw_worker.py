"""Run one GPAW calculation under MPI: ``mpiexec -n N python -m insertflow.calculators.gpaw_worker``.

Every rank runs the calculation (GPAW's collective calls need all of them); rank 0 writes
``result.json`` in the current folder from ``request.json`` there.
"""

from __future__ import annotations

import json
from pathlib import Path

from pymatgen.core import Structure


def main() -> None:
    """Read the request, run it on every rank, write the doc on rank 0."""
    from gpaw.mpi import world

    from insertflow.calculators.gpaw import GPAWCalculator, run_gpaw

    request = json.loads(Path("request.json").read_text())
    calculator = GPAWCalculator.from_dict(request["calculator"])
    structure = Structure.from_dict(request["structure"])
    doc = run_gpaw(structure, calculator, request["task"], request["fixed_normal"])
    if world.rank == 0:
        Path("result.json").write_text(doc.to_json())


if __name__ == "__main__":
    main()
