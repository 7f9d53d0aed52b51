"""The unit the data stream hands the trainer."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenBatch:
    inputs: torch.Tensor   # [B, T] int64 token ids
    targets: torch.Tensor  # [B, T] int64 next-token ids
    domains: torch.Tensor  # [B, T] int64 index into the stream's domain list, per target token

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def split(self, n: int) -> list[TokenBatch]:
        """n equal micro-batches (for gradient accumulation or data-parallel ranks)."""
        B = len(self)
        assert B % n == 0, f"batch of {B} sequences does not split into {n}"
        k = B // n
        return [TokenBatch(self.inputs[i:i + k], self.targets[i:i + k], self.domains[i:i + k])
                for i in range(0, B, k)]

    def to(self, device, non_blocking: bool = True) -> TokenBatch:
        return TokenBatch(*(t.to(device, non_blocking=non_blocking)
                            for t in (self.inputs, self.targets, self.domains)))
