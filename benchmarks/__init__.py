"""Benchmarks: each measures against a baseline run in the same process and writes its
section of docs/benchmarks.md (``make bench`` / ``python -m benchmarks``). Not part of
the installed package: run from a checkout, at its root or anywhere (the outputs go to
the repository's docs/ and bench-results/, wherever the command is run from)."""
