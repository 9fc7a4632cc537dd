"""The plugin author's kit: the building blocks vladv's own attacks, defenses and augmenters use.

First-party plugins are built on exactly this API, as a third-party plugin would be; none imports
another plugin's module. What each module holds (the guide with examples is docs/kit.md):

- :mod:`vladv.kit.gradient` — the projected-gradient engine (:func:`~vladv.kit.gradient.projected_gradient`
  with input views, momentum, random starts, L∞/L2 projection) and SGA's set-level objective;
"""
