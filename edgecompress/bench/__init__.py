"""Benchmarks, one module per family: run(train, test, quick=False) -> rows."""
