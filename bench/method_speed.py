"""Crops per second of every method, batched, on each device this machine has (and SVD: Gram-eigh vs full SVD).

    python bench/method_speed.py [--batch 256] [--size 112]
"""

from __future__ import annotations

import argparse
import time

import torch

from deidcli.methods import METHODS, get_method


def rate(fn, x: torch.Tensor, repeat: int = 3) -> float:
    fn(x)  # warm-up (and k-Same's grouping, done once per run)
    if x.is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeat):
        fn(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return repeat * len(x) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=112)
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        x = torch.rand((args.batch, 3, args.size, args.size), device=dev)
        g = torch.Generator(device=dev).manual_seed(0)
        for name in METHODS:
            if METHODS[name].needs in ("facenet", "mtcnn"):  # iterative attacks: bench/kanon_rank_test.py times one
                continue
            m = get_method(name, device=dev)
            r = rate(lambda c: m(c, generator=g, inner=1 / 1.3), x)
            print(f"{dev:5s} {name:12s} {r:10.0f} crops/s  ({args.batch} x {args.size}x{args.size})", flush=True)
        r = 8
        full = rate(lambda c: (lambda u, s, vh: u[..., :r] @ (s[..., :r, None] * vh[..., :r, :]))(
            *torch.linalg.svd(c, full_matrices=False)), x)
        print(f"{dev:5s} {'svd (torch.linalg.svd)':22s} {full:10.0f} crops/s, for comparison", flush=True)


if __name__ == "__main__":
    main()
