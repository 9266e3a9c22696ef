-- The flagship experiment, small default: `make run` (or `mimic scripts/flagship.lua
-- [epochs] [ntrain] [seed]`).
--
-- Until the radiation use case lands, this is an end-to-end surrogate of an
-- analytic stand-in for gas optics: per atmospheric layer, (pressure,
-- temperature, water vapour) -> optical depth at 16 spectral points, with
-- pressure broadening, temperature-dependent line strengths and a
-- water-vapour path. It generates data from the kernel, trains a 3-64-64-16
-- tanh MLP with mimic.nn, mimic.optim and mimic.train, and validates it on
-- held-out samples.

local mimic = require "mimic"

local epochs = tonumber(arg and arg[1]) or 60
local ntrain = tonumber(arg and arg[2]) or 16384
local seed = tonumber(arg and arg[3]) or 1
local nval, ntest, batch = 4096, 8192, 256
local g = mimic.Generator(seed)

-- The kernel and its input sampler (shared with scripts/validate_flagship.lua).
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local toy = dofile(here .. "/lib/gasoptics_toy.lua")
local G = toy.G
local kernel = toy.kernel
local function sample(n) return toy.sample(g, n) end

local function stopwatch() local t0 = mimic.clock(); return function() return mimic.clock() - t0 end end

-- Data -----------------------------------------------------------------------
local clock = stopwatch()
local xtr, xva, xte = sample(ntrain), sample(nval), sample(ntest)
local ytr, yva, yte = kernel(xtr), kernel(xva), kernel(xte)
-- Standardise inputs and outputs with training-split statistics only.
local xmu, xsd = xtr:mean(1), xtr:std(1)
local ymu, ysd = ytr:mean(1), ytr:std(1)
local function encx(x) return (x - xmu) / xsd end
local function ency(y) return (y - ymu) / ysd end
local Xtr, Ytr, Xva, Yva = encx(xtr), ency(ytr), encx(xva), ency(yva)
print(string.format("data: %d train / %d validation / %d test samples of (ln p, T, ln q) -> ln tau[%d], %.2f s",
  ntrain, nval, ntest, G, clock()))

-- Model: 3 -> 64 -> 64 -> 16, tanh; Adam with a cosine schedule, early stopping.
local nn, optim = mimic.nn, mimic.optim
mimic.manual_seed(seed) -- layer initialisation
local model = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, G))
local opt = optim.Adam(model, { lr = 3e-3 })
print(string.format("model: MLP 3-64-64-%d tanh, %d parameters; Adam, batch %d, up to %d epochs",
  G, model:num_parameters(), batch, epochs))
local history = mimic.train {
  model = model, loss = nn.MSELoss(), optimizer = opt,
  data = { x = Xtr, y = Ytr }, val = { x = Xva, y = Yva },
  epochs = epochs, batch = batch, seed = seed,
  scheduler = optim.CosineAnnealingLR(opt, { T_max = epochs }),
  early_stopping = { patience = 10 },
}
local best, best_epoch = history.best, history.best_epoch
local function forward(x) return mimic.no_grad(function() return model(x) end) end
model:evaluate()

-- A priori validation on held-out samples -----------------------------------------
local pred = forward(encx(xte)) * ysd + ymu -- back to ln tau
local err = pred - yte                       -- error in ln tau
local abs = err:abs()
local rel = err:exp() - 1                    -- relative error of tau itself
local r2 = 1 - err:square():sum(1) / (yte - yte:mean(1)):square():sum(1)
local sorted = rel:abs():flatten():sort()
local function pct(q) return sorted[math.max(1, math.floor(q * sorted:numel()))] end
local _, worst_k = abs:max(1):max(1)
worst_k = worst_k:item()

print()
print("a priori validation on " .. ntest .. " held-out samples (surrogate vs kernel)")
print("| metric | value |")
print("|---|---|")
print(string.format("| RMSE of ln tau | %.4f |", err:square():mean():sqrt():item()))
print(string.format("| mean bias of ln tau | %+.2e |", err:mean():item()))
print(string.format("| R^2 (worst spectral point) | %.5f |", r2:min():item()))
print(string.format("| |tau error| median / 95th pct / max | %.2f %% / %.2f %% / %.2f %% |",
  100 * pct(0.5), 100 * pct(0.95), 100 * sorted[sorted:numel()]))
print(string.format("| spectral point with the largest error | %d |", worst_k))
print(string.format("| best validation MSE (standardised) | %.3e at epoch %d |", best, best_epoch))

-- Cost per sample: the kernel vs the surrogate's forward pass, same batch.
local function per_sample(f, x, reps)
  local c = stopwatch()
  for _ = 1, reps do f(x) end
  return c() / reps / x:size(1) * 1e6
end
local tk = per_sample(kernel, xte, 5)
local ts = per_sample(function(x) return forward(encx(x)) end, xte, 5)
print(string.format("| cost per sample: kernel / surrogate (wall clock, batch of 8192) | %.3f us / %.3f us |", tk, ts))
print()
print("This analytic kernel is cheap, so the surrogate is not faster here; the radiation")
print("use case measures the surrogate against a real table-interpolation kernel.")
