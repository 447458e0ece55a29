"""Built-in methods. Importing this package registers them all."""

from __future__ import annotations

import importlib
import importlib.util
import logging

from . import core, mining  # noqa: F401  (imported to register their methods)

log = logging.getLogger("nearpos_runtime.methods")
OPTIONAL_MODULES = ("training",)
load_errors: dict[str, str] = {}

# Training methods live in their own module; a missing or broken one must not stop the
# runtime from serving everything else.
for _name in OPTIONAL_MODULES:
    _full = f"{__name__}.{_name}"
    if importlib.util.find_spec(_full) is None:
        log.info("no %s methods installed", _name)
        continue
    try:
        importlib.import_module(_full)
    except Exception as exc:  # noqa: BLE001
        load_errors[_name] = f"{type(exc).__name__}: {exc}"
        log.error("%s methods unavailable: %s: %s", _name, type(exc).__name__, exc)
