"""The method registry: one name -> one package, imported only when asked for.

Every list of method names in the project (CLI choices, search spaces, ablation-spec validation)
comes from `method_names()`. A method is a subpackage of this package that defines ``METHOD``
(`mmsa_core.methods.base.Method`); it is found by listing the subpackages, without importing them.
Methods that live elsewhere (a lab's own package, a test's toy method) are named by module path in
the environment variable ``MMSA_METHOD_MODULES`` (comma-separated) — environment, not a call, so
that Ray workers, which inherit it, see the same registry as the driver — or with `register()`.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmsa_core.methods.base import Method

ENV_VAR = "MMSA_METHOD_MODULES"
_HELPERS = {"base", "space", "runtime", "blocks"}  # modules of this package that are not methods
_extra: dict[str, str] = {}  # name -> module path (register())
_loaded: dict[str, "Method"] = {}


@functools.cache  # the package's folder does not change while a process runs; RunConfig asks on every build
def _builtin() -> dict[str, str]:
    return {m.name: f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
            if m.ispkg and m.name not in _HELPERS}


def _from_env() -> dict[str, str]:
    out = {}
    for path in filter(None, (p.strip() for p in os.environ.get(ENV_VAR, "").split(","))):
        out[path.rsplit(".", 1)[-1]] = path
    return out


def _modules() -> dict[str, str]:
    return {**_builtin(), **_from_env(), **_extra}


def method_names() -> tuple[str, ...]:
    """Every registered method, sorted (built-in packages, $MMSA_METHOD_MODULES, register())."""
    return tuple(sorted(_modules()))


def register(module_path: str) -> str:
    """Register the method defined in `module_path` (it must define METHOD); returns its name."""
    method = _import(module_path, expected=None)
    _extra[method.name] = module_path
    _loaded[method.name] = method
    return method.name


def get_method(name: str) -> "Method":
    """The method called `name`; a clear error naming the registered ones otherwise."""
    if name in _loaded:
        return _loaded[name]
    modules = _modules()
    if name not in modules:
        raise ValueError(f"unknown method {name!r}; registered methods: {list(method_names())}")
    _loaded[name] = _import(modules[name], expected=name)
    return _loaded[name]


def _import(module_path: str, expected: str | None) -> "Method":
    module = importlib.import_module(module_path)
    method = getattr(module, "METHOD", None)
    if method is None:
        raise ValueError(f"module {module_path!r} defines no METHOD (a mmsa_core.methods.base.Method)")
    if expected is not None and method.name != expected:
        raise ValueError(f"module {module_path!r} defines method {method.name!r}, "
                         f"registered as {expected!r}: the names must agree")
    return method
