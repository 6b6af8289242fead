"""The engine's errors. Each is a message id and its parameters (see the `messages` package): `str()`
gives the English words, for logs and the command line; the studio renders them in the page's
language. They are written for the person using the tool, not for a developer."""

from __future__ import annotations

from messages import MessageError


class I2VError(MessageError):
    """Anything the engine reports to the user."""


class InvalidInput(I2VError):
    """A request, photo or model name that breaks a rule; the message names the value and the rule."""


class ModelNotAvailable(I2VError):
    """Weights that are neither on this machine nor downloadable from here."""


class OutOfMemory(I2VError):
    """The device ran out of memory for this request."""


class Cancelled(I2VError):
    """The job was stopped on request; it left no video behind."""


class ExportFailed(I2VError):
    """The video could not be written; nothing was left under its name."""


class DiskFull(ExportFailed):
    """No space left where the video goes; nothing was left under its name."""


class RankLost(I2VError):
    """A process of a video made across several GPUs died (killed, or out of host memory): the others
    were stopped, nothing was written, and the job may run again."""
