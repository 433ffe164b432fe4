"""Entry point of the ``nas`` command (and ``python -m nas``).

Usage errors (:class:`NasUsageError`, click's own) end in one red line and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

try:  # typer >= 0.20 vendors its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

from nas.cli._app import app, err_console, print_error, space_app
from nas._errors import NasUsageError

# The command table, in the order of the data flow (``nas --help`` lists them so): command ->
# module of nas/cli/ holding ``<last word>_command``. Each is a thin typer function over a public
# Python function; the modules import torch, DeepSpeed and the plugins inside the functions, so
# --help stays fast. "space show" is the command show of the group space.
COMMANDS = {
    "spaces": "_spaces", "tasks": "_tasks", "train": "_train", "evaluate": "_evaluate", "search": "_search",
    "retrain": "_child", "export": "_child", "run": "_run", "rank": "_analysis", "interference": "_analysis",
    "searchers": "_search", "estimators": "_analysis", "space show": "_spaces", "space sample": "_spaces",
}
_GROUPS = {"": app, "space": space_app}

for _command, _module in COMMANDS.items():
    _group, _, _name = _command.rpartition(" ")
    _function = getattr(importlib.import_module(f"{__name__}.{_module}"), f"{_name}_command")
    _GROUPS[_group].command(_name)(_function)

def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="nas", standalone_mode=False)
    except NasUsageError as exc:
        print_error(str(exc))
        sys.exit(NasUsageError.exit_code)
    except click_exceptions.ClickException as exc:
        print_error(f"{exc.format_message()} (see `nas --help`)")
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted", style="red")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
