"""The report of a load run: a JSON-ready dict, and the same facts as text.

Durations in the dict are seconds; the text shows milliseconds. Message
and byte counts are of message payloads, without frame headers or the
handshake.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING, Any

from .. import __version__
from .stats import LoadStats

if TYPE_CHECKING:
    from .behaviours import Behaviour
    from .runner import LoadConfig

__all__ = ["build_report", "format_report"]


def build_report(
    *,
    config: LoadConfig,
    behaviour: Behaviour,
    stats: LoadStats,
    elapsed: float,
    resources: dict[str, Any],
    interrupted: bool,
    killed: int,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Return the report of a finished run as a dict of JSON types."""
    samples = resources["samples"]
    return {
        "lomond_version": __version__,
        "url": config.url,
        "settings": {
            "clients": config.clients,
            "rate": config.rate,
            "duration": config.duration,
            "connect_timeout": config.connect_timeout,
            "close_timeout": config.close_timeout,
            "ping_rate": config.ping_rate,
            "behaviour": behaviour.settings(),
        },
        **details,
        "interrupted": interrupted,
        "elapsed_seconds": elapsed,
        "connections": {
            "attempted": stats.attempted,
            "not_started": config.clients - stats.attempted,
            "opened": stats.opened,
            "failed": sum(stats.failed.values()),
            "failed_by_reason": dict(stats.failed.most_common()),
            "closed_cleanly": stats.closed_cleanly,
            "dropped": sum(stats.dropped.values()),
            "dropped_by_reason": dict(stats.dropped.most_common()),
            "killed_at_drain": killed,
            "max_open": stats.max_open,
        },
        "connect_time": stats.connect_time.summary(),
        "round_trip": stats.round_trip.summary(),
        "ping_round_trip": stats.ping_round_trip.summary(),
        "messages": _message_rates(stats, samples),
        "close_codes": {str(code): count for code, count in sorted(stats.close_codes.items())},
        "errors": dict(stats.errors.most_common()),
        "client_resources": _client_resources(stats, elapsed, resources),
        "timeline": _timeline(samples),
    }


