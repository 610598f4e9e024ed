"""Errors a user can cause. The CLI prints their message as one red line and exits non-zero.

Every message says what was wrong and, where it helps, what to do. Programming errors are not
wrapped: they stay loud tracebacks. Exit codes: 2 for usage errors (a bad option value, config
file or combination: `ConfigError`, like click's own usage errors), 1 for everything that went
wrong while working (unreadable data, checkpoints, a full disk); 130 and 143 for Ctrl-C and
SIGTERM belong to the CLI.
"""


class CharrecError(Exception):
    """Base class of all user-facing charrec errors."""

    exit_code = 1


class ConfigError(CharrecError):
    """An option, a YAML file or a combination of options is invalid (a usage error)."""

    exit_code = 2


class DataError(CharrecError):
    """A dataset folder or label file is missing or malformed."""


class ImageError(CharrecError):
    """An image file cannot be read or decoded."""


class ExportError(CharrecError):
    """A network cannot be written as ONNX, or the written model does not match it."""


class CheckpointError(CharrecError):
    """A checkpoint is missing, unreadable, unsafe or not a charrec checkpoint."""


class TrainingDiverged(CharrecError):
    """The training loss became NaN or infinite."""


class ClusterError(CharrecError):
    """Ray is missing, a cluster cannot be reached or refuses charrec, or a node cannot run the
    trials."""


class WriteError(CharrecError):
    """A file or folder could not be written: a full disk, a read-only folder, no permission,
    a quota, an I/O error. The message names what could not be written, why, and what was kept;
    `errno` is the operating system's error number (None if unknown)."""

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


class CharrecWarning(UserWarning):
    """Something optional failed (a plot, a sheet, the font cache) and the command went on. The
    CLI shows it as one `Warning:` line."""
