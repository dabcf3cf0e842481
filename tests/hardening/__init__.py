"""Hardening: fuzzing, authorization and token matrices, limits, crash and concurrency safety."""
