"""Search spaces' common base: slots with named options, super-nets of :class:`Choice` modules,
children with inherited weights and their costs. The built-in spaces live in :mod:`nas.spaces`."""

from nas.supernet._info import space_info
from nas.supernet._space import Arch, Child, Choice, Cost, SearchSpace, Slot

__all__ = ["Arch", "Child", "Choice", "Cost", "SearchSpace", "Slot", "space_info"]
