"""Errors for bad input. The CLI prints their message (no traceback) and exits with status 2."""


class TempovlError(Exception):
    """Base class of errors caused by the user's input, not by a bug."""


class InputError(TempovlError, ValueError):
    """A file, record or value the user gave is malformed. The message names the file, line or key."""


class ConfigError(TempovlError, KeyError):
    """A configuration is invalid: an unknown key, a wrong type, a missing file. Names the key."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class StorageError(TempovlError, OSError):
    """Writing failed because the disk (or quota) is full. Names the path; nothing half-written is kept."""
