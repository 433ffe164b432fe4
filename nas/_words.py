"""Small vocabularies said once: which metric names are minimised, and how booleans are written."""

from __future__ import annotations

from typing import Any

# A metric (or table column) whose name holds one of these words is minimised; others maximised.
MINIMIZE_WORDS = ("loss", "error", "err", "latency", "time", "params", "flops", "macs")

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def minimized(name: str) -> bool:
    """Is the metric ``name`` one to minimise (a loss, an error, a time, a cost)?"""
    name = name.lower()
    return any(w in name for w in MINIMIZE_WORDS)


_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}


def parse_count(text: str | None, flag: str) -> float | None:
    """``"1.5M"`` -> 1500000.0 (suffixes k, M, G), for --max-params/--max-macs."""
    import re

    from nas._errors import NasUsageError

    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgb]?)\s*", text.lower())
    if not match:
        raise NasUsageError(f"{flag} '{text}' is not a number; write e.g. 1500000 or 1.5M")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def check_known(given: Any, known: Any, what: str, where: str = "", choices: str = "choose from") -> None:
    """Refuse keys of ``given`` that are not in ``known``, in one line:
    ``unknown <what> a, b<where>; <choices>: x, y, z``."""
    bad = sorted(set(given) - set(known))
    if bad:
        from nas._errors import NasUsageError

        raise NasUsageError(f"unknown {what} {', '.join(bad)}{where}; {choices}: {', '.join(sorted(known))}")


def parse_bool(text: str | None, default: bool | None = None) -> bool | None:
    """``"yes"``/``"on"``/``"1"``/``"true"`` -> True, the opposites -> False (any case, spaces
    ignored); anything else (and None) -> ``default``."""
    word = (text or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return default
