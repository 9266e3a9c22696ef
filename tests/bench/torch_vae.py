#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_vae.lua, float32, 2 threads: a VAE
decoder 8 -> 128 -> 128 -> 26 (ReLU, ReLU, linear output) generating 10^5
samples under no_grad. "generate" draws z ~ N(0, I) [10^5, 8] and decodes it;
"decode" decodes a fixed z. One warm-up of each, then prints
"torch_vae <mode> <s>" per timed repeat. Usage: torch_vae.py [repeats]"""
import torch

import torchlib

N, NZ, H, NOUT = 100000, 8, 128, 26


def main():
    repeats = torchlib.setup()
    dec = torch.nn.Sequential(torch.nn.Linear(NZ, H), torch.nn.ReLU(), torch.nn.Linear(H, H), torch.nn.ReLU(),
                              torch.nn.Linear(H, NOUT)).eval()
    z0 = torch.randn(N, NZ)

    def generate():
        with torch.no_grad():
            return dec(torch.randn(N, NZ))

    def decode():
        with torch.no_grad():
            return dec(z0)

    torchlib.time_modes("torch_vae", {"generate": generate, "decode": decode}, repeats)


if __name__ == "__main__":
    main()
