"""Entry point of the ``nas`` command (and ``python -m nas``).

Usage errors (:class:`NasUsageError`, click's own) end in one red line and exit code 2.
"""

from __future__ import annotations

import sys

import importlib
import pkgutil

import typer

try:  # typer >= 0.20 vendors its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions

from ._cli_app import app, err_console, print_error
from ._errors import NasUsageError

# Every ``nas/_cli_*.py`` module adds its commands to ``app`` when imported.
_package = __name__.rsplit(".", 1)[0]
for _module in pkgutil.iter_modules(importlib.import_module(_package).__path__):
    if _module.name.startswith("_cli_") and _module.name != "_cli_app":
        importlib.import_module(f"{_package}.{_module.name}")


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
