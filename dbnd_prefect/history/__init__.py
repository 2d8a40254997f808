"""What was stored: manifests, run records, versions of a task's outputs, version selectors."""
