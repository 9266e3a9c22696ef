-- The a-posteriori harness (lua/mimic/aposteriori.lua) on a periodic 1-D
-- diffusion whose hybrids are known exactly: an identical hybrid diverges by
-- exactly 0; one adding a bias b per step diverges by n b after n steps (the
-- discrete Laplacian of a constant is 0); unstable or NaN-producing hybrids
-- are stopped at the step the arithmetic predicts, with a clean report.
local lu = require "luaunit"
local mimic = require "mimic"
local ap = mimic.aposteriori
local raises = require("helpers").raises

local N, R = 32, 0.25

local function laplacian_step(u)
  local left = mimic.cat({ u:narrow(1, N, 1), u:narrow(1, 1, N - 1) }, 1)
  local right = mimic.cat({ u:narrow(1, 2, N - 1), u:narrow(1, 1, 1) }, 1)
  return u + (left + right - u * 2) * R
end

local function init()
  local x = mimic.linspace(0, 2 * math.pi, N + 1, "float64"):narrow(1, 1, N)
  return x:sin() + (x * 3):cos() * 0.5 + 2
end

local diagnostics = {
  u = function(u) return u end,
  mean = function(u) return u:mean():item() end,
}

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  os.execute("mkdir -p " .. d)
  return d
end

local function read(p)
  local f = io.open(p)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function test_identical_hybrid_zero_divergence()
  local r = ap.run { init = init, step_reference = laplacian_step, step_hybrid = laplacian_step, steps = 40, every = 4,
    diagnostics = diagnostics, quiet = true }
  lu.assertEquals(r.steps_run, 40)
  lu.assertFalse(r.blew_up)
  lu.assertNil(r.reason)
  lu.assertEquals(r.series.u.step, { 0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40 })
  for _, name in ipairs({ "u", "mean" }) do
    for _, k in ipairs({ "rmse", "max_abs", "bias", "rel", "divergence" }) do
      for _, v in ipairs(r.series[name][k]) do lu.assertEquals(v, 0) end
    end
  end
  lu.assertTrue(r.time_reference > 0 and r.time_hybrid > 0)
  lu.assertAlmostEquals(r.speedup, r.time_reference / r.time_hybrid, 1e-12)
end

-- State as a table updated in place: the hybrid must run on its own copy, or
-- both runs would advance the same tensor and the divergence would be 0.
function test_bias_grows_linearly()
  local b = 1e-3
  local copies = 0
  local function step(s) s.u:copy(laplacian_step(s.u)) end
  local r = ap.run {
    init = function() return { u = init(), label = "diffusion" } end,
    step_reference = step,
    step_hybrid = function(s) step(s); s.u:add_(b) end,
    steps = 30, every = 3,
    diagnostics = { u = function(s) return s.u end, mean = function(s) return s.u:mean():item() end },
    quiet = true,
  }
  lu.assertFalse(r.blew_up)
  local su, sm = r.series.u, r.series.mean
  for k, n in ipairs(su.step) do
    lu.assertAlmostEquals(su.rmse[k], n * b, 1e-12)
    lu.assertAlmostEquals(su.max_abs[k], n * b, 1e-12)
    lu.assertAlmostEquals(su.bias[k], n * b, 1e-12)
    lu.assertAlmostEquals(su.divergence[k], n * b, 1e-12)
    lu.assertAlmostEquals(sm.divergence[k], n * b, 1e-12) -- the mean is conserved by diffusion, not by the bias
    lu.assertAlmostEquals(su.rel[k], n * b / 2.0, 0.2 * n * b) -- rms(u) is close to 2 (the offset)
  end
  -- a user copy function is used, and compare functions and "max_abs" choose the divergence
  local r2 = ap.run {
    init = init, copy = function(u) copies = copies + 1; return u:clone() end,
    step_reference = laplacian_step, step_hybrid = function(u) return laplacian_step(u) + b end,
    steps = 10, diagnostics = { u = diagnostics.u },
    compare = function(h, ref) return (h - ref):abs():sum():item() end, quiet = true,
  }
  lu.assertEquals(copies, 1)
  lu.assertAlmostEquals(r2.series.u.divergence[11], N * 10 * b, 1e-10)
  local r3 = ap.run { init = init, step_reference = laplacian_step, step_hybrid = function(u) return laplacian_step(u) + b end,
    steps = 5, diagnostics = { u = diagnostics.u }, compare = "rel", quiet = true }
  lu.assertEquals(r3.series.u.divergence, r3.series.u.rel)
end

