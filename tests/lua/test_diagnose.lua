-- mimic.diagnose on small synthetic problems whose answers are known, and the
-- field diagnostics of mimic.validate (spectrum, spectrum_error, divergence;
-- the numerics are tested in C by tests/c/test_spectra.c).
local lu = require "luaunit"
local mimic = require "mimic"
local D, V = mimic.diagnose, mimic.validate

local function raises(plain, f, ...)
  local ok, msg = pcall(f, ...)
  lu.assertFalse(ok, "expected an error containing: " .. plain)
  msg = tostring(msg)
  if not msg:find(plain, 1, true) then lu.fail(string.format("error message %q does not contain %q", msg, plain)) end
  return msg
end

-- y = 2 x1 + sin(3 x2); x3 is not used.
local function truth(x) return (x:select(2, 1) * 2 + (x:select(2, 2) * 3):sin()):unsqueeze(2) end
local function problem(n, seed)
  local g = mimic.Generator(seed or 1)
  local x = g:uniform({ n, 3 }, -1, 1):double()
  return x, truth(x)
end

-- 1-nearest-neighbour regression: its error falls as the data grow.
local function fit_1nn(xs, ys)
  return function(x)
    local d = (x * x):sum(2, true) - x:matmul(xs:t()) * 2 + (xs * xs):sum(2, true):t()
    local _, i = d:min(2)
    return ys:index_select(1, i:reshape(-1))
  end
end

TestDiagnose = {}

function TestDiagnose.test_learning_curve_decreases()
  local x, y = problem(2400, 1)
  local lc = D.learning_curve { x = x, y = y, val_fraction = 0.25, fit = fit_1nn, seed = 3 }
  lu.assertEquals(lc.sizes, { 225, 450, 900, 1800 })
  for i = 2, #lc.sizes do lu.assertTrue(lc.val_rmse[i] < lc.val_rmse[i - 1], "error falls with more data") end
  lu.assertEquals(lc.train_rmse[4], 0) -- 1-NN reproduces its training set
  lu.assertTrue(lc.trend.exponent < -0.2 and lc.trend.exponent > -1, "exponent " .. lc.trend.exponent)
  lu.assertTrue(lc.trend.r2 > 0.9)
  lu.assertStrContains(lc.verdict, "more data helps")
  -- nested: the same seed gives the same curve
  local again = D.learning_curve { x = x, y = y, val_fraction = 0.25, fit = fit_1nn, seed = 3 }
  lu.assertEquals(again.val_rmse, lc.val_rmse)
end

function TestDiagnose.test_learning_curve_flat()
  -- A model that ignores its data: the curve is flat, the verdict says so.
  local x, y = problem(400, 2)
  local lc = D.learning_curve { x = x, y = y, fit = function(_, ys)
    local m = ys:mean()
    return function(xx) return mimic.zeros(xx:size(1), 1, "float64") + m end
  end, fractions = { 0.5, 1 } }
  lu.assertStrContains(lc.verdict, "flattened")
end

