"""User-facing errors: the CLI prints their message on one line, without a traceback."""


class FacelibError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug.

    The message names config fields (``pretrained=False``), as a notebook or library user writes them;
    ``fields`` lists them, so the CLI can add the flags that set them when it reports the error.
    """

    def __init__(self, message: str = "", *, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.fields = tuple(fields)


class DataError(FacelibError):
    """A problem with the user's data that stops the run (missing folder, nothing usable)."""


class CheckpointError(FacelibError):
    """A file that is not a usable facelib checkpoint (wrong format or architecture)."""


class ModelError(FacelibError):
    """A model that cannot be built as asked (unknown backbone, weights not available)."""


class ConfigError(FacelibError, ValueError):
    """An impossible setting (negative epochs, unknown miner, ...)."""


class NotApplicable(DataError, ValueError):
    """A protocol this data cannot support (no distorted images, too few photos or identities): the test
    report skips it with this message. Any other exception is a bug and propagates."""
