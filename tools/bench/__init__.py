"""Benchmarks: real stacks, figures printed beside a bare-Temporal baseline from the same run."""
