"""What tasks and pipelines are before anything runs: typed parameters and outputs, coercion, identity, the
registry of definitions in this process, and what a pipeline's code calls."""
