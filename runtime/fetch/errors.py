"""Why a model's file cannot be had (missing, not the model, not downloaded); every message names the model
and the file or URL concerned."""

from __future__ import annotations


class ModelUnavailable(Exception):
    """The model file is not where it was looked for (or could not be fetched)."""


class ModelInvalid(ModelUnavailable):
    """A file was found but is not the model: not GGUF, or not the declared sha256."""


class DownloadFailed(ModelUnavailable):
    """A remote source could not be downloaded into the store."""
