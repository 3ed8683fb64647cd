"""No import cycle in grutool, counting the imports no static tool sees.

The graph is built from the source (AST), not from what one run happened to import. Edges:
- `import x` / `from x import y` (y when it is a module), at module level or inside a function;
- `importlib.import_module("grutool.x")` / `__import__(...)` with a literal name;
- `importlib.import_module(f"grutool.export.{task.exporter}")`: one edge per string any class or call
  assigns to that attribute name (`exporter = "tagger"`), so a registry of families by name counts;
- in a module that imports by name, every literal "grutool.x.y.Name" (the cell registry's kernel paths).

Rule (docs/architecture.md): no cycle. A function-level import may close one only where it is listed
in `LAZY_UPWARD` with its reason; a module-level or by-name import never.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (importer, imported): lazy imports allowed to point back up, each deliberate.
LAZY_UPWARD = {
    # Task.check_ownership reads every family's `owns` from the registry; the families themselves import base.
    ("grutool.families.base", "grutool.families"),
}


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in (ROOT / "grutool").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return mods


def import_graph() -> dict[str, dict[str, set[str]]]:
    """module -> {imported module -> kinds}, kinds among `module`, `lazy`, `by-name`."""
    mods = _modules()
    trees = {m: ast.parse(path.read_text(encoding="utf-8")) for m, (path, _) in mods.items()}

    def resolve(name: str):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    named: dict[str, set[str]] = {}  # attribute name -> every string assigned to it (registries by name)
    for tree in trees.values():
        for node in ast.walk(tree):
            value = getattr(node, "value", None)
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                continue
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            elif isinstance(node, ast.keyword) and node.arg:
                named.setdefault(node.arg, set()).add(value.value)
                continue
            else:
                continue
            for t in targets:
                name = t.id if isinstance(t, ast.Name) else getattr(t, "attr", None)
                if name:
                    named.setdefault(name, set()).add(value.value)

    def expand(text: ast.JoinedStr) -> list[str]:
        """An f-string with one `{x.attr}` field, as every string a registry assigns to `attr`."""
        fields = [v for v in text.values if isinstance(v, ast.FormattedValue)]
        if len(fields) != 1 or not isinstance(fields[0].value, ast.Attribute):
            return []
        parts = [v.value if isinstance(v, ast.Constant) else None for v in text.values]
        return ["".join(value if part is None else part for part in parts)
                for value in named.get(fields[0].value.attr, ())]

    graph: dict[str, dict[str, set[str]]] = {}
    for m, (path, is_pkg) in mods.items():
        edges = graph.setdefault(m, {})

        def add(target: str, kind: str) -> None:
            t = resolve(target)
            if t and t != m:
                edges.setdefault(t, set()).add(kind)

        def walk(node, lazy: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                kind = "lazy" if inner else "module"
                if isinstance(child, ast.Import):
                    for alias in child.names:
                        add(alias.name, kind)
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        package = m.split(".") if is_pkg else m.split(".")[:-1]
                        package = package[:len(package) - (child.level - 1)]
                        base = ".".join(package + ([child.module] if child.module else []))
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        add(full if full in mods else base, kind)
                elif isinstance(child, ast.Call):
                    f = child.func
                    fname = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                    if fname in ("import_module", "__import__") and child.args:
                        arg = child.args[0]
                        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                            add(arg.value, "by-name")
                        elif isinstance(arg, ast.JoinedStr):
                            for target in expand(arg):
                                add(target, "by-name")
                walk(child, inner)

        walk(trees[m], False)
        source = path.read_text(encoding="utf-8")
        if "import_module" in source or "__import__(" in source:
            for node in ast.walk(trees[m]):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and node.value.startswith("grutool.") and " " not in node.value:
                    add(node.value, "by-name")
                elif isinstance(node, ast.JoinedStr):  # name = f"grutool.families.{task.renderer}.render"
                    for target in expand(node):
                        if target.startswith("grutool."):
                            add(target, "by-name")
    return {m: {t: k for t, k in edges.items() if t.startswith("grutool")} for m, edges in graph.items()}


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph.get(w, ()))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_graph_sees_imports_by_name():
    graph = import_graph()
    assert "by-name" in graph["grutool.cells"]["grutool.modules.rnn.gru"]  # the cell registry's kernel paths
    assert "by-name" in graph["grutool"]["grutool.training.loop"]  # grutool.__getattr__'s lazy API
    exporters = {t for t, kinds in graph["grutool.export"].items() if "by-name" in kinds}
    assert {"grutool.families.tagger.export", "grutool.families.seq2seq.export"} <= exporters, exporters
    renderers = {t for t, kinds in graph["grutool.cli.render"].items() if "by-name" in kinds}
    assert {"grutool.families.lm.render", "grutool.families.classifier.render"} <= renderers, renderers


def test_no_import_cycle():
    graph = import_graph()
    kept = {m: {t for t, kinds in edges.items() if kinds != {"lazy"} or (m, t) not in LAZY_UPWARD}
            for m, edges in graph.items()}
    assert cycles(kept) == []


def test_every_allowed_upward_import_still_exists_and_is_lazy():
    graph = import_graph()
    for importer, imported in LAZY_UPWARD:
        assert graph[importer].get(imported) == {"lazy"}, (importer, imported)


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b": {"module"}}, "b": {"c": {"lazy"}}, "c": {"a": {"by-name"}}, "d": {}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": {"module"}}, "b": {}}) == []
