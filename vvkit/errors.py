"""Errors of the vvkit CLI.

``VvkitError`` is the root of the errors that users cause or can fix: the
CLI's error boundary prints its message as one red line and exits with its
``exit_code``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class VvkitError(Exception):
    """An error the user can fix; its message says what failed and what to do."""

    exit_code = 1


class WorkspaceNotFound(VvkitError):
    """No ``vvkit.toml`` was found in the current folder or above it."""


class InvalidName(VvkitError):
    """An app or component name breaks the naming rule."""


class AlreadyExists(VvkitError):
    """A file or folder that a command would create is already there."""
