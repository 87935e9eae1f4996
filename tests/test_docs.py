"""Documentation cannot drift: every command and setting the program has is documented."""

from __future__ import annotations

from pathlib import Path

from node.cli import build_parser
from node.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
OPERATING = (ROOT / "docs" / "operating.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    parser = build_parser()
    names = []
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001
        if sub._subparsers is not None:  # noqa: SLF001 (nested: key show, config check)
            names += [f"{name} {inner}" for inner in sub._subparsers._group_actions[0].choices]  # noqa: SLF001
        else:
            names.append(name)
    return names


def test_every_command_is_in_the_operating_guide():
    missing = [c for c in _commands() if f"solidarity {c}`" not in OPERATING]
    assert not missing, f"commands missing from docs/operating.md: {missing}"


def test_every_setting_and_its_environment_variable_is_documented():
    missing = [s.key for s in SETTINGS if f"`{s.key}`" not in OPERATING or f"`{s.env}`" not in OPERATING]
    assert not missing, f"settings missing from docs/operating.md: {missing}"


def test_readme_holds_exactly_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert commands[0].endswith("solidarity demo")
    assert "pytest" in commands[1]
