"""Every runtime dependency installs on a 64-bit Raspberry Pi OS, bookworm (aarch64, Python 3.11,
glibc 2.36) and trixie (Python 3.13, glibc 2.41), from wheels alone: pure Python or an aarch64
build, so a Pi never compiles C. Asks PyPI through pip, so it is marked slow."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize(
    ("python", "glibc_minor"),
    [("3.11", 36), ("3.13", 41)],  # bookworm, trixie: wheels for manylinux_2_17 ... 2_<minor> install
    ids=["bookworm", "trixie"],
)
def test_runtime_dependencies_have_aarch64_wheels(tmp_path: Path, python: str, glibc_minor: int) -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    platforms = [f"--platform=manylinux_2_{minor}_aarch64" for minor in range(17, glibc_minor + 1)]
    abi = "cp" + python.replace(".", "")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--quiet",
            "--only-binary=:all:",
            *platforms,
            f"--python-version={python}",
            "--implementation=cp",
            f"--abi={abi}",
            f"--dest={tmp_path}",
            *dependencies,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = [p.name for p in tmp_path.iterdir()]
    assert all(name.endswith(".whl") for name in wheels), wheels
    native = [name for name in wheels if not name.endswith("-none-any.whl")]
    assert native and all("aarch64" in name and abi in name for name in native), native
    names = {name.split("-")[0].lower().replace("_", "-") for name in wheels}
    for dependency in dependencies:
        assert dependency.split(">")[0].split("<")[0].lower().replace("_", "-") in names
