-- mimic.radiation.nn: the neural gas optics (rad_nn.h, core/solvers/radiation/nn_optics.c)
-- from Lua. The model files are the exact surrogates of trivially learnable
-- functions, written with mimic.nn + model:save under the contract of
-- notes/rad-spec.md (input "features" standardised; output "k" encoded log then
-- standard, "planck_frac" standard): one linear layer whose weights are what
-- least squares finds, computed from the fitted encoders' statistics,
--   k_g   = exp(a_g + b_g (t - 250) / 50)            (cm^2)
--   raw_g = c_g + d_g (ln p - 10)                    (Planck fractions before clamping)
-- so nn:optics is checked against tau = k col_dry and the clamped, per-band
-- renormalised fractions computed here by hand; guard-flagged layers against
-- kd:optics exactly; lw_fluxes / rce with optics = nn against the same optics
-- through a Lua callback.
local lu = require "luaunit"
local mimic = require "mimic"
local raises = require("helpers").raises

local R, nn, data = mimic.radiation, mimic.nn, mimic.data
local KD_PATH = os.getenv("MIMIC_KDIST") or "data/kdist/mimic-lw-kdist.h5" -- tests run from the source tree
local KD = R.kdist(KD_PATH)
local INFO = KD:info()
local NG, NB, NGB = INFO.ngpt, INFO.nband, INFO.ngb
local NAMES, UNITS = R.nn_feature_names()
local NF = #NAMES

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local function path(n) return dir .. "/" .. n end

-- n layers from 100 Pa to 1e5 Pa, temperatures spread over [tlo, tlo + tspan].
local function state(n, tlo, tspan, pscale)
  local p, t, cd, h2o = {}, {}, {}, {}
  for i = 1, n do
    local f = (i - 1) / math.max(n - 1, 1)
    p[i] = 100 * 1000 ^ f * (pscale or 1)
    t[i] = tlo + tspan * ((i * 0.37) % 1)
    cd[i] = 1e22 + 2e23 * f
    h2o[i] = 3e-6 + 1e-2 * f ^ 3
  end
  local T = function(v) return mimic.tensor(v, "float64") end
  return { p = T(p), t = T(t), col_dry = T(cd),
    vmr = { h2o = T(h2o), co2 = 4e-4, o3 = 5e-8, ch4 = 1.8e-6, n2o = 3.2e-7, co = 1e-7, o2 = 0.209, n2 = 0.781,
      cfc11 = 2.3e-10, cfc12 = 5.2e-10 } }
end

-- The functions' coefficients, per g-point (b, d never 0: no degenerate std).
local function coef(scale)
  local a, b, c, d = {}, {}, {}, {}
  for g = 1, NG do
    local band, j = (g - 1) // NGB, (g - 1) % NGB
    a[g] = -50 + 0.05 * j - 0.1 * band + (scale or 0)
    b[g] = 0.3 + 0.002 * g
    c[g] = (j - 3) * (1 + 0.1 * band)
    d[g] = 0.2 + 0.01 * j
  end
  return { a = a, b = b, c = c, d = d }
end
local C0, CU = coef(0), coef(3) -- lower (or only) pair, upper pair

local function targets(st, C)
  local n = st.p:size(1)
  local K, P = {}, {}
  for i = 1, n do
    local t, lp = st.t[i], math.log(st.p[i])
    K[i], P[i] = {}, {}
    for g = 1, NG do
      K[i][g] = math.exp(C.a[g] + C.b[g] * (t - 250) / 50)
      P[i][g] = C.c[g] + C.d[g] * (lp - 10)
    end
  end
  return K, P
end

-- One linear layer [NF -> NG] with W[g][feat] = w(g), bias(g), saved with the contract.
local function save_linear(file, feat, w, bias, xe, ye, out, units, in_units)
  local W, B = {}, {}
  for g = 1, NG do
    W[g] = {}
    for f = 1, NF do W[g][f] = f == feat and w(g) or 0 end
    B[g] = bias(g)
  end
  local model = nn.Sequential(nn.Linear(NF, NG, { dtype = "float64" }))
  model:load_state_dict({ ["1.weight"] = mimic.tensor(W, "float64"), ["1.bias"] = mimic.tensor(B, "float64") })
  model:evaluate()
  model:save(path(file), { inputs = { { name = "features", units = in_units or UNITS, size = NF } },
    outputs = { { name = out, units = units, size = NG } }, encoders = { input = xe, output = ye } })
  return path(file)
