"""The method registry: ``@method(name, params=Model)`` makes a function callable by clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic

from .context import CallContext
from .errors import InvalidParams, UnknownMethod

MethodFn = Callable[[CallContext, Any], Any]
ANY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    func: MethodFn
    params: type[pydantic.BaseModel] | None
    description: str
    inline: bool = False

    def params_schema(self) -> dict[str, Any]:
        if self.params is None:
            return dict(ANY_OBJECT_SCHEMA)
        return self.params.model_json_schema()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params_schema": self.params_schema(),
        }

    def validate(self, params: Any) -> Any:
        """The params model instance (or the raw dict when the method takes any object)."""
        if not isinstance(params, dict):
            raise InvalidParams(f"params must be a JSON object, got {type(params).__name__}")
        if self.params is None:
            return params
        try:
            return self.params.model_validate(params)
        except pydantic.ValidationError as exc:
            raise InvalidParams(format_validation_error(exc)) from None


_METHODS: dict[str, MethodSpec] = {}


def method(
    name: str,
    *,
    params: type[pydantic.BaseModel] | None = None,
    description: str = "",
    inline: bool = False,
) -> Callable[[MethodFn], MethodFn]:
    """Register ``func(ctx, params)`` under ``name``.

    ``params`` is a pydantic model (tensor fields typed ``TensorField``); None means the
    method takes any JSON object, passed as a dict. The return value may hold tensors.
    ``inline=True`` runs the method on the thread that received the request, with no hop
    to a worker: only for methods that take microseconds and never block (a slow one
    stalls every other call), and cancellation cannot reach them (docs/runtime.md).
    """
    if params is not None and not (
        isinstance(params, type) and issubclass(params, pydantic.BaseModel)
    ):
        raise TypeError(f"method {name!r}: params must be a pydantic BaseModel subclass")

    def register(func: MethodFn) -> MethodFn:
        existing = _METHODS.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(
                f"method {name!r} is registered twice ({existing.func.__module__} and "
                f"{func.__module__})"
            )
        doc = description or (func.__doc__ or "").strip().split("\n")[0]
        _METHODS[name] = MethodSpec(name, func, params, doc, inline)
        return func

    return register


def get_method(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        raise UnknownMethod(
            f"unknown method {name!r}; known: {', '.join(sorted(_METHODS))}"
        ) from None


def list_methods() -> list[MethodSpec]:
    return [_METHODS[n] for n in sorted(_METHODS)]


def format_validation_error(exc: pydantic.ValidationError) -> str:
    """One line per failing field: ``params.<path>: <why>`` (allowed values included)."""
    lines = []
    for err in exc.errors(include_url=False):
        path = "params" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.get("loc", ())
        )
        msg = err.get("msg", "invalid")
        if "input" in err and err.get("type") != "missing":
            got = err["input"]
            shown = f"a tensor {tuple(got.shape)}" if hasattr(got, "shape") else repr(got)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            msg += f" (got {shown})"
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)
