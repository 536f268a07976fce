"""The escaping helpers one by one, read back by the real parsers where one is at hand (bash), and
the template environment that refuses a `{{ ... }}` without one of them."""

from __future__ import annotations

import json
import subprocess

import jinja2
import pytest
from menlo_cortex.images import escape
from menlo_cortex.images.templating import FILTERS, RawValue, environment

HOSTILE = [
    "plain",
    "a b",
    "x'y\"z",
    "$HOME `id` $(id) ;id |id &",
    "%h %% %",
    "back\\slash",
    "ünïcödé ✓",
    "-rf",
    "* ? [a]",
]
CONTROL = ["new\nline", "carriage\rreturn", "tab\there", "nul\x00", "line\u2028separator", "\x7f", "\x85"]


@pytest.mark.parametrize("value", HOSTILE + CONTROL[:-2])
def test_a_shell_word_reads_back_as_itself(value: str) -> None:
    if "\x00" in value:
        with pytest.raises(escape.Unrepresentable):
            escape.sh(value)
        return
    command = ["bash", "-c", f"printf '%s' {escape.sh(value)}"]
    done = subprocess.run(command, capture_output=True, check=True, timeout=10)
    assert done.stdout.decode() == value


@pytest.mark.parametrize("value", CONTROL)
@pytest.mark.parametrize(
    "helper",
    [
        escape.comment,
        escape.unit_value,
        escape.unit_word,
        escape.sysusers,
        escape.dockerfile_word,
        escape.dockerfile_string,
        escape.dockerfile_shell,
        escape.dockerfile_code,
    ],
)
def test_one_line_languages_refuse_control_characters(helper: object, value: str) -> None:
    with pytest.raises(escape.Unrepresentable):
        helper(value)  # type: ignore[operator]


@pytest.mark.parametrize("value", HOSTILE)
def test_unit_words_are_quoted_and_specifiers_doubled(value: str) -> None:
    word = escape.unit_word(value)
    assert "%" not in word.replace("%%", "")
    if word.startswith('"'):
        inner = word[1:-1]
        assert inner.replace('\\"', "").replace("\\\\", "").count('"') == 0
    else:
        assert " " not in word


def test_unit_exec_needs_an_absolute_program_and_doubles_dollars() -> None:
    assert escape.unit_exec(["/bin/echo", "$HOME", "a b"]) == '/bin/echo "$$HOME" "a b"'
    for program in ("-/bin/true", "+/bin/sh", "echo"):
        with pytest.raises(escape.Unrepresentable):
            escape.unit_exec([program])


def test_sysusers_refuses_the_passwd_separator() -> None:
    with pytest.raises(escape.Unrepresentable):
        escape.sysusers("/var/lib/a:b")


def test_dockerfile_forms() -> None:
    assert escape.dockerfile_exec(["/bin/a", 'x"y', "$HOME"]) == json.dumps(["/bin/a", 'x"y', "$HOME"])
    assert escape.dockerfile_string('say "hi" to $USER\\') == '"say \\"hi\\" to \\$USER\\\\"'
    assert escape.dockerfile_word("docker.io/library/debian:bookworm-slim") == "docker.io/library/debian:bookworm-slim"
    for word in ("a b", "$HOME", "a;b", "x'"):
        with pytest.raises(escape.Unrepresentable):
            escape.dockerfile_word(word)
    with pytest.raises(escape.Unrepresentable):
        escape.dockerfile_shell("x<<EOF")


def test_a_template_cannot_write_a_raw_value() -> None:
    env = environment("menlo_cortex.images.targets.systemd")
    assert env.from_string("{{ v | sh }} {{ n }}").render(v="a b", n=3) == "'a b' 3"
    for source in ("{{ v }}", "{{ v ~ 'x' }}", "{{ v | e }}"):
        with pytest.raises((RawValue, jinja2.TemplateError)):
            env.from_string(source).render(v="x\nExecStartPre=+/bin/sh")
    assert set(env.filters) == set(FILTERS)


@pytest.mark.parametrize(
    "value",
    ["yes", "No", "on", "OFF", "y", "~", "null", "1", "0.5", ".5", "1e3", "0x1F", "0o17", "12:30", "-1", "+.inf",
     ".NaN", "", "a: b", "- x", "#x", "*ref", "&a", "!tag", "'q'", '"q"', "line\nbreak", "tab\there", "ü", "{x}"],
)  # fmt: skip
def test_yaml_reads_back_as_the_same_string_in_yaml_1_1_and_1_2(value: str) -> None:
    """Kubernetes reads manifests as YAML 1.1 (`yes` is a bool there): every string comes back a string."""
    from ruamel.yaml import YAML

    text = escape.yaml_documents([{"key": value, value or "empty": 1}])
    for version in ((1, 1), (1, 2)):
        reader = YAML(typ="safe", pure=True)
        reader.version = version
        assert reader.load(text) == {"key": value, value or "empty": 1}, text
