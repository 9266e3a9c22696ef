#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_cnn.lua: issue 7's 3-D CNN
interface classifier, float32, 2 threads, input [32, 8, 30, 30, 30]:
conv3d 8->16 k3 pad 1, ReLU, max-pool 2; conv3d 16->32 k3 pad 1, ReLU,
max-pool 2; flatten; linear 32*7^3 -> 2.
"inference": eval mode, no_grad. "train": one step of forward, MSE loss,
backward and SGD update. One warm-up of each, then `repeats` timed ones,
printed as "torch_cnn <mode> <seconds>". Usage: torch_cnn.py [repeats]"""
import sys
import time

import torch


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    torch.set_num_threads(2)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Conv3d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
                          nn.Conv3d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2),
                          nn.Flatten(), nn.Linear(32 * 7 ** 3, 2))
    x = torch.randn(32, 8, 30, 30, 30)
    target = torch.randn(32, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def infer():
        model.eval()
        with torch.no_grad():
            return model(x)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()

    infer()
    train()
    for _ in range(repeats):
        t0 = time.perf_counter()
        infer()
        print("torch_cnn inference %.6f" % (time.perf_counter() - t0))
        t0 = time.perf_counter()
        train()
        print("torch_cnn train %.6f" % (time.perf_counter() - t0), flush=True)


if __name__ == "__main__":
    main()