-- u <- 0.5 u (reference) vs u <- 2 u (hybrid) from u = 1: |u| = 2^t, so a
-- bound of 1000 is crossed at step 10 (1024), or at the first recorded step
-- after it.
function test_unstable_hybrid_stops_at_the_right_step()
  local function run(every, extra)
    local o = { init = function() return mimic.ones({ 4 }, "float64") end,
      step_reference = function(u) return u * 0.5 end, step_hybrid = function(u) return u * 2 end,
      steps = 50, every = every, diagnostics = { u = diagnostics.u }, bound = { u = 1000 }, quiet = true }
    for k, v in pairs(extra or {}) do o[k] = v end
    return ap.run(o)
  end
  local r = run(1)
  lu.assertTrue(r.blew_up)
  lu.assertEquals(r.steps_run, 10)
  lu.assertEquals(r.blowup.kind, "bound")
  lu.assertEquals(r.blowup.step, 10)
  lu.assertEquals(r.blowup.diagnostic, "u")
  lu.assertEquals(r.blowup.value, 1024)
  lu.assertStrContains(r.reason, "diagnostic 'u' of the hybrid reached |value| = 1024 > bound 1000 at step 10")
  lu.assertEquals(#r.series.u.step, 11) -- steps 0..10, the failing one included
  r = run(3)
  lu.assertEquals(r.blowup.step, 12)
  lu.assertEquals(r.steps_run, 12)
  -- divergence limits: |2^t - 0.5^t| > 100 first at t = 7 (127.99)
  r = run(1, { bound = {}, max_divergence = { u = 100 }, compare = "max_abs" })
  lu.assertEquals(r.blowup.kind, "divergence")
  lu.assertEquals(r.blowup.step, 7)
  lu.assertAlmostEquals(r.blowup.value, 128 - 0.5 ^ 7, 1e-12)
  -- growth over the first nonzero divergence (1.5 at step 1): (2^t - 0.5^t) / 1.5 > 20 first at t = 5 (~21.3)
  r = run(1, { bound = {}, max_growth = 20, compare = "max_abs" })
  lu.assertEquals(r.blowup.kind, "growth")
  lu.assertEquals(r.blowup.step, 5)
  lu.assertStrContains(r.reason, "grew")
end

function test_nan_and_error_in_hybrid()
  local function hybrid(u, t)
    if t == 7 then return u * (0 / 0) end
    return laplacian_step(u)
  end
  local r = ap.run { init = init, step_reference = laplacian_step, step_hybrid = hybrid, steps = 20,
    diagnostics = diagnostics, quiet = true }
  lu.assertTrue(r.blew_up)
  lu.assertEquals(r.blowup.kind, "nonfinite")
  lu.assertEquals(r.blowup.step, 7)
  lu.assertEquals(r.steps_run, 7)
  -- diagnostics are checked in name order: 'mean' first
  lu.assertStrContains(r.reason, "diagnostic 'mean' of the hybrid is NaN (element 1) at step 7")
  -- every diagnostic is recorded at the failing step: the series stay aligned
  lu.assertEquals(#r.series.u.step, 8)
  lu.assertEquals(#r.series.mean.step, 8)
  lu.assertNotEquals(r.series.u.rmse[8], r.series.u.rmse[8]) -- NaN
  lu.assertTrue(r.series.u.rmse[7] == 0)
  r = ap.run { init = init, step_reference = laplacian_step, step_hybrid = hybrid, steps = 20, every = 5,
    diagnostics = { u = diagnostics.u }, quiet = true }
  lu.assertEquals(r.blowup.step, 10) -- the first record after step 7
  lu.assertStrContains(r.reason, "diagnostic 'u' of the hybrid is NaN")
  -- an error in the hybrid stops the run cleanly
  r = ap.run { init = init, step_reference = laplacian_step,
    step_hybrid = function(u, t) if t == 4 then error("surrogate failed") end return laplacian_step(u) end,
    steps = 20, diagnostics = diagnostics, quiet = true }
  lu.assertEquals(r.steps_run, 4)
  lu.assertTrue(r.blew_up) -- a caller checking only blew_up must not take a crashed hybrid for a stable one
  lu.assertEquals(r.blowup.kind, "error")
  lu.assertStrContains(r.reason, "step_hybrid raised an error at step 4:")
  lu.assertStrContains(r.reason, "surrogate failed")
end

function test_report_and_progress()
  local dir = tmpdir()
  local log = dir .. "/progress.txt"
  local out = io.open(log, "w")
  local r = ap.run { init = function() return mimic.ones({ 4 }, "float64") end,
    step_reference = function(u) return u * 0.5 end, step_hybrid = function(u) return u * 2 end,
    steps = 50, diagnostics = { u = diagnostics.u }, bound = { u = 1000 }, output = out, out = dir .. "/rep",
    title = "Toy blow-up", command = "mimic toy.lua" }
  out:close()
  lu.assertEquals(r.report, dir .. "/rep/README.md")
  local md = read(r.report)
  lu.assertStrContains(md, "# Toy blow-up")
  lu.assertStrContains(md, "**The hybrid blew up**: diagnostic 'u' of the hybrid reached |value| = 1024 > bound 1000 at step 10")
  lu.assertStrContains(md, "| diagnostic | last step | rmse |")
  lu.assertStrContains(md, "| u | 10 |")
  lu.assertStrContains(md, "mimic toy.lua")
  local dat = read(dir .. "/rep/divergence.dat")
  lu.assertStrContains(dat, "# x u")
  local lines = {}
  for l in dat:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 11) -- header + steps 1..10 (log axis: step 0, with 0 divergence, is left out)
  lu.assertEquals(lines[2], "1 1.5")
  lu.assertEquals(lines[11], "10 1023.99902")
  lu.assertNotNil(read(dir .. "/rep/divergence.gp"):find("set logscale y", 1, true))
  lu.assertNotNil(read(dir .. "/rep/divergence.gp"))
  local p = read(log)
  lu.assertStrContains(p, "step  5/50  rmse(u) 3.1969e+01") -- 2^5 - 0.5^5
  lu.assertStrContains(p, "step 10/50  rmse(u) 1.0240e+03")
  lu.assertEquals(select(2, p:gsub("\n", "")), 3) -- steps 5, 10 and the note
  lu.assertStrContains(p, "ETA")
  lu.assertStrContains(p, "aposteriori: stopped: diagnostic 'u'")
  -- a stable run: zero divergence plots on a linear axis; quiet writes nothing
  local log2 = dir .. "/quiet.txt"
  local q = io.open(log2, "w")
  ap.run { init = init, step_reference = laplacian_step, step_hybrid = laplacian_step, steps = 5,
    diagnostics = diagnostics, quiet = true, output = q, out = dir .. "/stable" }
  q:close()
  lu.assertEquals(read(log2), "")
  local md2 = read(dir .. "/stable/README.md")
  lu.assertStrContains(md2, "The hybrid stayed stable over the whole run.")
  lu.assertNil(read(dir .. "/stable/divergence.gp"):find("set logscale y", 1, true))
  os.execute("rm -rf " .. dir)
end

function test_errors()
  local base = { init = init, step_reference = laplacian_step, step_hybrid = laplacian_step, steps = 3,
    diagnostics = diagnostics, quiet = true }
  local function with(k, v)
    local o = {}
    for a, x in pairs(base) do o[a] = x end
    o[k] = v
    return o
  end
  raises("steps must be an integer >= 0", ap.run, with("steps", 2.5))
  raises("step_hybrid must be a function", ap.run, with("step_hybrid", nil))
  raises("unknown option 'stpes'", ap.run, with("stpes", 3))
  raises("diagnostics = {name = function(state)", ap.run, with("diagnostics", {}))
  raises("bound: 'v' is not a diagnostic", ap.run, with("bound", { v = 1 }))
  raises("compare must be 'rmse', 'max_abs', 'rel' or a function", ap.run, with("compare", "l2"))
  raises("every must be an integer >= 1", ap.run, with("every", 0))
  raises("diagnostic 'bad' returned string for the hybrid at step 0", ap.run,
    with("diagnostics", { bad = function() return "x" end }))
  raises("copy returned the state itself", ap.run, with("copy", function(s) return s end))
  raises("diagnostic 'mean' of the reference is NaN (element 1) at step 2: the reference itself is broken", ap.run,
    with("step_reference", function(u, t) return t == 2 and u * (0 / 0) or u end))
  raises("reference exploded", ap.run, with("step_reference", function() error("reference exploded") end))
  -- zero steps: only the initial comparison
  local r = ap.run(with("steps", 0))
  lu.assertEquals(r.steps_run, 0)
  lu.assertEquals(r.series.u.step, { 0 })
end

function test_deep_copy()
  local t = mimic.zeros({ 3 })
  local shared = { 1, 2 }
  local s = { a = t, nested = { b = t, list = shared }, again = shared, n = 5 }
  local c = ap.copy(s)
  lu.assertFalse(rawequal(c.a, t))
  lu.assertTrue(rawequal(c.nested.b, c.nested.b))
  lu.assertTrue(rawequal(c.nested.list, c.again)) -- sharing preserved
  lu.assertFalse(rawequal(c.again, shared))
  c.a:fill(1)
  lu.assertEquals(t:sum():item(), 0)
  lu.assertEquals(c.n, 5)
end

os.exit(lu.LuaUnit.run())
