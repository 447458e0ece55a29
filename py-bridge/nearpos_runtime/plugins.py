"""Plugin discovery through the ``nearpos.plugins`` entry-point group (docs/plugins.md)."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pydantic

from .errors import InvalidParams

GROUP = "nearpos.plugins"
REQUIRED_ATTRS = ("name", "version", "description", "config_class", "miner", "wrap")
log = logging.getLogger("nearpos_runtime.plugins")
# Stands for every pytorch-metric-learning loss class in hello's plugin ``losses``.
PML_PATTERN = "pml:*"
# What a loss factory raises for a bad name or bad kwargs.
REFUSED = (TypeError, ValueError, KeyError, AttributeError)


@dataclass(frozen=True)
class LossFields:
    """Where a method's params hold the loss name, its kwargs and the sampler config:
    each refusal of :meth:`LoadedPlugin.build_loss` names one of them."""

    name: str
    config: str
    sampler_config: str


def given_options(validated: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The validated values of the options the caller gave: the plugin fills in its own
    defaults (a full config would state ``negatives="all"`` explicitly, which the
    ``semihard`` sampler rightly refuses)."""
    return {k: v for k, v in validated.items() if k in given}


def matches(name: str, names: list[str]) -> bool:
    """``name`` is one of ``names``, where an entry ending in ``*`` is a prefix pattern."""
    return any(name.startswith(n[:-1]) if n.endswith("*") else name == n for n in names)


@dataclass
class LoadedPlugin:
    name: str
    obj: Any
    module: str
    adapter: pydantic.TypeAdapter[Any]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": str(self.obj.version),
            "description": str(self.obj.description),
            "module": self.module,
            "config_schema": self.config_schema(),
        }
        losses = self.loss_names()
        if losses is not None:
            out["losses"] = losses
        return out

    def config_schema(self) -> dict[str, Any]:
        """The config's JSON schema; a dataclass config refuses unknown keys (validate_config
        does), so its schema says so and a suite check (nearpos bench) catches a typo before
        any run starts."""
        schema = self.adapter.json_schema()
        if dataclasses.is_dataclass(self.obj.config_class):
            schema.setdefault("additionalProperties", False)
        return schema

    def loss_names(self) -> list[str] | None:
        """The loss names this sampler takes, as hello sends them and every check uses them:
        ``list_losses()`` plus the pattern ``pml:*`` when it lists pytorch-metric-learning
        losses (any PML class name then passes the name check and ``create_loss`` decides).
        None when the plugin offers no list."""
        try:
            names = self.list_losses()
        except Exception as exc:  # a broken hook must not break hello
            log.warning("plugin %s: list_losses failed: %s: %s", self.name, type(exc).__name__, exc)
            return None
        if names is None:
            return None
        if any(n.startswith("pml:") for n in names) and PML_PATTERN not in names:
            names.append(PML_PATTERN)
        return names

    def validate_config(self, config: Any, where: str = "params.config") -> dict[str, Any]:
        """The full config (defaults filled in) as a dict; InvalidParams naming bad fields."""
        if not isinstance(config, dict):
            raise InvalidParams(f"{where} must be an object, got {type(config).__name__}")
        cls = self.obj.config_class
        if dataclasses.is_dataclass(cls):
            allowed = [f.name for f in dataclasses.fields(cls)]
            unknown = sorted(set(config) - set(allowed))
            if unknown:
                raise InvalidParams(
                    f"{where}: unknown option(s) {', '.join(unknown)} for sampler {self.name!r}; "
                    f"allowed: {', '.join(allowed)}"
                )
        try:
            value = self.adapter.validate_python(config)
        except pydantic.ValidationError as exc:
            details = "; ".join(
                f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise InvalidParams(details) from None
        dumped = self.adapter.dump_python(value)
        return dumped if isinstance(dumped, dict) else dict(config)

    def create_loss_fn(self, where: str = "params.loss") -> Callable[..., Any]:
        """The plugin's loss factory: its ``create_loss`` attribute, else ``<package>.losses``."""
        hook = getattr(self.obj, "create_loss", None)
        if callable(hook):
            return hook
        package = self.module.split(".")[0]
        try:
            losses = importlib.import_module(f"{package}.losses")
        except ImportError as exc:
            raise InvalidParams(
                f"{where}: sampler {self.name!r} offers no losses ({package}.losses: {exc})"
            ) from None
        factory = getattr(losses, "create_loss", None)
        if not callable(factory):
            raise InvalidParams(f"{where}: {package}.losses has no create_loss()")
        return factory

    def list_losses(self) -> list[str] | None:
        hook = getattr(self.obj, "list_losses", None)
        if not callable(hook):
            try:
                hook = importlib.import_module(f"{self.module.split('.')[0]}.losses").list_losses
            except (ImportError, AttributeError):
                return None
        return [str(n) for n in hook()]

    def build_loss(
        self,
        name: str,
        loss_config: dict[str, Any],
        sampler_config: dict[str, Any],
        fields: LossFields,
    ) -> Any:
        """``wrap(create_loss(name, **loss_config), sampler_config)``: the one loss factory of
        ``train``, ``loss`` and the train config check. ``sampler_config`` holds checked
        options (:meth:`validate_config`); every refusal is InvalidParams naming its field."""
        known = self.loss_names()
        if known is not None and not matches(name, known):
            raise InvalidParams(f"{fields.name}: unknown loss {name!r}; known: {', '.join(known)}")
        create_loss = self.create_loss_fn(fields.name)
        try:
            base = create_loss(name, **loss_config)
        except REFUSED as exc:
            # The name's fault when the loss cannot be built even without options.
            try:
                create_loss(name)
            except REFUSED:
                raise InvalidParams(f"{fields.name}: {exc}") from None
            raise InvalidParams(f"{fields.config}: {exc} (loss {name!r})") from None
        try:
            self.obj.miner(sampler_config)
        except (TypeError, ValueError) as exc:
            raise InvalidParams(f"{fields.sampler_config}: {exc}") from None
        try:
            return self.obj.wrap(base, sampler_config)
        except (TypeError, ValueError) as exc:
            raise InvalidParams(f"{fields.name}: {exc}") from None


@dataclass
class PluginIndex:
    plugins: dict[str, LoadedPlugin] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)

    def get(self, name: str, where: str = "params.sampler") -> LoadedPlugin:
        plugin = self.plugins.get(name)
        if plugin is None:
            known = ", ".join(sorted(self.plugins)) or "none installed"
            broken = [e["name"] for e in self.errors]
            extra = f" (failed to load: {', '.join(broken)})" if broken else ""
            raise InvalidParams(f"{where}: unknown sampler {name!r}; known: {known}{extra}")
        return plugin

    def describe(self) -> list[dict[str, Any]]:
        return [self.plugins[n].describe() for n in sorted(self.plugins)]


