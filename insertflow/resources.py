"""Where the data shipped with insertflow (``inputs/``, ``workflows/``) lives."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """Return the shipped folder ``name`` (``inputs`` or ``workflows``).

    A wheel carries them inside the package; an editable install reads them from the
    repository root, beside the package.
    """
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"insertflow's shipped folder '{name}' is missing from {_PACKAGE_DIR}")


def builtin_hosts() -> dict[str, Path]:
    """Builtin host names (case as shipped) mapped to their CIF files."""
    return {path.stem: path for path in sorted((shipped_dir("inputs") / "hosts").glob("*.cif"))}
