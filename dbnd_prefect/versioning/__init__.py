"""Data versioning: fingerprints of data and code, cache policies built on them, manifests beside outputs."""
