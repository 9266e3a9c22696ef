-- Training throughput (samples/s) of mimic against PyTorch, same run, same
-- protocol: float32, 2 threads, data in memory, MSE, Adam lr 1e-3, batch
-- 256, one epoch of 131072 samples; networks with LeakyReLU(0.2) between
-- dense layers. Two mimic columns:
--  * compiled: mimic.train{..., epochs = 1, shuffle = false} (batches in
--    order, as the PyTorch loop), which runs the compiled training step
--    (core/nn/trainstep.c) for these models: one C call per batch;
--  * autograd: the loop written out by hand (zero_grad, forward, MSE,
--    backward, Adam step), exactly the work of the PyTorch loop in
--    tests/bench/torch_train.py.
--
-- Interleaving: each round times one mimic epoch per network and path, then runs
-- torch_train.py for one timed epoch per network (after its own warm-up
-- epoch, since every round is a fresh Python process), so a slow patch of a
-- shared machine hits both sides. Medians over the rounds. Nothing asserts
-- on speed.
--
-- Run: build/bin/mimic tests/bench/bench_train.lua   (from the repository root)
-- Environment: MIMIC_BENCH_REPEATS (rounds, default 5, at least 5 for the
-- table in docs/performance.md), MIMIC_TORCH=0 skips PyTorch.
local mimic = require "mimic"
local nn = require "mimic.nn"
local optim = require "mimic.optim"

local N, BATCH = 131072, 256
local NETS = {
  { "7-64-64-256", { 7, 64, 64, 256 } },
  { "375-64-64-6", { 375, 64, 64, 6 } },
  { "10-128-128-10", { 10, 128, 128, 10 } },
}
local repeats = tonumber(os.getenv("MIMIC_BENCH_REPEATS") or "") or 5
local use_torch = os.getenv("MIMIC_TORCH") ~= "0"
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

mimic.set_num_threads(2)
mimic.manual_seed(0)

local function build(sizes)
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 then layers[#layers + 1] = nn.LeakyReLU(0.2) end
  end
  return nn.Sequential(table.unpack(layers))
end

local mse = nn.functional.mse_loss
local loss_module = nn.MSELoss()
local function epoch(model, opt, x, y)
  local loss
  for s = 1, N, BATCH do
    opt:zero_grad()
    loss = mse(model(x:narrow(1, s, BATCH)), y:narrow(1, s, BATCH))
    loss:backward()
    opt:step()
  end
  return loss:item()
end

local function compiled_epoch(model, opt, x, y)
  local h = mimic.train { model = model, loss = loss_module, optimizer = opt, data = { x = x, y = y }, epochs = 1,
                         batch = BATCH, shuffle = false, verbose = false }
  if not h.compiled then error("bench_train: mimic.train did not use the compiled step") end
  return h[1].loss
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Set up every network once, with a warm-up epoch (first-touch of the
-- buffers, optimizer state creation).
local runs = {}
for i, net in ipairs(NETS) do
  local sizes = net[2]
  local model = build(sizes)
  local opt = optim.Adam(model, { lr = 1e-3 })
  local x, y = mimic.rand(N, sizes[1]), mimic.rand(N, sizes[#sizes])
  local l = epoch(model, opt, x, y)
  if l ~= l then error("bench_train: loss is NaN after the warm-up epoch of " .. net[1]) end
  local cmodel = build(sizes)
  local copt = optim.Adam(cmodel, { lr = 1e-3 })
  l = compiled_epoch(cmodel, copt, x, y)
  if l ~= l then error("bench_train: loss is NaN after the compiled warm-up epoch of " .. net[1]) end
  runs[i] = { model = model, opt = opt, cmodel = cmodel, copt = copt, x = x, y = y, mimic = {}, compiled = {},
              torch = {} }
end

local torch_ok = use_torch
for _ = 1, repeats do
  for i, r in ipairs(runs) do
    collectgarbage() -- the previous round's garbage is not this epoch's cost
    local t0 = mimic.clock()
    epoch(r.model, r.opt, r.x, r.y)
    r.mimic[#r.mimic + 1] = mimic.clock() - t0
    collectgarbage()
    t0 = mimic.clock()
    compiled_epoch(r.cmodel, r.copt, r.x, r.y)
    r.compiled[#r.compiled + 1] = mimic.clock() - t0
  end
  if torch_ok then
    local p = io.popen("/usr/bin/python3 " .. here .. "/torch_train.py 1 2>/dev/null")
    local got = 0
    for line in p:lines() do
      local name, t = line:match("^torch_train (%S+) (%S+)")
      for i, r in ipairs(runs) do
        if name == NETS[i][1] then r.torch[#r.torch + 1] = tonumber(t); got = got + 1 end
      end
    end
    p:close()
    if got == 0 then
      io.stderr:write("bench_train: no PyTorch timings (is /usr/bin/python3 with torch installed?); mimic only\n")
      torch_ok = false
    end
  end
end

print(string.format("Training, one epoch of %d samples, batch %d, Adam, MSE, float32, 2 threads; medians of %d rounds",
  N, BATCH, repeats))
print()
print("| net | compiled samples/s | autograd samples/s | PyTorch samples/s | compiled / PyTorch | autograd / PyTorch |")
print("|---|---:|---:|---:|---:|---:|")
for i, r in ipairs(runs) do
  local sc, sm = N / median(r.compiled), N / median(r.mimic)
  local tt = median(r.torch)
  local st = tt and N / tt
  local function ratio(v) return st and string.format("%.2fx", v / st) or "-" end
  print(string.format("| %s | %.3g | %.3g | %s | %s | %s |", NETS[i][1], sc, sm, st and string.format("%.3g", st) or "-",
    ratio(sc), ratio(sm)))
end
