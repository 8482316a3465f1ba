"""curate's benchmarks: ``python -m benchmarks --help``; conventions in benchmarks/README.md."""
