"""The shape of labkit: its module import graph, read from the source with `ast` (nothing is imported).

Prints the import circles, the imports that go up the layers (`LAYERS`, top first, as drawn in the README's "How
labkit is built"), the labkit imports made inside functions (with the comment that says why, when there is one) and
the largest modules. Module-level imports make the graph; imports inside functions are listed apart.

    python benchmarks/module_graph.py            # this checkout
    python benchmarks/module_graph.py /work/ref  # another checkout, e.g. before a restructuring

Exit code 1 when there is a circle or an upward import, else 0.
"""

import argparse
import ast
import sys
from pathlib import Path

#: Layers, top first; a module belongs to the first prefix it starts with. A module may import from its own layer
#: (without a circle) and from the layers below it. (labkit.compare, labkit.runs and labkit.tensorboard are the
#: names of labkit.multirun, labkit.run_folder and labkit.callbacks before the restructuring, for measuring it.)
LAYERS = [
    ("console", ["labkit.cli"]),
    ("trained", ["labkit.trained"]),
    ("lab", ["labkit.lab", "labkit.classification_lab", "labkit.autocontext", "labkit.reports"]),
    ("multirun", ["labkit.multirun", "labkit.compare"]),
    ("flags", ["labkit.flags"]),
    ("course", ["labkit.course_training", "labkit.features"]),
    ("training", ["labkit.training", "labkit.callbacks", "labkit.resume", "labkit.tensorboard", "labkit.inference"]),
    ("plots", ["labkit.plots"]),
    ("explain", ["labkit.gradcam", "labkit.numpy_net"]),
    ("models", ["labkit.models", "labkit.optimizers", "labkit.batchnorm"]),
    ("losses", ["labkit.losses", "labkit.metrics"]),
    ("evaluation", ["labkit.evaluation"]),
    ("data", ["labkit.data"]),
    ("base", ["labkit.run_folder", "labkit.run_manifest", "labkit.runs", "labkit.runtime", "labkit.history", "labkit.progress",
              "labkit.errors", "labkit.startup", "labkit.version"]),
]


def modules(root):
    """``{dotted name: path}`` of every module under ``<root>/labkit``."""
    found = {}
    for path in sorted((root / "labkit").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(root):
    """``(module-level, in-function)``: ``{module: {imported labkit module: line}}`` each."""
    known = modules(root)

    def owner(name):  # the module a dotted name lives in (``labkit.cli.begin`` → ``labkit.cli``)
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    top, hidden = {}, {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def targets(node):
            if isinstance(node, ast.Import):
                return [a.name for a in node.names]
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            return [f"{base}.{a.name}" for a in node.names]

        def walk(node, in_function):
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in targets(child):
                        target = owner(target) if target.startswith("labkit") else None
                        if target and target != name:
                            (hidden if in_function else top).setdefault(name, {})[target] = child.lineno
                walk(child, inside)

        walk(ast.parse(path.read_text()), False)
    return top, hidden


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
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

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def layer(name):
    """Rank of a module's layer (0 = top), or None for the package itself and modules outside `LAYERS`."""
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1],
                        help="checkout holding labkit/ (default: this one)")
    parser.add_argument("--largest", type=int, default=5, help="how many of the largest modules to list")
    args = parser.parse_args(argv)
    top, hidden = imports(args.root)
    circles = cycles({m: set(t) for m, t in top.items()})
    upward = [(m, t) for m, ts in sorted(top.items()) for t in ts
              if layer(m) is not None and layer(t) is not None and layer(t) < layer(m)]
    unplaced = sorted(m for m in modules(args.root) if m != "labkit" and layer(m) is None)
    print(f"module-level import circles: {len(circles)}")
    for circle in circles:
        print("  " + " ↔ ".join(circle))
    both = {m: set(top.get(m, {})) | set(hidden.get(m, {})) for m in set(top) | set(hidden)}
    deferred = [c for c in cycles(both) if c not in circles]
    print(f"circles closed by imports inside functions: {len(deferred)}")
    for circle in deferred:
        print("  " + " ↔ ".join(circle))
    print(f"upward imports: {len(upward)}")
    for module, target in upward:
        print(f"  {module} → {target} ({LAYERS[layer(module)][0]} imports {LAYERS[layer(target)][0]})")
    if unplaced:
        print(f"modules in no layer: {', '.join(unplaced)}")
    print(f"labkit imports inside functions: {sum(len(t) for t in hidden.values())}")
    for module, targets in sorted(hidden.items()):
        lines = modules(args.root)[module].read_text().splitlines()
        for target, line in sorted(targets.items()):
            why = lines[line - 1].partition("#")[2].strip() or lines[line - 2].strip().lstrip("# ")
            print(f"  {module}:{line} → {target}  [{why[:90]}]")
    sizes = sorted(((len(p.read_text().splitlines()), m) for m, p in modules(args.root).items()), reverse=True)
    print("largest modules: " + ", ".join(f"{m} {n}" for n, m in sizes[: args.largest]))
    return 1 if circles or upward else 0


if __name__ == "__main__":
    sys.exit(main())
