"""A one-off plugin file (for ``vladv run --plugin``) that provides the tiny test world."""

import vladv
from vladv.testing import tiny_plugin


@vladv.hookimpl
def vladv_backbones():
    yield from tiny_plugin.vladv_backbones()


@vladv.hookimpl
def vladv_datasets():
    yield from tiny_plugin.vladv_datasets()
