-- The diagnostics of docs/validation.md ("Diagnostics", "Periodic fields") on
-- small synthetic problems, printing the numbers quoted there and writing a
-- report: build/bin/mimic scripts/diagnose_demo.lua [outdir]
-- (default /tmp/mimic_diagnose_demo). About 5 s on 2 cores.
local mimic = require "mimic"
local nn, D, V, R = mimic.nn, mimic.diagnose, mimic.validate, mimic.report
local fmt = R.fmt
local outdir = arg and arg[1] or "/tmp/mimic_diagnose_demo"

-- A toy kernel of 4 inputs; x4 is not used, x3 only weakly:
-- y = sin(2 x1) * exp(-x2^2) + 0.1 x3.
local function kernel(x)
  local x1, x2, x3 = x:select(2, 1), x:select(2, 2), x:select(2, 3)
  return ((x1 * 2):sin() * (-(x2 * x2)):exp() + x3 * 0.1):unsqueeze(2)
end
local g = mimic.Generator(1)
local x = g:uniform({ 6000, 4 }, -2, 2)
local y = kernel(x)
local xt, yt = x:narrow(1, 1, 4000), y:narrow(1, 1, 4000)
local xv, yv = x:narrow(1, 4001, 2000), y:narrow(1, 4001, 2000)
local names = { "x1", "x2", "x3", "x4 (unused)" }

local rep = R.new { dir = outdir, title = "mimic.diagnose on a toy kernel",
  command = "build/bin/mimic scripts/diagnose_demo.lua " .. outdir }

-- 1. Do I have enough data? A 4-32-32-1 MLP trained on 1/8 .. all of the data.
local model
local lc = D.learning_curve { x = xt, y = yt, val = { x = xv, y = yv }, seed = 1, lr = 3e-3,
  build = function(info)
    mimic.manual_seed(info.seed)
    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    return model
  end,
  train = { epochs = 40, batch = 64, early_stopping = { patience = 5 } } }
print("learning curve")
for i, n in ipairs(lc.sizes) do
  print(string.format("  %5d samples  train RMSE %s  val RMSE %s", n, fmt(lc.train_rmse[i]), fmt(lc.val_rmse[i])))
end
print(string.format("  trend: val RMSE ~ %s n^%s (R^2 %s); last step n^%s", fmt(lc.trend.coefficient),
  fmt(lc.trend.exponent), fmt(lc.trend.r2), fmt(lc.last_exponent)))
print("  " .. lc.verdict)
lc:report(rep)

-- The last model (trained on all the data) for the other diagnostics.
local function predict(xx) return model(xx) end

-- 2. Which inputs matter?
local imp = D.importance { predict = predict, x = xv, y = yv, names = names, seed = 1 }
print(string.format("importance (baseline RMSE %s)", fmt(imp.base_rmse)))
for _, j in ipairs(imp.order) do
  local f = imp.features[j]
  print(string.format("  %-12s permuted %s (std %s)  set to mean %s", f.name, fmt(f.permutation),
    fmt(f.permutation_std), fmt(f.ablation)))
end
imp:report(rep)

-- 3. Where does it fail?
local w = D.worst { predict = predict, x = xv, y = yv, n = 5, names = names }
print("worst samples")
for _, s in ipairs(w) do
  print(string.format("  #%-5d error %s  inputs %s", s.index, fmt(s.error),
    table.concat((function() local t = {} for k, v in ipairs(s.inputs) do t[k] = fmt(v) end return t end)(), " ")))
end
w:report(rep)
local e = D.error_by_input { predict = predict, x = xv, y = yv, bins = 8, names = names }
print("error by input: the bin with the largest mean error")
for _, f in ipairs(e) do
  print(string.format("  %-12s %s .. %s  mean %s", f.name, fmt(f.worst.lo), fmt(f.worst.hi), fmt(f.worst.mean)))
end
e:report(rep)

