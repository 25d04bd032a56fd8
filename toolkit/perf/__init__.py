"""Profiling: perf_analyzer against a server, the in-process profile, tuning and reports."""
