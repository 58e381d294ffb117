# ruff: noqa: CPY001  (like src/, the files carry no copyright header; the LICENSE covers them)
"""The benchmark suite (issue 4): run ``python benchmarks/run.py``; not part of the unit tests."""
