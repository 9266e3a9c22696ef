-- The a-posteriori test of the reaction surrogate, rehearsed in Lua before any
-- host code exists (docs/embedding.md, "Rehearsing in Lua"): the physics of
-- host.c (with its own initial state) written with tensors, run side by side
-- by mimic.aposteriori with the reference kernel and with the model file
-- through mimic.embed (guard, bounds and a Lua fallback, as the C host sets up).
--
--   build/bin/mimic examples/reaction_diffusion/aposteriori.lua MODEL GUARD [cells] [steps] [report_dir]
--
-- Differences from host.c, to keep it short: explicit diffusion (sub-stepped
-- to stay stable) instead of backward Euler, and fewer cells by default. The
-- reaction kernel is host.c's, line for line, in plain Lua.
local mimic = require "mimic"

local model_path, guard_path = arg[1], arg[2]
if not (model_path and guard_path) then
  error("usage: mimic aposteriori.lua MODEL GUARD [cells] [steps] [report_dir]", 0)
end
local N = tonumber(arg[3]) or 512
local STEPS = tonumber(arg[4]) or 100
local out_dir = arg[5]

local L, D, A, TA, Q, T0, DT, SUB = 0.1, 2e-5, 5e5, 10000.0, 1500.0, 300.0, 1.2e-3, 40
local dx = L / N
local r = D * DT / (dx * dx)
local nd = math.ceil(r / 0.4) -- explicit diffusion sub-steps (stable for r / nd <= 0.5)
local exp, abs = math.exp, math.abs

-- host.c's kernel: mean reaction rates over DT from (T, Y).
local function kernel(temp, fuel)
  local h = DT / SUB
  local t, y = temp, fuel
  for _ = 1, SUB do
    local to, yo = t, y
    for _ = 1, 30 do
      local e = exp(-TA / t)
      local w = A * y * e
      local f1 = y - yo + h * w
      local f2 = t - to - Q * h * w
      local wy, wt = A * e, w * TA / (t * t)
      local j11, j12, j21, j22 = 1 + h * wy, h * wt, -Q * h * wy, 1 - Q * h * wt
      local det = j11 * j22 - j12 * j21
      local dy, dtemp = (f1 * j22 - f2 * j12) / det, (j11 * f2 - j21 * f1) / det
      y, t = y - dy, t - dtemp
      if y < 0 then y, t = 0, to + Q * yo end
      if abs(dy) < 1e-12 and abs(dtemp) < 1e-9 then break end
    end
  end
  return (t - temp) / DT, (y - fuel) / DT
end

local function diffuse(u)
  for _ = 1, nd do
    local left = mimic.cat({ u:narrow(1, N, 1), u:narrow(1, 1, N - 1) }, 1)
    local right = mimic.cat({ u:narrow(1, 2, N - 1), u:narrow(1, 1, 1) }, 1)
    u = u + (left + right - u * 2) * (r / nd)
  end
  return u
end

-- The initial state: four hot kernels in fresh gas whose fuel varies along x.
local function init()
  local T, Y = {}, {}
  local centres, widths, peaks = { 0.1, 0.35, 0.6, 0.85 }, { 0.012, 0.015, 0.018, 0.014 }, { 1500, 1650, 1400, 1600 }
  for i = 1, N do
    local x = (i - 0.5) / N
    Y[i] = 0.75 + 0.12 * math.sin(2 * math.pi * x + 1) + 0.08 * math.sin(6 * math.pi * x + 2)
    T[i] = T0
    for k = 1, 4 do
      local d = x - centres[k]
      d = d - math.floor(d + 0.5)
      local burnt = math.min((peaks[k] - T0) * exp(-(d * d) / (widths[k] ^ 2)) / Q, Y[i])
      T[i], Y[i] = T[i] + burnt * Q, Y[i] - burnt
    end
  end
  return { T = mimic.tensor(T, "float64"), Y = mimic.tensor(Y, "float64") }
end

