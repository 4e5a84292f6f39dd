"""The layers are folders, and imports only go down: read from the source, so a change that
breaks a boundary fails here before anything runs."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "mxnet_recpack")

#: What each layer may import from the package (besides itself). Bottom first.
ALLOWED = {
    "errors": set(),
    "_version": set(),
    "format": {"errors"},
    "storage": {"errors"},
    "images": {"errors"},
    "options": {"errors", "images.encodings", "images.probe"},
    "sources": {"errors", "options", "format", "storage", "images"},
    "formats": {"errors", "options", "format", "storage", "images", "sources"},
    "pipeline": {"errors", "options", "format", "storage", "images", "formats"},
    "reader": {"errors", "options", "format", "storage", "images", "sources"},
    "loader": {"errors", "options", "format", "storage", "images", "sources", "reader"},
    "inspection": {"errors", "options", "format", "storage", "images", "sources"},
    "ops": {"errors", "options", "format", "storage", "images", "sources", "formats",
            "pipeline"},
    "pack": {"errors", "options", "format", "storage", "images", "sources", "pipeline"},
    "cli": {"errors", "options", "format", "storage", "images", "sources", "formats", "pipeline",
            "pack", "ops", "inspection", "_version"},
    "samples": {"images"},
    "demo": {"*"},
    "gluon": {"*"},
    "__init__": {"*"},
    "__main__": {"cli"},
}


def modules():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, PACKAGE)[:-3].split(os.sep)
                yield path, rel


def imports(path, rel):
    """``(module name, line, at module level)`` of every import in a file, relative ones made
    absolute within the package (``format.header``) and outside ones kept (``mxnet.gluon``)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    top = {id(n) for n in tree.body}
    package = rel[:-1]  # a module's package; a package's __init__ is its own package
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                yield (name[len("mxnet_recpack."):] if name.startswith("mxnet_recpack.")
                       else "!" + name), node.lineno, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                if node.module:
                    names = [".".join(base + node.module.split("."))]
                else:
                    names = [".".join(base + [a.name]) for a in node.names]
            else:
                module = node.module or ""
                names = [module[len("mxnet_recpack."):] if module.startswith("mxnet_recpack.")
                         else ("" if module == "mxnet_recpack" else "!" + module)]
            for name in names:
                yield name, node.lineno, id(node) in top


def allowed(layer, target):
    rules = ALLOWED[layer]
    if "*" in rules or target == "" or target.split(".")[0] == layer:
        return True
    return any(target == r or target.startswith(r + ".") for r in rules)


ALL = list(modules())


@pytest.mark.parametrize("path, rel", ALL, ids=["/".join(r) for _, r in ALL])
def test_imports_only_go_down(path, rel):
    layer = rel[0]
    assert layer in ALLOWED, "new layer %s: give it a row in ALLOWED" % layer
    for target, line, _ in imports(path, rel):
        if target.startswith("!"):
            continue
        assert allowed(layer, target), "%s:%d imports %s, above its layer %s" % (
            path, line, target, layer)


@pytest.mark.parametrize("path, rel", ALL, ids=["/".join(r) for _, r in ALL])
def test_only_the_gluon_layer_imports_mxnet(path, rel):
    """Outside ``gluon/``, no module imports mxnet (the demo may, inside a function, to show
    MXNet's own reader where MXNet is installed)."""
    if rel[0] == "gluon":
        return
    for target, line, top in imports(path, rel):
        if target == "!mxnet" or target.startswith("!mxnet."):
            assert rel == ["demo"] and not top, "%s:%d imports mxnet" % (path, line)


def test_every_module_is_small():
    for path, _rel in ALL:
        n = sum(1 for _ in open(path, encoding="utf-8"))
        assert n <= 420, "%s has %d lines: split it by concept" % (path, n)


def test_every_function_is_short():
    """No function over ~60 lines of code (docstrings, comments and blank lines aside)."""
    for path, _rel in ALL:
        source = open(path, encoding="utf-8").read()
        tree = ast.parse(source)
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            body = node.body
            start = body[0].end_lineno if (isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant)) else node.lineno
            code = [ln for ln in lines[start:node.end_lineno]
                    if ln.strip() and not ln.strip().startswith("#")]
            assert len(code) <= 65, "%s:%d %s has %d lines of code" % (
                path, node.lineno, node.name, len(code))
