"""Build of the Python package (configuration in pyproject.toml).

setuptools-rust builds the `ttsan` binary into the package (`ttsan/_bin/ttsan`, an "exec"
extension); the shim `libttsan_preload.so`, which cargo builds in the same run as a dependency of
the binary, is copied next to it, where `ttsan run` looks first (src/cli/run_cmd.rs,
`locate_preload`). Neither links against Python, so the wheel is tagged `py3-none-<platform>`:
one wheel for every Python 3 on the platform.
"""

from pathlib import Path

from setuptools import setup
from setuptools_rust import Binding, RustExtension
from setuptools_rust import build_rust as _build_rust

try:
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # setuptools < 70.1 has it in the wheel package
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

SHIM = "libttsan_preload.so"


class build_rust(_build_rust):
    """Also installs the shim cargo built beside the binary."""

    def install_extension(self, ext, dylib_paths, build_artifact_dir):
        super().install_extension(ext, dylib_paths, build_artifact_dir)
        build_ext = self.get_finalized_command("build_ext")
        build_ext.inplace = self.inplace
        for module_name, artifact in dylib_paths:
            out = Path(artifact).parent
            # Built as a dependency, cargo leaves the cdylib in deps/ (a root package's lands
            # beside the binary): the newest of the two is this build's.
            found = [p for p in (out / SHIM, out / "deps" / SHIM) if p.is_file()]
            if not found:
                raise RuntimeError(f"cargo built {artifact} but no {SHIM} beside it or in {out / 'deps'}")
            shim = max(found, key=lambda p: p.stat().st_mtime)
            dest = Path(build_ext.get_ext_fullpath(module_name)).parent / SHIM
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(SHIM + "~")
            tmp.write_bytes(shim.read_bytes())
            tmp.replace(dest)


class bdist_wheel(_bdist_wheel):
    """Platform-specific, Python-independent: the package holds an executable and a shared
    library that do not link against Python."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    rust_extensions=[
        RustExtension(
            {"ttsan": "ttsan._bin.ttsan"},
            path="Cargo.toml",
            binding=Binding.Exec,
            args=["--bin", "ttsan"],
        )
    ],
    cmdclass={"build_rust": build_rust, "bdist_wheel": bdist_wheel},
)
