"""Outgoing connections: Hugging Face, GitHub, proxy and TLS verification."""

from __future__ import annotations

from pydantic import Field

from ..secrets import Secret
from .base import Applies, HttpUrl, ProxyUrl, Section, setting


class HuggingFace(Section):
    token: Secret | None = setting(None, "Hugging Face token, sent only to `endpoint`.", flag="--hf-token")
    endpoint: HttpUrl = setting("https://huggingface.co", "Base URL of the model hub (hf:// sources).")


class GitHub(Section):
    user_agent: str | None = setting(None, "User-Agent sent to GitHub.", flag="--gh-agent")
    token: Secret | None = setting(None, "GitHub token.", flag="--gh-token")


class Proxy(Section):
    url: ProxyUrl | None = setting(None, "Proxy for outgoing HTTP(S) (downloads).", flag="--proxy-url")
    username: str | None = setting(None, "Proxy user name.", flag="--proxy-username")
    password: Secret | None = setting(None, "Proxy password.", flag="--proxy-password")
    no_proxy: list[str] = setting([], "Hosts, domains and addresses reached without the proxy.", flag="--no-proxy")
    verify_ssl: bool = setting(True, "Verify the proxy's TLS certificate.", flag="--verify-proxy")
    verify_host: bool = setting(True, "Check that the proxy's certificate names its host.", flag="--verify-proxy-host")


class Ssl(Section):
    verify_peer: bool = setting(
        True, "Verify TLS certificates of servers Cortex downloads from.", flag="--verify-ssl-peer"
    )
    verify_host: bool = setting(True, "Check that those certificates name the host.", flag="--verify-ssl-host")


class Network(Section):
    applies = Applies.live  # read by the model store on its next download
    huggingface: HuggingFace = Field(default_factory=HuggingFace, description="The model hub.")
    github: GitHub = Field(default_factory=GitHub, description="GitHub access (engine releases).")
    proxy: Proxy = Field(default_factory=Proxy, description="Outgoing proxy.")
    ssl: Ssl = Field(default_factory=Ssl, description="TLS verification of outgoing connections.")
