"""students/training_settings.py: what precision a training stage runs in."""

from __future__ import annotations

import pytest
import torch

from students.training_settings import bf16_in_use

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's rule")


def test_bf16_asked_for_on_a_cpu_runs_where_the_cpu_has_the_instructions_and_says_so_where_not(capfd):
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    used, warning = bf16_in_use(True)
    assert used == native
    if native:
        assert warning is None
    else:  # emulated bf16 is ~60x slower than fp32 (a 2-step deploy test took 4 minutes)
        assert "has no bf16 instructions" in warning and "training in fp32" in warning
        assert warning in " ".join(capfd.readouterr().err.split())


def test_unset_or_off_on_a_cpu_is_fp32_without_a_word(capfd):
    assert bf16_in_use(None) == (False, None) and bf16_in_use(False) == (False, None)
    assert capfd.readouterr().err == ""
