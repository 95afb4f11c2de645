"""Tenure benchmarks (``python -m bench``).

Every figure is printed next to a limit measured in the same run, as a ratio.
"""
