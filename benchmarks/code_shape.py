"""The figures docs/architecture.md states about the code itself, measured from the source (no import):
files and lines per family folder, the largest files, the longest functions, model constructor parameters.

    python benchmarks/code_shape.py [--root grutool] [--top 8]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def functions(path: Path):
    """(qualified name, lines from `def` to its last line) for every function and method in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{prefix}{child.name}", child.end_lineno - child.lineno + 1
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")

    yield from walk(tree, "")


def constructor_parameters(path: Path):
    """(class, parameters of __init__ less self) for the nn.Module-like classes of a model file."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    a = item.args
                    yield node.name, len(a.posonlyargs) + len(a.args) - 1 + len(a.kwonlyargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="grutool")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    root = Path(args.root)
    files = sorted(root.rglob("*.py"))
    print(f"{len(files)} files, {sum(lines(p) for p in files):,} lines under {root}/")
    families = root / "families"
    if families.is_dir():
        print("\nfamily folders (files, lines):")
        for folder in sorted(p for p in families.iterdir() if p.is_dir() and p.name != "__pycache__"):
            own = sorted(folder.glob("*.py"))
            print(f"  {folder.name:12} {len(own):3} {sum(lines(p) for p in own):6,}")
    print(f"\nlargest files:")
    for p in sorted(files, key=lines, reverse=True)[:args.top]:
        print(f"  {lines(p):5}  {p}")
    print(f"\nlongest functions:")
    found = [(n, f"{p}:{name}") for p in files for name, n in functions(p)]
    for n, where in sorted(found, reverse=True)[:args.top]:
        print(f"  {n:5}  {where}")
    models = sorted(root.glob("families/*/model.py")) or sorted(root.glob("models/*.py"))
    print("\nmodel constructors (parameters, self excluded):")
    for p in models:
        for cls, n in constructor_parameters(p):
            print(f"  {n:3}  {p}:{cls}")


if __name__ == "__main__":
    main()
