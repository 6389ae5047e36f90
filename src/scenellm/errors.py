"""Errors a user can cause; the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, params or files; the message names the file, field and fix."""


class DataError(UserError):
    """Unreadable, unsafe or malformed dataset files."""


class UnsafePickleError(DataError):
    """A pickle asked for a global outside the Action Genome allow-list."""
