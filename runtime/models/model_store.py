"""The model store: `<data>/models/<sha256>.gguf` first, then the model's local source path.

Files in the store were verified when they were written, so looking one up is cheap; a file
at a source path is checked against its declared sha256 by `ensure` (and by `cortex pull`).
A remote model without a declared sha256 is found by its pin (pins.py), or downloaded and pinned.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

from menlo_cortex.cortexfile.data_folder import local_candidates, store_path
from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.cortexfile.schema.models import SourceKind, parse_hf_source, source_kind
from menlo_cortex.cortexfile.secrets import SecretUnavailable

from ..fetch.download import GGUF_MAGIC, RemoteFile, Stop, download_model, read_magic
from ..fetch.errors import DownloadFailed, ModelInvalid, ModelUnavailable
from ..fetch.netsettings import net_settings, redact
from ..fetch.progress import Progress
from .pins import Pin, Pins

__all__ = ["DownloadFailed", "ModelInvalid", "ModelStore", "ModelUnavailable", "Progress", "file_sha256"]

HASH_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def is_remote(model: Model) -> bool:
    return source_kind(model.source) is not SourceKind.local


class ModelStore:
    """Finds model files, and downloads remote ones; as a callable it is the manager's locator."""

    def __init__(self, config: Cortexfile, data_dir: Path, cortexfile: Path | None = None):
        """`cortexfile`: where the Cortexfile is, whose lock (beside it) pins its remote models; None: pins are
        kept in this process only."""
        self._config = config
        self._data_dir = data_dir
        self._pins = Pins.of(cortexfile, data_dir) if cortexfile is not None else Pins(None)
        self._stop = Stop()
        # Files already hashed, keyed by what would change if they were replaced: a reload of a
        # model that was unloaded (LRU) must not hash gigabytes again.
        self._hashed: set[tuple[Path, int, int, str]] = set()

    @property
    def models_dir(self) -> Path:
        return self._data_dir / "models"

    def source_url(self, model: Model) -> str:
        """The URL a remote source is downloaded from (hf:// mapped onto the configured hub)."""
        if source_kind(model.source) is not SourceKind.huggingface:
            return model.source
        repo, file, revision = parse_hf_source(model.source)
        endpoint = self._config.network.huggingface.endpoint.rstrip("/")
        return f"{endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(file)}"

    def pinned(self, model: Model) -> Model:
        """The model with its sha256: as declared, else as pinned by a first download (None until then)."""
        return _with_pin(model, self._pin(model))

    def locate(self, model: Model) -> Path:
        """The model's file, by sha256 in the store, then at its local source path; checked to be GGUF."""
        return self._locate(self.pinned(model))

    def _pin(self, model: Model) -> Pin | None:
        """The pin of a remote model with no declared sha256, once its first download made one."""
        return None if model.sha256 or not is_remote(model) else self._pins.get(model)

    def _locate(self, model: Model) -> Path:
        """`locate` of a model whose pin, if any, is applied."""
        tried = local_candidates(model, self._data_dir)
        found = next((path for path in tried if path.is_file()), None)
        if found is None:
            raise ModelUnavailable(self._missing_message(model, tried))
        self._check_magic(model, found)
        return found

    def __call__(self, model: Model) -> Path:
        return self.ensure(model)

    def stop(self) -> None:
        """End running downloads now (shutdown); their partial files stay for the next start."""
        self._stop.set()

    def ensure(self, model: Model, progress: Progress | None = None) -> Path:
        """Locate the model, else download its remote source into the store; the result is verified."""
        pin = self._pin(model)  # read once: the pin files are not read again for the download
        model = _with_pin(model, pin)
        try:
            found = self._locate(model)
        except ModelInvalid:
            raise
        except ModelUnavailable:
            if not is_remote(model):
                raise
            return self._download(model, progress, pin)
        if model.sha256 and found != store_path(self._data_dir, model.sha256):
            self._check_sha256(model, found)
        return found

    def verify(self, model: Model, path: Path) -> None:
        """Full check of a file: GGUF magic, and the declared (or pinned) sha256 when there is one."""
        model = self.pinned(model)
        self._check_magic(model, path)
        if model.sha256:
            self._check_sha256(model, path)

    def _download(self, model: Model, progress: Progress | None, pin: Pin | None) -> Path:
        url = self.source_url(model)
        try:
            net = net_settings(self._config.network)
        except (SecretUnavailable, ValueError) as exc:
            raise DownloadFailed(f"model `{model.id}`: cannot download {redact(url)}: {exc}") from None
        size, expected_from = (pin.size, f" (pinned in {pin.where})") if pin else (None, "")
        wanted = RemoteFile(model.id, url, model.sha256, size=size, expected_from=expected_from)
        path = download_model(wanted, self.models_dir, net, progress, self._stop)
        if model.sha256 is None:
            try:
                self._pins.record(model, Pin(path.stem, path.stat().st_size))
            except ModelInvalid:
                path.unlink(missing_ok=True)
                raise
        return path

    def _missing_message(self, model: Model, tried: list[Path]) -> str:
        places = ", ".join(str(path) for path in tried) or "nowhere (not pinned yet and no local source)"
        message = f"model `{model.id}`: no model file found (looked at {places})"
        if is_remote(model):
            message += f"; run `cortex pull` to download it from {redact(self.source_url(model))}"
        return message

    def _check_magic(self, model: Model, path: Path) -> None:
        try:
            magic = read_magic(path)
        except OSError as exc:
            raise ModelUnavailable(f"model `{model.id}`: cannot read {path}: {exc.strerror}") from None
        if magic != GGUF_MAGIC:
            raise ModelInvalid(f"model `{model.id}`: {path} is not a GGUF file (it does not start with `GGUF`)")

    def _check_sha256(self, model: Model, path: Path) -> None:
        try:
            stat = path.stat()
            key = (path, stat.st_size, stat.st_mtime_ns, model.sha256 or "")
            actual = model.sha256 if key in self._hashed else file_sha256(path)
        except OSError as exc:
            raise ModelUnavailable(f"model `{model.id}`: cannot read {path}: {exc.strerror}") from None
        if actual != model.sha256:
            raise ModelInvalid(f"model `{model.id}`: {path} has sha256 {actual}, expected {model.sha256}")
        self._hashed.add(key)


def _with_pin(model: Model, pin: Pin | None) -> Model:
    return model if pin is None else model.model_copy(update={"sha256": pin.sha256})
