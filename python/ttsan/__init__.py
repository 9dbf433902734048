"""ttsan, the device-memory sanitizer for Tenstorrent tt-metal, from Python.

* ``pytest --ttsan`` (the plugin in :mod:`ttsan.pytest_plugin`) runs a test session under the
  sanitizer and fails each test during which it found something (docs/python.md).
* :func:`op` and :func:`guard` mark ops and name guarded buffers through the shim's C ABI. They
  do nothing when the shim is not loaded, so code that calls them runs unchanged without ttsan.
* :func:`binary` and :func:`preload_library` locate the ``ttsan`` executable and
  ``libttsan_preload.so`` installed with this package.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import _abi

__all__ = ["GuardError", "__version__", "active", "binary", "guard", "op", "op_writes", "preload_library"]

__version__ = "0.1.0"

_BIN_DIR = Path(__file__).resolve().parent / "_bin"

# tt::tt_metal::BufferType (tt_metal/api/tt-metalium/buffer_types.hpp): DRAM 0, L1 1,
# SYSTEM_MEMORY 2, L1_SMALL 3, TRACE 4. SYSTEM_MEMORY is host memory, which ttsan does not track.
_BUFFER_TYPES = {"DRAM": 0, "L1": 1, "L1_SMALL": 3, "TRACE": 4}


class GuardError(RuntimeError):
    """The shim is loaded but does not know the buffer to guard (not live, or not a device buffer)."""


def active() -> bool:
    """Whether this process runs under ttsan's shim (``ttsan run`` or ``pytest --ttsan``)."""
    return _abi.present()


def binary() -> Path:
    """The ``ttsan`` executable installed with this package."""
    return _BIN_DIR / "ttsan"


def preload_library() -> Path:
    """``libttsan_preload.so`` installed with this package (next to :func:`binary`, where
    ``ttsan run`` looks for it first)."""
    return _BIN_DIR / "libttsan_preload.so"


@contextlib.contextmanager
def op(name: str) -> Iterator[None]:
    """Marks the block as an op named ``name``: allocations and frees inside it carry it, and
    findings name it as the culprit. Ops nest; a top-level op's end is where guarded buffers are
    digested and compared. Does nothing without the shim."""
    encoded = name.encode()
    if _abi.op_begin is None or _abi.op_end is None:
        yield
        return
    _abi.op_begin(encoded)
    try:
        yield
    finally:
        _abi.op_end()


def _buffer_type(value: Any) -> int:
    """tt-metal's BufferType as an int, from an int, a ttnn ``BufferType`` enum or its name."""
    if isinstance(value, int):
        return value
    # ttnn's BufferType binds tt-metal's enum; the 0.81.1 wheel's ttnn/decorators.py records a
    # tensor's `memory_config().buffer_type.value` as its buffer type.
    number = getattr(value, "value", None)
    if isinstance(number, int):
        return number
    name = getattr(value, "name", None) or str(value).rsplit(".", 1)[-1]
    if name not in _BUFFER_TYPES:
        raise ValueError(f"ttsan: cannot guard a buffer of type {value!r} (device types: {', '.join(_BUFFER_TYPES)})")
    return _BUFFER_TYPES[name]


def _pointer(value: Any) -> int:
    """A ``tt::tt_metal::Buffer*`` given as an int or a ctypes pointer."""
    if isinstance(value, int):
        return value
    if isinstance(value, ctypes.c_void_p):
        return value.value or 0
    kind = type(value).__name__
    raise TypeError(
        f"ttsan.guard: expected a ttnn tensor, a Buffer* (int or ctypes.c_void_p) or an address; got {kind}"
    )


def guard(tensor_or_buffer: Any, name: str, *, buffer_type: int | str | None = None) -> bool:
    """Guards a device buffer under ``name``: ttsan digests it at the start and end of every
    top-level op and reports a ``guard-corruption`` when an op that does not write it changed it.

    ``tensor_or_buffer`` is a ttnn tensor on device (guarded by ``buffer_address()`` and its
    memory config's buffer type), a ``tt::tt_metal::Buffer*`` (an int or ``ctypes.c_void_p``,
    e.g. ``mesh_buffer->get_backing_buffer()``), or with ``buffer_type`` a bank-local address.

    Returns True when guarded, False when the shim is not loaded (nothing to do). Raises
    :class:`GuardError` when the shim is loaded but knows no such live buffer: a guard that
    silently did not happen would make a clean report mean less than it says.
    """
    encoded = name.encode()
    if not _abi.present():
        return False
    if buffer_type is not None:
        if _abi.guard_address is None:
            return False
        rc = _abi.guard_address(_buffer_type(buffer_type), int(tensor_or_buffer), encoded)
    elif hasattr(tensor_or_buffer, "buffer_address"):
        if _abi.guard_address is None:
            return False
        kind = _buffer_type(tensor_or_buffer.memory_config().buffer_type)
        rc = _abi.guard_address(kind, int(tensor_or_buffer.buffer_address()), encoded)
    else:
        if _abi.guard is None:
            return False
        rc = _abi.guard(_pointer(tensor_or_buffer), encoded)
    if rc != 0:
        raise GuardError(f"ttsan.guard({name!r}): the shim knows no live device buffer there")
    return True


def op_writes(buffer: Any) -> bool:
    """Declares that the innermost open op writes ``buffer`` (a ``Buffer*``), so its guard may
    change across the op. Returns False without the shim or when no op is open."""
    if _abi.op_writes is None:
        return False
    return bool(_abi.op_writes(_pointer(buffer)) == 0)
