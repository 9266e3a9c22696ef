-- The embedding handle and the guard in Lua (lua/lembed.c over
-- core/embed/handle.c and guard.c): a saved model run through mimic.embed
-- equals mimic.load_model(path):forward for every host layout (strided,
-- transposed, one tensor, float32/float64, caller's output tensors); the
-- guard's limits and distance against a hand computation; flagged samples
-- going to a Lua fallback; bounds, ensembles, stats; and the errors.
local lu = require "luaunit"
local mimic = require "mimic"
local nn, data = mimic.nn, mimic.data
local raises = require("helpers").raises

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local function path(n) return dir .. "/" .. n end

local inputs = { { name = "temperature", units = "K", size = 2 }, { name = "humidity", units = "kg/kg", size = 1 } }
local outputs = { { name = "heating", units = "K/s", size = 1 }, { name = "rain", units = "mm", size = 2 } }

local g = mimic.Generator(11)
local X = g:rand({ 64, 3 }, { dtype = "float64" }) * 40 + 260 -- raw training inputs
local XE = data.encoder { kind = "standard" }:fit(X)
local YE = {} -- one output encoder per dtype: ensemble members must share theirs
for _, dt in ipairs({ "float32", "float64" }) do
  YE[dt] = data.encoder { kind = "standard" }:fit(g:randn({ 32, 3 }, { dtype = dt }) * 3 + 1)
end

-- A model with random weights, saved with an input encoder and an output encoder.
local function saved(name, dt, seed)
  local gg = mimic.Generator(seed or 5)
  local model = nn.Sequential(nn.Linear(3, 8, { dtype = dt, generator = gg }), nn.Tanh(),
    nn.Linear(8, 3, { dtype = dt, generator = gg }))
  model:evaluate()
  local ye = YE[dt]
  local p = path(name)
  model:save(p, { inputs = inputs, outputs = outputs, encoders = { input = XE, output = ye } })
  return p
end

local P32 = saved("m32.h5", "float32")
local P64 = saved("m64.h5", "float64")

local function maxdiff(a, b) return (a:double() - b:double()):abs():max():item() end

-- {heating = [n,1], rain = [n,2]} of the reference loader
local function reference(p, x)
  local y = mimic.load_model(p):forward(x)
  return { heating = y:narrow(2, 1, 1), rain = y:narrow(2, 2, 2) }
end

function test_contract_and_hash()
  local h = mimic.embed.open(P32)
  lu.assertEquals(h:inputs(), { { name = "temperature", units = "K", size = 2 }, { name = "humidity", units = "kg/kg", size = 1 } })
  lu.assertEquals(h:outputs()[2], { name = "rain", units = "mm", size = 2 })
  lu.assertEquals(h:hash(), mimic.load_model(P32).hash)
  lu.assertStrContains(tostring(h), "Handle(2 inputs -> 2 outputs, sha256:")
  -- the host's variable list at start-up
  lu.assertTrue(h:check_vars({ "temperature", "humidity" }))
  lu.assertTrue(h:check_vars({ "heating", "rain" }, "outputs", { 1, 2 }))
  raises("'humidity' is at position 1, the model has it at 2", h.check_vars, h, { "humidity", "temperature" })
  raises("pressure", h.check_vars, h, { "temperature", "pressure" })
  raises("'rain' has size 3, the model expects 2", h.check_vars, h, { "heating", "rain" }, "outputs", { 1, 3 })
  raises("must be 'inputs' or 'outputs'", h.check_vars, h, { "heating" }, "output")
  raises("name 2 is number, expected a string", h.check_vars, h, { "temperature", 3 })
  h:close()
end

function test_run_equals_forward_any_layout()
  for _, p in ipairs({ P32, P64 }) do
    local want = reference(p, X)
    local h = mimic.embed.open(p)
    local tol = p == P32 and 1e-5 or 1e-12
    -- named inputs: column views of X (sample stride 3), humidity as a 1-dim [n]
    local y = h:run { temperature = X:narrow(2, 1, 2), humidity = X:select(2, 3) }
    lu.assertEquals(y.heating:size(), { 64, 1 })
    lu.assertEquals(y.rain:size(), { 64, 2 })
    lu.assertEquals(y.rain:dtype(), "float64")
    lu.assertTrue(maxdiff(y.heating, want.heating) < tol)
    lu.assertTrue(maxdiff(y.rain, want.rain) < tol)
    -- feature-major host arrays (C x[size][n]: a transposed view) in float32
    local tT = X:narrow(2, 1, 2):t():contiguous():float() -- [2, n]
    local hum = X:narrow(2, 3, 1):float()
    local y2 = h:run { temperature = tT:t(), humidity = hum }
    lu.assertEquals(tT:t():stride(), { 1, 64 })
    lu.assertTrue(maxdiff(y2.rain, want.rain) < 1e-4)
    -- one tensor [n, nin], columns in contract order
    lu.assertTrue(maxdiff(h:run(X).heating, want.heating) < tol)
    -- the first n samples only
    local y3 = h:run(X, 10)
    lu.assertEquals(y3.heating:size(), { 10, 1 })
    lu.assertTrue(maxdiff(y3.rain, want.rain:narrow(1, 1, 10)) < tol)
    lu.assertEquals(h:run(X, 0).rain:size(), { 0, 2 })
    h:close()
  end
end

function test_caller_outputs_and_precision()
  local want = reference(P64, X)
  local h = mimic.embed.open(P64, { precision = "float32", chunk = 7, threads = 2 })
  local big = mimic.zeros({ 64, 4 }, "float32")
  local rain = mimic.zeros({ 70, 2 })
  local out = { heating = big:narrow(2, 2, 1), rain = rain }
  local y = h:run(X, out)
  lu.assertEquals(y.heating:size(), { 64, 1 })
  lu.assertTrue(maxdiff(big:narrow(2, 2, 1), want.heating) < 1e-4)
  lu.assertEquals(big:narrow(2, 1, 1):abs():max():item(), 0) -- other columns untouched
  lu.assertEquals(big:narrow(2, 3, 2):abs():max():item(), 0)
  lu.assertTrue(maxdiff(rain:narrow(1, 1, 64), want.rain) < 1e-4)
  lu.assertEquals(rain:narrow(1, 65, 6):abs():max():item(), 0)
  lu.assertTrue(rawequal(y.rain, rain))
  -- n with an out table
  h:run(X, 5, { heating = mimic.zeros({ 5, 1 }), rain = mimic.zeros({ 5, 2 }) })
  h:close()
  -- float64 plan of a float32 file: same outputs to float32 rounding
  local h64 = mimic.embed.open(P32, { precision = "float64" })
  lu.assertTrue(maxdiff(h64:run(X).rain, reference(P32, X).rain) < 1e-4)
  h64:close()
end

function test_deterministic_any_n()
  local h = mimic.embed.open(P32, { deterministic = true, chunk = 8, threads = 2 })
  local all = h:run(X).rain:clone()
  for _, n in ipairs({ 1, 9, 33 }) do
    lu.assertEquals(maxdiff(h:run(X, n).rain, all:narrow(1, 1, n)), 0)
  end
  h:close()
end

-- The guard's limits and Mahalanobis distance against a hand computation on
-- two correlated features (population covariance, 2x2 inverse by hand).
function test_guard_fit_limits_distance()
  local gg = mimic.Generator(2)
  local a = gg:randn({ 400 }, { dtype = "float64" })
  local b = a * 0.9 + gg:randn({ 400 }, { dtype = "float64" }) * 0.2
  local x = mimic.stack({ a * 10 + 300, b * 0.001 + 0.01 }, 2) -- [400, 2], very different scales
  local gd = mimic.guard.fit(x, { margin = 0.1, quantile = 1 })
  lu.assertEquals(gd:nfeat(), 2)
  local lo, hi, dlim = gd:limits()
  for j = 1, 2 do
    local c = x:select(2, j)
    local mn, mx = c:min():item(), c:max():item()
    lu.assertAlmostEquals(lo[j], mn - 0.1 * (mx - mn), 1e-12 * math.abs(mn) + 1e-15)
    lu.assertAlmostEquals(hi[j], mx + 0.1 * (mx - mn), 1e-12 * math.abs(mx) + 1e-15)
  end
  -- Mahalanobis distances by hand
  local xv = x:totable()
  local n = #xv
  local m1, m2 = 0, 0
  for _, r in ipairs(xv) do m1, m2 = m1 + r[1] / n, m2 + r[2] / n end
  local c11, c12, c22 = 0, 0, 0
  for _, r in ipairs(xv) do
    local d1, d2 = r[1] - m1, r[2] - m2
    c11, c12, c22 = c11 + d1 * d1 / n, c12 + d1 * d2 / n, c22 + d2 * d2 / n
  end
  local det = c11 * c22 - c12 * c12
  local function dist(p1, p2)
    local d1, d2 = p1 - m1, p2 - m2
    return math.sqrt((c22 * d1 * d1 - 2 * c12 * d1 * d2 + c11 * d2 * d2) / det)
  end
  local dmax = 0
  for _, r in ipairs(xv) do dmax = math.max(dmax, dist(r[1], r[2])) end
  lu.assertAlmostEquals(dlim, dmax * 1.1, 1e-6 * dmax)
  -- points: the mean (inside), hot and dry together (in range, far: distance),
  -- beyond the range, NaN
  local pts = mimic.tensor({ { m1, m2 }, { m1 + 12, m2 - 0.0012 }, { hi[1] + 1, m2 }, { 0 / 0, m2 } }, "float64")
  lu.assertTrue(dist(m1 + 12, m2 - 0.0012) > 1.5 * dlim) -- far off the correlation line
  local F = mimic.embed.FLAGS
  lu.assertEquals(gd:check(pts):totable(), { 0, F.distance, F.range + F.distance, F.input_nan + F.range + F.distance })
  lu.assertEquals(gd:check(pts:float()):totable(), gd:check(pts):totable())
  lu.assertEquals(gd:check(pts:t():contiguous():t()):totable(), gd:check(pts):totable()) -- strided rows
  lu.assertEquals(gd:check(pts[1]):totable(), { 0 }) -- one row
  -- range only
  local gr = mimic.guard.fit(x, { distance = false })
  local _, _, d0 = gr:limits()
  lu.assertEquals(d0, 0)
  lu.assertEquals(gr:check(pts):totable(), { 0, 0, F.range, F.input_nan + F.range })
  lu.assertStrContains(tostring(gr), "Guard(2 features, range)")
  -- save / load
  gd:save(path("guard.h5"))
  local g2 = mimic.guard.load(path("guard.h5"))
  lu.assertEquals(g2:check(pts):totable(), gd:check(pts):totable())
  local lo2, _, d2 = g2:limits()
  lu.assertEquals(lo2:totable(), lo:totable())
  lu.assertEquals(d2, dlim)
  -- errors
  raises("unknown option 'margn'", mimic.guard.fit, x, { margn = 1 })
  raises("the guard was fitted on 2", gd.check, gd, mimic.zeros({ 3, 5 }))
  raises("give float32 or float64", gd.check, gd, mimic.zeros({ 3, 2 }, "int64"))
  raises("guard.h5x", mimic.guard.load, path("guard.h5x"))
end

function test_guard_and_lua_fallback()
  local h = mimic.embed.open(P32)
  local F = mimic.embed.FLAGS
  h:set_guard(mimic.guard.fit(X, { distance = false }))
  local x = X:clone()
  x[3][1] = 1000    -- out of range
  x[7][3] = 0 / 0   -- NaN
  x[8][2] = -5      -- out of range
  local want = reference(P32, X)
  local seen, seen_inputs = nil, nil
  h:set_fallback(function(idx, out, inp)
    seen, seen_inputs = idx:totable(), inp
    for k = 1, idx:numel() do
      local i = idx[k]
      out.heating[i][1] = -i
      out.rain[i] = mimic.tensor({ 100 + i, 200 + i }, "float64")
    end
  end)
  local named = { temperature = x:narrow(2, 1, 2), humidity = x:narrow(2, 3, 1) }
  local y = h:run(named)
  lu.assertEquals(seen, { 3, 7, 8 })
  lu.assertTrue(rawequal(seen_inputs, named))
  lu.assertEquals(y.heating[3][1], -3)
  lu.assertEquals(y.rain[7]:totable(), { 107, 207 })
  lu.assertEquals(y.heating[8][1], -8)
  -- the others are the surrogate's
  local keep = mimic.tensor({ 1, 2, 4, 5, 6, 9, 10, 40, 64 }, "int64")
  lu.assertTrue(maxdiff(y.rain:index_select(1, keep), want.rain:index_select(1, keep)) < 1e-5)
  local flags = h:flags()
  lu.assertEquals(flags:dtype(), "int64")
  lu.assertEquals(flags:numel(), 64)
  lu.assertEquals(flags[3], F.range)
  lu.assertEquals(flags[7], F.input_nan + F.range + F.output_nan) -- and the surrogate gave NaN
  lu.assertEquals(flags[1], 0)
  local st = h:stats()
  lu.assertEquals(st.calls, 1)
  lu.assertEquals(st.samples, 64)
  lu.assertEquals(st.fallback, 3)
  lu.assertEquals(st.surrogate, 61)
  lu.assertEquals(st.flagged.range, 3)
  lu.assertEquals(st.flagged.input_nan, 1)
  lu.assertEquals(st.flagged.spread, 0)
  lu.assertTrue(st.seconds >= st.fallback_seconds and st.fallback_seconds > 0)
  -- no fallback: flagged samples keep the surrogate's outputs, and are counted
  h:set_fallback(nil)
  h:reset_stats()
  local y2 = h:run(x)
  lu.assertTrue(maxdiff(y2.heating[3], want.heating[3]) > 0) -- out of range: extrapolated, not -3
  lu.assertEquals(h:stats().fallback, 0)
  lu.assertEquals(h:stats().flagged.range, 3)
  lu.assertEquals(h:stats().calls, 1)
  -- no guard: nothing flagged but the NaN
  h:set_guard(nil)
  h:run(x)
  lu.assertEquals(h:flags():totable()[3], 0)
  lu.assertEquals(h:flags()[7], F.input_nan + F.output_nan)
  h:close()
end

function test_bounds_and_ensemble()
  local want = reference(P32, X)
  local h = mimic.embed.open(P32)
  local med = want.heating:reshape(-1):sort():totable()[32]
  h:set_bounds("heating", -math.huge, med)
  h:run(X)
  local F = mimic.embed.FLAGS
  local expect = {}
  for i, v in ipairs(want.heating:reshape(-1):totable()) do expect[i] = v > med and F.bounds or 0 end
  lu.assertEquals(h:flags():totable(), expect)
  lu.assertEquals(h:stats().flagged.bounds, 32)
  h:set_bounds("heating") -- no bounds
  h:run(X)
  lu.assertEquals(h:flags():double():sum():item(), 0)
  -- an ensemble of two members: the mean; spread flags past the limit
  local P2 = saved("m32b.h5", "float32", 99)
  local want2 = reference(P2, X)
  h:add_member(P2)
  local y = h:run(X)
  lu.assertTrue(maxdiff(y.rain, (want.rain + want2.rain) * 0.5) < 1e-5)
  h:set_spread_limit(1e30)
  h:run(X)
  lu.assertEquals(h:stats().flagged.spread, 0)
  h:set_spread_limit(0)
  h:run(X)
  lu.assertEquals(h:flags()[1] & F.spread, F.spread)
  lu.assertEquals(h:stats().flagged.spread, 64)
  h:close()
end

-- The host's conservation check: here the residual of a sample is its heating
-- output, so |heating| > tol flags it, and flagged samples go to the fallback.
function test_residual_callback()
  local want = reference(P32, X)
  local hv = want.heating:reshape(-1):totable()
  local sorted = want.heating:abs():reshape(-1):sort():totable()
  local tol = (sorted[40] + sorted[41]) / 2 -- away from any sample's value: no rounding ties
  local h = mimic.embed.open(P32)
  local calls = 0
  h:set_residual(function(idx, out, inp)
    calls = calls + 1
    lu.assertTrue(rawequal(inp, X))
    return out.heating:index_select(1, idx):reshape(-1)
  end, tol)
  local fixed = {}
  h:set_fallback(function(idx, out)
    fixed = idx:totable()
    for k = 1, idx:numel() do out.heating[idx[k]][1] = 0 end
  end)
  local y = h:run(X)
  lu.assertEquals(calls, 1)
  local expect, F = {}, mimic.embed.FLAGS
  for i, v in ipairs(hv) do if math.abs(v) > tol then expect[#expect + 1] = i end end
  lu.assertEquals(#expect, 24)
  lu.assertEquals(fixed, expect)
  lu.assertEquals(h:flags()[expect[1]], F.residual)
  lu.assertEquals(h:stats().flagged.residual, 24)
  lu.assertEquals(y.heating[expect[1]][1], 0)
  -- a list works too; a wrong count or a Lua error fails the run with its message
  h:set_residual(function(idx) local t = {} for k = 1, idx:numel() do t[k] = 0 end return t end, tol)
  h:run(X)
  lu.assertEquals(h:stats().flagged.residual, 24)
  h:set_residual(function() return { 1 } end, tol)
  raises("residual: the function returned 1 values for 64 samples", h.run, h, X)
  h:set_residual(function() error("conservation check failed") end, tol)
  raises("conservation check failed", h.run, h, X)
  raises("number expected", h.set_residual, h, function() end)
  h:set_residual(nil)
  h:run(X)
  lu.assertEquals(h:flags():double():sum():item(), 0)
  h:close()
end

function test_errors()
  raises("no such file", mimic.embed.open, path("missing.h5"))
  raises("unknown option 'precison'", mimic.embed.open, P32, { precison = "float32" })
  raises("precision 'half' is not one of float32, float64, stored", mimic.embed.open, P32, { precision = "half" })
  raises("threads 100000 must be in 0..65536", mimic.embed.open, P32, { threads = 100000 })
  raises("threads -1 must be in 0..65536", mimic.embed.open, P32, { threads = -1 })
  local h = mimic.embed.open(P32)
  local T, q = X:narrow(2, 1, 2), X:narrow(2, 3, 1)
  raises("'pressure' is not an input of this model; it expects: temperature [K] (2), humidity [kg/kg] (1)",
    h.run, h, { temperature = T, humidity = q, pressure = q })
  raises("input 'humidity' [kg/kg] (1 features) is missing", h.run, h, { temperature = T })
  raises("input 'temperature' must be [n, 2], got [64, 3]", h.run, h, { temperature = X, humidity = q })
  raises("input 'humidity' has 10 rows, the others 64", h.run, h, { temperature = T, humidity = q:narrow(1, 1, 10) })
  raises("input 'temperature' is int64; give float32 or float64", h.run, h, { temperature = T:long(), humidity = q })
  raises("input 'humidity' must be a mimic.Tensor, got number", h.run, h, { temperature = T, humidity = 3 })
  raises("input '(all inputs)' must be [n, 3], got [64, 2]", h.run, h, T)
  raises("n = 100 samples, but the inputs have 64 rows", h.run, h, X, 100)
  raises("output 'rain' is missing from the out table", h.run, h, X, { heating = mimic.zeros({ 64, 1 }) })
  raises("'snow' is not an output of this model", h.run, h, X, { snow = mimic.zeros({ 64, 1 }) })
  raises("output 'rain' has 10 rows, expected 64", h.run, h, X,
    { heating = mimic.zeros({ 64, 1 }), rain = mimic.zeros({ 10, 2 }) })
  raises("zero stride", h.run, h, X, { heating = mimic.zeros({ 64, 1 }), rain = mimic.zeros({ 1, 2 }):expand({ 64, 2 }) })
  raises("input 'humidity' has a zero sample stride (an expanded view); pass t:contiguous()", h.run, h,
    { temperature = T, humidity = mimic.zeros({ 1, 1 }):expand({ 64, 1 }) })
  raises("table of named input tensors or one tensor", h.run, h, 3)
  raises("the model has no output called 'rainfall'", h.set_bounds, h, "rainfall", 0, 1)
  raises("bad argument #2", h.set_guard, h, {})
  local g2 = mimic.guard.fit(mimic.zeros({ 10, 2 }):uniform_(0, 1), { distance = false })
  raises("the guard has 2 features, the model's raw input width is 3", h.set_guard, h, g2)
  raises("function expected", h.set_fallback, h, 3)
  -- a Lua error in the fallback propagates unchanged, and the handle keeps working
  local x = X:clone()
  x[1][1] = 0 / 0
  h:set_fallback(function() error({ reason = "reference kernel failed" }) end)
  local ok, err = pcall(h.run, h, x)
  lu.assertFalse(ok)
  lu.assertEquals(err.reason, "reference kernel failed")
  h:set_fallback(function(idx) error("no reference for sample " .. idx[1]) end)
  raises("no reference for sample 1", h.run, h, x)
  -- the handle cannot be closed or rerun from inside its own fallback
  h:set_fallback(function() h:close() end)
  raises("close: the handle is running", h.run, h, x)
  h:set_fallback(function() h:run(X) end)
  raises("run: the handle is running", h.run, h, x)
  h:set_fallback(nil)
  lu.assertTrue(maxdiff(h:run(X).rain, reference(P32, X).rain) < 1e-5)
  -- closed
  h:close()
  h:close() -- twice is fine
  lu.assertEquals(tostring(h), "Handle(closed)")
  raises("run: the handle is closed", h.run, h, X)
  raises("inputs: the handle is closed", h.inputs, h)
  raises("hash: the handle is closed", h.hash, h)
  raises("stats: the handle is closed", h.stats, h)
end

function test_bound_tensors_survive_collection()
  local h = mimic.embed.open(P32)
  local want = reference(P32, X).rain
  for _ = 1, 3 do
    local y = h:run { temperature = X:narrow(2, 1, 2):clone(), humidity = X:narrow(2, 3, 1):clone() }
    collectgarbage()
    collectgarbage()
    lu.assertTrue(maxdiff(y.rain, want) < 1e-5)
  end
  do
    local h2 <close> = mimic.embed.open(P32)
    h2:run(X)
  end
  h = nil
  collectgarbage()
end

local rc = lu.LuaUnit.run()
os.execute("rm -rf " .. dir)
os.exit(rc)
