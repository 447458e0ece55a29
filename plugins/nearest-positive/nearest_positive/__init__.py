"""Nearest-positive sampling for metric-learning losses."""
