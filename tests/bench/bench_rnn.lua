-- LSTM throughput of mimic against PyTorch (issue 7's target: >= 1.5x), same
-- run, same protocol, float32, 2 threads: LSTM(3 -> 64) over sequences of 100
-- steps at batch 256, time first (PyTorch's default layout).
--   inference: the LSTM's forward with grad mode off
--   plan:      the same LSTM compiled into the C inference plan
--              (model:compile{input_shape = {T, I}}, what model files and the
--              embedding API run), on the same data as rows [B, T * I]
--              (batch first, the plan's layout; prepared once, outside the
--              timing); PyTorch's number beside it is its inference
--   train:     LSTM + Linear(64 -> 1) on the last step, MSE to a fixed target,
--              backward and one Adam step (lr 1e-3)
-- Interleaving: each round times mimic once per mode, then runs torch_rnn.py
-- for one timed repeat of each (after its own warm-up), so a slow patch of a
-- shared machine hits both sides. Medians over the rounds. Nothing asserts on
-- speed.
--
-- Run: build/bin/mimic tests/bench/bench_rnn.lua   (from the repository root)
-- Environment: MIMIC_BENCH_REPEATS (rounds, default 7), MIMIC_TORCH=0 skips PyTorch.
local mimic = require "mimic"
local nn = require "mimic.nn"
local F = nn.functional
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"

local repeats = bench.setup(7)
mimic.manual_seed(0)

local T, B, I, H = 100, 256, 3, 64
local lstm = nn.LSTM(I, H)
local head = nn.Linear(H, 1)
local x = mimic.randn(T, B, I)
local target = mimic.randn(B, 1)
local params = lstm:parameters()
for _, p in ipairs(head:parameters()) do params[#params + 1] = p end
local opt = mimic.optim.Adam(params, { lr = 1e-3 })
local compiled = nn.Sequential(lstm):evaluate()
local p = compiled:compile({ input_shape = { T, I } })
local xrows = x:transpose(1, 2):contiguous():reshape({ B, T * I })

local modes = {
  inference = function() return mimic.no_grad(function() return (lstm(x)) end) end,
  plan = function() return p:forward(xrows) end,
  train = function()
    opt:zero_grad()
    local y = lstm(x)
    local loss = F.mse_loss(head(y:select(1, T)), target)
    loss:backward()
    opt:step()
  end,
}
local ORDER = { "inference", "plan", "train" }
local tm, tt = { inference = {}, plan = {}, train = {} }, { inference = {}, train = {} }
for _, m in ipairs(ORDER) do modes[m]() end

local torch = bench.torch("bench_rnn", "torch_rnn.py")
for _ = 1, repeats do
  for _, m in ipairs(ORDER) do bench.time_into(tm[m], modes[m]) end
  torch:run("^torch_rnn lstm (%S+) (%S+)", bench.into(tt))
end

print(string.format("LSTM(%d -> %d), %d steps, batch %d, float32, 2 threads; medians of %d rounds", I, H, T, B,
  repeats))
print()
bench.header({ "pass", "mimic ms", "PyTorch ms", "PyTorch / mimic time" })
for _, m in ipairs(ORDER) do
  local a, b = bench.median(tm[m]), bench.median(tt[m == "plan" and "inference" or m])
  local label = m == "train" and "train (fwd + bwd + Adam)" or m == "plan" and "inference, C plan" or m
  bench.row({ label, string.format("%.1f", a * 1e3),
    bench.cell("%.1f", b and b * 1e3), bench.cell("%.2fx", b and b / a) })
end
