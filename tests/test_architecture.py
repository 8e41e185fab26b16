"""The house rules of ARCHITECTURE.md, checked on the source: import directions and the exception root."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "musiclens"

#: Layer of each top-level module or package of musiclens (ARCHITECTURE.md's table).
LAYERS: dict[str, int] = {
    # core, itself ordered: errors < registry, provenance < fsutil < audio, plotting < the package face
    "errors": 0.0, "registry": 0.1, "provenance": 0.1, "fsutil": 0.2, "audio": 0.3, "plotting": 0.3, "__init__": 0.5,
    "stimuli": 1, "corpora": 2, "extract": 3, "train": 4,
    "rsa": 5, "probe": 5, "ssm": 5, "attention": 5, "analysis_io": 5, "contrast": 5,
    "report": 6, "benchmark": 6, "study": 7, "study_steps": 7, "commands": 8, "cli": 8, "__main__": 8,
    "studies": 0,   # YAML data only
}
#: Imports within one layer that the architecture allows.
SAME_LAYER = {("contrast", "rsa"), ("probe", "analysis_io"), ("ssm", "analysis_io"), ("attention", "analysis_io"),
              ("rsa", "analysis_io"), ("commands", "cli"), ("cli", "commands"), ("__main__", "cli")}
#: Known exceptions, to be removed by the restructuring (ARCHITECTURE.md lists each with its plan).
KNOWN_EXCEPTIONS = {("extract", "train"), ("train", "rsa"), ("attention", "ssm"), ("ssm", "attention"),
                    ("analysis_io", "attention"), ("study", "study_steps"), ("study_steps", "study")}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[tuple[str, str], list[str]]:
    """``(from_package, to_package) -> [files]`` for every musiclens import, top-level or inside functions."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        mod = ".".join(rel.parts).removesuffix(".__init__")
        src = _package(mod) if mod != "musiclens" else "__init__"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "musiclens":
                targets = ([_package(node.module)] if node.module != "musiclens"
                           else [a.name if a.name in LAYERS else "__init__" for a in node.names])
            elif isinstance(node, ast.Import):
                targets = [_package(a.name) for a in node.names if a.name.startswith("musiclens.")]
            for tgt in targets:
                if tgt != src:
                    edges.setdefault((src, tgt), []).append(str(path.relative_to(SRC)))
    return edges


def test_every_package_has_a_layer() -> None:
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__"))}
    assert names <= set(LAYERS), sorted(names - set(LAYERS))


def test_imports_point_down() -> None:
    bad = []
    for (src, tgt), files in sorted(_imports().items()):
        if (src, tgt) in KNOWN_EXCEPTIONS or (src, tgt) in SAME_LAYER:
            continue
        if LAYERS[tgt] >= LAYERS[src]:
            bad.append(f"{src} (layer {LAYERS[src]}) imports {tgt} (layer {LAYERS[tgt]}) in {sorted(set(files))}")
    assert not bad, "imports against ARCHITECTURE.md's directions:\n" + "\n".join(bad)


def test_known_exceptions_still_exist() -> None:
    """A fixed exception must leave the list (and ARCHITECTURE.md)."""
    edges = _imports()
    stale = sorted(e for e in KNOWN_EXCEPTIONS if e not in edges)
    assert not stale, f"these exceptions no longer occur; remove them from KNOWN_EXCEPTIONS and ARCHITECTURE.md: {stale}"


#: Built-in exceptions that Python protocols require, and where (file, function).
PROTOCOL_RAISES = {
    "AttributeError": {"__getattr__"},        # module / object attribute protocol
    "NotImplementedError": None,              # abstract methods, anywhere
    "IndexError": {"_entry", "__getitem__"},  # sequence indexing
    "TypeError": {"_json_default"},           # json.dumps(default=...) must raise TypeError
    "StopIteration": {"__next__"},
    "SystemExit": {"main"},                   # the command line's exit status
}


def test_every_error_derives_from_the_musiclens_root() -> None:
    bad = []
    builtin_errors = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
                      and issubclass(getattr(builtins, n), BaseException)}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Raise) or node.exc is None:
                    continue
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                name = exc.id if isinstance(exc, ast.Name) else None
                if name not in builtin_errors:
                    continue
                allowed = PROTOCOL_RAISES.get(name, set())
                if allowed is None or fn.name in allowed:
                    continue
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} raise {name} in {fn.name}()")
    assert not bad, "raise a musiclens error (musiclens.errors) instead of a bare built-in:\n" + "\n".join(bad)
