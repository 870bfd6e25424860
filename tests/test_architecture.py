"""ARCHITECTURE.md's map against the code: the import graph of gan_cli/ (read
with ast, never imported) keeps every "knows nothing of" claim of the rooms
table, has no circle, and names every room there is."""

import ast
import functools
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gan_cli"
MAP = ROOT / "ARCHITECTURE.md"
# The console scripts and gan-bench may import late without saying why: they
# are the entry points, and what they load is their own start-up time.
NOT_LIBRARY = {"commands", "bench"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. gan_cli.run.runner
    target: str  # the imported gan_cli module
    path: Path
    line: int
    end_line: int
    in_function: bool


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_graph(package: Path) -> tuple[dict[str, Path], list[Import]]:
    """Every module of `package` and every import of one of its modules, at the
    top of a file or inside a function. `from p import x` imports p.x when x is
    a module of its own, else p."""
    top = package.name
    modules = {module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    found = []
    for name, path in modules.items():
        base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

        def visit(node, in_function, name=name, path=path, base=base):
            for child in ast.iter_child_nodes(node):
                targets = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    stem = base[: len(base) - child.level + 1] if child.level else []
                    origin = ".".join(stem + ([child.module] if child.module else []))
                    for alias in child.names:
                        sub = f"{origin}.{alias.name}"
                        targets.append(sub if sub in modules else origin)
                for target in dict.fromkeys(targets):
                    if target.split(".")[0] == top:
                        found.append(Import(name, target, path, child.lineno, child.end_lineno, in_function))
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(child, in_function or inner)

        visit(ast.parse(path.read_text(), str(path)), False)
    return modules, found


@functools.cache
def graph() -> tuple[dict[str, Path], list[Import]]:
    return read_graph(PACKAGE)


def room_of(module: str) -> str | None:
    """gan_cli.<first component>; None for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def rooms_on_disk(package: Path) -> set[str]:
    """The rooms: gan_cli's sub-packages and its modules beside __init__.py."""
    folders = {p.parent.name for p in package.glob("*/__init__.py")}
    leaves = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    return folders | leaves


def read_rooms_table(text: str, rooms: set[str]) -> dict[str, set[str]]:
    """{room: rooms it knows nothing of} from the markdown table whose header
    has a "knows nothing of" column. A room is named in backticks (`data/`,
    `latent.py`); "every other room", optionally "but `x`, `y`", names all
    the other rooms save those."""

    def names(cell: str) -> list[str]:
        return [n.strip().removesuffix("/").removesuffix(".py") for n in re.findall(r"`([^`]+)`", cell)]

    lines = text.splitlines()
    header = next(
        (i for i, line in enumerate(lines) if line.startswith("|") and "knows nothing of" in line), None
    )
    assert header is not None, "no table with a 'knows nothing of' column"
    columns = [c.strip() for c in lines[header].strip().strip("|").split("|")]
    claim_column = columns.index("knows nothing of")
    table: dict[str, set[str]] = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        claim = cells[claim_column]
        named = names(claim)
        for room in names(cells[0]):
            assert room not in table, f"room {room} has two rows"
            if re.match(r"every other room", claim, re.IGNORECASE):
                table[room] = rooms - {room} - set(named)
            else:
                table[room] = set(named)
            unknown = {room, *named} - rooms
            assert not unknown, f"the rooms table names {sorted(unknown)}, not rooms of gan_cli/"
    return table


def find_circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle a -> b -> ... -> a of the directed graph, or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def walk(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                circle = walk(nxt)
                if circle:
                    return circle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            circle = walk(node)
            if circle:
                return circle
    return None


def comment_lines(path: Path) -> tuple[set[int], set[int]]:
    """(lines holding a comment, lines holding nothing but a comment)."""
    any_comment, only_comment = set(), set()
    source = path.read_text().splitlines()
    with path.open("rb") as f:
        for token in tokenize.tokenize(f.readline):
            if token.type == tokenize.COMMENT:
                line = token.start[0]
                any_comment.add(line)
                if source[line - 1].lstrip().startswith("#"):
                    only_comment.add(line)
    return any_comment, only_comment


def late_imports_without_reason(package: Path, imports: list[Import]) -> list[str]:
    """Imports of the package's modules inside a function of a library room
    with no comment on their lines, nor one on the line before."""
    offenders = set()
    for imp in imports:
        if not imp.in_function or room_of(imp.source) in NOT_LIBRARY:
            continue
        any_comment, only_comment = comment_lines(imp.path)
        spanned = set(range(imp.line, imp.end_line + 1))
        if not (spanned & any_comment or imp.line - 1 in only_comment):
            offenders.add((imp.path.relative_to(package.parent).as_posix(), imp.line, imp.target))
    return [f"{path}:{line} imports {target}" for path, line, target in sorted(offenders)]


# --- the graph reader itself, on a package made for it ----------------------------


@pytest.fixture
def toy_package(tmp_path):
    """pkg/ with a.py, b/ (b/__init__.py, b/c.py) and d.py importing them in
    every way the reader must see."""
    pkg = tmp_path / "pkg"
    (pkg / "b").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "b" / "__init__.py").write_text("from pkg.b.c import thing\n")
    (pkg / "b" / "c.py").write_text("from . import __name__ as x\nthing = 1\n")
    (pkg / "a.py").write_text(
        "import os\n"
        "from pkg.b import c\n"  # a module: pkg.b.c
        "from pkg.b import thing\n"  # a name: pkg.b
        "\n"
        "def f():\n"
        "    # imported late: only f needs it\n"
        "    from pkg import d\n"
        "\n"
        "class K:\n"
        "    def g(self):\n"
        "        import pkg.d\n"
    )
    (pkg / "d.py").write_text("from .b.c import thing\n")
    return pkg


def test_the_reader_sees_every_kind_of_import(toy_package):
    modules, imports = read_graph(toy_package)
    assert set(modules) == {"pkg", "pkg.a", "pkg.b", "pkg.b.c", "pkg.d"}
    seen = {(i.source, i.target, i.line, i.in_function) for i in imports}
    assert seen == {
        ("pkg.b", "pkg.b.c", 1, False),
        ("pkg.b.c", "pkg.b", 1, False),  # relative, level 1 in a module: its package
        ("pkg.a", "pkg.b.c", 2, False),
        ("pkg.a", "pkg.b", 3, False),
        ("pkg.a", "pkg.d", 7, True),
        ("pkg.a", "pkg.d", 11, True),
        ("pkg.d", "pkg.b.c", 1, False),
    }
    assert rooms_on_disk(toy_package) == {"a", "b", "d"}
    # pkg.b -> pkg.b.c -> pkg.b is a circle; the method's late import says nothing.
    assert find_circle({i.source: {j.target for j in imports if j.source == i.source} for i in imports}) == [
        "pkg.b",
        "pkg.b.c",
        "pkg.b",
    ]
    assert late_imports_without_reason(toy_package, imports) == ["pkg/a.py:11 imports pkg.d"]


def test_the_table_reader():
    rooms = {"a", "b", "c", "d"}
    text = (
        "| room | job | knows nothing of |\n"
        "| --- | --- | --- |\n"
        "| `a/` | the `c.py` job | `b`, `c/` |\n"
        "| `b.py` | | every other room but `d` |\n"
        "| `c.py` | | every other room |\n"
        "| `d/` | | |\n"
        "\n"
        "| `x` | after the table | `y` |\n"
    )
    expected = {"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b", "d"}, "d": set()}
    assert read_rooms_table(text, rooms) == expected
    with pytest.raises(AssertionError, match=r"\['e'\]"):
        read_rooms_table(text.replace("`b`, `c/`", "`b`, `e`"), rooms)


# --- the map against gan_cli/ ----------------------------------------------------


def test_every_room_is_on_the_map_and_every_room_on_it_exists():
    rooms = rooms_on_disk(PACKAGE)
    table = read_rooms_table(MAP.read_text(), rooms)  # also: every name in it is a room
    assert set(table) == rooms, (
        f"rooms missing from ARCHITECTURE.md: {sorted(rooms - set(table))}; "
        f"on the map but not in gan_cli/: {sorted(set(table) - rooms)}"
    )


def test_no_room_imports_a_room_the_map_says_it_knows_nothing_of():
    table = read_rooms_table(MAP.read_text(), rooms_on_disk(PACKAGE))
    _, imports = graph()
    broken = sorted(
        f"{imp.path.relative_to(ROOT)}:{imp.line} imports {imp.target}, but ARCHITECTURE.md says "
        f"{room_of(imp.source)} knows nothing of {room_of(imp.target)}"
        for imp in imports
        if room_of(imp.target) in table.get(room_of(imp.source), set())
    )
    assert not broken, "\n".join(broken)


def test_rooms_import_one_way():
    _, imports = graph()
    edges: dict[str, set[str]] = {}
    for imp in imports:
        source, target = room_of(imp.source), room_of(imp.target)
        if source != target:
            edges.setdefault(source or "gan_cli", set()).add(target or "gan_cli")
    circle = find_circle(edges)
    assert circle is None, "rooms import each other: " + " -> ".join(circle)


def test_modules_import_one_way():
    _, imports = graph()
    edges: dict[str, set[str]] = {}
    for imp in imports:
        edges.setdefault(imp.source, set()).add(imp.target)
    circle = find_circle(edges)
    assert circle is None, "modules import each other: " + " -> ".join(circle)


def test_late_imports_in_library_rooms_say_why():
    """A library module imports gan_cli at the top unless a comment says why
    not (start-up time, an optional path): late imports hide circles."""
    _, imports = graph()
    offenders = late_imports_without_reason(PACKAGE, imports)
    assert not offenders, "late imports without a comment saying why:\n" + "\n".join(offenders)
