"""Extract pymatgen-analysis-defects' Mg_Ga-in-GaN test data into ``mg_ga_gan.json`` (run once, by hand).

Source: github.com/materialsproject/pymatgen-analysis-defects, tests/test_files/ (BSD licence),
commit 39765d59de4ce0d8bb5732ea6f61332a8281f285. Usage:

    python make_mg_ga_gan.py <checkout>/tests/test_files

Only what a formation-energy diagram needs is kept: the total energies of the bulk and of each
charge state, the bulk VBM and gap (from the bulk vasprun, as that package's tests take them),
the defect (its ``info.json``) and the competing-phase entries. Their LOCPOTs are not in the
stored snapshot; that package's own tests give these cells a Freysoldt correction of 0.
"""

import sys
from pathlib import Path

from monty.serialization import dumpfn, loadfn
from pymatgen.io.vasp import Vasprun

root = Path(sys.argv[1])
bulk = Vasprun(root / "Mg_Ga" / "bulk_sc" / "vasprun.xml.gz", parse_potcar_file=False)
band_structure = bulk.get_band_structure()
data = {
    "source": "materialsproject/pymatgen-analysis-defects@39765d59de4ce0d8bb5732ea6f61332a8281f285 tests/test_files",
    "bulk_energy": bulk.final_energy,
    "bulk_formula": bulk.final_structure.composition.formula,
    "vbm": band_structure.get_vbm()["energy"],
    "band_gap": band_structure.get_band_gap()["energy"],
    "charge_states": {},
    "defect": loadfn(root / "Mg_Ga" / "q=0" / "info.json.gz")["defect"],
    "stable_entries": loadfn(root / "stable_entries_Mg_Ga_N.json"),
}
for q in (-2, -1, 0, 1):
    run = Vasprun(root / "Mg_Ga" / f"q={q}" / "vasprun.xml.gz", parse_potcar_file=False)
    data["charge_states"][str(q)] = run.final_energy
dumpfn(data, Path(__file__).with_name("mg_ga_gan.json"), indent=1)
