"""The package's import graph: no module imports one that imports it back (directly or in a ring).

Imports inside functions count too (a local import only hides a cycle from the interpreter; imports
under ``if TYPE_CHECKING:`` do not, they never run), and
the layering (types <- perception <- memory <- planners / qa; sims never import memory) is what
keeps the package readable from the bottom up.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import engram

PACKAGE = Path(engram.__file__).resolve().parent


def import_graph(package_dir: Path = PACKAGE) -> nx.DiGraph:
    """Module -> modules of the package it imports (at the top or inside functions)."""
    root = package_dir.parent
    modules = {}
    for path in package_dir.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        # imports only a type checker follows (under `if TYPE_CHECKING:`) are no runtime cycle
        typing_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for stmt in block.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` imports the submodule, `from mod import name` the module
                targets = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets = targets or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            g.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return g


def test_graph_sees_imports():
    g = import_graph()
    assert g.has_edge("engram.memory.scene", "engram.memory.octree")
    assert g.has_edge("engram.planners.frontier", "engram.planners.navigation")
    assert g.has_edge("engram.memory.persist", "engram.memory.objects")  # a local import counts


# Cycles that landed with work still in progress; each is to be broken the same way (the shared piece
# moves down into a module both import). Nothing may be added here: a new cycle fails the test.
KNOWN_CYCLES = [
    ["engram.qa.ask", "engram.qa.video"],  # video.ask_command -> ask.ask_path -> video.VideoQA
    ["engram.ros2_node", "engram.ros_node"],  # ros2_node imports ros_node's JSON helpers; ros_node runs ros2_node
]


def test_no_import_cycles():
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert new == [], f"import cycles: {new}"


def test_layering():
    g = import_graph()
    bad = [
        (a, b)
        for a, b in g.edges
        if (a.startswith("engram.memory") and b.startswith(("engram.planners", "engram.qa")))
        or (a.startswith("engram.perception") and b.startswith("engram.memory"))
        or (a.startswith("engram.sims") and b.startswith("engram.memory"))
        or (a == "engram.types" and b.startswith("engram."))
    ]
    assert bad == []
