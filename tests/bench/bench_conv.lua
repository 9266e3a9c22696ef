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

local repeats = tonumber(os.getenv("MIMIC_BENCH_REPEATS") or "") or 5
local use_torch = os.getenv("MIMIC_TORCH") ~= "0"
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

mimic.set_num_threads(2)
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

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local torch_ok = use_torch
for _ = 1, repeats do
  for _, c in ipairs(CASES) do
    for _, mode in ipairs({ "forward", "train" }) do
      collectgarbage()
      local t0 = mimic.clock()
      c[mode]()
      c.tm[mode][#c.tm[mode] + 1] = mimic.clock() - t0
    end
  end
  if torch_ok then
    local p = io.popen("/usr/bin/python3 " .. here .. "/torch_conv.py 1 2>/dev/null")
    local got = 0
    for line in p:lines() do
      local name, mode, t = line:match("^torch_conv (%S+) (%S+) (%S+)")
      for _, c in ipairs(CASES) do
        if c.name == name and c.tt[mode] then c.tt[mode][#c.tt[mode] + 1] = tonumber(t); got = got + 1 end
      end
    end
    p:close()
    if got == 0 then
      io.stderr:write("bench_conv: no PyTorch timings (is /usr/bin/python3 with torch installed?); mimic only\n")
      torch_ok = false
    end
  end
end

-- The machine's sgemm rate in this run, for scale: a 1024^3 product.
local A, B = mimic.randn({ 1024, 1024 }), mimic.randn({ 1024, 1024 })
A:matmul(B)
local tg = {}
for _ = 1, repeats do
  local t0 = mimic.clock()
  A:matmul(B)
  tg[#tg + 1] = mimic.clock() - t0
end

print(string.format("Convolutions, 3x3(x3) kernels, padding 1, float32, 2 threads; medians of %d rounds", repeats))
print(string.format("(sgemm 1024^3 in this run: %.1f GFLOP/s)", 2 * 1024 ^ 3 / median(tg) / 1e9))
print()
print("| layer | input | pass | mimic ms | mimic GFLOP/s | PyTorch ms | PyTorch GFLOP/s | PyTorch / mimic time |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for _, c in ipairs(CASES) do
  for _, m in ipairs({ { "forward", "forward", 1 }, { "train", "forward + backward", 3 } }) do
    local a, b = median(c.tm[m[1]]), median(c.tt[m[1]])
    local fl = c.flops * m[3] / 1e9
    print(string.format("| %s %d -> %d | [%s] | %s | %.1f | %.1f | %s | %s | %s |", c.name, c.cin, c.cout,
      table.concat(c.shape, ","), m[2], a * 1e3, fl / a, b and string.format("%.1f", b * 1e3) or "-",
      b and string.format("%.1f", fl / b) or "-", b and string.format("%.2fx", b / a) or "-"))
  end
end
