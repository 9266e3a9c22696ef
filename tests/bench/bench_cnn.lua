-- Issue 7's 3-D CNN interface classifier, mimic against PyTorch in the same
-- run, float32, 2 threads, input [32, 8, 30, 30, 30]:
--   conv3d 8->16 k3 pad 1, ReLU, max-pool 2; conv3d 16->32 k3 pad 1, ReLU,
--   max-pool 2; flatten; linear 32*7^3 -> 2.
-- "inference (plan)": the compiled C plan (model:compile{input_shape = ...}),
--   rows of 8*30^3 features; PyTorch: eval mode under no_grad (oneDNN).
-- "inference (autograd ops)": mimic's training-side forward under no_grad.
-- "train step": forward, MSE loss, backward, SGD update (mimic autograd vs
--   PyTorch autograd).
-- GFLOP/s count the two convolutions and the linear layer (2 flops per
-- multiply-add; pools and activations not counted); train = 3x forward.
--
-- Interleaving: each round times mimic once per mode, then runs
-- torch_cnn.py for one timed repeat of each (after its own warm-up).
-- Medians over the rounds. Nothing asserts on speed.
--
-- Run: build/bin/mimic tests/bench/bench_cnn.lua   (from the repository root)
-- Environment: MIMIC_BENCH_REPEATS (rounds, default 5), MIMIC_TORCH=0 skips PyTorch.
local mimic = require "mimic"
local nn = require "mimic.nn"
local optim = require "mimic.optim"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"

local repeats = bench.setup(5)
mimic.manual_seed(0)

local model = nn.Sequential(nn.Conv3d(8, 16, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool3d(2),
  nn.Conv3d(16, 32, 3, { padding = 1 }), nn.ReLU(), nn.MaxPool3d(2),
  nn.Flatten(), nn.Linear(32 * 343, 2))
local N = 32
local x = mimic.randn({ N, 8, 30, 30, 30 })
local rows = x:reshape({ N, 8 * 27000 })
local target = mimic.randn({ N, 2 })
local flops = 2 * N * (16 * 8 * 27 * 30 ^ 3 + 32 * 16 * 27 * 15 ^ 3 + 2 * 32 * 7 ^ 3)

model:evaluate()
local plan = model:compile({ input_shape = { 8, 30, 30, 30 } })
local opt = optim.SGD(model:parameters(), { lr = 1e-3 })

-- The plan against the training-side forward, once: a wrong plan is no benchmark.
local ref = mimic.no_grad(function() model:compile(false); return model:forward(x) end)
model:compile({ input_shape = { 8, 30, 30, 30 } })
plan = rawget(model, "_compiled")
local err = (plan:forward(rows) - ref):abs():max():item()
assert(err <= 1e-4 * (ref:abs():max():item() + 1e-3), "bench_cnn: plan and model:forward differ by " .. err)

local MODES = {
  plan = function() return plan:forward(rows) end,
  ops = function()
    return mimic.no_grad(function()
      local saved = rawget(model, "_compiled")
      rawset(model, "_compiled", nil)
      local y = model:forward(x)
      rawset(model, "_compiled", saved)
      return y
    end)
  end,
  train = function()
    model:train()
    opt:zero_grad()
    local loss = nn.functional.mse_loss(model:forward(x), target)
    loss:backward()
    opt:step()
    model:evaluate()
  end,
}
local ORDER = { "plan", "ops", "train" }
for _, k in ipairs(ORDER) do MODES[k]() end
-- the train step changed the weights: the plan is a snapshot, which does not matter for timing

local tm, tt = { plan = {}, ops = {}, train = {} }, { inference = {}, train = {} }

local torch = bench.torch("bench_cnn", "torch_cnn.py")
for _ = 1, repeats do
  for _, k in ipairs(ORDER) do bench.time_into(tm[k], MODES[k]) end
  torch:run("^torch_cnn (%S+) (%S+)", bench.into(tt))
end

local sgemm = bench.sgemm_gflops(repeats)
print(string.format("3-D CNN interface classifier, batch %d, float32, 2 threads; medians of %d rounds", N, repeats))
print(string.format("(sgemm 1024^3 in this run: %.1f GFLOP/s; model forward %.2f GFLOP)", sgemm, flops / 1e9))
print()
bench.header({ "pass", "mimic ms", "mimic GFLOP/s", "PyTorch ms", "PyTorch GFLOP/s", "PyTorch / mimic time" })
for _, r in ipairs({ { "plan", "inference (C plan)", "inference", 1 }, { "ops", "inference (autograd ops, no_grad)", "inference", 1 },
                     { "train", "train step (fwd + bwd + SGD)", "train", 3 } }) do
  local a, b = bench.median(tm[r[1]]), bench.median(tt[r[3]])
  local fl = flops * r[4] / 1e9
  bench.row({ r[2], string.format("%.1f", a * 1e3), string.format("%.1f", fl / a), bench.cell("%.1f", b and b * 1e3),
    bench.cell("%.1f", b and fl / b), bench.cell("%.2fx", b and b / a) })
end
