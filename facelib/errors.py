"""User-facing errors: the CLI prints their message on one line, without a traceback."""


class FacelibError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug."""


class DataError(FacelibError):
    """A problem with the user's data that stops the run (missing folder, nothing usable)."""


class CheckpointError(FacelibError):
    """A file that is not a usable facelib checkpoint (wrong format or architecture)."""


class ModelError(FacelibError):
    """A model that cannot be built as asked (unknown backbone, weights not available)."""


class ConfigError(FacelibError, ValueError):
    """An impossible setting (negative epochs, unknown miner, ...)."""
