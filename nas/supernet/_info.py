"""What ``nas space show --json`` prints: a space's slots, options and size, and an arch's costs."""

from __future__ import annotations

import dataclasses
from typing import Optional

from nas._registry import get_space


def space_info(name: str, preset: str = "tiny", arch: Optional[str] = None) -> dict:
    """What ``nas space show --json`` prints."""
    space = get_space(name, preset=preset)
    info = space.describe()
    if arch is not None:
        parsed = space.parse(arch)
        info["arch"] = space.encode(parsed)
        cost = space.cost(parsed)  # None for tabular spaces without a cost table (nb201)
        if cost is not None:
            info.update(dataclasses.asdict(cost))
    return info
