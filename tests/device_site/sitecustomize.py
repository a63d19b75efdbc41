"""Imports as on the lent GPU machine: what it has, what the GPU bundle carries, nothing else.

Put first on PYTHONPATH by tests/test_gpu_check.py, so Python's ``site`` imports it at
start-up in the check's process and in its CPU child. A distribution that is neither in
``GPU_CHECK_ALLOWED`` (the machine's packages, the bundle's wheels and its cut model
packages) looks uninstalled, as it would there: its modules fail to import and its
metadata is not found (libraries probe optional dependencies both ways). The cut model
packages are taken from ``GPU_CHECK_SITE`` only. A dependency the bundle forgets fails
this test, not the few minutes of a lent GPU.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import os
import sys

_ALLOWED = set(os.environ.get("GPU_CHECK_ALLOWED", "").split(","))
_SITE = os.environ.get("GPU_CHECK_SITE", "")
_CUT = set(os.environ.get("GPU_CHECK_CUT", "").split(","))  # the model packages in _SITE


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class _LentMachineImports(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.owners = importlib.metadata.packages_distributions()

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        top = name.partition(".")[0]
        if top in _CUT:
            if name != top:
                return None  # found in the package's own folder, which is in _SITE
            spec = importlib.machinery.PathFinder.find_spec(name, [_SITE])
            if spec is None:
                raise ModuleNotFoundError(f"{name} is not in the bundle's site ({_SITE})", name=name)
            return spec
        owners = self.owners.get(top)
        if not owners or top in sys.stdlib_module_names:
            return None  # the standard library or this repository
        if any(_canonical(owner) in _ALLOWED for owner in owners):
            return None
        # as if not installed: availability probes (find_spec) answer no, imports fail
        raise ModuleNotFoundError(
            f"{name} ({', '.join(owners)}) is neither on the lent GPU machine nor in the bundle", name=name
        )


def _hide_distributions() -> None:
    """Metadata of a distribution the machine lacks is not found either."""
    find = importlib.machinery.PathFinder.find_distributions

    def find_distributions(*args, **kwargs):  # type: ignore[no-untyped-def]
        return (d for d in find(*args, **kwargs) if _canonical(d.metadata["Name"] or "") in _ALLOWED)

    importlib.machinery.PathFinder.find_distributions = staticmethod(find_distributions)  # type: ignore[method-assign]


if _SITE:
    sys.meta_path.insert(0, _LentMachineImports())  # reads every distribution's owners first
    _hide_distributions()
