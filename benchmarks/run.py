"""Run the benchmark: every client in every scenario against a local server.

    python -m benchmarks                      # full sizes, 3 repetitions
    python -m benchmarks --quick --output DIR # a smoke run of a few seconds
    python -m benchmarks --setup              # create the peers' virtualenv

Each measurement runs one client script in its own process, against its own
server process (scripts/bench_server.py), and reads one JSON line of
results. The table shows medians over the repetitions and each client's
ratio to the raw-socket baseline. A full unfiltered run writes
results/latest.json and the generated part of RESULTS.md; a filtered or
quick run writes results/partial.json, unless --output names a directory.
"""

import argparse
import datetime
import io
import json
import os
import platform
import pstats
import shlex
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as `python benchmarks/run.py`: make the package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import catalog, jobs, report  # noqa: E402

DEFAULT_REPEAT = 3
DEFAULT_REPEAT_LONG = 1
DEFAULT_TIMEOUT = 300.0
# Many-connection jobs alive at once; their openings never overlap.
DEFAULT_MAX_OVERLAP = 4
# A client whose run takes longer than this is not repeated in that
# scenario: one long run is already stable, and three would stretch a
# full run past half an hour (websocket-client needs over a minute for
# 200 MiB of text on a 2-core machine).
DEFAULT_SLOW_RUN_SECONDS = 20.0
# websockets-sync with 3,000 connections (6,000 threads) ran on the 2-core,
# 24 GiB machine where this harness was written, and with 5,000 (10,000
# threads) it crashed: glibc printed "libgcc_s.so.1 must be installed for
# pthread_exit to work". Raise it on a machine that allows more threads.
DEFAULT_MAX_CLIENT_THREADS = 6000
PROFILE_TOP_FUNCTIONS = 12
CHECK_TIMEOUT = 120.0

# Imports each client's modules and prints its distribution's version.
CHECK_SOURCE = """
import importlib, importlib.metadata, sys
for module in sys.argv[2:]:
    importlib.import_module(module)
print(importlib.metadata.version(sys.argv[1]) if sys.argv[1] else "")
"""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark lomond against a raw socket and other WebSocket clients.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one repetition, for a smoke run of a few seconds")

    # What to run.
    parser.add_argument("--scenarios", default="",
                        help="comma-separated scenario names or prefixes (default: all)")
    parser.add_argument("--clients", default="",
                        help="comma-separated client names (default: all)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per client and scenario; the median is reported "
                             "(default %d, 1 with --quick)" % DEFAULT_REPEAT)
    parser.add_argument("--repeat-long", type=int, default=DEFAULT_REPEAT_LONG,
                        help="runs of the wall-clock-bound scenarios, idle and fan-in "
                             "(default %(default)s)")

    # Where results and peers live.
    parser.add_argument("--output", metavar="DIR",
                        help="write latest.json and RESULTS.md to DIR instead of benchmarks/")
    parser.add_argument("--peers-venv", type=Path, default=catalog.DEFAULT_PEERS_VENV,
                        help="virtualenv of the peer clients (default %(default)s)")
    parser.add_argument("--setup", action="store_true",
                        help="create the peers' virtualenv from peers-requirements.txt and exit")
    parser.add_argument("--profile", action="store_true",
                        help="instead of measuring, run this tree's lomond once per selected "
                             "scenario under cProfile and save and print its top functions")

    # Limits on a run's duration.
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds before one client run is killed (default %(default)s)")
    parser.add_argument("--slow-run-seconds", type=float, default=DEFAULT_SLOW_RUN_SECONDS,
                        help="do not repeat a client's run in a work-bound scenario once "
                             "one run took longer than this (default %(default)s)")
    parser.add_argument("--max-client-threads", type=int, default=DEFAULT_MAX_CLIENT_THREADS,
                        help="skip thread-per-connection clients in scenarios that would "
                             "need more threads (default %(default)s)")
    parser.add_argument("--max-overlap", type=int, default=DEFAULT_MAX_OVERLAP,
                        help="idle-scenario jobs alive at once (default %(default)s)")
    parser.add_argument("--list", action="store_true", help="list scenarios and clients and exit")

    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else DEFAULT_REPEAT
    if args.repeat < 1 or args.repeat_long < 1:
        parser.error("--repeat and --repeat-long must be at least 1")
    return args


def setup_peers(venv):
    """Create the peers' virtualenv and install the pinned peer clients."""
    print("creating %s" % venv, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "-r", str(catalog.PEERS_REQUIREMENTS)], check=True)
    return 0


def interpreter(client, args):
    if client.interpreter == "project":
        return sys.executable
    return str(args.peers_venv / "bin" / "python")


