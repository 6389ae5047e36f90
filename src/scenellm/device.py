"""Where a stage runs: the device choice and the mixed-precision policy, for every stage and
the audit."""

from __future__ import annotations

import contextlib
import os

import torch


def deterministic() -> None:
    """Same seed, same bits: PyTorch's deterministic kernels. Without them, fine-tuning on
    2 CPU threads gave a different validation R@20 in every process (0.6133, 0.6142,
    0.6130, 0.6118 for one seed); with them two runs agree to the last bit. Ops with no
    deterministic kernel warn instead of failing (some CUDA ones); cuBLAS gets the workspace
    setting its deterministic mode needs."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def select_device(preference: str = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``; ``"cuda"`` or ``"cuda:N"``.
    Every stage that computes selects its device here, so this also turns on
    :func:`deterministic` kernels.

    Asking for CUDA on a machine without it is an error rather than a silent CPU run.
    """
    deterministic()
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" or preference.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {preference!r} was requested but CUDA is not available "
                f"(torch {torch.__version__}); use 'auto' or 'cpu'"
            )
        device = torch.device(preference)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"device {preference!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {preference!r}")


def autocast_context(
    device: torch.device, enabled: bool
) -> contextlib.AbstractContextManager[object]:
    """bfloat16 autocast on CUDA when ``enabled``; a no-op context on CPU or when disabled.

    bfloat16 keeps float32's exponent range, so no loss scaling is needed.
    """
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def intra_op_threads(n: int):
    """Run the block on ``n`` intra-op threads, then restore the count. Set from a worker
    thread it holds for that thread only (OpenMP and MKL keep the count per thread).

    CPU float32 matmuls reduce in a thread-count-dependent order: the detector's box head
    gave different bits on 1, 2 and 4 threads. A fixed count makes the bytes independent of
    the machine's cores and of how many workers share them.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
