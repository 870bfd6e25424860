"""The installed package is the whole package: pyproject's packages list names
every package of gan_cli/ (fast), and a wheel built from the source, installed
(not editable) into a fresh virtual environment, imports every module and
finds conf/'s YAML files (slow)."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pip carries the same reader
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def setuptools_config(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text())["tool"]["setuptools"]


def packages_on_disk(package: Path) -> set[str]:
    """Every folder under `package` with an __init__.py, as a dotted name."""
    return {".".join(p.parent.relative_to(package.parent).parts) for p in package.rglob("__init__.py")}


def source_modules(folder: Path, name: str) -> set[str]:
    """Every module and package of the source folder that installs as
    package `name`, as dotted names."""
    names = set()
    for path in folder.rglob("*.py"):
        parts = [name, *path.relative_to(folder).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def modules_to_install() -> list[str]:
    """gan_cli's modules, and those of the packages pyproject maps from
    another folder (gan_cli.conf from conf/)."""
    names = source_modules(ROOT / "gan_cli", "gan_cli")
    for name, folder in setuptools_config(PYPROJECT).get("package-dir", {}).items():
        if name != "gan_cli":
            names |= source_modules(ROOT / folder, name)
    return sorted(names)


def test_pyproject_lists_every_package_on_disk():
    """A package missing from [tool.setuptools] packages is left out of the
    wheel, and an installed gan-train fails to import it."""
    config = setuptools_config(PYPROJECT)
    listed = set(config["packages"])
    # Packages whose folder pyproject maps elsewhere (gan_cli.conf is conf/).
    mapped = {name: ROOT / path for name, path in config.get("package-dir", {}).items() if name != "gan_cli"}
    for name, folder in mapped.items():
        assert (folder / "__init__.py").is_file(), f"{name} maps to {folder}, which is no package"
    on_disk = packages_on_disk(ROOT / "gan_cli") | set(mapped)
    assert listed == on_disk, (
        f"pyproject.toml's [tool.setuptools] packages lacks {sorted(on_disk - listed)} "
        f"and lists {sorted(listed - on_disk)}, which is not on disk"
    )


def test_every_folder_of_modules_is_a_package():
    """A folder of modules without __init__.py is no package to list, and
    would be left out of the wheel without a word."""
    loose = sorted(
        str(folder.relative_to(ROOT))
        for folder in {p.parent for p in (ROOT / "gan_cli").rglob("*.py")}
        if not (folder / "__init__.py").exists()
    )
    assert not loose, f"folders of modules without __init__.py: {loose}"


# --- the wheel, installed ----------------------------------------------------------

# Run by the fresh environment's interpreter, outside the repository: imports
# every module the source has, walks what was installed, composes the default
# config from the shipped YAML files, and loads every console script's target.
CHECK = """
import importlib, json, pkgutil, sys
expected, groups, scripts = json.loads(sys.argv[1])
import gan_cli
report = {"file": gan_cli.__file__, "failed": {}}
for name in expected:
    try:
        importlib.import_module(name)
    except Exception as exc:
        report["failed"][name] = f"{type(exc).__name__}: {exc}"
walked = pkgutil.walk_packages(gan_cli.__path__, "gan_cli.", onerror=lambda name: None)
report["walked"] = sorted({"gan_cli", *(m.name for m in walked)})
from gan_cli.config.compose import compose_config, options
report["config"] = sorted(compose_config(["dataset=digits"]))
report["options"] = {group: options(group) for group in groups}
for target in scripts:
    module, attr = target.split(":")
    try:
        if not callable(getattr(importlib.import_module(module), attr, None)):
            report["failed"][target] = "not callable"
    except Exception as exc:
        report["failed"][target] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report))
"""


def site_packages() -> list[str]:
    """Where this interpreter finds the dependencies (torch, hydra, ...): its
    site-packages folders, never the repository's own folders."""
    found = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")} | set(sys.path)
    return sorted(p for p in found if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir())


def install_wheel(source: Path, work: Path) -> Path:
    """Build a wheel of `source` and install it into a fresh virtual
    environment that sees this one's dependencies; returns its interpreter."""
    wheels = work / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
        + ["-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = wheels.glob("gan_cli-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q"]
        + [str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    # The dependencies by a .pth file: its folders come after the fresh
    # environment's own, and their .pth files are not run, so the editable
    # install of this repository stays out of sight.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site_packages()) + "\n")
    return python


def copy_source(to: Path) -> Path:
    """What a wheel is built from, copied, so that the build's own folders
    (build/, *.egg-info) neither land in the repository nor carry stale files
    into the wheel."""
    to.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, to / name)
    for name in ("gan_cli", "conf"):
        shutil.copytree(ROOT / name, to / name, ignore=shutil.ignore_patterns("__pycache__"))
    return to


def check_installed(python: Path, cwd: Path) -> dict:
    groups = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name != "__pycache__")
    scripts = list(tomllib.loads(PYPROJECT.read_text())["project"]["scripts"].values())
    argument = json.dumps([modules_to_install(), groups, scripts])
    # -I: no PYTHONPATH, no user site, not the current folder.
    done = subprocess.run(
        [str(python), "-I", "-c", CHECK, argument], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow  # ~30 s: a wheel build, an install and every module imported
def test_the_wheel_ships_every_module_and_the_config(tmp_path):
    python = install_wheel(copy_source(tmp_path / "source"), tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    report = check_installed(python, outside)

    assert Path(report["file"]).is_relative_to(tmp_path / "venv"), report["file"]
    assert report["failed"] == {}
    assert report["walked"] == modules_to_install()
    assert {"dataset", "objective", "model", "optimizer", "latent", "train"} <= set(report["config"])
    for group, names in report["options"].items():
        assert names == sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")), group

    # The console script itself, from the environment's bin/, reads the shipped config.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    shown = subprocess.run(
        [str(python.with_name("gan-train")), "--cfg", "job", "dataset=digits"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    assert "load_sklearn_digits" in shown.stdout


@pytest.mark.slow  # ~30 s: the same with one package left out
def test_a_package_left_out_of_pyproject_fails_the_check(tmp_path):
    """The check above can fail: a wheel built without gan_cli.metrics
    cannot import it, nor what imports it."""
    source = copy_source(tmp_path / "source")
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text()
    assert '    "gan_cli.metrics",\n' in text
    pyproject.write_text(text.replace('    "gan_cli.metrics",\n', ""))
    python = install_wheel(source, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    report = check_installed(python, outside)

    assert "gan_cli.metrics" in report["failed"]
    assert "gan_cli.metrics.toy" in report["failed"]
    assert "gan_cli.metrics" not in report["walked"]
