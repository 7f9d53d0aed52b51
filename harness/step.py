"""The loss of one micro-batch, as one module so torch.compile fuses it with the model.

loss = mean CE + z_loss * mean(lse^2) + aux_loss (MoE auxiliary losses, already weighted).
Besides the loss it returns the step's statistics, which the loop sums on the device between log
steps (no host sync per step). They travel as one flat vector, so that summing, checkpointing and the
one host copy per log window stay single tensor operations; `StatsLayout` names its slices, and every
reader goes through those names.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model_zoo import docmask
from model_zoo.moe_stats import stats_fields as moe_stats_fields


@dataclass(frozen=True)
class StatsLayout:
    """The named slices of the statistics vector: (name, length, averaged over micro-batches).

    Averaged fields (means of a micro-batch) are scaled by 1/n_micro when summed, so a step adds its
    mean; the others (per-domain CE sums and token counts) are plain sums.
    """
    fields: tuple[tuple[str, int, bool], ...]

    @classmethod
    def for_model(cls, n_domains: int, spec, document_mask: bool = False) -> StatsLayout:
        """ce, z_loss, aux_loss; domain_ce_sum and domain_tokens (one per domain, in the stream's domain
        order); then the model's MoE telemetry as moe_<name> (model_zoo.moe_stats; none for dense); with
        document masks last the attended (query, key) pairs (model_zoo.counting.attention_pairs)."""
        return cls((("ce", 1, True), ("z_loss", 1, True), ("aux_loss", 1, True),
                    ("domain_ce_sum", n_domains, False), ("domain_tokens", n_domains, False),
                    *((f"moe_{k}", n, True) for k, n in moe_stats_fields(spec).items()),
                    *((("attention_pairs", 1, False),) if document_mask else ())))

    def plus(self, name: str, length: int = 1) -> StatsLayout:
        """This layout with one more (summed) field at the end, e.g. the grad norm the log copy carries."""
        return StatsLayout((*self.fields, (name, length, False)))

    @property
    def size(self) -> int:
        return sum(n for _, n, _ in self.fields)

    def scale(self, n_micro: int) -> list[float]:
        """Per element: what one micro-batch's statistics are multiplied by when added to the step's sums."""
        return [x for _, n, mean in self.fields for x in [1 / n_micro if mean else 1.0] * n]

    def pack(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([values[name].reshape(-1) for name, _, _ in self.fields])

    def unpack(self, vector) -> dict:
        """Each field's slice of `vector` (a tensor or a list), by name."""
        out, i = {}, 0
        for name, n, _ in self.fields:
            out[name] = vector[i:i + n]
            i += n
        return out


def step_args(batch) -> tuple:
    """The arguments of a LossStep call for a (micro-)batch (harness.data.batch.TokenBatch): inputs, targets,
    domains and, with document masks, the document starts built on the host (model_zoo.docmask.document_starts),
    their length marked dynamic for torch.compile, so that the first batch's number of documents is not
    specialized on (a second N would recompile the step once more)."""
    if batch.starts is None:
        return batch.inputs, batch.targets, batch.domains
    from torch._dynamo import maybe_mark_dynamic
    maybe_mark_dynamic(batch.starts, 0)
    return batch.inputs, batch.targets, batch.domains, batch.starts


class LossStep(nn.Module):
    """eod_id: None, or the corpus' end-of-document id to train with per-document attention
    (data.document_mask=on): the model attends within documents, and the loss, z-loss and per-domain
    statistics skip the targets model_zoo.docmask.loss_keep drops (the next document's first token).
    forward's `starts` (optional, masks on): the batch's model_zoo.docmask.document_starts, so that the varlen
    path reads its sequences instead of building them on the device (a graph break and a host read)."""

    def __init__(self, model: nn.Module, z_loss: float, n_domains: int, eod_id: int | None = None):
        super().__init__()
        self.model, self.z_loss, self.n_domains, self.eod_id = model, z_loss, n_domains, eod_id
        self.layout = StatsLayout.for_model(n_domains, model.spec, document_mask=eod_id is not None)
        if eod_id is not None and docmask.ATTENTION == "varlen":
            docmask.varlen_kernel()   # resolved eagerly, before a compile traces a step that reads it

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, domains: torch.Tensor,
                starts: torch.Tensor | None = None):
        if self.eod_id is None:
            out = self.model(inputs, targets, z_loss=self.z_loss)
            ce = out.ce.mean()
            z = self.z_loss * out.lse.float().square().mean() if self.z_loss else torch.zeros_like(ce)
            # the eager CPU head returns this loss fused, with the gradient (ce and z above are then statistics)
            head_loss = out.head_loss
        else:
            head_loss = None
            documents = docmask.document_ids(inputs, self.eod_id)
            out = self.model(inputs, targets, documents, starts=starts)
            pairs = (docmask.positions(documents) + 1).sum().float()   # a query at position p attends p + 1 keys
            keep = docmask.loss_keep(inputs, self.eod_id).float()
            n = keep.sum().clamp(min=1.0)
            ce = (out.ce * keep).sum() / n
            z = self.z_loss * (out.lse.float().square() * keep).sum() / n if self.z_loss else torch.zeros_like(ce)
        aux = torch.as_tensor(out.aux_loss, dtype=ce.dtype, device=ce.device)
        loss = (ce + z if head_loss is None else head_loss) + aux
        # Per-domain CE sums and token counts: a scatter-add written as a masked reduction. Compiled, it
        # is one fused reduction kernel (a scatter_add would be B*T atomic adds onto n_domains addresses,
        # serialised on the GPU, and not deterministic).
        mask = (domains.reshape(-1, 1) == torch.arange(self.n_domains, device=domains.device)).float()
        if self.eod_id is not None:
            mask = mask * keep.reshape(-1, 1)
        stats = self.layout.pack({
            "ce": ce.detach(), "z_loss": z.detach(), "aux_loss": aux.detach(),
            "domain_ce_sum": (out.ce.detach().float().reshape(-1, 1) * mask).sum(0), "domain_tokens": mask.sum(0),
            **{f"moe_{k}": v.detach().float() for k, v in out.moe_stats.items()},
            **({"attention_pairs": pairs} if self.eod_id is not None else {})})
        return loss, stats
