"""Benchmarks of the execution service (issue #7): `python -m benchmarks` or `make bench`.

Each benchmark drives the real service (a `serve` subprocess, or `monitor_tick` in this process)
against its own fresh database, on SQLite and on PostgreSQL, measures a baseline in the same run,
and prints the figures with the ratio to that baseline. See README.md, "Performance".
"""
