"""Benchmarks: ground-truth suites, the runner (every method as its own process), ranking,
report and plots."""
