"""The errors a user can cause, shared by every layer.

The command-line tools (``scalar.train.errors.run_guarded``) turn them into one line on
stderr and an exit code; library code raises them where the mistake is the user's.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the command line or config: reported as one line, exit code 2."""


class DataError(Exception):
    """A problem with the data or the run itself (not the command line): exit code 1."""
