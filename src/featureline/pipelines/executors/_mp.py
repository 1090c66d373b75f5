"""A multiprocessing context whose new processes never re-run the user's `__main__`.

With the `forkserver` and `spawn` start methods, the parent sends each new process
"preparation data" (`multiprocessing.spawn.get_preparation_data`), which tells it to import the
parent's main script again, as `__mp_main__`. For a script without an
`if __name__ == "__main__":` guard that runs the whole script (and its pipeline) once more in
every worker, which fails with a `BrokenProcessPool`; in a notebook there is no file to import.
Featureline's workers need nothing from `__main__` (steps and values defined there are shipped
by value, with cloudpickle), so this context leaves the two `init_main_*` entries out.

How: each start method's standard `Popen._launch` is used unchanged, except that the name
`spawn` it looks up resolves to `_SpawnWithoutMain`, a view of `multiprocessing.spawn` whose
`get_preparation_data` drops those entries. No module of the standard library is patched, and
other users of multiprocessing in the process are not affected.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import sys
import types
from multiprocessing import spawn
from typing import Any

MAIN_ENTRIES = ("init_main_from_path", "init_main_from_name")


class _SpawnWithoutMain:
    """`multiprocessing.spawn`, minus the instruction to re-import the parent's `__main__`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(spawn, name)

    @staticmethod
    def get_preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = spawn.get_preparation_data(name)
        for key in MAIN_ENTRIES:
            data.pop(key, None)
        return data


_POPEN: dict[str, type] = {}


def _popen_without_main(method: str) -> type:
    """The standard library's Popen class for `method`, with `_launch` seeing `_SpawnWithoutMain`."""
    found = _POPEN.get(method)
    if found is None:
        name = (
            "popen_forkserver"
            if method == "forkserver"
            else "popen_spawn_win32"
            if sys.platform == "win32"
            else "popen_spawn_posix"
        )
        base = importlib.import_module(f"multiprocessing.{name}").Popen
        launch = base._launch
        names = {**launch.__globals__, "spawn": _SpawnWithoutMain()}
        rebound = types.FunctionType(
            launch.__code__, names, launch.__name__, launch.__defaults__, launch.__closure__
        )
        found = _POPEN[method] = type(
            "Popen", (base,), {"_launch": rebound, "__module__": __name__}
        )
    return found


# The process classes are pickled to the new process with it: they live at module level.
class SpawnProcess(mp.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _popen_without_main("spawn")(process_obj)


class SpawnContext(mp.context.SpawnContext):
    Process = SpawnProcess


if sys.platform != "win32":

    class ForkServerProcess(mp.context.ForkServerProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> Any:
            return _popen_without_main("forkserver")(process_obj)

    class ForkServerContext(mp.context.ForkServerContext):
        Process = ForkServerProcess


def context_without_main(method: str) -> Any:
    """A context like `multiprocessing.get_context(method)` ("forkserver" or "spawn") whose
    processes do not import the parent's `__main__`."""
    if method == "spawn":
        return SpawnContext()
    if method == "forkserver" and sys.platform != "win32":
        return ForkServerContext()
    raise ValueError(f"start method `{method}`: use `forkserver` or `spawn`")


__all__ = ["context_without_main"]
