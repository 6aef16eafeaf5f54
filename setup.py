"""Build ovnsim's Cython fast path; all metadata lives in pyproject.toml.

Cython is a build requirement (pyproject.toml), so ``pip install .`` works
from a bare checkout: the .pyx is compiled on every build and no generated
.c file is kept in the repository.
"""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class build_ext_or_explain(build_ext):
    """``build_ext`` that turns a missing C compiler into one clear message.

    ovnsim has no pure-Python fallback: the data path *is* the compiled
    engine, so an install without a compiler must fail, and say why.
    """

    def run(self):
        try:
            super().run()
        except Exception as err:  # distutils' CompileError, CCompilerError, PlatformError, OSError
            if type(err).__name__ not in ("CompileError", "CCompilerError", "DistutilsExecError",
                                          "DistutilsPlatformError", "PlatformError", "ExecError",
                                          "FileNotFoundError"):
                raise
            sys.exit(
                "ovnsim: building the compiled data path failed (%s). ovnsim needs a C compiler and the "
                "Python headers: on Debian/Ubuntu 'apt-get install gcc python3-dev', on Fedora "
                "'dnf install gcc python3-devel'; then install again." % (err,)
            )

extra_compile_args = [] if sys.platform == "win32" else ["-O3"]

extensions = [
    Extension(
        "ovnsim.datapath._fastpath",
        ["ovnsim/datapath/_fastpath.pyx"],
        extra_compile_args=extra_compile_args,
    ),
    Extension(
        "ovnsim.capture._pcapio",
        ["ovnsim/capture/_pcapio.pyx"],
        extra_compile_args=extra_compile_args,
    ),
]

setup(
    cmdclass={"build_ext": build_ext_or_explain},
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "embedsignature": True,
        },
    ),
)