-- 4. Roll-out: a "surrogate" of an explicit diffusion step on a periodic 1-D
-- grid, with a 0.5 % error in the diffusion number and a 1e-4 drift.
local function shift(u, s) -- periodic shift along dim 2
  local n = u:size(2)
  s = s % n
  if s == 0 then return u end
  return mimic.cat({ u:narrow(2, n - s + 1, s), u:narrow(2, 1, n - s) }, 2)
end
local function diffusion(nu) return function(u) return u + (shift(u, 1) - u * 2 + shift(u, -1)) * nu end end
local u0 = g:normal({ 16, 64 }, 0, 1):double()
local ro = D.rollout { step_ref = diffusion(0.2), step_model = function(u) return diffusion(0.201)(u) + 1e-4 end,
  state = u0, steps = 50 }
print("roll-out")
for _, t in ipairs { 1, 10, 50 } do
  print(string.format("  step %2d  RMSE %s  relative %s", t, fmt(ro.rmse[t]), fmt(ro.rel[t])))
end
print(string.format("  growth rate %s per step", fmt(ro.growth)))
ro:report(rep)

-- 5. Periodic fields: a 2-D velocity from a streamfunction (so divergence-free
-- for the central-difference stencil), and a "surrogate" field with small-scale noise.
local n = 64
local psi = mimic.zeros(n, n, "float64")
local gm = mimic.Generator(2)
-- Every mode with |kx|, ky <= 16 (random phases), amplitude |k|^-3: a
-- broadband field, so each shell up to 16 has energy.
local i = mimic.arange(n):double():view(n, 1)
local j = mimic.arange(n):double():view(1, n)
for kx = -16, 16 do
  for ky = 0, 16 do
    if kx ~= 0 or ky ~= 0 then
      local a, ph = math.sqrt(kx * kx + ky * ky) ^ -3, gm:uniform({ 1 }, 0, 2 * math.pi)[1]
      psi = psi + ((i * kx + j * ky) * (2 * math.pi / n) + ph):cos() * a
    end
  end
end
local h = 1 / n
local u = (shift(psi, -1) - shift(psi, 1)) / (2 * h)                   -- d psi / d(dim 2)
local pt = psi:t():contiguous()
local v = -((shift(pt, -1) - shift(pt, 1)) / (2 * h)):t():contiguous() -- -d psi / d(dim 1)
local _, ds = V.divergence({ u, v }, { spacing = h })
local sref = V.spectrum({ u, v }, { energy = true })
local noisy = { u + gm:normal({ n, n }, 0, 0.05):double(), v + gm:normal({ n, n }, 0, 0.05):double() }
local ssur = V.spectrum(noisy, { energy = true })
local total = 0
for _, p in ipairs(sref.power) do total = total + p end
print(string.format("fields: %dx%d, kinetic energy %s; max |divergence| %s (reference), %s (with noise)", n, n,
  fmt(total), fmt(ds.max_abs), fmt(select(2, V.divergence(noisy, { spacing = h })).max_abs)))
for _, band in ipairs { { 1, 4 }, { 5, 10 }, { 11, 16 } } do
  local er = V.spectrum_error(ssur, sref, { band = band })
  print(string.format("  shells %2d-%2d: max rel %s, rms log10 %s, band energy rel %s", band[1], band[2],
    fmt(er.max_rel), fmt(er.rms_log10), fmt(er.band_rel)))
end
-- Shells 1..23 are plotted: shell 0 (the mean flow) is zero here, and beyond
-- |k| = 16 sqrt 2 the reference has only round-off.
local k, er_, es_ = {}, {}, {}
for i = 2, 24 do k[i - 1], er_[i - 1], es_[i - 1] = sref.k[i], sref.power[i], ssur.power[i] end
rep:text("## Energy spectrum")
rep:curves { name = "energy_spectrum", x = k, xlabel = "wavenumber k (cycles per domain)", ylabel = "E(k)", logx = true,
  series = { { label = "reference", y = er_ }, { label = "with noise (std 0.05)", y = es_ } } }
local path = rep:write()
print("report: " .. path)
