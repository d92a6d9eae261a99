"""What every command shares about failing: exit codes and the user-facing error type (a leaf: it imports
nothing of the project, and every command module imports it rather than the CLI)."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # done; some inputs failed (the rest done); usage or bad input


class AudioError(Exception):
    """A user-facing problem (a file, a device, an option): the message names what and why, on one line."""