end

-- The exact surrogates of C's functions, fitted on the training state st.
local function make_pair(prefix, C, st)
  local X = R.nn_features(st)
  local K, P = targets(st, C)
  local xe = data.encoder { kind = "standard" }:fit(X)
  local ke = data.chain { data.encoder { kind = "log" }, data.encoder { kind = "standard" } }
  ke:fit(mimic.tensor(K, "float64"))
  local pe = data.encoder { kind = "standard" }:fit(mimic.tensor(P, "float64"))
  local km, ks = ke.stages[2].mean, ke.stages[2].std
  local tmu, tsd = xe.mean[2], xe.std[2]   -- feature 2: t
  local lmu, lsd = xe.mean[1], xe.std[1]   -- feature 1: ln_p
  local tau = save_linear(prefix .. "tau.h5", 2, function(g) return C.b[g] * tsd / 50 / ks[g] end,
    function(g) return (C.a[g] + C.b[g] * (tmu - 250) / 50 - km[g]) / ks[g] end, xe, ke, "k", "cm^2")
  local planck = save_linear(prefix .. "planck.h5", 1, function(g) return C.d[g] * lsd / pe.std[g] end,
    function(g) return (C.c[g] + C.d[g] * (lmu - 10) - pe.mean[g]) / pe.std[g] end, xe, pe, "planck_frac", "1")
  return tau, planck, X
end

local TRAIN = state(64, 190, 120)
local TAU, PLANCK, XTRAIN = make_pair("", C0, TRAIN)
local TAU_UP, PLANCK_UP = make_pair("up_", CU, TRAIN)

-- tau [n][g] and fractions by hand
local function expected(st, C)
  local K, P = targets(st, C)
  for i = 1, #K do
    for g = 1, NG do K[i][g] = K[i][g] * st.col_dry[i] end
    for b = 0, NB - 1 do
      local s = 0
      for j = 1, NGB do
        local g = b * NGB + j
        P[i][g] = math.max(P[i][g], 0)
        s = s + P[i][g]
      end
      for j = 1, NGB do P[i][b * NGB + j] = P[i][b * NGB + j] / s end
    end
  end
  return K, P
end

local function assert_rows(got, want, rows, rtol, what)
  local gt = got:totable()
  for _, i in ipairs(rows) do
    for g = 1, NG do
      local a, b = gt[i][g], want[i][g]
      if not (math.abs(a - b) <= rtol * math.abs(b) + 1e-300) then
        lu.fail(string.format("%s: row %d g-point %d is %.17g, expected %.17g", what, i, g, a, b))
      end
    end
  end
end
local function all_rows(n)
  local r = {}
  for i = 1, n do r[i] = i end
  return r
end

function test_optics_equal_hand_computation()
  local st = state(40, 200, 100, 0.9)
  local et, ep = expected(st, C0)
  for _, prec in ipairs({ "f64", "f32" }) do
    local o = R.nn { tau = TAU, planck = PLANCK, kdist = KD, precision = prec, threads = 1 }
    local tau, pf = o:optics(st)
    lu.assertEquals(tau:size(), { 40, NG })
    lu.assertEquals(pf:dtype(), "float64")
    local rt = prec == "f64" and 1e-10 or 2e-3
    assert_rows(tau, et, all_rows(40), rt, prec .. " tau")
    assert_rows(pf, ep, all_rows(40), prec == "f64" and 1e-10 or 1e-4, prec .. " planck_frac")
    lu.assertTrue(pf:min():item() >= 0)
    lu.assertEquals(o:stats(), { layers = 40, fallback = 0 })
    o:close()
    raises("closed", o.optics, o, st)
    o:close() -- twice is fine
  end
end

