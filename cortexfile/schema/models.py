"""`models:` and `engines:` what the appliance serves, and with what."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from .base import FALSE_WORDS, TRUE_WORDS, Applies, Section, Sha256, setting

MAX_PARALLEL = 64  # slots per model; llama.cpp allows 256 sequences, a CPU gains nothing past a few
MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
_HF_SOURCE = re.compile(r"^hf://(?P<repo>[^/@\s]+/[^/@\s]+)/(?P<file>[^@\s]+)(@(?P<revision>[^@\s/]+))?$")


class SourceKind(StrEnum):
    local = "local"
    huggingface = "hf"
    url = "url"


def source_kind(source: str) -> SourceKind:
    if source.startswith("hf://"):
        return SourceKind.huggingface
    if source.startswith(("https://", "http://")):
        return SourceKind.url
    return SourceKind.local


def parse_hf_source(source: str) -> tuple[str, str, str]:
    """`hf://org/repo/path/file.gguf@rev` -> (org/repo, path/file.gguf, rev or "main")."""
    match = _HF_SOURCE.match(source)
    if match is None:
        raise ValueError("write a Hugging Face source as hf://org/repo/file.gguf[@revision]")
    return match["repo"], match["file"], match["revision"] or "main"


class LoadPolicy(StrEnum):
    start = "start"
    on_demand = "on_demand"


class Model(Section):
    # A change loads a new copy of the model; `preset` and `load` apply as they are.
    applies = Applies.models
    id: str = setting(description="Name clients pass as `model`.", pattern=MODEL_ID)
    preset: str | None = setting(
        None, "Model preset from recipes/models that fills in unset fields.", applies=Applies.live
    )
    source: str = setting(
        description="A local path (relative to the Cortexfile), hf://org/repo/file.gguf@revision, or an https URL."
    )
    sha256: Sha256 | None = setting(
        None,
        "Expected sha256 of the GGUF file. Unset for a remote source: its first download pins it in Cortexfile.lock, "
        "and later downloads must match.",
    )
    engine: Literal["llama_cpp"] = setting("llama_cpp", "Engine that runs the model.")
    context_size: int = setting(4096, "Tokens of context per request, one slot's (0: the model's own).", ge=0)
    threads: int | None = setting(None, "CPU threads for generation (unset: all cores).", ge=1)
    gpu_layers: Literal["auto"] | Annotated[int, Field(ge=-1)] = setting(
        "auto",
        "Layers offloaded to the GPU: auto (as many as fit in the GPU memory free when the model loads, leaving "
        "1 GiB; all on an integrated GPU, whose memory is the host's; none without a GPU), a number (0: none), or "
        "-1 (all).",
    )
    chat_format: str | None = setting(None, "llama-cpp-python chat format (e.g. gemma, chatml, llama-3).")
    chat_template: str | None = setting(None, "Jinja chat template, overriding the GGUF's own.")
    embeddings: bool = setting(False, "Serve this model on /v1/embeddings.")
    rerank: bool = setting(
        False,
        "Serve this model on /v1/rerank: a reranker (a cross-encoder GGUF that llama.cpp pools for ranking, such as "
        "bge-reranker or jina-reranker).",
    )
    load: LoadPolicy = setting(LoadPolicy.start, "Load when the server starts, or on first use.", applies=Applies.live)
    idle_unload_s: int | None = setting(
        None,
        "Unload the model after this many seconds without a request (it sleeps, and its next request loads it "
        "again); unset: server.limits.idle_unload_s.",
        ge=1,
        applies=Applies.live,
    )

    @model_validator(mode="after")
    def _one_kind_of_output(self) -> Model:
        if self.embeddings and self.rerank:
            raise ValueError("a model serves embeddings or reranks, not both: declare the file twice, with two ids")
        return self

    @property
    def pooled(self) -> bool:
        """One vector (embeddings) or one score (rerank) per input, not generated text."""
        return self.embeddings or self.rerank

    @field_validator("gpu_layers", mode="before")
    @classmethod
    def _one_message_for_gpu_layers(cls, value: object) -> object:
        """One error for a bad value, not one per member of the union; a number from an env var or a flag."""
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,6}", value.strip()):
            value = int(value)
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= -1):
            return value
        raise ValueError("expected `auto`, a number of layers (0: none), or -1 (all)")

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_alias(cls, value: object) -> object:
        return "llama_cpp" if value in ("llama-cpp", "llamacpp", "llama.cpp") else value

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a model source cannot be empty")
        if source_kind(value) is SourceKind.huggingface:
            parse_hf_source(value)
        return value


class LlamaCppEngine(Section):
    batch_size: int = setting(512, "Tokens decoded per step, all sequences together (prompt chunks included).", ge=1)
    parallel: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = setting(
        "auto",
        "Sequences each model decodes together, each in its own slot of `context_size` tokens "
        "(auto: up to 4, as many as the memory holds).",
    )
    flash_attention: Literal["auto"] | bool = setting(
        "auto",
        "Flash attention: auto (llama.cpp uses it where the backend has it, as llama-server does), true or false. "
        "Embedding and reranking models use it only when true.",
    )
    use_mmap: bool = setting(True, "Map model files instead of reading them into memory.")
    use_mlock: bool = setting(False, "Lock model memory so it is never swapped out.")

    @field_validator("parallel", mode="before")
    @classmethod
    def _one_message_for_parallel(cls, value: object) -> object:
        """One error for a bad value, not one per member of the union."""
        if isinstance(value, str) and value.isdigit():  # from an env var or a flag
            value = int(value)
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PARALLEL):
            return value
        raise ValueError(f"expected `auto` or a whole number from 1 to {MAX_PARALLEL}")

    @field_validator("flash_attention", mode="before")
    @classmethod
    def _one_message_for_flash_attention(cls, value: object) -> object:
        """`auto`, or a boolean in any spelling the other boolean settings take (an env var's `1`, YAML's `on`)."""
        if value == "auto" or isinstance(value, bool):
            return value
        word = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ValueError("expected `auto`, `true` or `false`")

    @model_validator(mode="after")
    def _a_step_holds_every_slot(self) -> LlamaCppEngine:
        if self.parallel != "auto" and self.parallel > self.batch_size:
            raise ValueError(
                f"parallel ({self.parallel}) is more than batch_size ({self.batch_size}): "
                "each step decodes one token of every slot, so batch_size must be at least parallel"
            )
        return self


class Engines(Section):
    applies = Applies.models
    llama_cpp: LlamaCppEngine = Field(default_factory=LlamaCppEngine, description="llama.cpp through llama-cpp-python.")
