"""Why the model layer turns a request away. The model layer knows nothing of HTTP: http/errors.py gives each
kind its status, OpenAI error code and Retry-After."""

from __future__ import annotations


class Refused(Exception):
    """A request the models cannot take now; the message names the model and says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownModel(Refused):
    """No model of that id is served here."""


class QueueFull(Refused):
    """The model's running places and queue are all taken: retry later."""


class ModelFailed(Refused):
    """The model could not be found, fetched or loaded (the message says which, naming the file or URL)."""


class Superseded(Refused):
    """The model's config changed again before this version loaded: it is skipped."""


class ModelsBusy(Refused):
    """No room to load the model: the resident-model limit or memory budget is reached and every resident
    model is busy. Retry later."""
