"""benchmarks/common.py: the scratch folders a benchmark run writes are gone when the script exits."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_scratch_folders_and_checkpoint_folders_are_removed_at_exit():
    script = (
        f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import common\n"
        "d = common.scratch_dir('facelib-test-scratch-'); (d / 'sub').mkdir()\n"
        "(d / 'sub' / 'x.bin').write_bytes(b'1')\n"
        "ckpt = common.tmp_out('facelib-test-out-'); open(ckpt, 'wb').write(b'weights')\n"
        "print(d); print(ckpt)\n"
        "import os; assert os.path.exists(d / 'sub' / 'x.bin') and os.path.exists(ckpt)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    scratch, ckpt = (Path(line) for line in proc.stdout.split())
    assert scratch.name.startswith("facelib-test-scratch-") and Path(ckpt).name == "model.pth"
    assert not scratch.exists() and not ckpt.parent.exists()
