"""LayerGuard's benchmarks: `python -m bench` measures the figures of issue 7 and prints a table."""