def _message_rates(stats: LoadStats, samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Return message and byte totals, their mean rates, and the highest one-second rates."""
    # The mean is taken over the seconds in which at least one connection
    # was open, so a slow ramp or drain does not dilute it.
    open_seconds = 0.0
    peak_sent = peak_received = 0.0
    for previous, current in pairwise(samples):
        seconds = current["time"] - previous["time"]
        if seconds <= 0:
            continue
        if previous["open"] or current["open"]:
            open_seconds += seconds
        peak_sent = max(peak_sent, (current["sent"] - previous["sent"]) / seconds)
        peak_received = max(peak_received, (current["received"] - previous["received"]) / seconds)

    def per_second(count: int) -> float | None:
        return count / open_seconds if open_seconds else None

    return {
        "sent": stats.messages_sent,
        "received": stats.messages_received,
        "replies": stats.replies,
        "unanswered": stats.unanswered,
        "bytes_sent": stats.bytes_sent,
        "bytes_received": stats.bytes_received,
        "seconds_with_open_connections": open_seconds,
        "sent_per_second": per_second(stats.messages_sent),
        "received_per_second": per_second(stats.messages_received),
        "bytes_sent_per_second": per_second(stats.bytes_sent),
        "bytes_received_per_second": per_second(stats.bytes_received),
        "max_sent_in_one_second": peak_sent,
        "max_received_in_one_second": peak_received,
    }


def _client_resources(stats: LoadStats, elapsed: float, resources: dict[str, Any]) -> dict[str, Any]:
    """Return CPU and memory of the load process, in total and per connection.

    Memory per connection is the growth of the resident set size from
    before the first connection to the sample with the most open
    connections, divided by that number of connections. It includes
    everything a connection costs this process: socket object, greenlet,
    WebSocket and session, and allocator overhead.
    """
    cpu = resources["cpu_seconds"]
    rss_before = resources["rss_before"]
    samples = resources["samples"]
    busiest = max(samples, key=lambda sample: (sample["open"], sample["time"]))
    rss_values = [sample["rss"] for sample in samples if sample["rss"] is not None]
    per_connection = None
    if rss_before is not None and busiest["rss"] is not None and busiest["open"]:
        per_connection = (busiest["rss"] - rss_before) / busiest["open"]
    return {
        "cpu_seconds": cpu,
        "cpu_percent_of_one_core": 100.0 * cpu / elapsed if elapsed > 0 else None,
        "cpu_ms_per_connection": 1000.0 * cpu / stats.opened if stats.opened else None,
        "rss_before_bytes": rss_before,
        "rss_max_bytes": max(rss_values) if rss_values else None,
        "rss_at_max_open_bytes": busiest["rss"],
        "open_at_memory_sample": busiest["open"],
        "memory_per_connection_bytes": per_connection,
    }


def _timeline(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one entry per sample: seconds since the start, open connections, rates."""
    if not samples:
        return []
    start = samples[0]["time"]
    timeline = []
    for previous, current in pairwise(samples):
        seconds = current["time"] - previous["time"]
        if seconds <= 0:
            continue
        timeline.append(
            {
                "t": round(current["time"] - start, 3),
                "open": current["open"],
                "sent_per_second": round((current["sent"] - previous["sent"]) / seconds, 1),
                "received_per_second": round((current["received"] - previous["received"]) / seconds, 1),
                "cpu_percent": round(100.0 * (current["cpu"] - previous["cpu"]) / seconds, 1),
                "rss_bytes": current["rss"],
            }
        )
    return timeline


# --- text --------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    """Return the report as aligned lines of text, for a terminal."""
    settings = report["settings"]
    connections = report["connections"]
    messages = report["messages"]
    resources = report["client_resources"]
    target = report["url"]
    if report.get("server", {}).get("embedded"):
        target += " (bundled test server)"

    headline = (
        f"lomond load: {settings['clients']} clients at {settings['rate']:g}/s,"
        f" {settings['duration']:g} s each, {_describe_behaviour(settings['behaviour'])}"
    )
    outcomes = (
        f"connections   opened {connections['opened']}  failed {connections['failed']}"
        f"  closed cleanly {connections['closed_cleanly']}  dropped {connections['dropped']}"
        f"  max open {connections['max_open']}"
    )
    lines = [
        headline,
        f"target: {target}",
        f"elapsed: {report['elapsed_seconds']:.1f} s" + ("  (interrupted)" if report["interrupted"] else ""),
        "",
        outcomes,
    ]
    if connections["not_started"]:
        lines.append(f"              not started {connections['not_started']}")
    for label, key in (("failed", "failed_by_reason"), ("dropped", "dropped_by_reason")):
        for reason, count in connections[key].items():
            lines.append(f"  {label} {count}: {reason}")
    if connections["killed_at_drain"]:
        lines.append(f"  killed at the end of the drain phase: {connections['killed_at_drain']}")

    lines.append(_format_durations("connect time", report["connect_time"]))
    lines.append(_format_durations("round trip", report["round_trip"]))
    if report["ping_round_trip"]["count"]:
        lines.append(_format_durations("ping", report["ping_round_trip"]))
    lines.append(
        f"messages      sent {messages['sent']} ({_rate(messages['sent_per_second'])})"
        f"  received {messages['received']} ({_rate(messages['received_per_second'])})"
        f"  replies {messages['replies']}  unanswered {messages['unanswered']}"
    )
    lines.append(
        f"bytes         sent {_size(messages['bytes_sent'])} ({_byte_rate(messages['bytes_sent_per_second'])})"
        f"  received {_size(messages['bytes_received'])} ({_byte_rate(messages['bytes_received_per_second'])})"
    )
    codes = report["close_codes"]
    shown_codes = "  ".join(f"{code} x{count}" for code, count in codes.items()) or "none"
    lines.append(f"close codes   {shown_codes}")
    lines.append(_format_resources(resources))
    lines.append(f"errors        {sum(report['errors'].values()) or 'none'}")
    for error, count in report["errors"].items():
        lines.append(f"  {count}: {error}")
    server = report.get("server", {}).get("recorded")
    if server:
        lines.append(
            f"server        accepted {server.get('accepted')}  messages received"
            f" {server.get('messages_received')}  sent {server.get('messages_sent')}"
        )
    return "\n".join(lines)


def _describe_behaviour(settings: dict[str, Any]) -> str:
    name = settings["name"]
    if name == "echo":
        return f"echo {settings['size']} bytes every {settings['interval']:g} s"
    if name == "script":
        return f"script {settings['script']}"
    return str(name)


def _format_durations(label: str, summary: dict[str, Any]) -> str:
    if not summary["count"]:
        return f"{label:<13} no samples"
    parts = [f"{name} {_ms(summary[name])}" for name in ("p50", "p90", "p99", "max")]
    note = "" if summary["exact"] else ", percentiles from a uniform sample"
    return f"{label:<13} " + "  ".join(parts) + f"  ({summary['count']} samples{note})"


def _format_resources(resources: dict[str, Any]) -> str:
    line = f"client        CPU {resources['cpu_seconds']:.1f} s"
    if resources["cpu_percent_of_one_core"] is not None:
        line += f" ({resources['cpu_percent_of_one_core']:.0f}% of one core)"
    if resources["cpu_ms_per_connection"] is not None:
        line += f", {resources['cpu_ms_per_connection']:.2f} ms per connection"
    per_connection = resources["memory_per_connection_bytes"]
    if per_connection is not None:
        line += (
            f"; memory {per_connection / 1024:.1f} KiB per connection"
            f" (RSS {_size(resources['rss_before_bytes'])} before,"
            f" {_size(resources['rss_at_max_open_bytes'])} with"
            f" {resources['open_at_memory_sample']} open)"
        )
    return line


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def _size(count: int | None) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _byte_rate(value: float | None) -> str:
    return "-" if value is None else _size(int(value)) + "/s"