def check_client(client, args):
    """Return {"status": "available" or "skipped", "version", "note"}."""
    python = interpreter(client, args)
    if not os.path.exists(python):
        return {"status": "skipped",
                "note": "no interpreter at %s: create it with python -m benchmarks --setup "
                        "--peers-venv %s" % (python, args.peers_venv)}
    try:
        completed = subprocess.run(
            [python, "-c", CHECK_SOURCE, client.distribution] + list(client.modules),
            capture_output=True, text=True, timeout=CHECK_TIMEOUT, cwd=catalog.SCRIPTS_DIR,
            env=jobs.client_environment(client))
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "note": "importing its modules timed out"}
    if completed.returncode != 0:
        error_lines = completed.stderr.strip().splitlines() or ["unknown error"]
        last_line = error_lines[-1]
        return {"status": "skipped", "note": "cannot be imported: %s" % last_line}
    version = completed.stdout.strip()
    if client.required_version and version != client.required_version:
        return {"status": "skipped", "version": version,
                "note": "version %s installed, %s required" % (version, client.required_version)}
    return {"status": "available", "version": version or None}


def thread_budget_note(client, sizes, max_threads):
    """Return why a thread-per-connection client must skip this size, or None.

    websockets' sync client starts two threads per connection, and a run
    that cannot create its threads may also starve other processes of the
    machine, so sizes over --max-client-threads are skipped.
    """
    if client.name != "websockets-sync" or "connections" not in sizes:
        return None
    threads = 2 * sizes["connections"]
    if threads <= max_threads:
        return None
    return "skipped: needs %d threads (two per connection), over --max-client-threads %d" % (
        threads, max_threads)


def read_first(path, prefix):
    try:
        with open(path) as stream:
            for line in stream:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def peers_python_version(args):
    python = args.peers_venv / "bin" / "python"
    if not python.exists():
        return None
    completed = subprocess.run([str(python), "-c", "import platform;print(platform.python_version())"],
                               capture_output=True, text=True, timeout=CHECK_TIMEOUT)
    return completed.stdout.strip() or None


def machine_info(args, load_start):
    return {
        "cpu": read_first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "peers_python": peers_python_version(args),
        "load_start": "%.2f" % load_start,
    }


def progress(message):
    print(message, file=sys.stderr, flush=True)


def describe(job):
    record = job.record()
    if record["status"] != "ok":
        return "failed: %s" % record.get("error", "")
    return "ok in %.1f s" % job.wall_seconds


class Run:
    """The state of one benchmark run: selections, jobs and their records."""

    def __init__(self, args, command):
        self.args = args
        self.command = command
        # Linux counts runnable threads in the load average, so read it
        # before any client starts its own threads.
        self.load_start = os.getloadavg()[0]
        self.scenarios = catalog.select(split(args.scenarios), catalog.SCENARIOS, "scenario")
        self.clients = catalog.select(split(args.clients), catalog.CLIENTS, "client")
        self.log_dir = jobs.scratch_directory()
        self.availability = {client.name: check_client(client, args) for client in self.clients}
        self.available = [client for client in self.clients
                          if self.availability[client.name]["status"] == "available"]
        self.runs = {scenario.name: {} for scenario in self.scenarios}
        for scenario in self.scenarios:
            for client in self.clients:
                if client.kinds and scenario.kind not in client.kinds:
                    continue
                entry = {"runs": []}
                info = self.availability[client.name]
                note = info.get("note") or thread_budget_note(
                    client, self.sizes(scenario), args.max_client_threads)
                if info["status"] != "available" or note:
                    entry.update(status="skipped", note=note)
                self.runs[scenario.name][client.name] = entry

    def sizes(self, scenario):
        return scenario.quick if self.args.quick else scenario.full

    def make_job(self, client, scenario, profile_path=None):
        return jobs.Job(client, scenario, self.sizes(scenario), interpreter(client, self.args),
                        sys.executable, self.log_dir, self.args.timeout, profile_path)

    def runnable(self, scenario):
        entries = self.runs[scenario.name]
        return [client for client in self.available
                if client.name in entries and entries[client.name].get("status") != "skipped"]

    def is_slow(self, scenario, client):
        """Tell whether a run of this client already took past --slow-run-seconds.

        The first time it does, a note records why the client ran fewer times.
        """
        entry = self.runs[scenario.name][client.name]
        slowest = max((run.get("wall_s") or 0.0 for run in entry["runs"]), default=0.0)
        if slowest <= self.args.slow_run_seconds:
            return False
        entry.setdefault("slow_note", "not repeated after %d run(s): one took %.0f s, past --slow-run-seconds %g"
                         % (len(entry["runs"]), slowest, self.args.slow_run_seconds))
        return True

    def record(self, job):
        self.runs[job.scenario.name][job.client.name]["runs"].append(job.record())
        progress("  %-18s %-18s %s" % (job.scenario.name, job.client.name, describe(job)))

    def run_all(self):
        short = [scenario for scenario in self.scenarios if not scenario.long]
        idle = [scenario for scenario in self.scenarios if scenario.kind == "idle"]
        others = [scenario for scenario in self.scenarios
                  if scenario.long and scenario.kind != "idle"]

        # Work-bound scenarios: clients interleaved within each repetition,
        # so a slow phase of a shared machine affects them all alike.
        for repetition in range(self.args.repeat):
            progress("repetition %d of %d" % (repetition + 1, self.args.repeat))
            for scenario in short:
                for client in self.runnable(scenario):
                    if repetition and self.is_slow(scenario, client):
                        continue
                    self.record(self.make_job(client, scenario).wait())

        for repetition in range(self.args.repeat_long):
            progress("wall-clock-bound scenarios, run %d of %d" % (
                repetition + 1, self.args.repeat_long))
            idle_jobs = [self.make_job(client, scenario)
                         for scenario in idle for client in self.runnable(scenario)]
            jobs.run_staggered(idle_jobs, self.args.max_overlap, self.record)
            # Fan-in lag depends on scheduling, so these run alone.
            for scenario in others:
                for client in self.runnable(scenario):
                    self.record(self.make_job(client, scenario).wait())

    def profile(self, output_dir):
        """Profile this tree's lomond once per selected scenario.

        Write profiles/lomond-SCENARIO.prof (cProfile's format) and a .txt
        of the top functions by own time, and print the latter. Return 1 if
        a run failed, else 0.
        """
        client = catalog.CLIENTS_BY_NAME["lomond"]
        if client not in self.available:
            progress("lomond cannot be profiled: %s" % self.availability["lomond"].get("note"))
            return 1
        profile_dir = output_dir / "profiles"
        profile_dir.mkdir(parents=True, exist_ok=True)
        status = 0
        for scenario in self.scenarios:
            path = profile_dir / ("lomond-%s.prof" % scenario.name)
            job = self.make_job(client, scenario, profile_path=path).wait()
            if job.result is None or not path.exists():
                progress("profile of %s failed: %s" % (scenario.name, job.error))
                status = 1
                continue
            stream = io.StringIO()
            stats = pstats.Stats(str(path), stream=stream)
            stats.strip_dirs().sort_stats("tottime").print_stats(PROFILE_TOP_FUNCTIONS)
            summary = "lomond in %s (%s)\n%s\n" % (
                scenario.name, json.dumps(job.result), trim_profile(stream.getvalue()))
            path.with_suffix(".txt").write_text(summary)
            print(summary)
        return status

    def document(self):
        report.summarize(self.runs)
        machine = machine_info(self.args, self.load_start)
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": self.command,
            "machine": machine,
            "settings": {"quick": self.args.quick, "repeat": self.args.repeat,
                         "repeat_long": self.args.repeat_long,
                         "sizes": {scenario.name: self.sizes(scenario)
                                   for scenario in self.scenarios}},
            "clients": {client.name: dict(self.availability[client.name], label=client.label)
                        for client in self.clients},
            "scenarios": self.runs,
            "targets": report.evaluate_targets(self.runs),
        }


