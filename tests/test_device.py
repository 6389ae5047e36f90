"""Device selection turns on deterministic kernels for every stage that computes."""

from __future__ import annotations

import subprocess
import sys


def test_selecting_a_device_turns_on_deterministic_algorithms():
    code = ("import torch; from scenellm.device import select_device; "
            "before = torch.are_deterministic_algorithms_enabled(); select_device('cpu'); "
            "print(before, torch.are_deterministic_algorithms_enabled(), "
            "torch.is_deterministic_algorithms_warn_only_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "True", "True"]
