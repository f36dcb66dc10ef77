"""Build of the featurizer's compiled core (query_predictor/core/_textscan.pyx).

Everything else about the package is in pyproject.toml; setuptools reads this file only for
the extension module, which Cython turns into C and the machine's C compiler builds.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("query_predictor.core._textscan", ["query_predictor/core/_textscan.pyx"])],
        compiler_directives={"language_level": 3},
    )
)
