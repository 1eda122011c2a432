"""Benchmarks: each measures against a baseline run in the same process and writes its
section of docs/benchmarks.md (``make bench`` / ``python -m polymodal.bench``)."""
