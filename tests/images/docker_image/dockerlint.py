"""A small Dockerfile linter for the rendered matrix: the rules our images promise."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

SECRET_WORDS = re.compile(r"proxy|password|passwd|token|secret|pip_index|index_url|pip_cert", re.IGNORECASE)
NATIVE = re.compile(r"-march=native|-mtune=native|-mcpu=native|GGML_NATIVE=ON", re.IGNORECASE)
REQUIRED_LABELS = ("org.opencontainers.image.title", "org.opencontainers.image.source", "ai.menlo.cortex.config-hash")


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, arguments.strip()))
    return stages


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip().removesuffix("\\") + " " if raw.rstrip().endswith("\\") else raw.strip()
        if not raw.rstrip().endswith("\\"):
            lines.append(" ".join(current.split()))
            current = ""
    return lines


def lint(text: str) -> list[str]:
    """Every broken rule, as a sentence; empty when the Dockerfile is clean."""
    stages = parse(text)
    if not stages:
        return ["no FROM"]
    final = stages[-1]
    problems = _final_stage(final) + _everywhere(text, stages)
    return problems


def _final_stage(final: Stage) -> list[str]:
    problems = []
    users = final.all("USER")
    if not users or users[-1].arguments.split(":")[0] in ("root", "0"):
        problems.append("final stage does not switch to a non-root USER")
    if not final.all("HEALTHCHECK"):
        problems.append("final stage has no HEALTHCHECK")
    if not final.all("EXPOSE"):
        problems.append("final stage exposes no port")
    entry = final.all("ENTRYPOINT")
    if not entry or not entry[-1].arguments.startswith("["):
        problems.append("ENTRYPOINT missing or not in exec form")
    labels = " ".join(i.arguments for i in final.all("LABEL"))
    problems += [f"label {name} missing" for name in REQUIRED_LABELS if f"{name}=" not in labels]
    for instruction in final.instructions:
        if instruction.keyword in ("ARG", "ENV") and SECRET_WORDS.search(instruction.arguments):
            problems.append(f"final stage sets a build-network value: {instruction.keyword} {instruction.arguments}")
        if instruction.keyword in ("COPY", "ADD") and re.search(r"(^|\s)build/", instruction.arguments):
            problems.append("final stage copies build/ (the build network settings)")
        if instruction.keyword == "RUN" and "cortex-build" in instruction.arguments:
            problems.append("final stage reads the build network settings")
    return problems


def _everywhere(text: str, stages: list[Stage]) -> list[str]:
    problems = []
    if NATIVE.search(text):
        problems.append("-march=native (or GGML_NATIVE=ON): the image would crash on other CPUs")
    for stage in stages:
        if ":" not in stage.base.rsplit("/", 1)[-1] or stage.base.endswith(":latest"):
            problems.append(f"base {stage.base} is not pinned to a tag")
        for run in stage.all("RUN"):
            problems += _run_rules(run.arguments)
        problems += [f"ADD from a URL: {i.arguments}" for i in stage.all("ADD") if "://" in i.arguments]
    return problems


def _run_rules(command: str) -> list[str]:
    problems = []
    installs = re.findall(r"apt-get install[^&;]*", command)
    if any("--no-install-recommends" not in i for i in installs):
        problems.append("apt-get install without --no-install-recommends")
    if "apt-get update" in command and "rm -rf /var/lib/apt/lists/*" not in command:
        problems.append("apt-get update without removing /var/lib/apt/lists in the same RUN")
    if "apk add" in command and "--no-cache" not in command:
        problems.append("apk add without --no-cache")
    if re.search(r"dnf install(?![^&]*--downloadonly)", command) and "dnf clean all" not in command:
        problems.append("dnf install without dnf clean all")
    if re.search(r"dnf install(?![^&]*install_weak_deps=False)", command):
        problems.append("dnf install pulls weak dependencies")
    if "pacman -S" in command and "--noconfirm" not in command:
        problems.append("pacman without --noconfirm")
    if re.search(r"pip install(?![^&]*--no-cache-dir)", command):
        problems.append("pip install without --no-cache-dir")
    if re.search(r"(curl|wget)[^|&;]*\|\s*(ba)?sh", command):
        problems.append("pipes a download into a shell")
    return problems


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction (CMD, ENTRYPOINT, HEALTHCHECK CMD)."""
    start = arguments.index("[")
    value = json.loads(arguments[start:])
    assert isinstance(value, list)
    return [str(v) for v in value]