-- Profilers of both runs: which region to replace, and what the surrogate's
-- measured cost ratio makes of Amdahl's bound.
local prof_ref, prof_hyb = mimic.profiler(), mimic.profiler()

local function step_reference(s)
  prof_ref:begin("diffusion")
  s.T, s.Y = diffuse(s.T), diffuse(s.Y)
  prof_ref:finish("diffusion")
  prof_ref:begin("source")
  local rt, ry = {}, {}
  for i = 1, N do rt[i], ry[i] = kernel(s.T[i], s.Y[i]) end
  s.T = s.T + mimic.tensor(rt, "float64") * DT
  s.Y = s.Y + mimic.tensor(ry, "float64") * DT
  prof_ref:finish("source")
end

-- The surrogate, set up as host.c does.
local h <close> = mimic.embed.open(model_path, { threads = 1, deterministic = true })
h:set_guard(mimic.guard.load(guard_path))
h:set_bounds("fuel_rate", -math.huge, 1e-3)
h:set_bounds("heat_release", -1, math.huge)
h:set_fallback(function(idx, outputs, inputs)
  for k = 1, idx:numel() do
    local i = idx[k]
    local rt, ry = kernel(inputs.temperature[i][1], inputs.fuel[i][1])
    outputs.heat_release[{ i, 1 }], outputs.fuel_rate[{ i, 1 }] = rt, ry
  end
end)

local function step_hybrid(s)
  prof_hyb:begin("diffusion")
  s.T, s.Y = diffuse(s.T), diffuse(s.Y)
  prof_hyb:finish("diffusion")
  prof_hyb:begin("source")
  local y = h:run { temperature = s.T, fuel = s.Y }
  s.T = s.T + y.heat_release:reshape({ N }) * DT
  s.Y = s.Y + y.fuel_rate:reshape({ N }) * DT
  prof_hyb:finish("source")
end

local res = mimic.aposteriori.run {
  init = init, step_reference = step_reference, step_hybrid = step_hybrid,
  steps = STEPS, every = STEPS // 5,
  diagnostics = {
    T = function(s) return s.T end,
    burnt = function(s) return s.T:gt(1000):double():sum():item() end,
    energy = function(s) return (s.T + s.Y * Q):sum():item() * dx end,
  },
  compare = "rmse",
  bound = { T = 3000 },           -- a temperature no flame here reaches
  max_divergence = { T = 200 },   -- K of RMSE: a surrogate this wrong has failed
  out = out_dir, title = "Reaction surrogate, a posteriori (Lua rehearsal)",
  command = "mimic examples/reaction_diffusion/aposteriori.lua " .. table.concat(arg, " "),
  quiet = true,
}

print(string.format("a posteriori (Lua rehearsal): %d cells, %d steps; blew up: %s", N, res.steps_run,
  tostring(res.blew_up)))
if res.blew_up then print("stopped: " .. res.reason) end
print("\n| step | T RMSE (K) | T max error (K) | burnt cells: hybrid - reference | energy: relative difference |")
print("|---:|---:|---:|---:|---:|")
local sT, sb, se = res.series.T, res.series.burnt, res.series.energy
for k = 1, #sT.step do
  print(string.format("| %d | %.3g | %.3g | %+.0f | %.2e |", sT.step[k], sT.rmse[k], sT.max_abs[k], sb.bias[k],
    se.rel[k]))
end
local st = h:stats()
print(string.format("\nsurrogate / fallback samples: %d / %d; step time reference %.2f s, hybrid %.2f s (%.1fx)",
  st.surrogate, st.fallback, res.time_reference, res.time_hybrid, res.speedup))
if res.report then print("report: " .. res.report) end

-- The reference's profile, with the bound for the cost ratio the hybrid measured.
local function total(p, name)
  for _, e in ipairs(p:entries()) do if e.name == name then return e.total end end
end
local cost = total(prof_hyb, "source") / total(prof_ref, "source")
local md = prof_ref:report { replace = { region = "source", cost = cost }, elapsed = res.time_reference,
  title = "Profile of the Lua reference" }
print("\n" .. md)
