"""benchmarks.harness with pytest-benchmark's own fixture, on the CPU."""

import pytest
import torch

from benchmarks import harness

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def quick_rounds(monkeypatch):
    monkeypatch.setenv("APEM_BENCH_ROUNDS", "3")
    monkeypatch.setenv("APEM_BENCH_ROUND_SECONDS", "0.001")


def test_measure_records_rates_against_the_floor(benchmark):
    x = torch.randn(1000)
    harness.measure(benchmark, lambda: x * 2, device=CPU, samples=1000, floor_bytes=8000, op="x")
    info = benchmark.extra_info
    if benchmark.disabled:  # --benchmark-disable: one untimed call, the case only
        assert info == {"op": "x", "samples": 1000, "device": "cpu"}
        return
    assert info["op"] == "x" and info["device"] == "cpu"
    assert info["samples_per_s"] == pytest.approx(1000 / info["median_s"])
    assert info["gbps"] == pytest.approx(8000 / info["median_s"] / 1e9)
    assert info["roofline_share"] == pytest.approx(info["gbps"] / info["copy_gbps"])
    assert benchmark.stats.stats.rounds == 3


def test_rejected_case_skips_with_the_error():
    def rejects() -> None:
        raise RuntimeError("grid too large\nmore detail")

    with pytest.raises(pytest.skip.Exception, match="RuntimeError: grid too large$"):
        harness._warm_up(rejects, CPU, skip_errors=(RuntimeError,))
    with pytest.raises(RuntimeError):  # errors not listed still fail
        harness._warm_up(rejects, CPU, skip_errors=())


def test_deadline_skips(monkeypatch):
    monkeypatch.setenv("APEM_BENCH_DEADLINE", "0")
    with pytest.raises(pytest.skip.Exception, match="time budget"):
        harness.skip_past_deadline()
