-- mimic.radiation: the line-by-line model (radiation.lbl, rad_lbl.h) and the
-- radiative-convective equilibrium model (radiation.rce, rad_rce.h) from Lua.
-- References: identities between the binding's own calls (parts add up,
-- layer optical depth = cross-section x amount), the closed-form gray
-- two-stream radiative equilibrium, and the built-in gray optics against the
-- same optics written as a Lua callback; the k-distribution kernel (radiation.kdist)
-- against itself through a callback, and the surrogate's feature vector by hand.
local lu = require "luaunit"
local mimic = require "mimic"
local raises = require("helpers").raises

local R = mimic.radiation
local SIGMA, G, D = 5.670374419e-8, 9.80665, 1.66

-- --- line-by-line ---------------------------------------------------------------------
TestLBL = {}

local LBL = R.lbl { gases = { "co2" }, nu_min = 600, nu_max = 760 }

function TestLBL.test_grid()
  local nu, w = LBL:grid(640, 700, 5000)
  local n = nu:size(1)
  lu.assertEquals(w:size(1), n)
  lu.assertTrue(n > 600) -- lines resolved: far finer than 0.1 cm^-1 near line centres
  lu.assertAlmostEquals(nu[1], 640, 1e-12)
  lu.assertAlmostEquals(nu[n], 700, 1e-9)
  lu.assertAlmostEquals(w:sum():item(), 60, 1e-9)
  lu.assertTrue(((nu:narrow(1, 2, n - 1) - nu:narrow(1, 1, n - 1)):min():item()) > 0)
  local nu2 = R.uniform_grid(640, 700, 0.5)
  lu.assertEquals(nu2:size(1), 121)
end

function TestLBL.test_absorption_parts_and_layer_tau()
  local nu = R.uniform_grid(660, 680, 0.01)
  local p, t = 20000, 230
  local all = LBL:absorption("co2", p, t, 0, nu)
  local lines = LBL:absorption("co2", p, t, 0, nu, "lines")
  local cont = LBL:absorption("co2", p, t, 0, nu, "continuum")
  lu.assertEquals(all:size(), nu:size())
  lu.assertTrue(all:min():item() >= 0)
  lu.assertTrue(all:max():item() > 1e-20) -- the 667 cm^-1 band is strong
  lu.assertTrue(((all - lines - cont):abs():max():item()) <= 1e-12 * all:max():item())
  local col = R.col_dry(15000, 25000, 0)
  local tau = LBL:layer_tau({ p = p, t = t, col_dry = col, vmr = { co2 = 4e-4 } }, nu)
  local ref = all * (4e-4 * col)
  lu.assertTrue(((tau - ref):abs():max():item()) <= 1e-12 * ref:max():item())
  -- a list works as the grid too
  local k2 = LBL:absorption("co2", p, t, 0, { 667, 668 })
  lu.assertEquals(k2:size(), { 2 })
end

function TestLBL.test_errors()
  raises("unknown gas 'xenon'", function() return LBL:absorption("xenon", 1e4, 250, 0, { 700 }) end)
  raises("h2o", function() return LBL:absorption("h2o", 1e4, 250, 0, { 700 }) end) -- not selected
  raises("invalid option 'wings'", function() return LBL:absorption("co2", 1e4, 250, 0, { 700 }, "wings") end)
  raises("col_dry", function() return LBL:layer_tau({ p = 1e4, t = 250, vmr = {} }, { 700 }) end)
  raises("unknown gas 'xenon'", R.lbl, { gases = { "xenon" } })
end

-- --- radiative-convective equilibrium ----------------------------------------------------
TestRCE = {}

local function levels(n, ptop, ps)
  local p = {}
  for l = 0, n do p[l + 1] = ptop + (ps - ptop) * l / n end
  return p
end

-- Pure gray radiative equilibrium: pi B = F0 (1 + D tau) / 2 at the layer
-- centres, sigma Ts^4 = F0 (1 + D tau* / 2); tau* = 2, 60 layers.
function TestRCE.test_gray_radiative_equilibrium()
  local n, ps, taus, F0 = 60, 1e5, 2, 240
  local m = R.rce { p_lev = levels(n, 0, ps), lapse_rate = 0, rh_sfc = 0, solar_atm = 0, solar_sfc = F0 }
  local st = m:run { optics = "gray", k = taus * G / ps, dt = 86400, tol = 1e-5 }
  lu.assertTrue(st.converged)
  lu.assertAlmostEquals(st.olr, F0, 0.1)
  lu.assertAlmostEquals(st.toa_imbalance, 0, 0.1)
  lu.assertAlmostEquals(st.sfc_imbalance, 0, 0.1)
  local t, p = st.t_lay:totable(), st.p_lay:totable()
  for l = 1, n do
    local ta = (F0 * (1 + D * taus * p[l] / ps) / (2 * SIGMA)) ^ 0.25
    lu.assertAlmostEquals(t[l], ta, 0.02)
  end
  lu.assertAlmostEquals(st.t_sfc, (F0 * (1 + D * taus / 2) / SIGMA) ^ 0.25, 0.01)
