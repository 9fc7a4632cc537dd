"""First-party vladv plugins, registered through the same `vladv` entry points as third-party
ones."""
