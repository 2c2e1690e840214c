"""lomond.protocol does no I/O: it imports no socket, thread, event-loop or clock module.

Two checks: a fresh interpreter imports every module of the package and
lists what was added to ``sys.modules``, and an AST walk of each source file
looks for forbidden imports and environment reads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lomond.protocol

PACKAGE_DIR = Path(lomond.protocol.__file__).parent
SOURCES = sorted(PACKAGE_DIR.glob("*.py"))
MODULES = sorted(
    "lomond.protocol" if path.stem == "__init__" else f"lomond.protocol.{path.stem}"
    for path in SOURCES
)

# Standard modules that do I/O, start threads or read the clock.
FORBIDDEN_MODULES = frozenset({"socket", "ssl", "select", "selectors", "threading", "gevent", "time"})
# lomond's own modules that do I/O.
FORBIDDEN_LOMOND = frozenset(
    {"lomond.session", "lomond.net", "lomond.websocket", "lomond.persist", "lomond.testing"}
)

# Runs in a fresh interpreter. It uses only builtins before taking the
# baseline, so that nothing it needs for itself counts as imported by
# lomond.protocol.
IMPORT_SCRIPT = """
import sys
before = set(sys.modules)
for name in sys.argv[1:]:
    __import__(name)
added = sorted(set(sys.modules) - before)
sys.stdout.write("\\n".join(added))
"""


def is_forbidden(name: str) -> bool:
    top = name.split(".")[0]
    if top in FORBIDDEN_MODULES:
        return True
    return any(name == module or name.startswith(module + ".") for module in FORBIDDEN_LOMOND)


def import_chain(importtime_log: str, module: str) -> list[str]:
    """Return the chain of imports that led to ``module``, from ``-X importtime`` output.

    Each log line ends with the module name, indented by two spaces per
    level of nesting. A module's parents are the later lines with less
    indentation.
    """
    entries = []
    for line in importtime_log.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        name_field = line.rsplit("|", 1)[1]
        name = name_field.strip()
        depth = (len(name_field) - len(name_field.lstrip(" "))) // 2
        entries.append((name, depth))
    for index, (name, depth) in enumerate(entries):
        if name != module:
            continue
        chain = [name]
        for parent, parent_depth in entries[index + 1 :]:
            if parent_depth < depth:
                chain.append(parent)
                depth = parent_depth
        return list(reversed(chain))
    return [module]


def test_package_modules_listed() -> None:
    assert "lomond.protocol.connection" in MODULES
    assert "lomond.protocol.frames" in MODULES
    assert len(MODULES) >= 8


def test_imports_no_io_modules() -> None:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", IMPORT_SCRIPT, *MODULES],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    added = completed.stdout.split("\n")
    assert "lomond.protocol.connection" in added
    # NOTE: CPython 3.11 imports "time" at startup (zipimport needs it), so
    # it is already in the baseline here; the AST test below catches a
    # direct "import time".
    offenders = [name for name in added if is_forbidden(name)]
    # Explain the failure by how each top-level offender got imported.
    roots = [name for name in offenders if name in FORBIDDEN_MODULES | FORBIDDEN_LOMOND]
    chains = [" -> ".join(import_chain(completed.stderr, name)) for name in roots or offenders]
    assert not offenders, "lomond.protocol imports I/O modules:\n" + "\n".join(chains)


def resolve(node: ast.ImportFrom, module_name: str) -> str:
    """Return the absolute module that a (possibly relative) ``from`` import names."""
    if not node.level:
        return node.module or ""
    package = module_name.split(".")
    if not module_name.endswith("__init__"):
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def forbidden_uses(path: Path) -> list[str]:
    """List the forbidden imports and environment reads in one source file."""
    module_name = f"lomond.protocol.{path.stem}"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if is_forbidden(alias.name):
                    found.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = resolve(node, module_name)
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            if any(is_forbidden(name) for name in names):
                found.append(f"line {node.lineno}: from {module} import ...")
            if module == "os" and any(alias.name in ("environ", "getenv") for alias in node.names):
                found.append(f"line {node.lineno}: from os import environ/getenv")
        elif isinstance(node, ast.Attribute):
            if (
                isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in ("environ", "getenv", "environb", "putenv")
            ):
                found.append(f"line {node.lineno}: os.{node.attr}")
    # ast.walk goes breadth-first; report in source order.
    return sorted(found, key=lambda entry: int(entry.split(":")[0].split()[1]))


@pytest.mark.parametrize("path", SOURCES, ids=[path.name for path in SOURCES])
def test_source_has_no_io(path: Path) -> None:
    assert forbidden_uses(path) == []


def test_ast_check_finds_violations(tmp_path: Path) -> None:
    # The checker itself must notice each kind of violation.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import time\n"
        "import gevent.socket\n"
        "from select import select\n"
        "from ..session import Session\n"
        "from .. import websocket\n"
        "value = os.environ.get('X')\n"
        "from os import getenv\n",
        encoding="utf-8",
    )
    found = forbidden_uses(sample)
    assert [entry.split(":")[0] for entry in found] == [
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
    ]
