#!/usr/bin/env python3
"""The GPU peer for bench/gpu/big-model: a Llama-3-8B-shaped decode loop in
PyTorch with int4 weights through its tinygemm kernel
(torch.ops.aten._weight_int4pack_mm, bf16 activations, one bf16 scale and
zero per GROUP values), random weights, each step captured once as a CUDA
graph and replayed, as gpt-fast-style int4 decoding does. Prints the decode
rate of N tokens from an empty cache (llama-bench's tg N), median of R runs.

  torch-int4-decode.py [--group 32] [--tokens 128] [--repeats 5] [--layers 32]
"""
import argparse

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--group", type=int, default=32)
ap.add_argument("--tokens", type=int, default=128)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--layers", type=int, default=32)
ap.add_argument("--dim", type=int, default=4096)
ap.add_argument("--ffn", type=int, default=14336)
ap.add_argument("--heads", type=int, default=32)
ap.add_argument("--kv-heads", type=int, default=8)
ap.add_argument("--vocab", type=int, default=128256)
args = ap.parse_args()
dev = "cuda"
torch.manual_seed(0)
hd = args.dim // args.heads
ctx = args.tokens


class Int4Linear:
    """n x k int4 weights in tinygemm's packed layout, bf16 scales and zeros."""

    def __init__(self, n, k):
        codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device=dev)
        packed = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
        self.w = torch.ops.aten._convert_weight_to_int4pack(packed, 8)
        scales = torch.rand(k // args.group, n, device=dev) * 2e-3 + 1e-3
        zeros = torch.zeros_like(scales)
        self.sz = torch.stack([scales, zeros], dim=2).to(torch.bfloat16).contiguous()
        self.codes, self.scales = codes, scales

    def __call__(self, x):
        return torch.ops.aten._weight_int4pack_mm(x, self.w, args.group, self.sz)


def check():
    """The int4 product against the same weights dequantized (tinygemm's
    codes are offset by 8: w = (q - 8) * scale + zero)."""
    lin = Int4Linear(256, 512)
    x = torch.randn(1, 512, device=dev, dtype=torch.bfloat16)
    w = (lin.codes.float() - 8) * lin.scales.t().repeat_interleave(args.group, dim=1)
    ref = x.double() @ w.double().t()
    got = lin(x).double()
    return ((got - ref).norm() / ref.norm()).item()


print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}: int4 product rel. error {check():.2e}")
layers = []
for _ in range(args.layers):
    layers.append(dict(
        q=Int4Linear(args.dim, args.dim), k=Int4Linear(args.kv_heads * hd, args.dim),
        v=Int4Linear(args.kv_heads * hd, args.dim), o=Int4Linear(args.dim, args.dim),
        gate=Int4Linear(args.ffn, args.dim), up=Int4Linear(args.ffn, args.dim), down=Int4Linear(args.dim, args.ffn),
        an=torch.ones(args.dim, device=dev, dtype=torch.bfloat16),
        fn=torch.ones(args.dim, device=dev, dtype=torch.bfloat16)))
    for lin in layers[-1].values():
        if isinstance(lin, Int4Linear):
            del lin.codes, lin.scales
embed = torch.randn(args.vocab, args.dim, device=dev, dtype=torch.bfloat16) * 0.02
output = Int4Linear(args.vocab, args.dim)
del output.codes, output.scales
out_norm = torch.ones(args.dim, device=dev, dtype=torch.bfloat16)
kcache = torch.zeros(args.layers, 1, args.kv_heads, ctx, hd, device=dev, dtype=torch.bfloat16)
vcache = torch.zeros_like(kcache)
freqs = 1.0 / (500000.0 ** (torch.arange(0, hd, 2, device=dev).float() / hd))
angles = torch.outer(torch.arange(ctx, device=dev).float(), freqs)
cos, sin = angles.cos().to(torch.bfloat16), angles.sin().to(torch.bfloat16)
token = torch.zeros(1, dtype=torch.long, device=dev)
pos = torch.zeros(1, dtype=torch.long, device=dev)
positions = torch.arange(ctx, device=dev)


def rms(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, 1e-5)


def rope(x):
    c, s = cos[pos].view(1, 1, 1, -1), sin[pos].view(1, 1, 1, -1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)


def step():
    x = embed[token]
    mask = (positions <= pos).view(1, 1, 1, ctx)
    for i, L in enumerate(layers):
        h = rms(x, L["an"])
        q = rope(L["q"](h).view(1, 1, args.heads, hd).transpose(1, 2))
        k = rope(L["k"](h).view(1, 1, args.kv_heads, hd).transpose(1, 2))
        v = L["v"](h).view(1, 1, args.kv_heads, hd).transpose(1, 2)
        kcache[i].index_copy_(2, pos, k)
        vcache[i].index_copy_(2, pos, v)
        a = F.scaled_dot_product_attention(q, kcache[i], vcache[i], attn_mask=mask, enable_gqa=True)
        x = x + L["o"](a.transpose(1, 2).reshape(1, args.dim))
        h = rms(x, L["fn"])
        x = x + L["down"](F.silu(L["gate"](h)) * L["up"](h))
    return output(rms(x, out_norm))


stream = torch.cuda.Stream()
stream.wait_stream(torch.cuda.current_stream())
with torch.cuda.stream(stream):
    for _ in range(3):
        step()
torch.cuda.current_stream().wait_stream(stream)
graph = torch.cuda.CUDAGraph()
with torch.cuda.graph(graph):
    logits = step()
rates = []
for _ in range(args.repeats):
    kcache.zero_(); vcache.zero_()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for p in range(args.tokens):
        pos.fill_(p)
        graph.replay()
        token.copy_(logits.argmax(dim=-1))
    end.record()
    end.synchronize()
    rates.append(args.tokens / (start.elapsed_time(end) / 1e3))
rates.sort()
print(f"torch int4 (tinygemm, group {args.group}) decode tg{args.tokens}: {rates[len(rates) // 2]:.1f} tokens/s "
      f"(median of {args.repeats}: {', '.join('%.1f' % r for r in rates)})")
