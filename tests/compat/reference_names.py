"""The public names of honeycomb-beeline 3.6.0, module by module, read from its source.

    python -m tests.compat.reference_names <site-packages holding honeycomb-beeline> \
        > tests/compat/reference_names.json

A name is public when a module defines it at top level (function, class, assignment) without a
leading underscore, or when a top-level module (`beeline`, `beeline.trace`, ...) imports it from
beeline (code imports those from there); for a class, its public methods are listed too
(subclasses override them). Test modules are left out.
"""

from __future__ import annotations

import ast
import json
import os
import sys


def _module_name(root: str, path: str) -> str:
    dotted = os.path.relpath(path, root)[: -len(".py")].replace(os.sep, ".")
    return dotted[: -len(".__init__")] if dotted.endswith(".__init__") else dotted


def _methods(node: ast.ClassDef) -> list:
    return sorted(
        item.name
        for item in node.body
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (not item.name.startswith("_") or item.name in ("__init__", "__call__"))
    )


def _from_beeline(node: ast.ImportFrom) -> bool:
    return bool(node.level) or (node.module or "").startswith("beeline")


def _public_names(tree: ast.Module, keeps_imports: bool) -> dict:
    names: dict = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = None
        elif isinstance(node, ast.ClassDef):
            names[node.name] = _methods(node)
        elif isinstance(node, ast.Assign):
            names.update((target.id, None) for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.ImportFrom) and keeps_imports and _from_beeline(node):
            names.update((alias.asname or alias.name, None) for alias in node.names)
    return {name: value for name, value in sorted(names.items()) if not name.startswith("_")}


def read(site_packages: str) -> dict:
    found = {}
    for folder, _, files in os.walk(os.path.join(site_packages, "beeline")):
        for file in sorted(files):
            if not file.endswith(".py") or file.startswith("test_"):
                continue
            path = os.path.join(folder, file)
            module = _module_name(site_packages, path)
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            found[module] = _public_names(tree, keeps_imports=module.count(".") <= 1)
    return dict(sorted(found.items()))


if __name__ == "__main__":
    json.dump(read(sys.argv[1]), sys.stdout, indent=1)
    sys.stdout.write("\n")
