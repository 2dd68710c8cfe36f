"""Mixed precision: the autocast a run's forward passes run under, and the loss scaler of fp16.

- fp32: no autocast (the default everywhere: CPU runs, and CUDA runs unless asked).
- bf16: autocast to bfloat16. On CUDA (Ampere and later) matrix products and convolutions run on
  tensor cores; bf16 keeps fp32's exponent range, so no loss scaling is needed. On the CPU it is
  allowed (AVX512-BF16 / AMX hosts may gain) but never the default: elsewhere it is slower.
- fp16: autocast to float16 with a GradScaler per network (G's and D's losses scale differently):
  fp16's narrow range would flush small gradients to zero without it. CUDA only.

Losses are computed in fp32 from the logits, and backward passes run outside autocast (as torch
advises). R1 under fp16 differentiates the scaled logits and divides the scale back out
(losses.r1_penalty), so its inner gradient does not underflow either.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal, Optional

import torch

from training.errors import TrainingError

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """A TrainingError naming --precision where the device cannot run it."""
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError(
            f"precision: fp16 (--precision fp16) needs a CUDA device, and this run is on {device.type}; "
            "use --precision bf16 or fp32 there"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError(
            f"precision: bf16 (--precision bf16): {torch.cuda.get_device_name(device)} has no bfloat16; use fp16 or fp32"
        )


def autocast(precision: str, device: torch.device) -> AbstractContextManager:
    """The context a forward pass runs in: autocast to bf16 / fp16, or nothing for fp32."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


class LossScaler:
    """fp16's GradScaler for one network, or the plain backward and step for fp32 and bf16."""

    def __init__(self, precision: str, device: torch.device):
        self.scaler: Optional[torch.amp.GradScaler] = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    @property
    def scale(self) -> float:
        """What the loss is multiplied by before backward (1 without a scaler)."""
        return float(self.scaler.get_scale()) if self.scaler is not None else 1.0

    def backward_and_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """backward, then the optimizer's step: with fp16, on the scaled loss, and the step skipped
        (the scale halved) where the gradients overflowed, as GradScaler does."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> Optional[dict]:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: Optional[dict]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