end

-- The gray optics as a Lua callback give the same equilibrium as the built-in
-- one, with convection and the water-vapour feedback on.
function TestRCE.test_lua_callback_matches_builtin()
  local n, k, kq = 30, 3 * G / 1e5, 0.5
  local function model() return R.rce { p_lev = levels(n, 100, 1e5), vmr = { co2 = 4e-4 } } end
  local a = model():run { optics = "gray", k = k, kq = kq, dt = 5 * 86400, tol = 1e-4 }
  local calls = 0
  local b = model():run {
    nu1 = { 0 }, nu2 = { math.huge }, dt = 5 * 86400, tol = 1e-4,
    optics = function(s)
      calls = calls + 1
      lu.assertAlmostEquals(s.vmr.co2[1], 4e-4, 1e-18)
      local mass = s.col_dry * (1e4 * 0.028964 / 6.02214076e23)
      return (mass * k * (s.vmr.h2o * (kq / 0.01) + 1)):view(-1, 1), nil
    end,
  }
  lu.assertTrue(a.converged and b.converged)
  lu.assertEquals(calls, b.steps)
  lu.assertEquals(a.steps, b.steps)
  lu.assertTrue(((a.t_lay - b.t_lay):abs():max():item()) < 1e-9)
  -- convection: the lowest layers are on the 6.5 K/km lapse rate, the surface mixes heat up
  lu.assertTrue(a.convective[n] and a.convective[n - 1])
  lu.assertTrue(a.sfc_conv_flux > 10)
  local kap = 287.04 * 6.5e-3 / G
  local t, p = a.t_lay:totable(), a.p_lay:totable()
  lu.assertAlmostEquals(t[n - 1] / t[n], (p[n - 1] / p[n]) ^ kap, 1e-10)
  -- water vapour at fixed RH follows the temperature: more in the warm lower layers
  local q = a.h2o:totable()
  lu.assertTrue(q[n] > q[n // 2] and q[n // 2] > q[1])
end

function TestRCE.test_callback_errors_propagate()
  local m = R.rce { p_lev = levels(10, 0, 1e5) }
  raises("optics exploded", function()
    return m:run { nu1 = { 0 }, nu2 = { math.huge }, optics = function() error("optics exploded") end }
  end)
  raises("must be a tensor", function()
    return m:run { nu1 = { 0 }, nu2 = { math.huge }, optics = function() return 1 end }
  end)
  raises("progress exploded", function()
    return m:run { optics = "gray", progress = function() error("progress exploded") end }
  end)
  -- progress can stop the run
  local seen = 0
  local st = m:run { optics = "gray", progress = function(info) seen = info.steps; return info.steps >= 3 end }
  lu.assertEquals(seen, 3)
  lu.assertFalse(st.converged)
  -- step / state / set
  local s1 = m:step { optics = "gray", dt = 3600 }
  lu.assertEquals(s1.steps, st.steps + 1)
  m:set { t_sfc = 300 }
  lu.assertEquals(m:state().t_sfc, 300)
end

function TestRCE.test_bad_inputs()
  raises("increasing", R.rce, { p_lev = { 0, 5e4, 4e4, 1e5 } })
  raises("p_lev", R.rce, { p_lev = { 0, 1e5 } })
  raises("sfc_emis", R.rce, { p_lev = levels(5, 0, 1e5), sfc_emis = 2 })
  raises("unknown gas 'xenon'", R.rce, { p_lev = levels(5, 0, 1e5), vmr = { xenon = 1 } })
  local m = R.rce { p_lev = levels(5, 0, 1e5) }
  raises("option 'optics'", function() return m:run {} end)
  raises("dt", function() return m:run { optics = "gray", dt = -1 } end)
end

-- --- the k-distribution kernel and the surrogate's features ------------------------------
TestKDist = {}

local KD_PATH = "data/kdist/mimic-lw-kdist.h5" -- tests run from the source tree

-- Three layers of a mid-latitude-like column, with every gas set.
local function state3()
  local vmr = {}
  for _, g in ipairs(R.gas_names()) do vmr[g] = 1e-10 end
  vmr.h2o = mimic.tensor({ 5e-6, 2e-3, 1.5e-2 }, "float64")
  vmr.o3 = mimic.tensor({ 6e-6, 5e-8, 3e-8 }, "float64")
  vmr.co2, vmr.ch4, vmr.n2o, vmr.co, vmr.o2, vmr.n2 = 4e-4, 1.8e-6, 3.2e-7, 1e-7, 0.209, 0.781
  vmr.cfc12 = 5e-10
  return { p = mimic.tensor({ 500, 50000, 95000 }, "float64"), t = mimic.tensor({ 230, 260, 290 }, "float64"),
           col_dry = mimic.tensor({ 1e22, 5e23, 2e23 }, "float64"), vmr = vmr }
end

function TestKDist.test_info_and_optics()
  local kd = R.kdist(KD_PATH)
  local info = kd:info()
  lu.assertEquals(info.ngpt, info.nband * info.ngb)
  lu.assertEquals(info.nu1:size(1), info.ngpt)
  lu.assertTrue(info.p_split > 1000 and info.p_split < 100000)
  local tau, pf = kd:optics(state3())
  lu.assertEquals(tau:size(), { 3, info.ngpt })
  lu.assertTrue(tau:min():item() >= 0)
  -- Planck fractions sum to 1 over each band's g-points
  local sums = pf:view({ 3, info.nband, info.ngb }):sum(3)
  lu.assertTrue(((sums - 1):abs()):max():item() < 1e-5)
  -- optical depth is proportional to the dry-air column at fixed mixing ratios
  local st = state3()
  st.col_dry = st.col_dry * 3
  local tau3 = kd:optics(st)
  lu.assertTrue(((tau3 - tau * 3):abs() / (tau * 3 + 1e-30)):max():item() < 1e-12)
end

function TestKDist.test_fluxes_with_kdist_equal_callback()
  local kd = R.kdist(KD_PATH)
  local info = kd:info()
  local nlay = 4
  local p_lev = mimic.tensor({ { 100, 20000, 50000, 80000, 100000 } }, "float64")
  local p_lay = mimic.tensor({ { 10000, 35000, 65000, 90000 } }, "float64")
  local t_lay = mimic.tensor({ { 220, 240, 265, 285 } }, "float64")
  local t_lev = mimic.tensor({ { 215, 230, 252, 275, 290 } }, "float64")
  local cols = { p_lay = p_lay, p_lev = p_lev, t_lay = t_lay, t_lev = t_lev, t_sfc = { 292 }, sfc_emis = 0.98,
    vmr = { h2o = mimic.tensor({ { 1e-5, 5e-4, 4e-3, 1e-2 } }, "float64"), co2 = 4e-4, o3 = 1e-7, ch4 = 1.8e-6 } }
  cols.optics = kd
  local a = R.lw_fluxes(cols)
  local calls = 0
  cols.optics = function(state)
    calls = calls + 1
    lu.assertEquals(state.p:size(1), nlay)
    return kd:optics(state)
  end
  cols.nu1, cols.nu2 = info.nu1, info.nu2
  local b = R.lw_fluxes(cols)
  lu.assertEquals(calls, 1)
  lu.assertEquals((a.flux_up - b.flux_up):abs():max():item(), 0)
  lu.assertEquals((a.flux_dn - b.flux_dn):abs():max():item(), 0)
  lu.assertTrue(a.flux_up[1][1] > 150 and a.flux_up[1][1] < 400)
end

function TestKDist.test_features()
  local x = R.nn_features(state3())
  local names, units = R.nn_feature_names()
  lu.assertEquals(x:size(), { 3, #names })
  lu.assertEquals(units, "mimic-rad-nn-features-1")
  lu.assertEquals(names[1], "ln_p")
  lu.assertAlmostEquals(x[2][1], math.log(50000), 1e-12)
  lu.assertEquals(x[3][2], 290)
  lu.assertAlmostEquals(x[1][3], math.log(5e-6), 1e-12)
  lu.assertAlmostEquals(x[1][5], math.log(4e-4), 1e-12)
  lu.assertAlmostEquals(x[1][6], 1.8, 1e-12)  -- ch4 in ppm
  local i12
  for i, n in ipairs(names) do if n == "cfc12" then i12 = i end end
  lu.assertAlmostEquals(x[1][i12], 0.5, 1e-12) -- cfc12 in ppb
  -- a zero mixing ratio is floored before the log, never -inf
  local st = state3()
  st.vmr.o3 = 0
  lu.assertAlmostEquals(R.nn_features(st)[1][4], math.log(1e-12), 1e-12)
end

function TestKDist.test_errors()
  raises("mimic-lw-kdist-missing.h5", R.kdist, "/nonexistent/mimic-lw-kdist-missing.h5")
  local kd = R.kdist(KD_PATH)
  local st = state3()
  st.vmr.xenon = 1
  raises("unknown gas 'xenon'", function() return kd:optics(st) end)
  st = state3()
  st.t = mimic.tensor({ 200, 210 }, "float64")
  raises("'t'", function() return kd:optics(st) end)
  st = state3()
  st.p = mimic.tensor({ 500, -1, 95000 }, "float64")
  raises("p", function() return kd:optics(st) end)
  raises("option 'optics'", R.lw_fluxes, { p_lay = mimic.ones({ 1, 1 }, "float64"), t_lay = mimic.ones({ 1, 1 }),
    p_lev = mimic.tensor({ { 0, 2 } }), t_lev = mimic.ones({ 1, 2 }), t_sfc = { 1 }, sfc_emis = 1, vmr = {}, optics = 42 })
end

os.exit(lu.LuaUnit.run())
