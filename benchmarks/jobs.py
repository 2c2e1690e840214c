"""The processes of one measurement: a benchmark server and one client.

Every job starts its own server, so no run inherits connections, threads
or cached buffers from another, and many-connection jobs that overlap use
different server ports (each destination has its own ephemeral port range).
"""

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.catalog import BENCHMARKS_DIR, SCRIPTS_DIR

SERVER_START_TIMEOUT = 10.0
SERVER_STOP_TIMEOUT = 10.0
# Lines of a failed process's standard error kept in the results.
ERROR_TAIL_LINES = 4


def tail(path, lines=ERROR_TAIL_LINES):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def process_cpu_seconds(pid):
    """Return user plus system CPU seconds of a live process (Linux /proc)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), counted from 1 before the split at ")".
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """The benchmark server, alive until stop() closes its standard input."""

    def __init__(self, python, log_dir):
        self.log_path = os.path.join(log_dir, "server-%d.log" % time.monotonic_ns())
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [python, str(SCRIPTS_DIR / "bench_server.py")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=SCRIPTS_DIR)
        line = read_line(self.process.stdout, SERVER_START_TIMEOUT)
        if not line:
            self.stop()
            raise RuntimeError("benchmark server did not start: %s" % tail(self.log_path))
        self.port = json.loads(line)["port"]

    def cpu_seconds(self):
        return process_cpu_seconds(self.process.pid)

    def stop(self):
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def read_line(stream, timeout):
    """Read one line from a pipe in a helper thread; return b"" on timeout."""
    lines = queue.Queue()
    thread = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    thread.start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return b""


def client_environment(client):
    """Return the environment for a client process.

    Project clients get this tree first on sys.path, so they measure this
    checkout's lomond whatever is installed. Peers get no PYTHONPATH, so
    they import their virtualenv's lomond 0.3.4.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if client.interpreter == "project":
        env["PYTHONPATH"] = str(BENCHMARKS_DIR.parent)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Job:
    """One run of one client in one scenario, with its own server.

    Phases: "opening" until a many-connection client reports that all its
    connections are open, "running", "finishing" once the result arrived,
    and "done" when both processes have exited.
    """

    def __init__(self, client, scenario, sizes, python, server_python, log_dir, timeout,
                 profile_path=None):
        self.client = client
        self.scenario = scenario
        self.sizes = sizes
        self.python = python
        self.server_python = server_python
        self.log_dir = log_dir
        self.timeout = timeout
        self.profile_path = profile_path
        self.phase = "pending"
        self.result = None
        self.error = None
        self.wall_seconds = None
        self.server_cpu_seconds = None

    def start(self):
        self.started = time.monotonic()
        try:
            self.server = ServerProcess(self.server_python, self.log_dir)
        except (OSError, RuntimeError, ValueError) as exc:
            self.error = str(exc)
            self.phase = "done"
            self.server = None
            return
        url = "ws://127.0.0.1:%d%s" % (self.server.port, self.scenario.path(self.sizes))
        command = [self.python, str(SCRIPTS_DIR / self.client.script), "--url", url]
        command += self.scenario.client_arguments(self.sizes)
        if self.client.monkey_patch:
            command.append("--monkey-patch")
        command += list(self.client.arguments)
        if self.profile_path:
            command += ["--profile", str(self.profile_path)]
        self.stderr_path = os.path.join(
            self.log_dir, "%s-%s-%d.log" % (self.client.name, self.scenario.name,
                                            time.monotonic_ns()))
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, cwd=SCRIPTS_DIR,
                env=client_environment(self.client))
        self.lines = queue.Queue()
        self.stdout_closed = False
        threading.Thread(target=self._read_stdout, daemon=True).start()
        self.phase = "opening" if self.scenario.kind in ("idle", "fanin") else "running"

    def _read_stdout(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def poll(self):
        """Advance the job's phase; return True once it is done."""
        if self.phase == "done":
            return True
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self.stdout_closed = True
                continue
            self._on_line(line)
        if self.stdout_closed and self.process.poll() is not None:
            self._finish()
        elif time.monotonic() - self.started > self.timeout:
            self.process.kill()
            self.process.wait()
            self.error = "timed out after %.0f s" % self.timeout
            self._finish()
        return self.phase == "done"

    def _on_line(self, line):
        try:
            message = json.loads(line)
        except ValueError:
            return
        if message.get("phase") == "opened":
            self.phase = "running"
        elif "result" in message:
            self.result = message["result"]
            self.wall_seconds = time.monotonic() - self.started
            self.server_cpu_seconds = self.server.cpu_seconds()
            self.phase = "finishing"
        elif "error" in message:
            self.error = message["error"]

    def _finish(self):
        self.process.wait()
        self.process.stdout.close()
        self.server.stop()
        if self.result is None and self.error is None:
            self.error = "exited with status %d: %s" % (self.process.returncode,
                                                        tail(self.stderr_path))
        self.phase = "done"

    def wait(self, poll_interval=0.02):
        """Start the job if it is pending and poll until it is done."""
        if self.phase == "pending":
            self.start()
        while not self.poll():
            time.sleep(poll_interval)
        return self

    def record(self):
        """Return this run as a JSON-ready dict."""
        entry = {"status": "ok" if self.result is not None else "failed"}
        if self.result is not None:
            entry["result"] = self.result
            entry["server_cpu_s"] = self.server_cpu_seconds
            entry["wall_s"] = self.wall_seconds
        if self.error is not None:
            entry["error"] = self.error
        return entry


def run_staggered(jobs, max_alive, on_done):
    """Run jobs with overlapping idle windows but never overlapping openings.

    A job starts only when no running job is opening its connections or
    finishing, and fewer than `max_alive` jobs are alive. CPU seconds and
    RSS are per process, so another job's idle window does not change them.
    """
    pending = list(jobs)
    alive = []
    while pending or alive:
        busy = any(job.phase in ("opening", "finishing") for job in alive)
        if pending and not busy and len(alive) < max_alive:
            job = pending.pop(0)
            job.start()
            alive.append(job)
        for job in list(alive):
            if job.poll():
                alive.remove(job)
                on_done(job)
        time.sleep(0.02)


def scratch_directory():
    return tempfile.mkdtemp(prefix="lomond-bench-")
