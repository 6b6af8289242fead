"""The engine's errors. Their messages are written for the person using the tool, not for a developer."""


class I2VError(Exception):
    """Anything the engine reports to the user."""


class InvalidInput(I2VError):
    """A request, photo or model name that breaks a rule; the message names the value and the rule."""


class ModelNotAvailable(I2VError):
    """Weights that are neither on this machine nor downloadable from here."""


class OutOfMemory(I2VError):
    """The device ran out of memory for this request."""


class Cancelled(I2VError):
    """The job was stopped on request; it left no video behind."""
