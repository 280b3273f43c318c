"""How minivae is packaged.

- The CUDA source and the labs live inside the package (minivae/kernels/, minivae/labs/files/;
  the top-level kernels/ and labs/ are links for the reader), so a built wheel ships them and
  works without the repository: the kernel's source is read through importlib.resources (as
  minivae.cuda and the CuPy stand-in do) and `minivae lab reset` writes the pristine stubs.
- No package is remapped to another folder in setup.py, so setuptools' editable install is a
  plain path entry (a static .pth). With the remapping it was an import hook consulted after
  Python's own path finder, and running Python from a folder holding a clone named minivae/
  imported that clone's root as an empty namespace package.

Each test builds from a copy of the repository in a temporary folder (setuptools writes build/
and *.egg-info next to setup.py) with setuptools' own PEP 517/660 hooks, as pip does, and runs
the result in a child Python that sees neither this checkout (PYTHONPATH is dropped) nor the
installed minivae (no site-packages: NumPy's folder is appended to sys.path, and no .pth file
of it is read). The children run on NumPy whatever MINIVAE_BACKEND says: packaging is the same
for both backends.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy
import pytest

REPO = Path(__file__).resolve().parents[1]
NUMPY_DIR = str(Path(numpy.__file__).resolve().parents[1])     # NumPy (and SciPy's) folder
setuptools = pytest.importorskip("setuptools", reason="setuptools builds minivae")
if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1) and \
        importlib.util.find_spec("wheel") is None:
    pytest.skip(f"setuptools {setuptools.__version__} builds wheels only with the wheel "
                "package (70.1 on: by itself; the test extra installs it)",
                allow_module_level=True)


def copy_repository(dest):
    """The files setup.py packages (and the reader's links), without build products."""
    dest.mkdir(parents=True)
    for name in ("setup.py", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "minivae", dest / "minivae", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.bak"))
    for top in ("kernels", "labs"):
        if (REPO / top).is_symlink():
            os.symlink(os.readlink(REPO / top), dest / top)
        elif (REPO / top).is_dir():                   # (how the package was laid out before)
            shutil.copytree(REPO / top, dest / top)
    return dest


def child_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "PYTHONHOME", "MINIVAE_BACKEND")}
    env["MINIVAE_BACKEND"] = "numpy"
    return env


def build(source, hook, out):
    """Run setuptools' PEP 517 ``hook`` (build_wheel, build_editable) in ``source``; the wheel."""
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools.build_meta import __legacy__ as b; "
         f"b.{hook}(sys.argv[1])", str(out)],
        cwd=source, env=child_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def python_without_site(code, cwd, first_paths=(), site_dir=None, args=()):
    """Run ``code`` in ``python -S`` from ``cwd``: sys.path is the current folder (as for any
    ``python -c``), the standard library, ``first_paths``, ``site_dir`` read as a site folder
    (its .pth files processed, as site-packages' are), then NumPy's folder."""
    setup = (f"import sys, site; sys.path[1:1] = {[str(p) for p in first_paths]!r}; "
             + (f"site.addsitedir({str(site_dir)!r}); " if site_dir else "")
             + f"sys.path.append({NUMPY_DIR!r}); ")
    return subprocess.run([sys.executable, "-S", "-c", setup + code, *args], cwd=cwd,
                          env=child_env(), capture_output=True, text=True, timeout=600)


def test_the_editable_install_is_a_path_entry_and_a_clone_named_minivae_cannot_shadow_it(
        tmp_path):
    clone = copy_repository(tmp_path / "clones" / "minivae")       # a clone named minivae/
    wheel = build(clone, "build_editable", tmp_path / "editable")
    site_dir = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site_dir)
    pth = [p for p in site_dir.glob("*.pth")]
    assert len(pth) == 1, [p.name for p in site_dir.iterdir()]
    lines = [s for s in pth[0].read_text(encoding="utf-8").splitlines() if s.strip()]
    assert lines == [str(clone)], f"{pth[0].name} is not a plain path entry: {lines}"

    # From the folder holding the clone, `import minivae` is the clone's package, not the
    # clone's root as an empty namespace package.
    proc = python_without_site(
        "import minivae, minivae.model; print(minivae.__file__); "
        "print(minivae.model.IWAE.__name__)", cwd=clone.parent, site_dir=site_dir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    file, name = proc.stdout.split()
    assert Path(file).resolve() == (clone / "minivae" / "__init__.py").resolve()
    assert name == "IWAE"


def test_a_built_wheel_ships_the_kernel_and_the_labs_and_resets_a_lab(tmp_path):
    from minivae.labs import NUMBERS, get_lab

    wheel = build(copy_repository(tmp_path / "src" / "minivae"), "build_wheel",
                  tmp_path / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "installed")
    for f in ("__init__.py", "logsumexp_weights.cu", "cuda_emulation.h"):
        assert f"minivae/kernels/{f}" in names
    assert "minivae/labs/files/README.md" in names
    for n in NUMBERS:
        for f in ("README.md", "ANSWERS.md", "exercise.py", "run.py"):
            assert f"minivae/labs/files/{get_lab(n).FOLDER}/{f}" in names
    assert not [n for n in names if n.split("/")[0] in ("kernels", "labs", "tests")]

    # The installed copy, away from any clone: the kernel source through importlib.resources
    # (minivae.cuda and the CuPy stand-in read it so), and `minivae lab reset 3` from an empty
    # folder writes the shipped stubs there.
    work = tmp_path / "work"
    work.mkdir()
    proc = python_without_site(
        "import importlib.resources, sys; from minivae import cuda; from minivae.labs import core; "
        "print(cuda.kernel_source().count('logsumexp_weights') > 0, "
        "'emu::' in importlib.resources.files('minivae.kernels').joinpath("
        "'cuda_emulation.h').read_text('utf-8'), core.in_clone(), core.labs_root()); "
        "from minivae.cli import main; sys.exit(main(sys.argv[1:]))",
        cwd=work, first_paths=[tmp_path / "installed"], args=["lab", "reset", "3"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    first, *rest = proc.stdout.splitlines()
    assert first.split(" ", 3) == ["True", "True", "False",
                                   str(tmp_path / "installed" / "minivae" / "labs" / "files")]
    lab = get_lab(3)
    created = work / lab.FOLDER / "exercise.py"
    assert f"reset {created}" in rest
    shipped = tmp_path / "installed" / "minivae" / "labs" / "files" / lab.FOLDER / "exercise.py"
    assert created.read_text(encoding="utf-8") == shipped.read_text(encoding="utf-8")
    assert "NotImplementedError" in created.read_text(encoding="utf-8")


def test_the_top_level_kernels_and_labs_are_the_package_folders():
    """What a reader opens at the top of a clone is the package's own files (links; on a Windows
    checkout without symbolic links, small files naming the folder, which the package never
    reads)."""
    for link, target in (("kernels", "minivae/kernels"), ("labs", "minivae/labs/files")):
        path = REPO / link
        if path.is_symlink():
            assert path.resolve() == (REPO / target).resolve()
        else:
            assert path.read_text(encoding="utf-8").strip() == target
