"""Benchmarks: commands that write ``bench/results/<name>.json`` and a markdown table."""
