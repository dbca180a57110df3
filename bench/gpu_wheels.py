"""The wheels bench/gpu_check.py carries to the GPU machine, which has no network: the committed list
(bench/gpu_wheels.txt), its download (`make gpu-wheels`), a check of a folder against it, and the
install there (into a folder put on PYTHONPATH; the machine's own packages are left alone).

The list is the whole closure: each wheel is downloaded without its dependencies, for CPython 3.12
on manylinux x86_64, so what the machine gets is exactly what the list names, byte for byte (sizes
and sha256 checked). Everything travels with the working tree, 64 MiB in all: the list stays under
BUDGET_MIB (tests/bench/test_gpu_check.py checks it without downloading).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LIST = Path(__file__).with_name("gpu_wheels.txt")
BUDGET_MIB = 48  # leaves 16 MiB of the 64 MiB a device call carries for the working tree
MIB = 1024**2
# The GPU machine's Python and platform (docs/gpu-check.md); pip matches each manylinux tag exactly.
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64"]


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    size: int
    file: str
    sha256: str
    why: str


def read_list(path: Path = LIST) -> list[Wheel]:
    """The wheels of the list: `name version bytes file sha256:HEX  # why` per line."""
    wheels = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields, _, why = line.partition("#")
        if not fields.strip():
            continue
        try:
            name, version, size, file, digest = fields.split()
            wheels.append(Wheel(name, version, int(size), file, digest.removeprefix("sha256:"), why.strip()))
        except ValueError:
            raise SystemExit(f"{path}:{number}: expected 'name version bytes file sha256:HEX  # why'") from None
    return wheels


def table(wheels: list[Wheel]) -> str:
    """The list as a plain-text table with its total."""
    width = max(len(wheel.name) for wheel in wheels)
    lines = [f"{'wheel':<{width}}  {'version':<8}  {'bytes':>10}  why"]
    lines += [f"{wheel.name:<{width}}  {wheel.version:<8}  {wheel.size:>10,}  {wheel.why}" for wheel in wheels]
    total = sum(wheel.size for wheel in wheels)
    lines.append(f"{'total':<{width}}  {'':<8}  {total:>10,}  {total / MIB:.1f} MiB of the {BUDGET_MIB} MiB budget "
                 f"({len(wheels)} wheels)")
    return "\n".join(lines)


def problems(folder: Path, wheels: list[Wheel]) -> list[str]:
    """What keeps `folder` from holding exactly the listed wheels (empty when it does)."""
    found = []
    for wheel in wheels:
        path = folder / wheel.file
        if not path.is_file():
            found.append(f"{wheel.file}: missing (make gpu-wheels)")
        elif path.stat().st_size != wheel.size or hashlib.sha256(path.read_bytes()).hexdigest() != wheel.sha256:
            found.append(f"{wheel.file}: size or sha256 differs from {LIST.name}")
    listed = {wheel.file for wheel in wheels}
    found += [f"{path.name}: not in {LIST.name} (it would travel too; remove it)"
              for path in sorted(folder.glob("*")) if path.name not in listed]
    return found


def download(folder: Path, wheels: list[Wheel]) -> None:
    """pip download exactly the listed wheels into `folder`, then check them."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", *PLATFORM,
               "--dest", str(folder), *(f"{wheel.name}=={wheel.version}" for wheel in wheels)]
    subprocess.run(command, check=True)
    found = problems(folder, wheels)
    if found:
        raise SystemExit("\n".join(found))


def install(folder: Path, target: Path, wheels: list[Wheel]) -> None:
    """Install the listed wheels from `folder` into `target` (no index, no dependency resolution:
    the list is the closure); `target` then goes first on PYTHONPATH."""
    found = [problem for problem in problems(folder, wheels) if "not in" not in problem]
    if found:
        raise SystemExit("the carried wheels are not the listed ones:\n" + "\n".join(found))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--disable-pip-version-check", "--root-user-action=ignore", "--upgrade", "--target", str(target),
               *(str(folder / wheel.file) for wheel in wheels)]
    subprocess.run(command, check=True)
