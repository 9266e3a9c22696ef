-- VAE generation throughput of mimic against PyTorch, same run, float32,
-- 2 threads (issue 7's benchmark): a decoder 8 -> 128 -> 128 -> 26 (ReLU,
-- ReLU, linear output) generating 10^5 samples. mimic runs the decoder's
-- compiled plan (model:compile(): one sgemm per layer, bias and activation
-- fused); PyTorch its nn.Sequential under no_grad.
--   generate: draw z ~ N(0, I) [10^5, 8] from a generator, then decode
--   decode:   decode a fixed z (the network alone)
--
-- Interleaving: each round times mimic once per mode, then runs torch_vae.py
-- for one timed repeat of each (after its own warm-up), so a slow patch of a
-- shared machine hits both sides. Medians over the rounds. Nothing asserts
-- on speed; the plan's output is checked against the autograd decoder once.
--
-- Run: build/bin/mimic tests/bench/bench_vae.lua   (from the repository root)
-- Environment: MIMIC_BENCH_REPEATS (rounds, default 7), MIMIC_TORCH=0 skips PyTorch.
local mimic = require "mimic"
local nn = require "mimic.nn"
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"

local repeats = bench.setup(7)
local N, NZ, H, NOUT = 100000, 8, 128, 26
local g = mimic.Generator(0)
local dec = nn.Sequential(nn.Linear(NZ, H, { generator = g }), nn.ReLU(), nn.Linear(H, H, { generator = g }), nn.ReLU(),
  nn.Linear(H, NOUT, { generator = g })):evaluate()
local z0 = g:randn({ N, NZ })
local ref = mimic.no_grad(function() return dec(z0) end) -- before compiling: the Lua modules
local plan = dec:compile()
local err = (plan:forward(z0) - ref):abs():max():item()
if not (err < 1e-4) then error("bench_vae: the compiled decoder differs from the autograd one by " .. err) end

local modes = {
  generate = function() return plan:forward(g:randn({ N, NZ })) end,
  decode = function() return plan:forward(z0) end,
}
local ORDER = { "generate", "decode" }
for _, m in ipairs(ORDER) do modes[m]() end

local tm, tt = { generate = {}, decode = {} }, { generate = {}, decode = {} }
local torch = bench.torch("bench_vae", "torch_vae.py")
for _ = 1, repeats do
  for _, m in ipairs(ORDER) do bench.time_into(tm[m], modes[m]) end
  torch:run("^torch_vae (%S+) (%S+)", bench.into(tt))
end

local flops = 2 * N * (NZ * H + H * H + H * NOUT)
print(string.format("VAE decoder %d -> %d -> %d -> %d, %d samples, float32, 2 threads; medians of %d rounds", NZ, H, H,
  NOUT, N, repeats))
print()
bench.header({ "pass", "mimic ms", "mimic GFLOP/s", "PyTorch ms", "PyTorch / mimic time" })
for _, m in ipairs(ORDER) do
  local a, b = bench.median(tm[m]), bench.median(tt[m])
  bench.row({ m == "generate" and "generate (z ~ N(0, I) + decode)" or "decode (fixed z)", string.format("%.2f", a * 1e3),
    string.format("%.1f", flops / a / 1e9), bench.cell("%.2f", b and b * 1e3), bench.cell("%.2fx", b and b / a) })
end
