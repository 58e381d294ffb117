"""The benchmark suite (issue 4): run ``python benchmarks/run.py``; not part of the unit tests."""
