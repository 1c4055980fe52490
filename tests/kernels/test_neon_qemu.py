"""The NEON (AArch64) binary and ternary kernels against the scalar reference, on an x86 machine.

The NEON paths (csrc/kernels/<op>/neon.cc) cannot run here natively, so tests/native/isa_check.cc
(a differential checker over word-edge shape grids, every output type and padding mode, with
guard bytes) is cross-compiled with the AArch64 g++ and run under qemu-user. Needs Debian's
`g++-aarch64-linux-gnu` and `qemu-user` (installed by .ci/run); skipped without them. On an
AArch64 machine the regular kernel tests cover the NEON path directly (the `isa` fixture).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-aarch64"
OPS = ["bitpack", "bgemm", "bconv2d", "bmaxpool2d", "tgemm", "quantize_i8"]
OTHER_ISAS = {"avx2", "avx512", "neon", "register"}

pytestmark = pytest.mark.skipif(
    shutil.which(CXX) is None or shutil.which(QEMU) is None,
    reason=f"{CXX} / {QEMU} not found (apt-get install g++-aarch64-linux-gnu qemu-user)",
)


def _sources() -> list[Path]:
    """Every ISA-independent source of the ops plus their neon.cc (no dispatch table)."""
    sources = []
    for op in OPS:
        folder = ROOT / "csrc" / "kernels" / op
        sources += [p for p in sorted(folder.glob("*.cc")) if p.stem not in OTHER_ISAS]
        sources.append(folder / "neon.cc")
    return sources


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("neon") / "isa_check"
    cmd = [CXX, "-std=c++17", "-O2", "-static", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'csrc' / 'include'}",
           "-DONEBIT_CHECK_NS=neon", str(ROOT / "tests" / "native" / "isa_check.cc"),
           *map(str, _sources()), "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"cross-compilation failed:\n{done.stderr[-4000:]}"
    return exe


def test_neon_kernels_equal_ref_under_qemu(checker):
    done = subprocess.run([QEMU, str(checker)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("ok "), done.stdout
    assert int(last.split()[1]) > 5000  # every grid ran (binary and ternary ops)
