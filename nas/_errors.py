"""The one exception type for user mistakes.

The CLI turns a :class:`NasUsageError` into a single red line and exit code 2; any other exception
is a bug and may show a traceback.
"""


class NasUsageError(Exception):
    """Bad input from the user: the message names the problem and the fix, on one line."""

    exit_code = 2
