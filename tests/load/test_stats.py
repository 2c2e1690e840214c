"""Percentiles, samples and the text report of lomond.load."""

from __future__ import annotations

import pytest

from lomond.load import EchoBehaviour, LoadConfig, LoadStats, Samples, percentile
from lomond.load.report import build_report, format_report

pytestmark = pytest.mark.load


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([1.0], 0.5, 1.0),
        ([1.0], 1.0, 1.0),
        ([1.0, 2.0], 0.5, 1.0),
        ([1.0, 2.0], 0.51, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.75, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 0.9, 4.0),
        (list(map(float, range(1, 101))), 0.99, 99.0),
        (list(map(float, range(1, 101))), 0.90, 90.0),
        (list(map(float, range(1, 1001))), 0.999, 999.0),
    ],
)
def test_percentile_nearest_rank(values, fraction, expected):
    assert percentile(values, fraction) == expected


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01])
def test_percentile_invalid_fraction(fraction):
    with pytest.raises(ValueError, match="fraction must be in"):
        percentile([1.0], fraction)


def test_percentile_no_samples():
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_samples_summary_exact():
    samples = Samples()
    for value in (0.005, 0.001, 0.003, 0.002, 0.004):
        samples.add(value)
    summary = samples.summary()
    assert summary["count"] == 5
    assert summary["exact"] is True
    assert summary["p50"] == 0.003
    assert summary["p90"] == 0.005
    assert summary["max"] == 0.005
    assert summary["mean"] == pytest.approx(0.003)


def test_samples_summary_empty():
    summary = Samples().summary()
    assert summary["count"] == 0
    assert summary["p50"] is None
    assert summary["max"] is None


def test_samples_reservoir_bounded():
    samples = Samples(max_samples=100, seed=7)
    for value in range(10_000):
        samples.add(float(value))
    summary = samples.summary()
    assert len(samples.values) == 100
    assert summary["count"] == 10_000
    assert summary["exact"] is False
    assert summary["max"] == 9999.0  # the maximum and the mean stay exact
    assert summary["mean"] == pytest.approx(4999.5)
    assert 3000 < summary["p50"] < 7000  # a uniform sample of 0..9999


def test_text_report_lines():
    stats = LoadStats()
    stats.attempted = 3
    stats.connection_opened(0.002)
    stats.connection_opened(0.004)
    stats.closed_cleanly = 1
    stats.dropped["closed by the server with code 1011"] += 1
    stats.failed["rejected: 503"] += 1
    stats.close_codes[1000] += 1
    stats.close_codes[1011] += 1
    stats.message_sent(32)
    stats.message_received(32)
    samples = [
        {"time": 0.0, "open": 0, "rss": 1000, "cpu": 0.0, "sent": 0, "received": 0},
        {"time": 1.0, "open": 2, "rss": 3048, "cpu": 0.1, "sent": 1, "received": 1},
    ]
    report = build_report(
        config=LoadConfig(url="ws://127.0.0.1:1/", clients=3, rate=10, duration=1),
        behaviour=EchoBehaviour(interval=0.5, size=32),
        stats=stats,
        elapsed=1.5,
        resources={"cpu_seconds": 0.1, "rss_before": 1000, "samples": samples},
        interrupted=False,
        killed=0,
        details={"server": {"embedded": False}},
    )
    text = format_report(report)

    assert report["client_resources"]["memory_per_connection_bytes"] == 1024.0
    assert report["close_codes"] == {"1000": 1, "1011": 1}
    assert report["messages"]["sent_per_second"] == 1.0
    assert "lomond load: 3 clients at 10/s, 1 s each, echo 32 bytes every 0.5 s" in text
    assert "connections   opened 2  failed 1  closed cleanly 1  dropped 1  max open 2" in text
    assert "  failed 1: rejected: 503" in text
    assert "  dropped 1: closed by the server with code 1011" in text
    assert "connect time  p50 2.0 ms  p90 4.0 ms  p99 4.0 ms  max 4.0 ms  (2 samples)" in text
    assert "close codes   1000 x1  1011 x1" in text
    assert "memory 1.0 KiB per connection" in text
