"""nvrshare benchmarks: `python -m bench.run [names...]` (see BENCHMARKS.md)."""
