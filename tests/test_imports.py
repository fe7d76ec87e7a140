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
    # the front doors import the modules they run (locally), never the other way round
    assert g.has_edge("engram.qa.ask", "engram.qa.video") and not g.has_edge("engram.qa.video", "engram.qa.ask")
    assert g.has_edge("engram.ros_node", "engram.ros2_node") and not g.has_edge("engram.ros2_node", "engram.ros_node")


def test_no_import_cycles():
    # none is allowed: a piece two modules share moves down into a module both import
    cycles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert cycles == [], f"import cycles: {cycles}"


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