function TestDiagnose.test_learning_curve_build_trains()
  local x, y = problem(512, 4)
  local nn = mimic.nn
  local lc = D.learning_curve { x = x:float(), y = y:float(), fractions = { 0.25, 1 }, lr = 1e-2,
    build = function() return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)) end,
    train = { epochs = 5, batch = 32 } }
  lu.assertEquals(#lc.val_rmse, 2)
  lu.assertTrue(lc.val_rmse[2] < lc.val_rmse[1])
end

function TestDiagnose.test_learning_curve_errors()
  local x, y = problem(100)
  raises("mimic.diagnose.learning_curve: give exactly one of fit", D.learning_curve, { x = x, y = y })
  raises("unknown option 'fractons'", D.learning_curve, { x = x, y = y, fit = fit_1nn, fractons = {} })
  raises("fractions must increase", D.learning_curve, { x = x, y = y, fit = fit_1nn, fractions = { 0.5, 0.5 } })
  raises("x has 100 samples, y 99", D.learning_curve, { x = x, y = y:narrow(1, 1, 99), fit = fit_1nn })
  local msg = raises("fit must return a predict function", D.learning_curve,
    { x = x, y = y, fit = function() return 1 end })
  lu.assertStrContains(msg, "test_diagnose.lua:") -- raised at the caller's line
end

function TestDiagnose.test_importance()
  local x, y = problem(1000, 5)
  local imp = D.importance { predict = truth, x = x, y = y, names = { "a", "b", "unused" }, seed = 1 }
  lu.assertEquals(imp.base_rmse, 0)
  lu.assertEquals(imp.features[3].permutation, 0)
  lu.assertEquals(imp.features[3].ablation, 0)
  lu.assertTrue(imp.features[1].permutation > 1, "x1 matters")
  lu.assertTrue(imp.features[2].permutation > 0.5, "x2 matters")
  lu.assertTrue(imp.features[1].ablation > 0.5)
  lu.assertEquals(imp.order, { 1, 2, 3 })
  lu.assertEquals(imp.features[3].name, "unused")
  raises("names must be a list of 3 strings", D.importance, { predict = truth, x = x, y = y, names = { "a" } })
end

function TestDiagnose.test_worst_finds_injected_noise()
  local x, y = problem(500, 6)
  local noisy = { 17, 123, 250, 401, 499 }
  local yn = y:clone()
  for k, i in ipairs(noisy) do yn[{ i, 1 }] = yn[{ i, 1 }] + (k % 2 == 0 and 1 or -1) * (1 + k / 10) end
  local w = D.worst { predict = truth, x = x, y = yn, n = 5 }
  local got = {}
  for k = 1, 5 do got[k] = w[k].index end
  table.sort(got)
  lu.assertEquals(got, noisy)
  lu.assertEquals(w[1].index, 499) -- largest injected error first
  lu.assertAlmostEquals(w[1].error, 1.5, 1e-12)
  lu.assertEquals(#w[1].inputs, 3)
  lu.assertAlmostEquals(w[1].inputs[2], x[{ 499, 2 }], 0)

  -- error by input: the noise is in x1 > 0.5 only, so the worst x1 bin is the last
  local yb = y:clone()
  local x1 = x:select(2, 1)
  yb = yb + mimic.where(x1:gt(0.5), 0.3, 0):unsqueeze(2)
  local e = D.error_by_input { predict = truth, x = x, y = yb, bins = 4 }
  lu.assertEquals(#e, 3)
  lu.assertTrue(e[1].worst.lo >= 0.49 and e[1].worst.mean > 0.2, "worst x1 bin " .. e[1].worst.lo)
  lu.assertEquals(#e[1].binned.count, 4)
end

function TestDiagnose.test_rollout()
  local g = mimic.Generator(7)
  local s0 = g:normal({ 8, 16 }, 0, 1):double()
  local function step(s) return s * 0.95 + (s * 0.5):sin() * 0.05 end
  local exact = D.rollout { step_ref = step, step_model = step, state = s0, steps = 10 }
  lu.assertEquals(#exact.rmse, 10)
  for t = 1, 10 do lu.assertEquals(exact.rmse[t], 0) end
  lu.assertNaN(exact.growth)
  -- a model with a small bias: the error accumulates step by step
  local biased = D.rollout { step_ref = step, step_model = function(s) return step(s) + 1e-3 end, state = s0,
    steps = 10 }
  lu.assertAlmostEquals(biased.rmse[1], 1e-3, 1e-12)
  for t = 2, 10 do lu.assertTrue(biased.rmse[t] > biased.rmse[t - 1]) end
  lu.assertTrue(biased.growth > 0)
  raises("steps must be an integer >= 1", D.rollout, { step_ref = step, step_model = step, state = s0, steps = 0 })
end

function TestDiagnose.test_reports()
  local dir = os.tmpname()
  os.remove(dir)
  -- With gnuplot the figures are drawn (the bar chart's script included).
  local plots = mimic.report.terminal() ~= nil
  local rep = mimic.report.new { dir = dir, title = "diagnostics", plots = plots }
  local x, y = problem(300, 8)
  D.learning_curve { x = x, y = y, fit = fit_1nn }:report(rep)
  D.importance { predict = truth, x = x, y = y, repeats = 2 }:report(rep)
  D.worst { predict = truth, x = x, y = y + 0.01 * x:select(2, 3):unsqueeze(2), n = 3 }:report(rep)
  D.error_by_input { predict = truth, x = x, y = y + 0.1 * x:select(2, 1):unsqueeze(2):abs() }:report(rep)
  local step = function(s) return s * 0.9 end
  D.rollout { step_ref = step, step_model = function(s) return s * 0.91 end, state = x, steps = 5 }:report(rep)
  local readme = rep:write()
  local text = io.open(readme):read("a")
  for _, f in ipairs { "learning_curve", "importance", "error_vs_x1", "rollout" } do
    lu.assertStrContains(text, f .. (plots and ".png" or ".dat"))
    for _, ext in ipairs(plots and { ".dat", ".png" } or { ".dat" }) do
      local fh = io.open(dir .. "/" .. f .. ext)
      lu.assertNotNil(fh, f .. ext)
      fh:close()
    end
  end
  lu.assertStrContains(text, "Worst samples")
  os.execute("rm -rf '" .. dir .. "'")
end

TestFields = {}

local function grid(n, f)
  local t = mimic.zeros(n, n, "float64")
  for i = 1, n do for j = 1, n do t[{ i, j }] = f(i - 1, j - 1) end end
  return t
end

function TestFields.test_spectrum_single_mode()
  local n = 16
  local f = grid(n, function(i, j) return 3 * math.cos(2 * math.pi * (3 * i + 4 * j) / n) end)
  local s = V.spectrum(f)
  lu.assertEquals(s.k[6], 5)
  lu.assertAlmostEquals(s.power[6], 4.5, 1e-12)
  local total = 0
  for _, p in ipairs(s.power) do total = total + p end
  lu.assertAlmostEquals(total, (f * f):mean():item(), 1e-12) -- Parseval
  local e = V.spectrum({ f, f }, { energy = true })                  -- two components, halved
  lu.assertAlmostEquals(e.power[6], 4.5, 1e-12)
  lu.assertEquals(s.count[1], 1)
end

function TestFields.test_spectrum_3d_parseval()
  local g = mimic.Generator(3)
  local f = g:normal({ 6, 7, 8 }, 0, 1) -- float32 is converted
  local s = V.spectrum(f)
  local total = 0
  for _, p in ipairs(s.power) do total = total + p end
  lu.assertAlmostEquals(total, (f:double() * f:double()):mean():item(), 1e-10)
end

function TestFields.test_spectrum_error()
  local ref = { k = { 0, 1, 2 }, power = { 1, 1, 0.5 } }
  local e = V.spectrum_error({ 1, 1.2, 0.5 }, ref, { band = { 1, 2 } })
  lu.assertEquals(e.shells, 2)
  lu.assertAlmostEquals(e.max_rel, 0.2, 1e-12)
  lu.assertAlmostEquals(e.band_rel, 0.2 / 1.5, 1e-12)
  local f = grid(8, function(i) return math.sin(2 * math.pi * i / 8) end)
  lu.assertEquals(V.spectrum_error(f, f).max_rel, 0)
  raises("pred has 2 shells, ref 3", V.spectrum_error, { 1, 2 }, ref)
end

function TestFields.test_divergence()
  local n = 12
  local u = grid(n, function(_, j) return math.cos(2 * math.pi * j / n) end)
  local v = grid(n, function(i) return math.cos(2 * math.pi * i / n) end)
  local div, st = V.divergence({ u, v }, { spacing = 1 / n })
  lu.assertEquals(div:size(), { n, n })
  lu.assertTrue(st.max_abs < 1e-12)
  local w = grid(n, function(i) return math.sin(2 * math.pi * i / n) end)
  local _, st2 = V.divergence({ w, v }, { spacing = 1 / n })
  local damp = math.sin(2 * math.pi / n) * n -- central differences of sin(2 pi x)
  lu.assertAlmostEquals(st2.max_abs, damp, 1e-9)
  raises("a 2-D field needs 2 components, got 1", V.divergence, { u })
  raises("component 2 has a different shape", V.divergence, { u, mimic.zeros(3, 3) })
end

function TestFields.test_conservation_of_a_field()
  -- mimic.validate.conservation (libmimic) applies to fields: the global sums
  local f = mimic.ones(4, 4, "float64")
  local c = V.conservation(f, f * 1.01)
  lu.assertAlmostEquals(c.global_rel, 0.01, 1e-12)
end

os.exit(lu.LuaUnit.run())
