-- Convolution throughput of mimic against PyTorch, same run, same protocol,
-- float32, 2 threads:
--   conv2d: Conv2d 16 -> 32 channels, 3x3, padding 1, input [32, 16, 64, 64]
--   conv3d: Conv3d 8 -> 16 channels, 3x3x3, padding 1, input [32, 8, 30, 30, 30]
--           (the first layer of issue 7's interface classifier)
-- "forward" is one pass with grad mode off; "forward + backward" is one pass
-- recorded and its backward from a fixed output gradient (gradients of the
-- input, weight and bias: 3x the forward's flops).
--
-- Interleaving: each round times mimic once per case and mode, then runs
-- torch_conv.py for one timed repeat of each (after its own warm-up), so a
-- slow patch of a shared machine hits both sides. Medians over the rounds.
-- Nothing asserts on speed.
--
-- Run: build/bin/mimic tests/bench/bench_conv.lua   (from the repository root)
-- Environment: MIMIC_BENCH_REPEATS (rounds, default 5), MIMIC_TORCH=0 skips PyTorch.
local mimic = require "mimic"
local nn = require "mimic.nn"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"

local repeats = bench.setup(5)
mimic.manual_seed(0)

local CASES = {
  { name = "conv2d", layer = nn.Conv2d, cin = 16, cout = 32, shape = { 32, 16, 64, 64 } },
  { name = "conv3d", layer = nn.Conv3d, cin = 8, cout = 16, shape = { 32, 8, 30, 30, 30 } },
}

for _, c in ipairs(CASES) do
  c.conv = c.layer(c.cin, c.cout, 3, { padding = 1 })
  c.x = mimic.randn(c.shape):requires_grad_()
  local oshape = { c.shape[1], c.cout }
  for i = 3, #c.shape do oshape[i] = c.shape[i] end
  c.gout = mimic.randn(oshape)
  local positions, taps = 1, 1
  for i = 3, #c.shape do positions = positions * c.shape[i]; taps = taps * 3 end
  c.flops = 2 * c.shape[1] * c.cout * c.cin * taps * positions
  c.forward = function() return mimic.no_grad(function() return c.conv(c.x) end) end
  c.train = function()
    c.x.grad = nil
    c.conv:zero_grad()
    c.conv(c.x):backward(c.gout)
  end
  c.forward()
  c.train()
  c.tm = { forward = {}, train = {} }
  c.tt = { forward = {}, train = {} }
end

local by_name = {}
for _, c in ipairs(CASES) do by_name[c.name] = c end
local torch = bench.torch("bench_conv", "torch_conv.py")
for _ = 1, repeats do
  for _, c in ipairs(CASES) do
    for _, mode in ipairs({ "forward", "train" }) do bench.time_into(c.tm[mode], c[mode]) end
  end
  torch:run("^torch_conv (%S+) (%S+) (%S+)", function(name, mode, t)
    return by_name[name] ~= nil and bench.into(by_name[name].tt)(mode, t)
  end)
end

local sgemm = bench.sgemm_gflops(repeats)
print(string.format("Convolutions, 3x3(x3) kernels, padding 1, float32, 2 threads; medians of %d rounds", repeats))
print(string.format("(sgemm 1024^3 in this run: %.1f GFLOP/s)", sgemm))
print()
bench.header({ "layer", "input", "pass", "mimic ms", "mimic GFLOP/s", "PyTorch ms", "PyTorch GFLOP/s",
  "PyTorch / mimic time" }, 3)
for _, c in ipairs(CASES) do
  for _, m in ipairs({ { "forward", "forward", 1 }, { "train", "forward + backward", 3 } }) do
    local a, b = bench.median(c.tm[m[1]]), bench.median(c.tt[m[1]])
    local fl = c.flops * m[3] / 1e9
    bench.row({ string.format("%s %d -> %d", c.name, c.cin, c.cout), "[" .. table.concat(c.shape, ",") .. "]", m[2],
      string.format("%.1f", a * 1e3), string.format("%.1f", fl / a), bench.cell("%.1f", b and b * 1e3),
      bench.cell("%.1f", b and fl / b), bench.cell("%.2fx", b and b / a) })
  end
end
