"""`cortex pull -f FILE`: download every remote model into the store and verify every model file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from menlo_cortex.cortexfile.data_folder import data_dir
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Model

from menlo_cortex.exits import Exit

from .fetch.errors import ModelInvalid, ModelUnavailable
from .fetch.progress import Progress, StreamProgress
from .models.model_store import ModelStore, is_remote


def run_pull(resolved: Resolved, stream: TextIO | None = None) -> int:
    """0 when every model is present and verified, 1 when any is missing or failed (each one reported)."""
    out = sys.stderr if stream is None else stream
    config = resolved.config
    store = ModelStore(config, data_dir(config), resolved.path)
    progress = StreamProgress(out, tty=out.isatty())
    failed = 0
    for model in config.models:
        try:
            path = pull_model(store, model, progress)
        except (ModelUnavailable, OSError) as exc:
            failed += 1
            out.write(f"cortex: error: {exc}\n")
        else:
            out.write(f"{model.id}: ok ({path})\n")
    out.flush()
    return Exit.FAILURE if failed else Exit.OK


def pull_model(store: ModelStore, model: Model, progress: Progress | None) -> Path:
    """The model's verified file, downloaded first when its source is remote and the store lacks it."""
    try:
        path = store.locate(model)
    except ModelInvalid:
        raise
    except ModelUnavailable:
        if not is_remote(model):
            raise
        return store.ensure(model, progress)  # a download is verified before it lands in the store
    store.verify(model, path)
    return path