def _load(ep: metadata.EntryPoint) -> LoadedPlugin:
    obj = ep.load()
    missing = [a for a in REQUIRED_ATTRS if not hasattr(obj, a)]
    if missing:
        raise TypeError(f"plugin object lacks {', '.join(missing)} (see docs/plugins.md)")
    if obj.name != ep.name:
        raise ValueError(f"plugin name {obj.name!r} differs from its entry-point name")
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(obj.config_class)
    adapter.json_schema()  # fail here, not in hello, if the config cannot be described
    return LoadedPlugin(ep.name, obj, ep.module, adapter)


def discover() -> PluginIndex:
    """Load every entry point of the group; failures go to ``errors``, never raise."""
    index = PluginIndex()
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in index.plugins or any(e["name"] == ep.name for e in index.errors):
            index.errors.append({"name": ep.name, "error": f"duplicate plugin name ({ep.value})"})
            continue
        try:
            index.plugins[ep.name] = _load(ep)
        except Exception as exc:  # a broken plugin must not stop the runtime
            index.errors.append({"name": ep.name, "error": f"{type(exc).__name__}: {exc}"})
            log.warning("plugin %s failed to load: %s: %s", ep.name, type(exc).__name__, exc)
    return index


_index: PluginIndex | None = None
_index_lock = threading.Lock()


def plugin_index() -> PluginIndex:
    """The runtime's plugin index, discovered once."""
    global _index
    with _index_lock:
        if _index is None:
            _index = discover()
        return _index
