"""Design A/B behind model_zoo.moe's routing choices: the whole MoELayer, forward + backward, compiled, bf16,
on one GPU, for the 2 x 2 x 2 alternatives
  top-k     argmax rounds (kept: model_zoo.moe.route)  | torch.topk
  dispatch  radix sort (kept: model_zoo.moe.Dispatch)  | counting sort by one-hot cumsum
  gates     on the output, in the combine (kept)       | on the SwiGLU activation before the down projection
patched into model_zoo.moe one at a time; all variants compiled first, then timed round-robin (median).

    python bench/moe_variants_ab.py bench/results/moe_layer_ab_h100.json 8 12     # ~2 min on an H100
"""
import itertools
import json
import statistics
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from moe_bench import twin_specs  # noqa: E402
from moe_gemm_bench import timer  # noqa: E402

import model_zoo.moe as moe  # noqa: E402

torch._dynamo.config.recompile_limit = 64      # every variant keeps its compiled graph
ARGMAX_ROUTE, SORT_DISPATCH, NOFOLD_FORWARD = moe.route, moe.Dispatch, moe.MoELayer.forward

def topk_route(logits, top_k):
    probs = logits.softmax(dim=-1)
    gates, ids = probs.topk(top_k, dim=-1)
    if top_k > 1:
        gates = gates / gates.sum(dim=-1, keepdim=True)
    return probs, ids, gates

class CumsumDispatch(SORT_DISPATCH):
    def __init__(self, ids, n_experts, cap):
        n, k = ids.shape
        flat = ids.t().reshape(-1)
        onehot = F.one_hot(flat, n_experts)
        self.counts = onehot.sum(dim=0)
        ends = self.counts.cumsum(dim=0)
        rank = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1
        self.inv = (ends - self.counts)[flat] + rank
        self.order = torch.empty_like(self.inv)
        self.order[self.inv] = torch.arange(n * k, device=ids.device)
        self.sorted_expert = flat[self.order]
        self.pos = rank[self.order]
        self.token = self.order % n
        self.offs = ends.to(torch.int32)
        self.n, self.k, self.cap = n, k, cap
        self.keep = None

def forward_fold(self, x):
    s = self.spec
    B, T, dim = x.shape
    with torch.autocast(x.device.type, enabled=False):
        logits = F.linear(x.reshape(B * T, dim).float(), self.router.weight.float())
        probs, ids, gates = moe.route(logits, s.top_k)
    xf = x.reshape(B * T, dim).to(moe.compute_dtype(x))
    d = moe.Dispatch(ids, s.n_experts, 0)
    load = d.counts.float() / (B * T * s.top_k)
    aux, z = moe.load_balancing_loss(probs, load), moe.router_z_loss(logits)
    x_sorted = moe.gather_rows(xf, d.token, d.inv, s.top_k)
    gate_sorted = moe.gather_rows(gates.t().reshape(-1, 1), d.order, d.inv)
    sp = self.splits_for(xf)
    so = d.split_offs(sp)
    h = moe.grouped_linear(x_sorted, self.w_gate_up, d.offs, so)
    y_sorted = moe.grouped_linear((moe._swiglu_rows(h) * gate_sorted).to(xf.dtype), self.w_down, d.offs, so)
    y = moe.gather_rows(y_sorted, d.inv, d.order)
    y = y.view(s.top_k, B * T, dim).sum(0, dtype=torch.float32).to(x.dtype)
    stats = {"load": load.detach(), "aux": aux.detach(), "z": z.detach(), "dropped": d.dropped_fraction()}
    return y.view(B, T, dim), s.router_aux_coef * aux + s.router_z_coef * z, stats

ROUTES = {"argmax": ARGMAX_ROUTE, "topk": topk_route}
DISPATCH = {"sort": SORT_DISPATCH, "cumsum": CumsumDispatch}
FORWARD = {"nofold": NOFOLD_FORWARD, "fold": forward_fold}

def setv(name):
    r, d, f = name.split("/")
    moe.route, moe.Dispatch, moe.MoELayer.forward = ROUTES[r], DISPATCH[d], FORWARD[f]

def time_width(n_layers: int, tokens: int, rounds: int) -> list[dict]:
    """Median ms of each variant (and of the dense MLP, for orientation only) at one GPU_RULE depth."""
    dev = torch.device("cuda")
    dense, spec = twin_specs(n_layers, 8192, 1024, 8, 2, tiny=False)
    x = torch.randn(tokens // 1024, 1024, dense.d_model, device=dev).requires_grad_(True)
    g = torch.randn_like(x)
    torch.manual_seed(0)
    wgu = (torch.randn(2 * dense.ffn_hidden, dense.d_model, device=dev) * 0.02).requires_grad_(True)
    wd = (torch.randn(dense.d_model, dense.ffn_hidden, device=dev) * 0.02).requires_grad_(True)

    def training_call(fn):
        def call():
            x.grad = None
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = fn(x)
            y, aux = (y[0], y[1]) if isinstance(y, tuple) else (y, 0.0)
            ((y.float() * g).sum() + aux).backward()
        return call

    calls = {"dense-mlp": training_call(torch.compile(lambda x: F.linear(moe._swiglu_rows(F.linear(x, wgu)), wd)))}
    for name in ("/".join(c) for c in itertools.product(ROUTES, DISPATCH, FORWARD)):
        setv(name)
        torch.manual_seed(0)
        calls[name] = training_call(torch.compile(moe.MoELayer(spec).to(dev)))
        timer(calls[name], dev, 2)                          # compile now, under this variant's patches
    times = {n: [] for n in calls}
    for r in range(rounds):
        for n in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            if n != "dense-mlp":
                setv(n)
            times[n].append(timer(calls[n], dev, 20))
    dense_ms = statistics.median(times["dense-mlp"])
    return [dict(d=dense.d_model, name=n, ms_median=statistics.median(ts), ms_all=[round(t, 3) for t in ts],
                 x_dense=dense_ms / statistics.median(ts)) for n, ts in times.items()]


def main(out: str, layers: list[int], tokens: int = 131072, rounds: int = 4) -> None:
    rows = []
    for n_layers in layers:
        for row in time_width(n_layers, tokens, rounds):
            rows.append(row)
            print(json.dumps(row), flush=True)
    setv("argmax/sort/nofold")
    Path(out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], [int(a) for a in sys.argv[2:]])