function test_guard_sends_layers_to_the_reference()
  -- a guard fitted on the training features at 240..260 K only
  local narrow = state(32, 240, 20)
  mimic.guard.fit(R.nn_features(narrow), { margin = 0, distance = false }):save(path("guard.h5"))
  local o = R.nn { tau = TAU, planck = PLANCK, kdist = KD, guard = path("guard.h5"), precision = "f64" }
  local st = state(30, 220, 60)
  local tau, pf = o:optics(st)
  local rt, rp = KD:optics(st)
  local et, ep = expected(st, C0)
  local inside, outside = {}, {}
  local x = R.nn_features(st)
  local xn = R.nn_features(narrow)
  local lo, hi = xn:min(1), xn:max(1)
  for i = 1, 30 do
    local ok = true
    for f = 1, NF do
      if x[i][f] < lo[f] or x[i][f] > hi[f] then ok = false end
    end
    table.insert(ok and inside or outside, i)
  end
  lu.assertTrue(#inside >= 5 and #outside >= 5)
  assert_rows(tau, et, inside, 1e-10, "surrogate tau")
  assert_rows(pf, ep, inside, 1e-10, "surrogate fractions")
  assert_rows(tau, rt:totable(), outside, 0, "reference tau")
  assert_rows(pf, rp:totable(), outside, 0, "reference fractions")
  lu.assertEquals(o:stats(), { layers = 30, fallback = #outside })
end

function test_upper_pair_routes_by_pressure()
  local o = R.nn { tau = TAU, planck = PLANCK, tau_upper = TAU_UP, planck_upper = PLANCK_UP, kdist = KD,
    precision = "f64" }
  local st = state(25, 200, 100)
  local tau, pf = o:optics(st)
  local lt, lp = expected(st, C0)
  local ut, up = expected(st, CU)
  local upper, lower = {}, {}
  for i = 1, 25 do table.insert(st.p[i] < INFO.p_split and upper or lower, i) end
  lu.assertTrue(#upper >= 5 and #lower >= 5)
  assert_rows(tau, ut, upper, 1e-10, "upper tau")
  assert_rows(pf, up, upper, 1e-10, "upper fractions")
  assert_rows(tau, lt, lower, 1e-10, "lower tau")
  assert_rows(pf, lp, lower, 1e-10, "lower fractions")
  -- an explicit split pressure moves layers between the pairs
  local o2 = R.nn { tau = TAU, planck = PLANCK, tau_upper = TAU_UP, planck_upper = PLANCK_UP, kdist = KD,
    p_split = 1e6, precision = "f64" }
  assert_rows(o2:optics(st), ut, all_rows(25), 1e-10, "all upper")
end

local function columns()
  local p_lev = mimic.tensor({ { 100, 5000, 20000, 50000, 80000, 100000 }, { 50, 3000, 15000, 45000, 75000, 101000 } }, "float64")
  local p_lay = (p_lev:narrow(2, 1, 5) + p_lev:narrow(2, 2, 5)) * 0.5
  local t_lev = mimic.tensor({ { 215, 220, 232, 255, 278, 291 }, { 205, 215, 228, 250, 270, 285 } }, "float64")
  local t_lay = (t_lev:narrow(2, 1, 5) + t_lev:narrow(2, 2, 5)) * 0.5
  return { p_lay = p_lay, p_lev = p_lev, t_lay = t_lay, t_lev = t_lev, t_sfc = { 293, 287 }, sfc_emis = 0.98,
    vmr = { h2o = mimic.tensor({ { 3e-6, 1e-5, 5e-4, 4e-3, 1e-2 }, { 3e-6, 8e-6, 3e-4, 3e-3, 8e-3 } }, "float64"),
      co2 = 4e-4, o3 = 1e-7, ch4 = 1.8e-6 } }
end

function test_lw_fluxes_and_rce_with_nn()
  local o = R.nn { tau = TAU, planck = PLANCK, kdist = KD, precision = "f64", deterministic = true }
  local cols = columns()
  cols.optics = o
  local a = R.lw_fluxes(cols)
  lu.assertEquals(o:stats(), { layers = 10, fallback = 0 })
  cols.optics = function(st) return o:optics(st) end
  cols.nu1, cols.nu2 = INFO.nu1, INFO.nu2
  local b = R.lw_fluxes(cols)
  lu.assertEquals((a.flux_up - b.flux_up):abs():max():item(), 0)
  lu.assertEquals((a.flux_dn - b.flux_dn):abs():max():item(), 0)
  lu.assertTrue(a.flux_up[1][1] > 50 and a.flux_up[1][1] < 500)
  -- one RCE step with the surrogate object equals one with the callback
  local function model()
    return R.rce { p_lev = { 100, 5000, 20000, 50000, 80000, 100000 }, t_init = { 220, 230, 245, 265, 282 },
      vmr = { h2o = 1e-3, co2 = 4e-4, o3 = 1e-7 }, t_sfc = 290 }
  end
  local s1 = model():step { optics = o, dt = 3600 }
  local s2 = model():step { optics = function(st) return o:optics(st) end, nu1 = INFO.nu1, nu2 = INFO.nu2, dt = 3600 }
  lu.assertEquals(s1.olr, s2.olr)
  lu.assertEquals((s1.t_lay - s2.t_lay):abs():max():item(), 0)
  lu.assertTrue(s1.olr > 50 and s1.olr < 500)
end

function test_keeps_its_kdist_alive()
  local o = R.nn { tau = TAU, planck = PLANCK, kdist = R.kdist(KD_PATH) }
  collectgarbage()
  collectgarbage()
  local tau = o:optics(state(3, 250, 10))
  lu.assertEquals(tau:size(), { 3, NG })
  do
    local o2 <close> = R.nn { tau = TAU, planck = PLANCK, kdist = KD }
    lu.assertEquals(o2:stats().layers, 0)
  end
  -- an early kd:close is noticed, not a dangling pointer
  local kd = R.kdist(KD_PATH)
  local o3 = R.nn { tau = TAU, planck = PLANCK, kdist = kd }
  getmetatable(kd).__close(kd)
  raises("k-distribution (kdist=) was closed", o3.optics, o3, state(3, 250, 10))
end

function test_errors_name_the_problem()
  raises("option 'kdist' must be a radiation.kdist", R.nn, { tau = TAU, planck = PLANCK })
  raises("option 'planck' must be a model file path", R.nn, { tau = TAU, kdist = KD })
  raises("unknown option 'gaurd'", R.nn, { tau = TAU, planck = PLANCK, kdist = KD, gaurd = "x" })
  raises("precision must be \"f32\", \"f64\"", R.nn, { tau = TAU, planck = PLANCK, kdist = KD, precision = "f16" })
  raises("threads must be an integer", R.nn, { tau = TAU, planck = PLANCK, kdist = KD, threads = -1 })
  local msg = raises("missing-tau.h5", R.nn, { tau = path("missing-tau.h5"), planck = PLANCK, kdist = KD })
  lu.assertStrContains(msg, "tau model")
  raises("planck_upper_path is NULL", R.nn, { tau = TAU, planck = PLANCK, tau_upper = TAU_UP, kdist = KD })
  -- the contract: feature units, output size, swapped files
  local xe = data.encoder { kind = "standard" }:fit(XTRAIN)
  local ye = data.encoder { kind = "standard" }:fit(mimic.ones(4, NG, "float64"))
  local bad = save_linear("bad_units.h5", 1, function() return 0 end, function() return 0 end, xe, ye, "k", "cm^2",
    "K")
  msg = raises("'features' [18] with units 'mimic-rad-nn-features-1'", R.nn, { tau = bad, planck = PLANCK, kdist = KD })
  lu.assertStrContains(msg, "bad_units.h5")
  local m = nn.Sequential(nn.Linear(NF, 16, { dtype = "float64" }))
  m:save(path("small.h5"), { inputs = { { name = "features", units = UNITS, size = NF } },
    outputs = { { name = "k", units = "cm^2", size = 16 } } })
  raises("has 16 features but the k-distribution has 256 g-points", R.nn, { tau = path("small.h5"), planck = PLANCK, kdist = KD })
  raises("swapped", R.nn, { tau = PLANCK, planck = TAU, kdist = KD })
  -- bad layers are refused as kd:optics refuses them
  local o = R.nn { tau = TAU, planck = PLANCK, kdist = KD }
  local st = state(3, 250, 10)
  st.col_dry = mimic.tensor({ 1e22, -1, 1e22 }, "float64")
  raises("col_dry", o.optics, o, st)
  local cols = columns()
  cols.optics = "tabulated"
  raises("a radiation.nn", R.lw_fluxes, cols)
  o:close()
  cols.optics = o
  raises("closed", R.lw_fluxes, cols)
end

function test_zz_cleanup()
  os.execute("rm -rf " .. dir)
end

os.exit(lu.LuaUnit.run())
