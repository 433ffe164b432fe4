"""One generic registry for spaces, searchers and tasks, with entry-point discovery.

Like timm's ``register_model``: a decorator registers a named constructor, string names are used
everywhere, and one factory builds the object. Built-in plugins are registered by importing their
package (fairseq style: the package ``__init__`` imports every module); outside plugins declare an
entry point in the group ``nas.<kind>s`` and are loaded on first lookup.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points
from typing import Any, Callable

from ._errors import NasUsageError


class Registry:
    """Maps names to constructors of one kind of plugin (``space``, ``searcher``, ``task``,
    ``estimator``)."""

    def __init__(self, kind: str, group: str, builtin_package: str | None = None):
        self.kind = kind
        self.group = group
        self.builtin_package = builtin_package
        self._entries: dict[str, Any] = {}
        self._discovered = False

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        """Decorator: ``@register_space("bert")`` registers the decorated class or function."""

        def decorator(obj: Any) -> Any:
            self.add(name or getattr(obj, "name", None) or obj.__name__, obj)
            return obj

        return decorator

    def add(self, name: str, obj: Any) -> None:
        existing = self._entries.get(name)
        if existing is not None and not _same_object(existing, obj):
            raise ValueError(
                f"{self.kind} name '{name}' is already registered by "
                f"{_describe(existing)}; choose another name for {_describe(obj)}"
            )
        self._entries[name] = obj
        if isinstance(obj, type) and not getattr(obj, "name", None):
            try:
                obj.name = name  # so instances know their registered name
            except TypeError:  # built-in types are immutable
                pass

    def discover(self, force: bool = False) -> None:
        """Import the built-in package and load entry points (once, unless ``force``)."""
        if self._discovered and not force:
            return
        self._discovered = True
        if self.builtin_package:
            importlib.import_module(self.builtin_package)
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the whole tool
                warnings.warn(f"could not load {self.kind} plugin '{ep.name}' ({ep.value}): {exc}")
                continue
            if ep.name not in self._entries:
                self.add(ep.name, obj)

    def get(self, name: str) -> Any:
        self.discover()
        if name not in self._entries:
            raise NasUsageError(
                f"unknown {self.kind} '{name}'; choose from: {', '.join(self.names()) or '(none)'}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries


def _same_object(a: Any, b: Any) -> bool:
    # The same class re-imported (e.g. a module imported under two names) is not a clash.
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


SPACES = Registry("space", "nas.spaces", "nas.spaces")
SEARCHERS = Registry("searcher", "nas.searchers", "nas.searchers")
ESTIMATORS = Registry("estimator", "nas.estimators", "nas.estimators")

register_space = SPACES.register
register_searcher = SEARCHERS.register
register_estimator = ESTIMATORS.register


def get_space(name: str, preset: str = "tiny", **overrides: Any):
    """Build the search space ``name`` with the given preset (``tiny`` or ``base`` for built-ins)."""
    return SPACES.get(name)(preset=preset, **overrides)


def list_spaces() -> list[str]:
    return SPACES.names()


def get_searcher(name: str, *args: Any, **kwargs: Any):
    """Build the searcher ``name``; arguments go to its constructor."""
    return SEARCHERS.get(name)(*args, **kwargs)


def list_searchers() -> list[str]:
    return SEARCHERS.names()


def get_estimator(name: str, **kwargs: Any):
    """Build the zero-cost estimator ``name`` (``params``, ``synflow``, ``naswot``, ...)."""
    return ESTIMATORS.get(name)(**kwargs)


def list_estimators() -> list[str]:
    return ESTIMATORS.names()
