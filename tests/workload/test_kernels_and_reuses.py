"""A workload's ``kernels`` groups and ``reuses`` declarations: what is refused, with the field named."""
import subprocess
import sys
from pathlib import Path

import pytest

from simlib.errors import SimlibInputError
from simlib.workload.workload import load_workload

BASE = (Path(__file__).parent.parent / "data" / "row_softmax.yaml").read_text() + "  - Y[m,p] = A[m,p] * 2\n"


def _load(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return load_workload(str(path))


@pytest.mark.parametrize("old, new, field, fragment", [
    ("[[GM, SN, SD, A]]", "[[GM]]", "kernels[0]", "names fewer than two tensors"),
    ("[[GM, SN, SD, A]]", "[[GM, SN, Q]]", "kernels[0]", "Q is not computed by an Einsum of this cascade"),
    ("[[GM, SN, SD, A]]", "[[GM, SN], [SN, SD]]", "kernels[1]", "SN is already in another kernel"),
    ("[[GM, SN, SD, A]]", "[[Y, Y]]", "kernels[0]", "Y is named twice in this kernel"),
    ("[[GM, SN, SD, A]]", "[[GM, SD]]", "kernels[0]", r"not consecutive .*\(SN runs between them\)"),
    ("[[GM, SN, SD, A]]", "[[GM, SN, SD, A], [X, Y]]", "kernels[1]", "X is not computed"),
    ("  X: {ranks: [M, P]}\n", "  X: {ranks: [M, P]}\n  Y: {reuses: SN}\n", "tensors.Y.reuses",
     "SN is not an operand of 'Y"),
    ("  X: {ranks: [M, P]}\n", "  X: {ranks: [M, P], reuses: A}\n", "tensors.X.reuses",
     "X is not computed by an Einsum"),
    ("  X: {ranks: [M, P]}\n", "  X: {ranks: [M, P]}\n  Y: {reuses: Y}\n", "tensors.Y.reuses", "Y names itself"),
    ("  X: {ranks: [M, P]}\n", "  X: {ranks: [M, P]}\n  A: {reuses: SN}\n", "tensors.A.reuses",
     r"SN is made in the same kernel as A \(kernels\[0\]\), which keeps only a row of it"),
])
def test_bad_groups_and_reuses_are_refused_by_field(tmp_path, old, new, field, fragment):
    assert old in BASE
    with pytest.raises(SimlibInputError, match=fragment) as caught:
        _load(tmp_path, BASE.replace(old, new))
    assert caught.value.field == field


def test_a_reuse_whose_storage_is_read_later_is_refused(tmp_path):
    text = BASE.replace("  X: {ranks: [M, P]}\n", "  X: {ranks: [M, P]}\n  Y: {reuses: A}\n") \
        + "  - Z[m,p] = A[m,p] + Y[m,p]\n"
    with pytest.raises(SimlibInputError, match=r"'Z\[m,p\] = A\[m,p\] \+ Y\[m,p\]' reads A after Y overwrites it"):
        _load(tmp_path, text)


def test_a_reuse_of_an_operand_made_by_an_earlier_kernel_is_accepted(tmp_path):
    # Y overwrites A, which the softmax kernel wrote to DRAM and nothing after Y reads
    workload = _load(tmp_path, BASE.replace("  X: {ranks: [M, P]}\n", "  X: {ranks: [M, P]}\n  Y: {reuses: A}\n"))
    assert workload.spec.tensors["Y"].reuses == "A"


def test_kernel_outputs_without_a_shared_rank_are_refused(tmp_path):
    text = BASE.replace("[[GM, SN, SD, A]]", "[[CM, GM]]").replace(
        "einsums:\n", "einsums:\n  - CM[m] = max_p X[m,p]\n")
    with pytest.raises(SimlibInputError, match="the outputs of CM, GM share no rank") as caught:
        _load(tmp_path, text)
    assert caught.value.field == "kernels[0]"


def test_a_bad_group_exits_2_with_one_line(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(BASE.replace("[[GM, SN, SD, A]]", "[[GM, SD]]"))
    out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "predict", str(path), "--hardware", "a100"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr and "kernels[0]" in out.stderr and str(path) in out.stderr
