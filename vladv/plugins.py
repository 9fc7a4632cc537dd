"""The plugin manager: entry-point loading, validation, lookup and listing.

Every plugin, first-party (distribution ``vladv``) or third-party, is an entry point of group
``vladv`` pointing at a module with ``@vladv.hookimpl`` functions. A plugin that fails to import or
whose hook raises is recorded as *broken* and everything else keeps working.

Environment:
- ``VLADV_DISABLE_PLUGINS=a,b``: skip these entry points (by entry-point or distribution name).
- ``VLADV_LOAD_PLUGINS=a,b``: load only these third-party plugins (empty: none); first-party
  plugins always load unless disabled.
"""

from __future__ import annotations

import difflib
import importlib.metadata as metadata
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from vladv import hookspecs
from vladv.errors import PluginError, UnknownPluginError
from vladv.types import SPEC_TYPES, PluginSpec

ENTRY_POINT_GROUP = "vladv"
FIRST_PARTY = "vladv"


@dataclass
class PluginInfo:
    """One registered (or broken, or disabled) plugin."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    status: str = "ok"  # ok | broken | disabled
    error: str | None = None
    specs: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)

    @property
    def first_party(self) -> bool:
        return self.distribution == FIRST_PARTY


@dataclass(frozen=True)
class SpecEntry:
    spec: PluginSpec
    plugin: PluginInfo


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


# What a plugin may raise while importing or answering a hook without taking vladv down with
# it: any Exception, and SystemExit (a plugin calling sys.exit()). KeyboardInterrupt propagates.
PLUGIN_FAILURES = (Exception, SystemExit)


def _short_error(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the plugin called sys.exit({exc.code!r})"
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


class PluginRegistry:
    """Loads plugins into a pluggy manager and serves their spec records by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._specs: dict[str, dict[str, SpecEntry]] | None = None
        self._conflicts: dict[tuple[str, str], list[PluginInfo]] = {}

    # -- loading ------------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import every entry point of group ``vladv`` (honouring the environment filters)."""
        disabled = set(_env_list("VLADV_DISABLE_PLUGINS") or [])
        allowed = _env_list("VLADV_LOAD_PLUGINS")
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else None
            version = ep.dist.version if ep.dist is not None else None
            info = PluginInfo(name=ep.name, module=ep.value, distribution=dist, version=version)
            if ep.name in self.plugins:
                if self.plugins[ep.name].module == ep.value:
                    continue  # the same distribution seen twice on sys.path
                info.name = f"{dist}:{ep.name}"
            first_party = dist == FIRST_PARTY
            if ep.name in disabled or (dist and dist in disabled):
                info.status = "disabled"
            elif (
                not first_party
                and allowed is not None
                and not (ep.name in allowed or (dist and dist in allowed))
            ):
                info.status = "disabled"
            if info.status == "disabled":
                self.plugins[info.name] = info
                continue
            try:
                module = ep.load()
            except PLUGIN_FAILURES as exc:  # any import failure makes the plugin broken
                info.status, info.error = "broken", f"import failed: {_short_error(exc)}"
                self.plugins[info.name] = info
                continue
            self._register(module, info)
        self._specs = None

    def register(
        self,
        plugin: Any,
        name: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register an in-process plugin (a module, class or object with hookimpls)."""
        name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        module = getattr(plugin, "__module__", None) or getattr(plugin, "__name__", name)
        info = PluginInfo(name=name, module=str(module), distribution=distribution, version=version)
        if name in self.plugins:
            raise PluginError(f"a plugin named '{name}' is already registered")
        if self.name_of(plugin) is not None:
            raise PluginError(
                f"this plugin is already registered as '{self.name_of(plugin)}' "
                f"(e.g. through its entry point)"
            )
        self._register(plugin, info)
        self._specs = None
        if info.status == "broken":
            raise PluginError(f"plugin '{name}' is broken: {info.error}")
        return name

    def register_file(self, path: str | Path) -> str:
        """Import a one-off plugin from a ``.py`` file and register it."""
        path = Path(path)
        if not path.is_file():
            raise PluginError(f"plugin file not found: {path}")
        mod_name = f"vladv_local_{path.stem}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"plugin file {path} is not a Python (.py) file")
        module = importlib.util.module_from_spec(spec)
        try:
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        except PLUGIN_FAILURES as exc:
            sys.modules.pop(mod_name, None)
            raise PluginError(f"plugin file {path} failed to import: {_short_error(exc)}") from None
        name = self.register(module, name=f"file:{path.name}", distribution=str(path))
        self.specs("backbone")  # call its hooks now: a broken one is refused right away
        if self.plugins[name].status == "broken":
            error = self.plugins[name].error
            self.unregister(name)
            raise PluginError(f"plugin file {path} is broken: {error}")
        return name

    def unregister(self, name: str) -> None:
        """Remove a plugin registered under ``name``."""
        if name in self.plugins and self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._specs = None

    def _register(self, plugin: Any, info: PluginInfo) -> None:
        self.plugins[info.name] = info
        misnamed = _misnamed_hooks(self.pm, plugin)
        if misnamed:  # registering it would provide nothing and look "ok"
            info.status, info.error = "broken", misnamed
            return
        try:
            self.pm.register(plugin, name=info.name)
        except PLUGIN_FAILURES as exc:  # e.g. a hookimpl with a wrong signature
            info.status, info.error = "broken", f"registration failed: {_short_error(exc)}"

    def name_of(self, plugin: Any) -> str | None:
        """The name ``plugin`` (the same object) is registered under, or None."""
        return self.pm.get_name(plugin) if self.pm.is_registered(plugin) else None

    # -- specs --------------------------------------------------------------------------------
    def _collect(self) -> dict[str, dict[str, SpecEntry]]:
        specs: dict[str, dict[str, SpecEntry]] = {kind: {} for kind in hookspecs.HOOKS}
        self._conflicts = {}
        for info in self.plugins.values():
            info.specs = []
        for kind, hook_name in hookspecs.HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                info = self.plugins.get(impl.plugin_name)
                if info is None or info.status != "ok":
                    continue
                try:
                    records = list(impl.function() or [])
                    for rec in records:
                        if not isinstance(rec, SPEC_TYPES[kind]):
                            raise TypeError(
                                f"{hook_name} returned {type(rec).__name__}, "
                                f"expected {SPEC_TYPES[kind].__name__}"
                            )
                except PLUGIN_FAILURES as exc:  # a broken hook must not break vladv
                    info.status, info.error = "broken", f"{hook_name} failed: {_short_error(exc)}"
                    continue
                for rec in records:
                    if rec.name in specs[kind]:
                        self._conflicts.setdefault((kind, rec.name), [specs[kind][rec.name].plugin])
                        self._conflicts[(kind, rec.name)].append(info)
                        continue
                    specs[kind][rec.name] = SpecEntry(rec, info)
                    info.specs.append((kind, rec.name))
        # plugins that broke mid-way must not leave half their specs behind
        for kind in specs:
            specs[kind] = {n: e for n, e in specs[kind].items() if e.plugin.status == "ok"}
        return specs

    def specs(self, kind: str) -> dict[str, SpecEntry]:
        """All working specs of ``kind`` by name (conflicting names excluded)."""
        if kind not in hookspecs.HOOKS:
            raise ValueError(f"unknown plugin kind {kind!r}")
        if self._specs is None:
            self._specs = self._collect()
        return {n: e for n, e in self._specs[kind].items() if (kind, n) not in self._conflicts}

    @property
    def conflicts(self) -> dict[tuple[str, str], list[PluginInfo]]:
        self.specs("backbone")
        return dict(self._conflicts)

    def get(self, kind: str, name: str) -> PluginSpec:
        """The spec of ``kind`` called ``name``; a clear error if unknown or conflicting."""
        entries = self.specs(kind)
        if name in entries:
            return entries[name].spec
        if (kind, name) in self._conflicts:
            who = " and ".join(
                f"{p.name} ({p.distribution or 'in-process'})"
                for p in self._conflicts[(kind, name)]
            )
            raise PluginError(
                f"{kind} '{name}' is provided by both {who}; uninstall one or "
                f"disable it with VLADV_DISABLE_PLUGINS"
            )
        raise UnknownPluginError(kind, name, entries)

    def plugin_of(self, kind: str, name: str) -> PluginInfo:
        self.get(kind, name)
        return self.specs(kind)[name].plugin

    def broken(self) -> list[PluginInfo]:
        self.specs("backbone")
        return [p for p in self.plugins.values() if p.status == "broken"]


def _misnamed_hooks(pm: pluggy.PluginManager, plugin: Any) -> str | None:
    """A one-line error when ``plugin`` marks a function that is not a vladv hook (a misspelt
    hook name) or names a function after a hook without marking it ``@vladv.hookimpl``."""
    hooks = sorted(hookspecs.HOOKS.values())
    problems = []
    for attr in sorted(dir(plugin)):
        if not attr.startswith("vladv_"):
            continue
        try:
            value = getattr(plugin, attr)
        except PLUGIN_FAILURES:
            continue
        if not callable(value):
            continue
        marked = pm.parse_hookimpl_opts(plugin, attr) is not None
        if marked and attr not in hooks:
            close = difflib.get_close_matches(attr, hooks, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (hooks: {', '.join(hooks)})"
            problems.append(f"{attr} is not a vladv hook{hint}")
        elif not marked and attr in hooks:
            problems.append(f"{attr} is not marked @vladv.hookimpl")
    return "; ".join(problems) or None


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, loading entry points on first use."""
    global _registry
    if _registry is None:
        registry = PluginRegistry()
        registry.load_entry_points()
        _registry = registry
    return _registry


def reset_registry() -> None:
    """Forget the process-wide registry (the next :func:`get_registry` reloads entry points)."""
    global _registry
    _registry = None


def get_spec(kind: str, name: str) -> PluginSpec:
    """Shorthand for ``get_registry().get(kind, name)``."""
    return get_registry().get(kind, name)


def plugin_version(kind: str, name: str) -> dict[str, str | None]:
    """Distribution and version of the plugin providing ``kind`` ``name`` (for records)."""
    info = get_registry().plugin_of(kind, name)
    return {"plugin": info.name, "distribution": info.distribution, "version": info.version}
