#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_rnn.lua, float32, 2 threads:
LSTM(3 -> 64) over sequences of 100 steps at batch 256 (time first).
  inference: the LSTM's forward with no_grad
  train:     LSTM + Linear(64 -> 1) on the last step, MSE to a fixed target,
             backward and one Adam step (lr 1e-3)
After one warm-up of each, prints "torch_rnn lstm <mode> <s>" per timed
repeat. Usage: torch_rnn.py [repeats]"""
import torch

import torchlib

T, B, I, H = 100, 256, 3, 64


def main():
    repeats = torchlib.setup()
    lstm = torch.nn.LSTM(I, H)
    head = torch.nn.Linear(H, 1)
    x = torch.randn(T, B, I)
    target = torch.randn(B, 1)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)

    def inference():
        with torch.no_grad():
            return lstm(x)[0]

    def train():
        opt.zero_grad(set_to_none=True)
        y = lstm(x)[0]
        loss = torch.nn.functional.mse_loss(head(y[-1]), target)
        loss.backward()
        opt.step()

    torchlib.time_modes("torch_rnn lstm", {"inference": inference, "train": train}, repeats)


if __name__ == "__main__":
    main()
