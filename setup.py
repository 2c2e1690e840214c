"""Build the optional C accelerator for masking. The metadata is in setup.cfg.

``optional=True`` makes a failed compile (no C compiler or no Python
headers) print a warning and install lomond without ``lomond._speedups``.
``lomond.protocol.mask`` then uses its pure Python functions.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("lomond._speedups", ["lomond/_speedups.c"], optional=True),
    ],
    # MANIFEST.in puts the C source in the sdist. Installs need only the
    # compiled module and its stub.
    exclude_package_data={"lomond": ["_speedups.c"]},
)