def trim_profile(text):
    """Keep pstats' column header and rows, dropping its preamble."""
    lines = text.strip().splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith("ncalls"):
            return "\n".join(lines[index:])
    return text


def split(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def write_outputs(document, args, full_run):
    """Write the JSON and, for a full run or --output, RESULTS.md."""
    if args.output:
        output_dir = Path(args.output)
        json_path = output_dir / "latest.json"
        page_path = output_dir / "RESULTS.md"
    elif full_run:
        output_dir = catalog.BENCHMARKS_DIR / "results"
        json_path = output_dir / "latest.json"
        page_path = catalog.BENCHMARKS_DIR / "RESULTS.md"
    else:
        output_dir = catalog.BENCHMARKS_DIR / "results"
        json_path = output_dir / "partial.json"
        page_path = None
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    progress("wrote %s" % json_path)
    if page_path is not None:
        existing = page_path.read_text() if page_path.exists() else ""
        page_path.write_text(report.merge_results_page(existing, report.markdown_report(document)))
        progress("wrote %s" % page_path)
    else:
        progress("RESULTS.md unchanged: only a full run without --quick, --scenarios "
                 "or --clients rewrites it")


def main(argv=None, prog="python -m benchmarks"):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.setup:
        return setup_peers(args.peers_venv)
    if args.list:
        for scenario in catalog.SCENARIOS:
            print("scenario %-18s %s" % (scenario.name, scenario.title))
        for client in catalog.CLIENTS:
            print("client   %-18s %s" % (client.name, client.label))
        return 0

    try:
        run = Run(args, " ".join([prog] + [shlex.quote(arg) for arg in argv]))
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    for name, info in run.availability.items():
        if info["status"] != "available":
            progress("skipping %s: %s" % (name, info["note"]))

    if args.profile:
        output_dir = Path(args.output) if args.output else catalog.BENCHMARKS_DIR / "results"
        return run.profile(output_dir)

    run.run_all()
    full_run = not (args.quick or args.scenarios or args.clients)
    document = run.document()
    document["machine"]["load_end"] = "%.2f" % os.getloadavg()[0]

    print(report.text_report(document))
    write_outputs(document, args, full_run)
    failed = [(scenario, client) for scenario, clients in document["scenarios"].items()
              for client, entry in clients.items() if entry.get("status") == "failed"]
    if failed:
        progress("failed: %s" % ", ".join("%s in %s" % (client, scenario)
                                          for scenario, client in failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/run.py"))
