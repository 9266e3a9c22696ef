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

local repeats = tonumber(os.getenv("MIMIC_BENCH_REPEATS") or "") or 7
local use_torch = os.getenv("MIMIC_TORCH") ~= "0"
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

mimic.set_num_threads(2)
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

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local tm, tt = { generate = {}, decode = {} }, { generate = {}, decode = {} }
local torch_ok = use_torch
for _ = 1, repeats do
  for _, m in ipairs(ORDER) do
    collectgarbage()
    local t0 = mimic.clock()
    modes[m]()
    tm[m][#tm[m] + 1] = mimic.clock() - t0
  end
  if torch_ok then
    local p = io.popen("/usr/bin/python3 " .. here .. "/torch_vae.py 1 2>/dev/null")
    local got = 0
    for line in p:lines() do
      local mode, t = line:match("^torch_vae (%S+) (%S+)")
      if mode and tt[mode] then tt[mode][#tt[mode] + 1] = tonumber(t); got = got + 1 end
    end
    p:close()
    if got == 0 then
      io.stderr:write("bench_vae: no PyTorch timings (is /usr/bin/python3 with torch installed?); mimic only\n")
      torch_ok = false
    end
  end
end

local flops = 2 * N * (NZ * H + H * H + H * NOUT)
print(string.format("VAE decoder %d -> %d -> %d -> %d, %d samples, float32, 2 threads; medians of %d rounds", NZ, H, H,
  NOUT, N, repeats))
print()
print("| pass | mimic ms | mimic GFLOP/s | PyTorch ms | PyTorch / mimic time |")
print("|---|---:|---:|---:|---:|")
for _, m in ipairs(ORDER) do
  local a, b = median(tm[m]), median(tt[m])
  print(string.format("| %s | %.2f | %.1f | %s | %s |", m == "generate" and "generate (z ~ N(0, I) + decode)" or
    "decode (fixed z)", a * 1e3, flops / a / 1e9, b and string.format("%.2f", b * 1e3) or "-",
    b and string.format("%.2fx", b / a) or "-"))
end
