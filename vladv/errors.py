"""Exceptions that vladv reports as one-line user errors (exit code 2), never as tracebacks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VladvError(Exception):
    """Base class of every error caused by user input: the CLI prints the message and exits 2.

    Raised inside a DataLoader worker, torch re-raises it in the main process as
    ``type(exc)("Caught ... Original Traceback ...")``; the constructor keeps only the original
    one-line message, so users still see one line.
    """

    exit_code = 2

    def __init__(self, *args: object):
        if len(args) == 1 and isinstance(args[0], str) and "Original Traceback" in args[0]:
            lines = [line for line in args[0].splitlines() if line.strip()]
            prefix = f"{type(self).__module__}.{type(self).__qualname__}: "
            if lines and lines[-1].startswith(prefix):
                args = (lines[-1][len(prefix) :],)
        super().__init__(*args)


class OptionError(VladvError):
    """A plugin option is unknown or has a bad value."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``known`` to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


class UnknownPluginError(VladvError):
    """A plugin name that no installed plugin provides."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        self.kind, self.name, self.known = kind, name, known
        hint = did_you_mean(name, known)
        listing = ", ".join(known) if known else "none installed"
        super().__init__(f"unknown {kind} '{name}'{hint} (available: {listing})")


class PluginError(VladvError):
    """A plugin is broken or conflicts with another one."""


class DatasetError(VladvError):
    """A dataset file or image is missing or malformed."""


class CheckpointError(VladvError):
    """A checkpoint is missing, corrupt or not in a trusted format."""


class StorageError(VladvError):
    """A file or folder cannot be created, read or written (a file in the way, no permission)."""


def first_line(exc: BaseException, limit: int = 240) -> str:
    """The first non-blank line of ``exc``'s message (the exception type's name when the message
    is empty), at most ``limit`` characters (a longer line is cut and ends in "..."): what a
    one-line error quotes of an exception raised by a library."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


def os_error_message(exc: OSError, action: str, path: object) -> str:
    """One line for an OSError: ``cannot <action> <path>: <reason>``."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = f"{reason} (a file is in the way)"
    return f"cannot {action} {path}: {reason}"
