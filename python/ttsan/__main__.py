"""The ``ttsan`` command of the Python package: runs the ``ttsan`` executable installed inside the
package (``ttsan/_bin/ttsan``), which finds ``libttsan_preload.so`` next to itself."""

from __future__ import annotations

import os
import sys

from . import binary


def main() -> None:
    """Replaces this process with the packaged executable, arguments unchanged."""
    exe = binary()
    if not exe.is_file():
        sys.stderr.write(f"ttsan: the packaged executable {exe} is missing; reinstall the ttsan package\n")
        sys.exit(3)
    os.execv(exe, [str(exe), *sys.argv[1:]])


if __name__ == "__main__":
    main()
