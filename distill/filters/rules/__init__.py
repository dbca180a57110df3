"""Every filter rule: one module per rule (or per small family of rules), each registering
itself with `distill.filters.registry`. Importing this package imports them all."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
