"""The example tests' device: the real libtt_metal.so in mock mode (no Tenstorrent hardware),
driven through mock_mesh.cpp, a small C ABI this conftest compiles with g++ and loads with ctypes.

Where the tt-metal libraries come from: ``TTSAN_TTNN_ROOT`` (an unpacked ttnn wheel laid out by
scripts/fetch-ttnn), else the checkout's ``target/ttnn/root``. Without them (or without g++)
every test here is skipped with the reason, and fails instead under ``CI=true``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# tt::tt_metal::BufferType
DRAM = 0


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {why}", pytrace=False)
    pytest.skip(why)


def _runtime_root() -> Path | None:
    env = os.environ.get("TTSAN_TTNN_ROOT")
    root = Path(env) if env else HERE.parent.parent / "target" / "ttnn" / "root"
    return root if (root / "ttnn" / "build" / "lib" / "libtt_metal.so").is_file() else None


def _compile(root: Path, out_dir: Path) -> Path:
    lib = root / "ttnn" / "build" / "lib"
    out = out_dir / "libmock_mesh.so"
    cmd = [
        "g++",
        "-std=c++20",
        "-O1",
        "-shared",
        "-fPIC",
        "-o",
        str(out),
        str(HERE / "mock_mesh.cpp"),
        f"-L{lib}",
        "-ltt_metal",
        f"-Wl,-rpath,{lib}",
        f"-Wl,-rpath,{root / 'ttnn.libs'}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"g++ failed: {done.stderr}")
    return out


class Buffer:
    """A mesh buffer of the mock device."""

    def __init__(self, mesh: Mesh, handle: int) -> None:
        self._mesh = mesh
        self.handle = handle

    @property
    def address(self) -> int:
        """Bank-local address the real allocator gave it."""
        return int(self._mesh.lib.mm_address(self.handle))

    @property
    def backing(self) -> int:
        """Its ``tt::tt_metal::Buffer*`` (what ``ttsan.guard`` takes)."""
        return int(self._mesh.lib.mm_backing(self.handle))

    def free(self) -> None:
        self._mesh.lib.mm_free(self.handle)


class Mesh:
    """One mock Wormhole chip opened through the real tt-metal library."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def alloc(self, size: int, page_size: int = 2048, buffer_type: int = DRAM) -> Buffer:
        handle = self.lib.mm_alloc(size, page_size, buffer_type)
        if not handle:
            raise RuntimeError(f"allocation failed: {self.lib.mm_error().decode()}")
        return Buffer(self, handle)

    def place_circular_buffer(self, address: int, size: int) -> None:
        """Reports a program's static circular buffer at ``address`` on cores (0,0)-(3,1), as
        tt-metal does when it places a program's CBs (``GraphTracker::track_allocate_cb``)."""
        if self.lib.mm_place_cb(address, size) != 0:
            raise RuntimeError(self.lib.mm_error().decode())

    def release_circular_buffers(self) -> None:
        self.lib.mm_release_cbs()


def _load(path: Path) -> ctypes.CDLL:
    # ctypes' default RTLD_LOCAL, as Python imports ttnn: libtt_metal.so, loaded as the helper's
    # dependency, stays outside the global scope, and the shim finds it by its own handle.
    lib = ctypes.CDLL(str(path))
    lib.mm_error.restype = ctypes.c_char_p
    lib.mm_alloc.restype = ctypes.c_void_p
    lib.mm_alloc.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int]
    for name in ("mm_free", "mm_backing", "mm_address"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.mm_backing.restype = ctypes.c_void_p
    lib.mm_address.restype = ctypes.c_uint64
    lib.mm_place_cb.argtypes = [ctypes.c_uint64, ctypes.c_uint64]
    return lib


@pytest.fixture(scope="session")
def mesh() -> Iterator[Mesh]:
    root = _runtime_root()
    if root is None:
        _unavailable("the tt-metal library is missing: run scripts/fetch-ttnn or set TTSAN_TTNN_ROOT")
    if shutil.which("g++") is None:
        _unavailable("g++ is missing (needed to build the example device helper)")
    assert root is not None
    scratch = Path(tempfile.mkdtemp(prefix="ttsan-examples-"))
    # tt-metal's mock mode: the runtime root, no shared-memory tracking or OpenMPI segments,
    # a private kernel cache, quiet logs (docs/real-hardware.md; tests/preload_run.rs does the same).
    os.environ.setdefault("TT_METAL_RUNTIME_ROOT", str(root / "ttnn"))
    os.environ.setdefault("TT_METAL_SHM_TRACKING_DISABLED", "1")
    os.environ.setdefault("OMPI_MCA_btl", "self")
    os.environ.setdefault("TT_METAL_CACHE", str(scratch / "cache"))
    os.environ.setdefault("TT_METAL_LOGGER_LEVEL", "error")
    lib = _load(_compile(root, scratch))
    # Opening a device writes generated/fabric/*.yaml into the current directory.
    cwd = os.getcwd()
    os.chdir(scratch)
    try:
        if lib.mm_open() != 0:
            raise RuntimeError(f"opening the mock device failed: {lib.mm_error().decode()}")
    finally:
        os.chdir(cwd)
    yield Mesh(lib)
    lib.mm_close()
    shutil.rmtree(scratch, ignore_errors=True)
