"""benchmarks.render on a small pytest-benchmark JSON fixture."""

from pathlib import Path

from benchmarks import render

FIXTURE = Path(__file__).parent / "fixtures" / "bench_fixture.json"


def test_load_keeps_timed_rows_and_run_description():
    rows, meta = render.load([FIXTURE])
    assert len(rows) == 9  # the untimed (--benchmark-disable) entry is dropped
    assert meta["apem_device"] == "Test GPU"
    assert meta["datetime"] == "2026-01-01T00:00:00"


def test_targets_compare_fused_kernel_and_apem_training():
    rows, _ = render.load([FIXTURE])
    lines = render.targets(rows).splitlines()
    by_label = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("|")}
    assert "| 20× | yes |" in by_label["fused attention fwd+bwd vs eager"]
    assert "| 2.5× | yes |" in by_label["fused attention fwd+bwd vs compile"]
    assert "| 50.5% | yes |" in by_label["fused attention fwd+bwd: byte floor time / measured"]
    assert "| 2 M | yes |" in by_label["APEM (triton) training samples/s"]


def test_missing_rows_read_not_measured():
    text = render.targets([])
    assert text.count("not measured") == 4


def test_main_writes_markdown_and_png_and_prints_short_table(tmp_path, capsys):
    render.main([str(FIXTURE), "--out", str(tmp_path)])
    report = (tmp_path / "bench.md").read_text()
    assert "# Benchmarks on Test GPU" in report
    assert "### attention_block · paper · fwd_bwd · bf16" in report
    assert "| 16,384 | eager | 1 ms | 16.4 M |" in report
    assert "| apem | triton | train | 65,536 | 2 M |" in report
    assert "| make_funnel | 1,000,000 | 2 M | 500 ms |" in report
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert printed.startswith("Targets")
    assert "training step, batch 65,536" in printed
