"""`server:` the API listener, its CORS, auth, TLS and limits."""

from __future__ import annotations

from pydantic import Field

from ..secrets import Secret
from .base import Applies, Host, NormalPath, Origin, Port, Section, setting
from .reload import Reload

DEFAULT_PORT = 39281


class Cors(Section):
    applies = Applies.live
    enabled: bool = setting(True, "Answer CORS requests from the allowed origins.", flag="--cors")
    origins: list[Origin] = setting(
        [f"http://localhost:{DEFAULT_PORT}", f"http://127.0.0.1:{DEFAULT_PORT}"],
        "Origins (scheme://host[:port]) allowed to call the API from a browser.",
        flag="--origins",
    )


class Tls(Section):
    applies = Applies.listener
    cert: NormalPath | None = setting(None, "PEM certificate chain; serve HTTPS when set.", flag="--ssl-cert-path")
    key: NormalPath | None = setting(None, "PEM private key of `cert`.", flag="--ssl-key-path")


class Auth(Section):
    applies = Applies.live
    api_keys: list[Secret] = setting(
        [], "Accepted API keys (Bearer tokens): `${env:NAME}` or `${file:PATH}` references."
    )
    api_key_file: NormalPath | None = setting(
        None, "File with one API key per line (blank lines and `#` comments ignored); rotates live."
    )
    allow_unauthenticated: bool = setting(
        False, "Allow serving on a non-loopback address without any API key. Dangerous."
    )
    public_metrics: bool = setting(False, "Serve /metrics without an API key.")


class Limits(Section):
    applies = Applies.live
    max_tokens: int = setting(2048, "Server-side cap on tokens generated per request.", ge=1)
    request_timeout_s: float = setting(300.0, "Longest a request may run, queue time included.", gt=0)
    max_body_bytes: int = setting(1_048_576, "Largest request body accepted.", ge=1024)
    max_connections: int = setting(
        64, "Open connections served at once; more are refused.", ge=1, applies=Applies.listener
    )
    max_connections_per_client: int = setting(
        16, "Open connections one client address may hold; more are closed at once.", ge=1, applies=Applies.listener
    )
    header_timeout_s: float = setting(
        10.0, "Time a connection has to send a request's headers; then it is closed.", gt=0, applies=Applies.listener
    )
    body_timeout_s: float = setting(30.0, "Time a client has to send a request's body; then it gets 408.", gt=0)
    send_timeout_s: float = setting(
        30.0,
        "Time a client may leave the answer unread while the connection's send buffer is full; then the connection "
        "is dropped.",
        gt=0,
        applies=Applies.listener,
    )
    queue_size: int = setting(8, "Requests that may wait per model; more get 429.", ge=0)
    max_resident_models: int = setting(2, "Models kept loaded at once (least recently used unloaded).", ge=1)
    idle_unload_s: int | None = setting(
        None,
        "Unload a model after this many seconds without a request (each model's idle_unload_s wins); unset: "
        "models stay loaded.",
        ge=1,
    )
    memory_budget_mb: int | None = setting(None, "Memory the loaded models may use together, in MiB.", ge=1)
    shutdown_grace_s: float = setting(
        30.0, "On SIGTERM, time given to in-flight requests.", ge=0, applies=Applies.listener
    )


class Server(Section):
    applies = Applies.listener
    host: Host = setting("127.0.0.1", "Address the API listens on.", flag="--host")
    port: Port = setting(DEFAULT_PORT, "TCP port the API listens on.", flag="--port")
    cors: Cors = Field(default_factory=Cors, description="Cross-origin (browser) access.")
    tls: Tls = Field(default_factory=Tls, description="HTTPS for the API.")
    auth: Auth = Field(default_factory=Auth, description="Who may call the API.")
    limits: Limits = Field(default_factory=Limits, description="Bounds that keep the server alive.")
    reload: Reload = Field(default_factory=Reload, description="Hot reload: follow edits without a restart.")
    console: bool = setting(
        True,
        "Serve the web console at / (chat, models, status, activity); its data needs an API key when keys are set.",
        applies=Applies.live,
    )
