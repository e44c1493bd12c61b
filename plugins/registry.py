"""A registry of named plugins of one kind, found four ways, loaded only when asked for.

1. built in: a name -> "module:attr" table the owning package passes in;
2. installed: entry points in the group `splitbrain.<kind>s` of any installed
   distribution (`[project.entry-points."splitbrain.targets"] mine = "pkg.mod:Mine"`);
3. registered at run time: `registry.register(name, value)`, or the
   `registered(...)` context manager a test uses and undoes;
4. a reference: any name containing ":" is imported as "module:attr", so a
   plugin that is not installed still runs (`--target mypkg.node:MyTarget`).

Nothing is imported until it is loaded, so a plugin that fails to import
breaks only the runs that ask for it, with one line naming it and the error.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PluginError(Exception):
    """A plugin that cannot be had: unknown, or it failed to import. The message is one line."""


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None, group: str | None = None):
        self.kind = kind  # "target", "fault family", ...: used in messages
        self.group = group or f"splitbrain.{kind.replace(' ', '_')}s"
        self._refs: dict[str, str] = dict(builtins or {})
        self._values: dict[str, T] = {}  # registered at run time
        self._loaded: dict[str, T] = {}  # imported once asked for (not "registered": names() does not list them)

    # ---- what there is --------------------------------------------------

    def _installed(self) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Every name that can be loaded (without loading any of them), sorted."""
        return sorted({*self._refs, *self._installed(), *self._values})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (":" in name or name in self.names())

    # ---- loading --------------------------------------------------------

    def load(self, name: str) -> T:
        """The plugin called name (or named "module:attr"); PluginError when it cannot be had."""
        if name in self._values:
            return self._values[name]
        if name in self._loaded:
            return self._loaded[name]
        ref = self._refs.get(name) or self._installed().get(name)
        if ref is None and ":" in name:
            ref = name
        if ref is None:
            raise PluginError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none'}")
        value = _import_ref(ref, f"{self.kind} {name!r}")
        self._loaded[name] = value
        return value

    def load_all(self) -> dict[str, T]:
        """Every plugin that loads; one that fails is left out (its own runs will say why)."""
        out: dict[str, T] = {}
        for name in self.names():
            with contextlib.suppress(PluginError):
                out[name] = self.load(name)
        return out

    # ---- registering at run time ------------------------------------------

    def register(self, name: str, value: T) -> T:
        """Make value loadable as name (replacing any plugin of that name); returns value."""
        self._values[name] = value
        return value

    def unregister(self, name: str) -> None:
        self._values.pop(name, None)

    @contextlib.contextmanager
    def registered(self, name: str, value: T) -> Iterator[T]:
        """Register for the duration of a with-block (a test's own plugin), then restore what was there."""
        had = name in self._values
        old = self._values.get(name)
        self._values[name] = value
        try:
            yield value
        finally:
            if had:
                self._values[name] = old  # type: ignore[assignment]
            else:
                self._values.pop(name, None)


def _import_ref(ref: str, what: str) -> Any:
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"{what}: {ref!r} is not of the form package.module:Attr")
    try:
        value: Any = importlib.import_module(module_name)
    except Exception as e:  # any import failure is the plugin's, never the harness's
        where = "" if f"{ref!r}" in what else f" ({ref})"  # a "module:attr" name is its own reference
        raise PluginError(f"{what}{where} failed to import: {type(e).__name__}: {_one_line(e)}") from e
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise PluginError(f"{what}: module {module_name} has no {attr!r}") from None
    return value


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else ""
