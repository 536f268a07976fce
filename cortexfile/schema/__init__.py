"""The Cortexfile schema (version 1). One field = one setting, each with a description."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Applies, Section, setting
from .device import Device
from .models import Engines, Model
from .network import Network
from .paths import Data, Logs
from .server import Server
from .sync import Sync
from .target import Build, Target

SCHEMA_VERSION = 1


class Cortexfile(Section):
    """An LLM appliance: what it serves, how, and what it is built for."""

    version: Literal[1] = setting(description="Cortexfile format version.", applies=Applies.inert)
    server: Server = Field(default_factory=Server, description="The OpenAI-compatible API server.")
    logs: Logs = Field(default_factory=Logs, description="Logging.")
    data: Data = Field(default_factory=Data, description="Where models and state are kept.")
    network: Network = Field(default_factory=Network, description="Outgoing connections.")
    engines: Engines = Field(default_factory=Engines, description="Inference engines and their settings.")
    models: list[Model] = Field(default_factory=list, description="Models served.")
    target: Target = Field(default_factory=Target, description="Hardware the appliance is built for.")
    build: Build = Field(default_factory=Build, description="What `cortex build` produces, and how.")
    device: Device = Field(default_factory=Device, description="The system around the appliance in a disk image.")
    sync: Sync = Field(default_factory=Sync, description="Following a Git repository of Cortexfiles (`cortex sync`).")


__all__ = ["SCHEMA_VERSION", "Cortexfile", "Model"]
