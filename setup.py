"""Builds the optional C loop in geo/_h3batch.c (everything else is in pyproject.toml).

``optional=True``: a machine without a C compiler still installs citybrain, and
geo.hexes then indexes through h3's Python API (slower, same cells).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("geo._h3batch", ["geo/_h3batch.c"], optional=True)])
