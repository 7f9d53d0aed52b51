"""The unit the data stream hands the trainer."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenBatch:
    inputs: torch.Tensor   # [B, T] int64 token ids
    targets: torch.Tensor  # [B, T] int64 next-token ids
    domains: torch.Tensor  # [B, T] int64 index into the stream's domain list, per target token
    # data.document_mask=on: model_zoo.docmask.document_starts of the inputs, built on the host with the batch (the
    # varlen path's sequences, so the compiled step builds none): starts [N + 1] int32 travels to the device with
    # the batch; row_index [B + 1] int64 stays on the host, where split() reads it
    starts: torch.Tensor | None = None
    row_index: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def with_starts(self, eod_id: int) -> TokenBatch:
        """This (host) batch with its document starts."""
        from model_zoo.docmask import document_starts
        return TokenBatch(self.inputs, self.targets, self.domains, *document_starts(self.inputs, eod_id))

    def split(self, n: int) -> list[TokenBatch]:
        """n equal micro-batches (for gradient accumulation or data-parallel ranks)."""
        B = len(self)
        assert B % n == 0, f"batch of {B} sequences does not split into {n}"
        k = B // n
        if self.starts is None:
            return [TokenBatch(self.inputs[i:i + k], self.targets[i:i + k], self.domains[i:i + k])
                    for i in range(0, B, k)]
        from model_zoo.docmask import starts_of_rows
        return [TokenBatch(self.inputs[i:i + k], self.targets[i:i + k], self.domains[i:i + k],
                           *starts_of_rows(self.starts, self.row_index, i, i + k))
                for i in range(0, B, k)]

    def to(self, device, non_blocking: bool = True) -> TokenBatch:
        """The batch on `device` (row_index stays on the host: only split() reads it)."""
        return TokenBatch(*(t.to(device, non_blocking=non_blocking)
                            for t in (self.inputs, self.targets, self.domains)),
                          None if self.starts is None else self.starts.to(device, non_blocking=non_blocking),
                          self.row_index)

    def device_tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors that live on the device (those a side stream's copy must be waited for)."""
        return (self.inputs, self.targets, self.domains) + (() if self.starts is None else (self.starts,))
