"""The synthetic-aerial world generator: attributes, captions, rendering and domains
(docs/world.md)."""
