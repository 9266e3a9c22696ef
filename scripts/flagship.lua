-- The flagship experiment, small default: `make run` (or `mimic scripts/flagship.lua
-- [epochs] [ntrain] [seed]`).
--
-- Until the radiation use case lands, this is an end-to-end surrogate of an
-- analytic stand-in for gas optics: per atmospheric layer, (pressure,
-- temperature, water vapour) -> optical depth at 16 spectral points, with
-- pressure broadening, temperature-dependent line strengths and a
-- water-vapour path. It generates data from the kernel, trains a 3-64-64-16
-- tanh MLP (forward, backward and Adam written with mimic tensors), and
-- validates it on held-out samples. The whole network maths is here in plain
-- sight; the learning-core issue replaces it with autograd and mimic.train.

local mimic = require "mimic"

local epochs = tonumber(arg and arg[1]) or 60
local ntrain = tonumber(arg and arg[2]) or 16384
local seed = tonumber(arg and arg[3]) or 1
local nval, ntest, batch, G = 4096, 8192, 256, 16
local g = mimic.Generator(seed)

-- The kernel -----------------------------------------------------------------
-- Per spectral point k: strength S, broadening half-pressure pb, temperature
-- exponent n and lower-state energy E (as c2*E'' in K). Fixed, deterministic.
local S, PB, NT, E = {}, {}, {}, {}
for k = 1, G do
  local f = (k - 1) / (G - 1)
  S[k] = 10 ^ (-4 + 5 * f)            -- m^2 kg^-1 at 296 K and high pressure
  PB[k] = 10 ^ (1 + 3.5 * (1 - f))    -- Pa: weak points saturate at low pressure
  NT[k] = 0.5 + 0.4 * math.sin(3 * k)
  E[k] = 300 + 1500 * ((k * 7) % G) / G
end

-- x: [n,3] columns ln p (Pa), T (K), ln q (kg/kg). Returns ln tau: [n,16].
local function kernel(x)
  local lnp, T, lnq = x:select(2, 1), x:select(2, 2), x:select(2, 3)
  local p = lnp:exp()
  local dp = p * 0.08                        -- layer thickness, Pa
  local path = (lnq:exp() * dp / 9.81):log() -- ln(water-vapour path), kg m^-2
  local cols = {}
  for k = 1, G do
    local lnk = math.log(S[k]) - NT[k] * (T / 296):log() - (1 / T - 1 / 296) * E[k]
        + (p / (p + PB[k])):log()
    cols[k] = lnk + path
  end
  return mimic.stack(cols, 2)
end

local function sample(n)
  local lnp = g:uniform({n}, math.log(1e2), math.log(1.05e5))
  local T = g:uniform({n}, 180, 310)
  local lnq = g:uniform({n}, math.log(1e-6), math.log(2e-2))
  return mimic.stack({lnp, T, lnq}, 2)
end

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

-- Model: 3 -> 64 -> 64 -> 16, tanh, Xavier-uniform weights -----------------
local sizes = {3, 64, 64, G}
local params = {}
for l = 1, #sizes - 1 do
  local a = math.sqrt(6 / (sizes[l] + sizes[l + 1]))
  params[#params + 1] = g:uniform({sizes[l], sizes[l + 1]}, -a, a)
  params[#params + 1] = mimic.zeros(sizes[l + 1])
end
local nparam = 0
for _, p in ipairs(params) do nparam = nparam + p:numel() end

local function forward(x)
  local h1 = (mimic.matmul(x, params[1]) + params[2]):tanh()
  local h2 = (mimic.matmul(h1, params[3]) + params[4]):tanh()
  return mimic.matmul(h2, params[5]) + params[6], h1, h2
end

-- Gradients of the mean squared error, layer by layer.
local function backward(x, y)
  local out, h1, h2 = forward(x)
  local diff = out - y
  local loss = diff:square():mean():item()
  local d3 = diff * (2 / diff:numel())
  local d2 = mimic.matmul(d3, params[5]:t()) * (1 - h2:square())
  local d1 = mimic.matmul(d2, params[3]:t()) * (1 - h1:square())
  return loss, {
    mimic.matmul(x:t(), d1), d1:sum(1),
    mimic.matmul(h1:t(), d2), d2:sum(1),
    mimic.matmul(h2:t(), d3), d3:sum(1),
  }
end

-- Adam (Kingma & Ba) with a cosine-decayed learning rate.
local m, v = {}, {}
for i, p in ipairs(params) do m[i], v[i] = mimic.zeros(p:size()), mimic.zeros(p:size()) end
local b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
local function adam(grads, lr)
  step = step + 1
  local c1, c2 = 1 - b1 ^ step, 1 - b2 ^ step
  for i, p in ipairs(params) do
    m[i]:mul_(b1):add_(grads[i] * (1 - b1))
    v[i]:mul_(b2):add_(grads[i]:square() * (1 - b2))
    p:sub_((m[i] / c1) / ((v[i] / c2):sqrt() + eps) * lr)
  end
end

local function mse(x, y) return (forward(x) - y):square():mean():item() end

-- Training ---------------------------------------------------------------------
print(string.format("model: MLP 3-64-64-%d tanh, %d parameters; Adam, batch %d, %d epochs", G, nparam, batch, epochs))
local nb = ntrain // batch
local train_clock = stopwatch()
local best, best_epoch = math.huge, 0
for epoch = 1, epochs do
  local lr = 0.5 * 3e-3 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
  local perm = g:randperm(ntrain)
  local sum = 0
  for b = 0, nb - 1 do
    local idx = perm[{{b * batch + 1, (b + 1) * batch}}]
    local loss, grads = backward(Xtr:index_select(1, idx), Ytr:index_select(1, idx))
    if loss ~= loss or loss == math.huge then
      error(string.format("training diverged: loss is %s at epoch %d, batch %d", loss, epoch, b + 1))
    end
    sum = sum + loss
    adam(grads, lr)
  end
  local val = mse(Xva, Yva)
  if val < best then best, best_epoch = val, epoch end
  local elapsed = train_clock()
  local eta = elapsed / epoch * (epochs - epoch)
  print(string.format("epoch %3d/%d  loss %.3e  val %.3e  %6.0f samples/s  ETA %4.1f s",
    epoch, epochs, sum / nb, val, epoch * nb * batch / elapsed, eta))
end

-- A priori validation on held-out samples -----------------------------------------
local pred = forward(encx(xte)) * ysd + ymu -- back to ln tau
local err = pred - yte                       -- error in ln tau
local abs = err:abs()
local rel = err:exp() - 1                    -- relative error of tau itself
local r2 = 1 - err:square():sum(1) / (yte - yte:mean(1)):square():sum(1)
local sorted = rel:abs():flatten():sort()
local function pct(q) return sorted[math.max(1, math.floor(q * sorted:numel()))] end
local worst_k = ({abs:max(1):max(1)})[2]:item()

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
