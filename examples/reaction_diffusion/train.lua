-- Trains the surrogate of the reaction kernel of examples/reaction_diffusion/host.c
-- (docs/embedding.md, "The example"):
--
--   build/bin/mimic examples/reaction_diffusion/train.lua DATA MODEL GUARD [epochs] [seed]
--
-- DATA is what `host generate DATA` wrote: x [n, 2] = (temperature [K], fuel [1])
-- after diffusion, y [n, 2] = (heat_release [K/s], fuel_rate [1/s]), the mean
-- reaction rates over one time step. Writes the model file MODEL (the
-- contract the host binds by name, the encoders, provenance) and the guard
-- GUARD fitted on the training inputs. epochs = 0 saves the untrained
-- network (same encoders and contract): the baseline a broken surrogate
-- would be.
local mimic = require "mimic"
local data, nn, optim, V = mimic.data, mimic.nn, mimic.optim, mimic.validate

local file, model_path, guard_path = arg[1], arg[2], arg[3]
if not (file and model_path and guard_path) then
  error("usage: mimic train.lua DATA MODEL GUARD [epochs] [seed]", 0)
end
local epochs = tonumber(arg[4]) or 12
local seed = tonumber(arg[5]) or 1
local t0 = mimic.clock()

-- Data: a random 80 / 10 / 10 split (samples are ordered by run and time step).
local x = data.read(file, "x", { dtype = "float64", finite = true })
local y = data.read(file, "y", { dtype = "float64", finite = true })
local n = x:size(1)
local perm = mimic.Generator(seed):randperm(n)
local ntr, nva = math.floor(0.8 * n), math.floor(0.1 * n)
local itr, iva, ite = perm:narrow(1, 1, ntr), perm:narrow(1, ntr + 1, nva), perm:narrow(1, ntr + nva + 1, n - ntr - nva)
local xtr, ytr = x:index_select(1, itr), y:index_select(1, itr)
local xva, yva = x:index_select(1, iva), y:index_select(1, iva)
local xte, yte = x:index_select(1, ite), y:index_select(1, ite)

-- Encoders, fitted on the training split only. The rates span 25 decades
-- (zero in fresh and burnt gas, 1e5 K/s in the flame): a signed log with a
-- scale far below any rate that matters (1e-3 K/s is 1e-6 K per step) makes
-- "nothing happens" an exact zero the network can hit, then standardise.
-- The rate is proportional to the fuel left, down to 1e-6 and below in the
-- burnt gas, so the inputs get a log too (for T it is a mild log T).
local xe = data.chain { data.encoder { kind = "signed_log", scale = 1e-6 }, data.encoder { kind = "standard" } }:fit(xtr)
local ye = data.chain { data.encoder { kind = "signed_log", scale = 1e-3 }, data.encoder { kind = "standard" } }:fit(ytr)
local Xtr, Ytr = xe:encode(xtr):float(), ye:encode(ytr):float()
local Xva, Yva = xe:encode(xva):float(), ye:encode(yva):float()
print(string.format("data: %s, %d samples (%d train / %d validation / %d test)", file, n, ntr, nva, n - ntr - nva))

-- Model: 2 -> 32 -> 32 -> 2, ReLU (tanh is as accurate here but costs 9x more per sample
-- in the host: the activation, not the matrix products, dominates so small a network).
mimic.manual_seed(seed)
local model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
if epochs > 0 then
  local opt = optim.Adam(model, { lr = 3e-3 })
  local h = mimic.train {
    model = model, loss = nn.MSELoss(), optimizer = opt,
    data = { x = Xtr, y = Ytr }, val = { x = Xva, y = Yva },
    epochs = epochs, batch = 256, seed = seed,
    scheduler = optim.CosineAnnealingLR(opt, { T_max = epochs }),
    early_stopping = { patience = epochs }, -- never stops early; keeps the best epoch's weights
  }
  print(string.format("model: MLP 2-32-32-2 ReLU, %d parameters; Adam, batch 256, %d epochs; best validation MSE %.3e (epoch %d)",
    model:num_parameters(), epochs, h.best, h.best_epoch))
else
  print(string.format("model: MLP 2-32-32-2 ReLU, %d parameters, UNTRAINED (epochs = 0)", model:num_parameters()))
end
model:evaluate()
local train_seconds = mimic.clock() - t0

-- A priori validation on the held-out test split, in physical units.
local pred = ye:decode(mimic.no_grad(function() return model(xe:encode(xte):float()) end):double())
local names = { "heat_release [K/s]", "fuel_rate [1/s]" }
print("\na priori validation on " .. xte:size(1) .. " held-out samples (surrogate vs kernel)\n")
print("| output | RMSE | max abs error | R^2 | reference std |")
print("|---|---:|---:|---:|---:|")
local r = V.regression(pred, yte)
for k = 1, 2 do
  print(string.format("| %s | %.4g | %.4g | %.6f | %.4g |", names[k], r[k].rmse, r[k].max_abs, r[k].r2,
    yte:select(2, k):std():item()))
end

-- The guard: per-feature ranges (5 % margin) and the Mahalanobis distance of
-- the raw training inputs. Held-out samples should pass; a hot spot should not.
local guard = mimic.guard.fit(xtr, { margin = 0.05, distance = true, quantile = 0.9999 })
local lo, hi, dlim = guard:limits()
local flagged = guard:check(xte):ne(0):double():sum():item()
print(string.format("\nguard: temperature in [%.1f, %.1f] K, fuel in [%.3g, %.3g], distance limit %.3g; flags %d of %d test samples",
  lo[1], hi[1], lo[2], hi[2], dlim, flagged, xte:size(1)))
guard:save(guard_path)

local hash = model:save(model_path, {
  inputs = { { name = "temperature", units = "K", size = 1 }, { name = "fuel", units = "1", size = 1 } },
  outputs = { { name = "heat_release", units = "K/s", size = 1 }, { name = "fuel_rate", units = "1/s", size = 1 } },
  encoders = { input = xe, output = ye },
  data_file = file,
  meta = { epochs = epochs, seed = seed, dt = 1.2e-3, guard_file = guard_path,
           val_rmse_heat_release = r[1].rmse, val_rmse_fuel_rate = r[2].rmse },
})

-- Rehearse the host's call in Lua: the file through the embedding API must
-- give what the trained network gives.
local h <close> = mimic.embed.open(model_path, { deterministic = true })
local out = h:run({ temperature = xte:select(2, 1), fuel = xte:select(2, 2) })
local got = mimic.cat({ out.heat_release, out.fuel_rate }, 2)
local diff = ((got - pred):abs() / (pred:abs() + 1)):max():item()
print(string.format("\nsaved %s (%s), guard %s; the file through mimic.embed matches the network to %.1e (relative); %.1f s",
  model_path, hash, guard_path, diff, train_seconds))
