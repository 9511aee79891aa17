"""Benchmarks of the importer against the sandbox (see run.py)."""
