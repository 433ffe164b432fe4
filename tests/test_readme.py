"""Every `nas ...` command in the README parses as written (options and arguments exist).

The commands themselves run in the other tests with smaller budgets (and `nas run` in full in
tests/test_pipeline.py); this test catches a README that drifts from the CLI.
"""

import re
import shlex
from pathlib import Path

import pytest
import typer

from nas.cli import app

README = Path(__file__).parents[1] / "README.md"


def _commands():
    text = README.read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if not line:
                continue
            words = shlex.split(line)
            if words[0] == "deepspeed":
                words = ["nas"] + words[words.index("nas") + 1:]
            if words[0] == "nas":
                yield line, words[1:]


COMMANDS = list(_commands())


def test_readme_has_the_two_setup_commands_first():
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks[0].split("\n")[:2] == ['pip install -e ".[test]"', "pytest -q"]
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]"' in ci and "\npytest -q\n" in ci


@pytest.mark.parametrize("line, args", COMMANDS, ids=[c[0][:60] for c in COMMANDS])
def test_readme_command_parses(line, args):
    group = typer.main.get_command(app)
    ctx = group.make_context("nas", list(args), resilient_parsing=False)
    # Walk down the sub-command chain and parse the leaf's options for real.
    cmd, rest = group, list(args)
    while hasattr(cmd, "resolve_command"):  # a group: descend
        name, sub, rest = cmd.resolve_command(ctx, rest)
        cmd = sub
        ctx = cmd.make_context(name, rest, parent=ctx)
    assert ctx.command is cmd
