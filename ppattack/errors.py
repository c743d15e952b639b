"""The exceptions ppattack raises for bad input.

The library raises these; only the command line turns them into a one-line message and exit
status 2. Every message says what was wrong and what to do about it.
"""


class PPAttackError(Exception):
    """Base class: a user-facing error with a one-line, actionable message."""


class ShapeError(PPAttackError, ValueError):
    """An image or batch has a shape, dtype or size the cipher or key cannot take."""


class KeyFileError(PPAttackError, ValueError):
    """A key (file or object) is malformed, corrupt, or made for another cipher or shape."""


class UnknownComponentError(PPAttackError, KeyError):
    """No cipher, attack, dataset or preset is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterError(PPAttackError, ValueError):
    """A parameter is unknown to a component or has an invalid value."""


class MemoryNeedError(ParameterError):
    """A size whose images cannot fit in the device's memory (refused before the work, never
    taken for an attack that does not apply)."""


class DataError(PPAttackError, OSError):
    """A dataset cannot be read: missing, empty, offline, or not in the expected layout."""


class PluginError(PPAttackError, RuntimeError):
    """The installed plugins conflict (e.g. two distributions register the same name)."""
