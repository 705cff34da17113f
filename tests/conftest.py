import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from pymatgen.core import Structure

from insertflow.hosts import load_host
from insertflow.store import StoreConfig, open_store


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own INSERTFLOW_HOME and no store override from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("INSERTFLOW_HOME", str(home))
    monkeypatch.delenv("INSERTFLOW_STORE", raising=False)
    monkeypatch.delenv("INSERTFLOW_MONGODB_URI", raising=False)
    return home


@pytest.fixture
def licoo2() -> Structure:
    return load_host("LiCoO2").structure.get_primitive_structure()


@pytest.fixture
def memory_store():
    return open_store(StoreConfig(type="memory"))


@pytest.fixture
def embedded_store(tmp_path):
    return open_store(StoreConfig(type="embedded", path=str(tmp_path / "store.sqlite")))


#: Why GPAW tests cannot run here, or None when GPAW imports.
GPAW_MISSING = None
try:
    import gpaw  # noqa: F401
except ImportError:
    GPAW_MISSING = (
        "GPAW is not installed (apt-get install libxc-dev libopenblas-dev, then CC=g++ pip install -e '.[dft]')"
    )


def pytest_collection_modifyitems(config, items):
    """Skip the ``gpaw`` tests where GPAW is missing; fail instead where CI requires them."""
    if GPAW_MISSING is None:
        return
    gpaw_items = [item for item in items if "gpaw" in item.keywords]
    if gpaw_items and os.environ.get("INSERTFLOW_REQUIRE_GPAW") == "1":
        raise pytest.UsageError(f"INSERTFLOW_REQUIRE_GPAW=1 but {GPAW_MISSING}: {len(gpaw_items)} tests need it")
    for item in gpaw_items:
        item.add_marker(pytest.mark.skip(reason=GPAW_MISSING))
    config._insertflow_gpaw_skipped = len(gpaw_items)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line saying what was skipped and why."""
    skipped = getattr(config, "_insertflow_gpaw_skipped", 0)
    if skipped:
        terminalreporter.write_line(f"insertflow: skipped {skipped} GPAW tests: {GPAW_MISSING}")


@pytest.fixture
def li_co_o_phases(tmp_path, monkeypatch):
    """``relax(calculator) -> (entries, formation)``: Li, Co, O2 and their oxides relaxed in one local flow.

    ``formation(label, corrected=True)``: eV per formula unit against the calculator's own Li, Co and O2.
    """
    from jobflow import Flow, run_locally

    from insertflow.competing import competing_phases, task_for
    from insertflow.flows.calculation import CalculationMaker
    from insertflow.schemas import CalculationRecord

    monkeypatch.chdir(tmp_path)  # atomate2 writes final_atoms_object.xyz in the job's folder

    def relax(calculator):
        phases = competing_phases({"Li", "Co", "O"})
        jobs = {
            k: CalculationMaker(calculator=calculator, label=k, task=task_for(k)).make(s) for k, s in phases.items()
        }
        store = open_store(StoreConfig(type="memory"))
        run_locally(Flow(list(jobs.values())), store=store, log=False)
        entries = {
            k: CalculationRecord.model_validate(store.get_output(j.uuid, which="last", load=True)).entry
            for k, j in jobs.items()
        }

        def formation(label: str, corrected: bool = True) -> float:
            entry = entries[label]
            composition, factor = entry.composition.get_reduced_composition_and_factor()
            per_unit = (entry.energy if corrected else entry.uncorrected_energy) / factor
            elemental = {"Li": "Li", "Co": "Co", "O": "O2"}
            return per_unit - sum(n * entries[elemental[el.symbol]].energy_per_atom for el, n in composition.items())

        return entries, formation

    return relax


@pytest.fixture
def bare_voltage():
    """``voltage(ase_calculator, host)``: LiCoO2-type end-member voltage from the ASE calculator alone.

    ASE FIRE with a Frechet cell filter to 0.05 eV/A on the host's primitive cell, the cell without its
    Li, and bcc Li: no insertflow in between, the reference a pipeline voltage is checked against.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE
    from pymatgen.io.ase import AseAtomsAdaptor

    from insertflow.references import working_ion_reference

    def voltage(calculator, host: str = "LiCoO2") -> float:
        discharged = load_host(host).structure.get_primitive_structure()
        charged = discharged.copy()
        charged.remove_species(["Li"])
        energies = []
        for structure in (discharged, charged, working_ion_reference("Li")):
            atoms = AseAtomsAdaptor.get_atoms(structure)
            atoms.calc = calculator
            FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=0.05, steps=500)
            energies.append(atoms.get_potential_energy() / len(atoms))
        ions = discharged.composition["Li"]
        return -(energies[0] * len(discharged) - energies[1] * len(charged) - ions * energies[2]) / ions

    return voltage
