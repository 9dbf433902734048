"""The shim's C ABI (shim/preload/src/cabi.rs), looked up in the running process with ctypes.

The functions exist only when ``libttsan_preload.so`` was preloaded (``ttsan run -- CMD``, or
``pytest --ttsan``, which re-runs pytest that way): ``ctypes.CDLL(None)`` looks symbols up in the
whole process as ``dlsym(RTLD_DEFAULT, ...)`` does. Without the shim every lookup fails and the
Python API does nothing.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable

_PROCESS = ctypes.CDLL(None)


def _lookup(name: str, restype: Any, argtypes: list[Any]) -> Callable[..., Any] | None:
    fn: Any = getattr(_PROCESS, name, None)
    if fn is None:
        return None
    fn.restype = restype
    fn.argtypes = argtypes
    found: Callable[..., Any] = fn
    return found


op_begin = _lookup("ttsan_op_begin", None, [ctypes.c_char_p])
op_end = _lookup("ttsan_op_end", None, [])
guard = _lookup("ttsan_guard", ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p])
guard_address = _lookup("ttsan_guard_address", ctypes.c_int, [ctypes.c_int, ctypes.c_uint64, ctypes.c_char_p])
op_writes = _lookup("ttsan_op_writes", ctypes.c_int, [ctypes.c_void_p])
# Newer than the others: a shim without them still marks ops and guards.
next_op = _lookup("ttsan_next_op", ctypes.c_int64, [])
flush = _lookup("ttsan_flush", ctypes.c_int, [])


def present() -> bool:
    """Whether the shim is loaded into this process."""
    return op_begin is not None
