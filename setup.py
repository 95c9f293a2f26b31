"""The build's one step beyond pyproject.toml: the entry kernels compiled ahead of time
into ``pointscore.kernels._compiled`` (kernels/aot.py says why and how). Where that
cannot be done (no C compiler, a Numba without pycc), the build says so and goes on
without it: Numba's JIT compiles the kernels at first use instead."""
import importlib
import importlib.util
import pathlib
import sys
import types

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = pathlib.Path(__file__).resolve().parent / "kernels"
COMPILED = "pointscore.kernels._compiled"


def _kernels_package():
    """kernels/ imported as ``pointscore.kernels`` (its installed name, which its relative
    imports need) without importing the engine, whose dependencies a build lacks."""
    sys.modules.setdefault("pointscore", types.ModuleType("pointscore")).__path__ = []
    spec = importlib.util.spec_from_file_location(
        "pointscore.kernels", KERNELS / "__init__.py",
        submodule_search_locations=[str(KERNELS)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["pointscore.kernels"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("pointscore.kernels.aot")


class BuildCompiledKernels(build_ext):
    def build_extensions(self):
        try:
            for ext in self.extensions:
                path = pathlib.Path(self.get_ext_fullpath(ext.name))
                path.parent.mkdir(parents=True, exist_ok=True)
                _kernels_package().build(str(path.parent), path.name)
        except Exception as error:  # any failure leaves a working package, on the JIT
            self.extensions = []  # nothing built: nothing to copy into place or install
            print(f"pointscore: the kernels were not compiled ahead of time ({error!r}); "
                  "Numba will compile them at first use", file=sys.stderr)


setup(ext_modules=[Extension(COMPILED, sources=[])],
      cmdclass={"build_ext": BuildCompiledKernels})
