-- LSTM throughput of mimic against PyTorch (issue 7's target: >= 1.5x), same
-- run, same protocol, float32, 2 threads: LSTM(3 -> 64) over sequences of 100
-- steps at batch 256, time first (PyTorch's default layout).
--   inference: the LSTM's forward with grad mode off
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

local repeats = tonumber(os.getenv("MIMIC_BENCH_REPEATS") or "") or 7
local use_torch = os.getenv("MIMIC_TORCH") ~= "0"
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

mimic.set_num_threads(2)
mimic.manual_seed(0)

local T, B, I, H = 100, 256, 3, 64
local lstm = nn.LSTM(I, H)
local head = nn.Linear(H, 1)
local x = mimic.randn(T, B, I)
local target = mimic.randn(B, 1)
local params = lstm:parameters()
for _, p in ipairs(head:parameters()) do params[#params + 1] = p end
local opt = mimic.optim.Adam(params, { lr = 1e-3 })

local modes = {
  inference = function() return mimic.no_grad(function() return (lstm(x)) end) end,
  train = function()
    opt:zero_grad()
    local y = lstm(x)
    local loss = F.mse_loss(head(y:select(1, T)), target)
    loss:backward()
    opt:step()
  end,
}
local ORDER = { "inference", "train" }
local tm, tt = { inference = {}, train = {} }, { inference = {}, train = {} }
for _, m in ipairs(ORDER) do modes[m]() end

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
  for _, m in ipairs(ORDER) do
    collectgarbage()
    local t0 = mimic.clock()
    modes[m]()
    tm[m][#tm[m] + 1] = mimic.clock() - t0
  end
  if torch_ok then
    local p = io.popen("/usr/bin/python3 " .. here .. "/torch_rnn.py 1 2>/dev/null")
    local got = 0
    for line in p:lines() do
      local mode, t = line:match("^torch_rnn lstm (%S+) (%S+)")
      if mode and tt[mode] then tt[mode][#tt[mode] + 1] = tonumber(t); got = got + 1 end
    end
    p:close()
    if got == 0 then
      io.stderr:write("bench_rnn: no PyTorch timings (is /usr/bin/python3 with torch installed?); mimic only\n")
      torch_ok = false
    end
  end
end

print(string.format("LSTM(%d -> %d), %d steps, batch %d, float32, 2 threads; medians of %d rounds", I, H, T, B,
  repeats))
print()
print("| pass | mimic ms | PyTorch ms | PyTorch / mimic time |")
print("|---|---:|---:|---:|")
for _, m in ipairs(ORDER) do
  local a, b = median(tm[m]), median(tt[m])
  print(string.format("| %s | %.1f | %s | %s |", m == "train" and "train (fwd + bwd + Adam)" or m, a * 1e3,
    b and string.format("%.1f", b * 1e3) or "-", b and string.format("%.2fx", b / a) or "-"))
end
