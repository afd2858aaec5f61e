"""Compute: embedders (and later chunkers, extractors) behind small protocols, and executors."""
