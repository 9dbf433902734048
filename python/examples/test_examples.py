"""Example tests for ``pytest --ttsan`` on the real tt-metal allocator in mock mode.

Every test passes under plain ``pytest``. Under ``pytest --ttsan``, ``test_planted_cb_clash``
fails: it places a program's circular buffer over a live L1 buffer, which ttsan reports as a
``cb-clash``, worded as tt-metal's own error for such a program (a format string of the 0.81.1
wheel's libtt_metal.so; docs/python.md). Deselect it with ``-k 'not planted'``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

import ttsan

# tt::tt_metal::BufferType
DRAM, L1 = 0, 1
Mesh = Any  # conftest.Mesh, the `mesh` fixture


def test_weights_and_ops(mesh: Mesh) -> None:
    weight = mesh.alloc(1 << 20, buffer_type=DRAM)
    # Guarded by name; without ttsan guard() does nothing and says so.
    assert ttsan.guard(weight.backing, "example.weight") == ttsan.active()
    with ttsan.op("example::matmul"):
        out = mesh.alloc(128 << 10, buffer_type=DRAM)
        scratch = mesh.alloc(32 << 10, buffer_type=L1)
        scratch.free()
    with ttsan.op("example::add"):
        total = mesh.alloc(128 << 10, buffer_type=DRAM)
        out.free()
    assert weight.address != total.address
    total.free()
    weight.free()


def test_circular_buffer_beside_l1_buffers(mesh: Mesh) -> None:
    activation = mesh.alloc(256 << 10, buffer_type=L1)
    with ttsan.op("example::good_program"):
        # L1 buffers are placed from the top of L1 down; a CB far below them clashes with nothing.
        mesh.place_circular_buffer(0x20000, 4096)
        mesh.release_circular_buffers()
    activation.free()


def test_guarding_an_unknown_buffer_is_an_error(mesh: Mesh) -> None:
    if ttsan.active():
        with pytest.raises(ttsan.GuardError):
            ttsan.guard(12345, "nothing", buffer_type="DRAM")
    else:
        assert ttsan.guard(12345, "nothing", buffer_type="DRAM") is False


def test_tt_metal_loaded_local_is_traced(mesh: Mesh) -> None:
    # Python's default import flags are left alone and the helper (with its libtt_metal.so) was
    # loaded RTLD_LOCAL, as `import ttnn` loads it: the shim still reaches the real functions
    # through the library's own handle and records this allocation (docs/python.md).
    assert not sys.getdlopenflags() & os.RTLD_GLOBAL
    buffer = mesh.alloc(64 << 10, buffer_type=DRAM)
    assert buffer.address != 0
    buffer.free()


def test_planted_cb_clash(mesh: Mesh) -> None:
    activation = mesh.alloc(256 << 10, buffer_type=L1)
    with ttsan.op("example::bad_program"):
        # The planted bug: the program's circular buffer sits on the live activation's bytes.
        mesh.place_circular_buffer(activation.address, 4096)
        mesh.release_circular_buffers()
    activation.free()
