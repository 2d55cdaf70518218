"""The layers are the folders: ``keras_resnet/<layer>/``, lowest first in :data:`LAYERS`. A module imports its own
layer or lower ones only, and no import cycle exists anywhere, counting imports inside functions (a function-level
import ties the two modules together as much as a module-level one). Quick tier: nothing here imports Keras.
"""

from __future__ import annotations

import pathlib
import textwrap

import import_graph

import keras_resnet

PACKAGE = pathlib.Path(keras_resnet.__file__).parent
DEPLOY = PACKAGE.parent / "deploy" / "resnet_edge"

# Lowest first. cli is the only way in for a user; nothing in the library imports it.
LAYERS = ["core", "spec", "model", "data", "io", "train", "quant", "export", "demo", "cli"]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_module_sits_in_a_layer_folder():
    graph = import_graph.read(PACKAGE)
    loose = [m for m in graph.files if m != "keras_resnet" and _layer(m) not in LAYERS]
    assert not loose, f"modules outside the layer folders {LAYERS}: {loose}"


def test_layer_packages_only_describe_themselves():
    graph = import_graph.read(PACKAGE)
    for name in LAYERS:
        init = PACKAGE / name / "__init__.py"
        assert init.is_file(), f"keras_resnet/{name}/ has no __init__.py"
        assert not graph.edges.get(f"keras_resnet.{name}"), f"{init} imports something"


def test_imports_never_point_up_a_layer():
    result = import_graph.report(PACKAGE, LAYERS)
    assert result["upward"] == [], "imports from a higher layer: " + ", ".join(f"{a} -> {b}" for a, b in result["upward"])


def test_no_import_cycle_anywhere():
    cycles = import_graph.read(PACKAGE).cycles()
    assert cycles == [], f"import cycles (function-level imports count): {cycles}"


def test_the_library_never_imports_the_package_facade():
    """``keras_resnet/__init__.py`` re-exports lazily from every layer, so a module that imports it closes a cycle."""
    graph = import_graph.read(PACKAGE)
    users = sorted(m for m, targets in graph.edges.items() if "keras_resnet" in targets)
    assert users == [], users


def test_the_package_facade_loads_only_the_bottom_layers_at_import():
    graph = import_graph.read(PACKAGE)
    init = graph.files["keras_resnet"]
    import ast

    top = [n for n in ast.parse(init.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {n.module for n in top if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("keras_resnet")}
    assert modules and {_layer(m) for m in modules} <= {"core", "spec"}, modules


def test_resnet_edge_has_no_import_cycle():
    assert import_graph.read(DEPLOY).cycles() == []


def test_the_checker_sees_function_level_relative_and_literal_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for init in (pkg, pkg / "low", pkg / "high"):
        (init / "__init__.py").write_text('"""doc"""\n')
    (pkg / "low" / "a.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pkg.high import c
        def f():
            from pkg.high.b import thing
    """))
    (pkg / "high" / "b.py").write_text("from . import c\nfrom ..low import a\nthing = 1\n")
    (pkg / "high" / "c.py").write_text("import importlib\ndef g():\n    importlib.import_module('pkg.low.a')\n")
    graph = import_graph.read(pkg)
    assert graph.edges["pkg.low.a"] == {"pkg.high.b": 6}
    assert set(graph.edges["pkg.high.b"]) == {"pkg.high.c", "pkg.low.a"}
    assert graph.cycles() == [["pkg.high.b", "pkg.high.c", "pkg.low.a"]]
    assert import_graph.report(pkg, ["low", "high"])["upward"] == [("pkg.low.a", "pkg.high.b")]
    assert graph.depth() == 3  # b -> c -> a (a -> b closes the cycle and is not walked twice)
