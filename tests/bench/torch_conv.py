#!/usr/bin/python3
"""PyTorch baseline for tests/bench/bench_conv.lua, float32, 2 threads:
  conv2d: Conv2d 16 -> 32 channels, 3x3, padding 1, input [32, 16, 64, 64]
  conv3d: Conv3d 8 -> 16 channels, 3x3x3, padding 1, input [32, 8, 30, 30, 30]
          (the first layer of issue 7's interface classifier)
Times the forward pass alone (no_grad) and forward + backward (gradients of
the input, weight and bias, from a fixed output gradient), after one warm-up
of each. Prints "torch_conv <case> forward <s>" and "torch_conv <case> train
<s>", one line per timed repeat. Usage: torch_conv.py [repeats [case ...]]"""
import sys

import torch

import torchlib

CASES = {
    "conv2d": (torch.nn.Conv2d, 16, 32, (32, 16, 64, 64)),
    "conv3d": (torch.nn.Conv3d, 8, 16, (32, 8, 30, 30, 30)),
}


def main():
    repeats = torchlib.setup()
    names = sys.argv[2:] or list(CASES)
    for name in names:
        cls, cin, cout, shape = CASES[name]
        conv = cls(cin, cout, 3, padding=1)
        x = torch.randn(*shape, requires_grad=True)
        gout = torch.randn(shape[0], cout, *shape[2:])

        def forward():
            with torch.no_grad():
                return conv(x)

        def train():
            x.grad = None
            conv.zero_grad(set_to_none=True)
            conv(x).backward(gout)

        torchlib.time_modes("torch_conv " + name, {"forward": forward, "train": train}, repeats)


if __name__ == "__main__":
    main()
