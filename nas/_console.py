"""The two rich consoles every stage prints through (stdout for results, stderr for bars and notes).

markup=False: text is printed literally, so an arch, a path or an error message holding "[/red]"
is shown as written instead of being read as rich markup (which raised MarkupError). Style with
``style=`` or :class:`rich.text.Text`, never with markup in strings.
"""

from __future__ import annotations

from rich.console import Console

console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def print_error(message: str, label: str = "error:", style: str = "red") -> None:
    """One line on stderr: a red label, then ``message`` verbatim (no markup, no highlighting)."""
    from rich.text import Text

    err_console.print(Text.assemble((label, style), " ", message), highlight=False, soft_wrap=True)
