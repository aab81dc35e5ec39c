"""Bundled offline datasets, each materialised in the real on-disk format of its public counterpart."""
