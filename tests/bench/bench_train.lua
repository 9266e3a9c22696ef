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
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local bench = require "benchlib"

local N, BATCH = 131072, 256
local NETS = {
  { "7-64-64-256", { 7, 64, 64, 256 } },
  { "375-64-64-6", { 375, 64, 64, 6 } },
  { "10-128-128-10", { 10, 128, 128, 10 } },
}
local repeats = bench.setup(5)
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

local torch_times = {}
for i, r in ipairs(runs) do torch_times[NETS[i][1]] = r.torch end
local torch = bench.torch("bench_train", "torch_train.py")
for _ = 1, repeats do
  for _, r in ipairs(runs) do
    bench.time_into(r.mimic, function() epoch(r.model, r.opt, r.x, r.y) end)
    bench.time_into(r.compiled, function() compiled_epoch(r.cmodel, r.copt, r.x, r.y) end)
  end
  torch:run("^torch_train (%S+) (%S+)", bench.into(torch_times))
end

print(string.format("Training, one epoch of %d samples, batch %d, Adam, MSE, float32, 2 threads; medians of %d rounds",
  N, BATCH, repeats))
print()
bench.header({ "net", "compiled samples/s", "autograd samples/s", "PyTorch samples/s", "compiled / PyTorch",
  "autograd / PyTorch" })
for i, r in ipairs(runs) do
  local sc, sm = N / bench.median(r.compiled), N / bench.median(r.mimic)
  local tt = bench.median(r.torch)
  local st = tt and N / tt
  bench.row({ NETS[i][1], string.format("%.3g", sc), string.format("%.3g", sm), bench.cell("%.3g", st),
    bench.cell("%.2fx", st and sc / st), bench.cell("%.2fx", st and sm / st) })
end
