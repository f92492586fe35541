"""Offline benchmarks (``modelmix bench``)."""
