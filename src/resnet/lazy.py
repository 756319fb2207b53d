"""Attributes of a package imported on first use (PEP 562), so that `import resnet` and the command
line's start-up load no torch or matplotlib before a name needs them."""

from __future__ import annotations

import importlib
import importlib.util
import sys


def exports(package: str, table: dict[str, str]):
    """The module `__getattr__` of `package`: `table` maps each public name to the submodule that defines
    it (".inference"), imported when the name is first read; a submodule's own name imports it."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(importlib.import_module(table[name], package), name)
        elif importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # read once: later reads find it in the module
        return value

    return __getattr__
