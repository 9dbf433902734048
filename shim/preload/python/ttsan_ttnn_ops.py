"""Marks ttnn ops for ttsan's preload shim (libttsan_preload.so), without changing the program.

Every top-level ttnn op becomes a ttsan op (``ttsan_op_begin(name)`` before it,
``ttsan_op_end()`` after it) through ttnn's own pre/post operation hooks, so allocations are
attributed to the op that made them and guarded buffers are digested after every op.

Host transfers (``ttnn.from_torch``, ``ttnn.as_tensor``, ``ttnn.to_device``, ...) are not marked
by default: loading weights is then "before the first op" for ``--guard-preloaded``. Set
``TTSAN_TTNN_SKIP_OPS`` (comma-separated fully qualified names) to change the list.

:func:`guard` guards the device buffer behind a ttnn tensor by name (its digests are compared
around every op that does not write it).

Use it as a pytest plugin (``ttsan run --ttnn-ops -- pytest ...`` sets this up): ops are marked
only while a test function runs, so fixtures that load weights count as "before the first op".
Or call :func:`install` from a script. Without the shim in the process nothing happens.
"""

import ctypes
import os

DEFAULT_SKIP = (
    "ttnn.from_torch,ttnn.as_tensor,ttnn.to_device,ttnn.from_device,ttnn.to_torch,"
    "ttnn.allocate_tensor_on_device,ttnn.copy_host_to_device_tensor"
)

_begin = None
_end = None
_guard_address = None
_installed = []
_open = 0
_active = True
_skip = frozenset()


def _load():
    global _begin, _end, _guard_address, _skip
    if _begin is not None:
        return True
    process = ctypes.CDLL(None)
    try:
        _begin = process.ttsan_op_begin
        _end = process.ttsan_op_end
        _guard_address = process.ttsan_guard_address
    except AttributeError:
        _begin = _end = _guard_address = None
        return False
    _guard_address.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_char_p]
    _guard_address.restype = ctypes.c_int
    _begin.argtypes = [ctypes.c_char_p]
    _begin.restype = None
    _end.argtypes = []
    _end.restype = None
    names = os.environ.get("TTSAN_TTNN_SKIP_OPS", DEFAULT_SKIP)
    _skip = frozenset(n.strip() for n in names.split(",") if n.strip())
    return True


def _name(operation):
    return getattr(operation, "python_fully_qualified_name", None) or getattr(operation, "__name__", str(operation))


def _pre(operation, args, kwargs):
    global _open
    if not _active or _name(operation) in _skip:
        return None
    # ttnn only hooks top-level ops; an op still open here raised before its post hook ran.
    while _open > 0:
        _end()
        _open -= 1
    _begin(_name(operation).encode("utf-8", "replace"))
    _open += 1
    return None


def _post(operation, args, kwargs, output):
    global _open
    if _open > 0 and _name(operation) not in _skip:
        _end()
        _open -= 1
    return None


def _close_open():
    global _open
    while _open > 0:
        _end()
        _open -= 1


def install(ttnn=None):
    """Registers the hooks with ttnn for the rest of the process. Returns whether ops are marked."""
    if _installed:
        return True
    if not _load():
        return False
    if ttnn is None:
        import ttnn  # noqa: F811 - imported late so that loading this module never imports ttnn
    # The register_* functions are context managers; entering them without leaving keeps the
    # hooks for the life of the process.
    for cm in (ttnn.register_pre_operation_hook(_pre), ttnn.register_post_operation_hook(_post)):
        cm.__enter__()
        _installed.append(cm)
    return True


# tt-metal's BufferType values, by the names ttnn.BufferType prints.
_BUFFER_TYPES = {"DRAM": 0, "L1": 1, "L1_SMALL": 3, "TRACE": 4}


def guard(tensor, name=""):
    """Guards the device buffer behind ``tensor`` (a ttnn device tensor), named ``name`` in
    reports. Returns whether the shim knows the buffer."""
    if not _load():
        return False
    buffer_type = tensor.memory_config().buffer_type
    key = getattr(buffer_type, "name", None) or str(buffer_type).rsplit(".", 1)[-1]
    code = _BUFFER_TYPES.get(key)
    if code is None:
        return False
    return _guard_address(code, int(tensor.buffer_address()), name.encode("utf-8", "replace")) == 0


# pytest plugin hooks (plain functions, so this module needs no pytest import).


def pytest_configure(config):
    global _active
    _active = False
    try:
        install()
    except ImportError:
        pass


def pytest_runtest_call(item):
    global _active
    # Plugins named in PYTEST_PLUGINS run before pytest's own hook that calls the test.
    _active = True


def pytest_runtest_teardown(item, nextitem):
    global _active
    _close_open()
    _active = False
