#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_cnn.lua: issue 7's 3-D CNN
interface classifier, float32, 2 threads, input [32, 8, 30, 30, 30]:
conv3d 8->16 k3 pad 1, ReLU, max-pool 2; conv3d 16->32 k3 pad 1, ReLU,
max-pool 2; flatten; linear 32*7^3 -> 2.
"inference": eval mode, no_grad. "train": one step of forward, MSE loss,
backward and SGD update. One warm-up of each, then `repeats` timed ones,
printed as "torch_cnn <mode> <seconds>". Usage: torch_cnn.py [repeats]"""
import torch

import torchlib


def main():
    repeats = torchlib.setup()
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

    torchlib.time_modes("torch_cnn", {"inference": infer, "train": train}, repeats)


if __name__ == "__main__":
    main()
