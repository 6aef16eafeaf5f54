"""Build ovnsim's Cython fast path; all metadata lives in pyproject.toml.

Cython is a build requirement (pyproject.toml), so ``pip install .`` works
from a bare checkout: the .pyx is compiled on every build and no generated
.c file is kept in the repository.
"""

import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

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
