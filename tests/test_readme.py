"""The README's two set-up commands are the ones CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_exactly_two_setup_commands_torch_first():
    commands = setup_commands()
    assert len(commands) == 2
    for command in commands:
        assert "\n" not in command.strip()
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")
    assert commands[0].endswith("insertflow run workflows/licoo2_chgnet.yaml")
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command():
    assert setup_commands()[1] in (ROOT / ".ci" / "run").read_text()
