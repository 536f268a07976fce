"""The memory bandwidth `cortex models fit` uses: measured once, cached, and a bad cache never trusted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from menlo_cortex.benchmark.bandwidth import KIND, _cgroup_cpus, memory_bandwidth


def test_measured_once_then_read_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "bandwidth.json"
    first, measured = memory_bandwidth("cpu|2|1", cache, measure_s=0.05)
    assert measured is True
    assert first is not None
    assert first > 1e6
    assert memory_bandwidth("cpu|2|1", cache, measure_s=0.05) == (first, False)


@pytest.mark.parametrize("stored", ["1e999", "true", "-5", '"fast"', "[" * 100_000, "{", "12"])
def test_a_cached_value_that_is_not_a_plausible_rate_is_measured_again(tmp_path: Path, stored: str) -> None:
    cache = tmp_path / "bandwidth.json"
    cache.write_text(f'{{"{KIND}|cpu|2|1": {stored}}}' if not stored.startswith(("[", "{")) else stored)
    rate, measured = memory_bandwidth("cpu|2|1", cache, measure_s=0.05)
    assert measured is True
    assert rate is not None
    assert 1e6 < rate < 1e13
    assert json.loads(cache.read_text())[f"{KIND}|cpu|2|1"] == rate


def test_a_linked_cache_is_not_read_and_an_unwritable_one_is_not_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(json.dumps({f"{KIND}|cpu|2|1": 5e9}))
    link = tmp_path / "bandwidth.json"
    link.symlink_to(secret)
    assert memory_bandwidth("cpu|2|1", link, measure_s=0.05)[1] is True  # measured: the link was not followed
    blocked = tmp_path / "file" / "bandwidth.json"
    (tmp_path / "file").write_text("a file where the cache folder should be")
    rate, measured = memory_bandwidth("cpu|2|1", blocked, measure_s=0.05)
    assert measured is True
    assert rate is not None


@pytest.mark.parametrize(("content", "cores"), [("max 100000", 1 << 16), ("150000 100000", 2), ("50000 100000", 1)])
def test_the_cgroups_cpu_quota_bounds_the_cores_used(tmp_path: Path, content: str, cores: int) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(content + "\n")
    assert _cgroup_cpus(cpu_max) == cores
