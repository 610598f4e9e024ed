"""Errors a user can cause. The CLI prints their message as one red line and exits non-zero.

Every message says what was wrong and, where it helps, what to do. Programming errors are not
wrapped: they stay loud tracebacks.
"""


class CharrecError(Exception):
    """Base class of all user-facing charrec errors."""


class ConfigError(CharrecError):
    """An option, a YAML file or a combination of options is invalid."""


class DataError(CharrecError):
    """A dataset folder or label file is missing or malformed."""


class ImageError(CharrecError):
    """An image file cannot be read or decoded."""


class CheckpointError(CharrecError):
    """A checkpoint is missing, unreadable, unsafe or not a charrec checkpoint."""


class TrainingDiverged(CharrecError):
    """The training loss became NaN or infinite."""
