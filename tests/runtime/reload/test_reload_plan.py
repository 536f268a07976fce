"""Classifying changes by the reload kind each setting declares, models compared by id, and the start
inputs every reload loads with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema.base import Section, setting
from menlo_cortex.cortexfile.table import _walk, settings
from menlo_cortex.runtime.reload.check import load_candidate
from menlo_cortex.runtime.reload.plan import Kind, ModelChanges, _flatten, kind_of, plan_changes

SHA = "a" * 64


def config(**sections: Any) -> Cortexfile:
    return Cortexfile.model_validate({"version": 1, **sections})


def model(model_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": model_id, "source": f"/models/{model_id}.gguf", **fields}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        (("server", "cors", "origins"), Kind.live),
        (("server", "auth", "api_keys"), Kind.live),
        (("server", "limits", "queue_size"), Kind.live),
        (("logs", "level"), Kind.live),
        (("server", "port"), Kind.listener),
        (("server", "tls", "cert"), Kind.listener),
        (("server", "limits", "max_connections"), Kind.listener),
        (("server", "reload", "debounce_ms"), Kind.watcher),
        (("engines", "llama_cpp", "batch_size"), Kind.models),
        (("logs", "path"), Kind.restart),
        (("data", "path"), Kind.live),
        (("logs", "max_lines"), Kind.restart),
        (("build", "formats"), Kind.inert),
    ],
)
def test_each_setting_has_its_kind(path: tuple[str, ...], kind: Kind) -> None:
    assert kind_of(path) is kind


def test_settings_are_grouped_by_kind() -> None:
    before = config()
    after = config(server={"port": 8080, "cors": {"origins": ["http://a.example"]}}, logs={"level": "debug"})
    plan = plan_changes(before, after)
    assert plan.settings == {Kind.listener: ("server.port",), Kind.live: ("logs.level", "server.cors.origins")}
    assert plan.touches(Kind.live)
    assert plan.touches(Kind.listener)
    assert not plan.touches(Kind.models)


def test_same_config_is_an_empty_plan() -> None:
    assert plan_changes(config(models=[model("a")]), config(models=[model("a")])).empty


def test_literal_keys_compare_by_value_though_printed_masked() -> None:
    plan = plan_changes(config(server={"auth": {"api_keys": ["one"]}}), config(server={"auth": {"api_keys": ["two"]}}))
    assert plan.settings == {Kind.live: ("server.auth.api_keys",)}


def test_models_are_compared_by_id() -> None:
    before = config(models=[model("kept"), model("gone"), model("moved"), model("tuned"), model("lazy")])
    after = config(
        models=[
            model("moved", sha256=SHA),
            model("kept"),
            model("new"),
            model("tuned", context_size=512),
            model("lazy", load="on_demand"),
        ]
    )
    assert plan_changes(before, after).models == ModelChanges(
        added=("new",), removed=("gone",), replaced=("moved", "tuned"), updated=("lazy",)
    )


def test_reordering_models_changes_nothing() -> None:
    assert plan_changes(config(models=[model("a"), model("b")]), config(models=[model("b"), model("a")])).empty


def test_engine_settings_replace_every_model() -> None:
    before = config(models=[model("a"), model("b")])
    after = config(models=[model("a"), model("b")], engines={"llama_cpp": {"batch_size": 64}})
    assert plan_changes(before, after).models.replaced == ("a", "b")


def test_a_reload_reads_the_start_flags_again_and_loads_the_same_config(tmp_path: Path) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    flags = {"--port": "4242", "--origins": "http://a.example,http://b.example", "--cors": "0", "--logspath": "logs"}
    first = load(path, flags=flags, cwd=tmp_path)
    again = load_candidate(first.inputs)
    assert again.config == first.config
    assert again.origin(("server", "port")).source == "flag --port"


def test_every_setting_says_how_it_reloads() -> None:
    """The plan reads the kind declared with each setting; a setting declaring none cannot exist."""
    paths = {setting.path for setting in settings()}
    assert all(kind_of(path) in Kind for path in paths)

    class Orphan(Section):
        knob: int = setting(1, "A setting nobody said how to reload.")

    with pytest.raises(TypeError, match=r"orphan\.knob declares no reload behaviour"):
        _walk(Orphan, ("orphan",))


def test_the_plan_knows_every_setting_a_config_has() -> None:
    flat = _flatten(Cortexfile(version=1))
    assert set(flat) == {setting.path for setting in settings()}
