"""One escaping helper per language a Cortexfile value can land in: systemd unit files (and the
sysusers.d and quadlet files that share their syntax), shell scripts, Dockerfiles, comments and YAML.

The schema already keeps paths and names to a safe character set; these helpers are the second
wall, so a template never writes a raw value. Each returns the text to write, or raises
`Unrepresentable` for a value the language cannot hold as data: a newline in a unit file or a
Dockerfile ends the directive and starts another, so it is refused rather than escaped (several
systemd settings, WorkingDirectory= and sysusers fields among them, do not C-unescape, so an
escaped newline would silently name another path).
"""

from __future__ import annotations

import io
import json
import re
import shlex
from collections.abc import Iterable

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, and lone surrogates (which
# cannot be encoded as UTF-8): none of them belongs in a one-line value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# What a systemd word or a Dockerfile word may hold without quoting.
_BARE_UNIT = re.compile(r"[][A-Za-z0-9._/@:+=,-]+")
_BARE_DOCKERFILE = re.compile(r"[A-Za-z0-9._/@:+,-]+")


class Unrepresentable(ValueError):
    """A value that the target language cannot hold as data."""


def _one_line(value: object, language: str) -> str:
    text = str(value)
    if _CONTROL.search(text):
        raise Unrepresentable(f"{text!r} holds a control character: it cannot be written into a {language}")
    return text


def comment(value: object) -> str:
    """Text in a `#` comment of any of these files: one line, not continued onto the next."""
    text = _one_line(value, "comment")
    if text.endswith("\\"):
        raise Unrepresentable(f"{text!r} ends with a backslash, which would continue the comment")
    return text


def word(value: object) -> str:
    """One field of a line-oriented file that splits on blanks (fstab, the kernel command line,
    config.txt, /etc/hostname, wpa_supplicant's unquoted values): no blank, no `#`, no control character."""
    text = _one_line(value, "configuration file")
    if not text or re.search(r"[\s#]", text):
        raise Unrepresentable(f"{text!r} is empty or holds a blank or `#`: it must be one field")
    return text


def line(value: object) -> str:
    """A whole line of a line-oriented file (authorized_keys): one line, not starting with a blank or `#`."""
    text = _one_line(value, "configuration file")
    if not text or text != text.strip() or text.startswith("#"):
        raise Unrepresentable(f"{text!r} is empty, padded or a comment: it must be one line of data")
    return text


# systemd.syntax(7): unit files, sysusers.d(5) lines and Podman quadlets.


def unit_value(value: object) -> str:
    """A setting whose value systemd takes verbatim after specifier expansion (WorkingDirectory=,
    EnvironmentFile=, Description=, User=)."""
    text = _one_line(value, "systemd unit file")
    if text != text.strip() or not text or text.endswith("\\"):
        raise Unrepresentable(f"{text!r}: systemd would trim, drop or continue this value")
    return text.replace("%", "%%")


def unit_word(value: object) -> str:
    """One word of a setting that systemd splits into words and unquotes (Environment=,
    StateDirectory=, quadlet keys, sysusers fields): specifiers doubled, quoted when needed."""
    text = _one_line(value, "systemd unit file").replace("%", "%%")
    if _BARE_UNIT.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_words(values: Iterable[object]) -> str:
    return " ".join(unit_word(v) for v in values)


def unit_exec(argv: Iterable[object]) -> str:
    """An Exec*= command line: words as `unit_word`, `$` doubled (systemd expands $VAR there), and
    the program an absolute path, so no word is read as a `-`, `+`, `!` or `@` prefix."""
    words = [str(v) for v in argv]
    if not words or not words[0].startswith("/"):
        raise Unrepresentable(f"{words[:1]!r}: an Exec line starts with an absolute path")
    return " ".join(unit_word(w).replace("$", "$$") for w in words)


def sysusers(value: object) -> str:
    """A field of a sysusers.d line: a word as in unit files, never a `:` (the passwd separator)."""
    text = _one_line(value, "sysusers.d file")
    if ":" in text:
        raise Unrepresentable(f"{text!r}: a sysusers field cannot hold `:`")
    return unit_word(text)


# Shell (install.sh, uninstall.sh, the build's env.sh).


def sh(value: object) -> str:
    """One shell word; single quotes keep everything literal, newlines included."""
    text = str(value)
    if "\x00" in text:
        raise Unrepresentable(f"{text!r} holds a NUL byte, which no shell word can hold")
    return shlex.quote(text)


def sh_words(values: Iterable[object]) -> str:
    return " ".join(sh(v) for v in values)


# Dockerfile (the BuildKit and Buildah front ends).


def dockerfile_word(value: object) -> str:
    """A word of FROM, COPY, WORKDIR or ENV: these split on white space and expand `$VAR` before any
    quoting applies, so only a bare safe word is written; anything else is refused."""
    text = _one_line(value, "Dockerfile")
    if not _BARE_DOCKERFILE.fullmatch(text):
        raise Unrepresentable(f"{text!r} cannot be a Dockerfile word: letters, digits and `._/@:+,-` only")
    return text


def dockerfile_string(value: object) -> str:
    """A LABEL (or ENV) value: double-quoted, with `\\`, `"` and `$` escaped."""
    text = _one_line(value, "Dockerfile")
    return '"' + re.sub(r'([\\"$])', r"\\\1", text) + '"'


def dockerfile_exec(argv: Iterable[object]) -> str:
    """The JSON exec form of RUN, CMD, ENTRYPOINT and HEALTHCHECK CMD: no shell, no expansion."""
    return json.dumps([str(v) for v in argv])


def dockerfile_shell(value: object) -> str:
    """One shell word inside a shell-form RUN line: a shell word that also keeps the Dockerfile
    line whole (no newline) and starts no heredoc (`<<`)."""
    text = _one_line(value, "Dockerfile RUN line")
    if "<<" in text:
        raise Unrepresentable(f"{text!r}: `<<` would start a heredoc in a RUN line")
    return sh(text)


def dockerfile_shell_words(values: Iterable[object]) -> str:
    return " ".join(dockerfile_shell(v) for v in values)


def dockerfile_code(value: object) -> str:
    """A shell step of the project's own (the distro matrix's repository set-up): code, not data,
    so it is not quoted; it must stay one line of the RUN instruction."""
    text = _one_line(value, "Dockerfile RUN line")
    if text.endswith("\\") or "<<" in text:
        raise Unrepresentable(f"{text!r}: a RUN step cannot end in a backslash or start a heredoc")
    return text


# Plain scalars that YAML 1.1 readers (Kubernetes' sigs.k8s.io/yaml among them) take for a bool, a null or a
# number, although YAML 1.2 takes several of them for strings: such a string is always written quoted.
_YAML11_NOT_A_STRING = re.compile(
    r"(?i:y|n|yes|no|on|off|true|false|null|~)|[-+]?(?:\.\d|\d)[\d_.:eExXoObB+-]*|[-+]?\.(?i:inf|nan)|"
)


def yaml_documents(documents: Iterable[object]) -> str:
    """Kubernetes manifests and other YAML: written by a YAML library from plain data, never by formatting
    strings; keys in the order given; a string a YAML 1.1 reader would take for another type is quoted."""
    from ruamel.yaml import YAML
    from ruamel.yaml.representer import SafeRepresenter

    class Representer(SafeRepresenter):
        def represent_str(self, data: str) -> object:
            style = '"' if _YAML11_NOT_A_STRING.fullmatch(data) else None
            return self.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Representer.add_representer(str, Representer.represent_str)
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = Representer
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.width = 4096  # no folded lines: a long value stays one line
    out = io.StringIO()
    yaml.dump_all(list(documents), out)
    return out.getvalue()
