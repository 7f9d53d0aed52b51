"""Model shapes (ModelSpec, the size ladder), the transformer, and exact parameter/FLOP counts."""
from model_zoo.counting import Counts, count
from model_zoo.output import ModelOutput
from model_zoo.spec import CPU_RULE, GPU_RULE, LadderRule, ModelSpec, SpecError, ladder

__all__ = ["ModelSpec", "SpecError", "LadderRule", "GPU_RULE", "CPU_RULE", "ladder", "build", "count", "Counts",
           "ModelOutput"]


def build(spec: ModelSpec):
    """The transformer for `spec` (dense, or MoE when spec.family == "moe"), validated first:
    an invalid spec raises SpecError before any weight is allocated."""
    spec.validate()
    from model_zoo.dense import Transformer  # torch is imported only when a model is built
    return Transformer(spec)
