-- mimic.rfmip (the RFMIP atmospheres in data/rfmip/, perturbed samples, site
-- splits) and the Lua binding mimic.radiation (lua/lradiation.c).
-- Reference values are the file's own, read independently with h5py when the
-- data were copied (data/rfmip/README.md).
local lu = require "luaunit"
local mimic = require "mimic"
local rfmip = require "mimic.rfmip"
local raises = require("helpers").raises

local R = mimic.radiation

local function maxabs(t) return t:abs():max():item() end

local PD = rfmip.load { experiment = 1 }

-- --- load --------------------------------------------------------------------------------
TestLoad = {}

function TestLoad.test_shapes()
  lu.assertEquals(PD.nsite, 100)
  lu.assertEquals(PD.nlay, 60)
  lu.assertEquals(PD.p_lay:size(), { 100, 60 })
  lu.assertEquals(PD.p_lev:size(), { 100, 61 })
  lu.assertEquals(PD.t_lay:size(), { 100, 60 })
  lu.assertEquals(PD.t_lev:size(), { 100, 61 })
  lu.assertEquals(PD.t_sfc:size(), { 100 })
  lu.assertEquals(PD.sfc_emis:size(), { 100 })
  lu.assertEquals(PD.rld:size(), { 100, 61 })
  lu.assertEquals(PD.rlu:size(), { 100, 61 })
  lu.assertEquals(PD.p_lay:dtype(), "float64")
  local n = 0
  for _, gas in ipairs(R.gas_names()) do
    lu.assertNotNil(PD.vmr[gas], gas)
    lu.assertEquals(PD.vmr[gas]:size(), { 100, 60 }, gas)
    n = n + 1
  end
  lu.assertEquals(n, 18)
end

function TestLoad.test_orientation_top_first()
  local p = PD.p_lev:totable()
  for s = 1, 100 do
    lu.assertTrue(p[s][1] < 1, "top level first") -- 0.01 Pa in the file
    lu.assertTrue(p[s][61] > 5e4, "surface last")
    for l = 1, 60 do lu.assertTrue(p[s][l + 1] > p[s][l]) end
  end
  -- layer pressures lie between their levels
  lu.assertTrue(((PD.p_lay - PD.p_lev:narrow(2, 1, 60)):min():item()) > 0)
  lu.assertTrue(((PD.p_lev:narrow(2, 2, 60) - PD.p_lay):min():item()) > 0)
  -- no downwelling longwave at the top, plenty at the surface; OLR below surface emission
  lu.assertTrue(maxabs(PD.rld:select(2, 1)) < 1e-3)
  lu.assertTrue(PD.rld:select(2, 61):min():item() > 50)
  lu.assertTrue((PD.rlu:select(2, 1) - PD.rlu:select(2, 61)):max():item() < 0)
end

function TestLoad.test_units()
  -- present day, with the units attributes ("1.e-6", "1.e-9", "1.e-12", "1") applied
  lu.assertAlmostEquals(PD.gm.co2, 397.547e-6, 1e-9)
  lu.assertAlmostEquals(PD.gm.ch4, 1831.47e-9, 1e-12)
  lu.assertAlmostEquals(PD.gm.n2o, 326.988e-9, 1e-12)
  lu.assertAlmostEquals(PD.gm.cfc11, 233.080e-12, 1e-15)
  lu.assertAlmostEquals(PD.gm.co, 1.2e-7, 1e-12)
  lu.assertAlmostEquals(PD.gm.o2, 0.209, 1e-7)
  lu.assertAlmostEquals(PD.gm.n2, 0.781, 1e-7)
  lu.assertAlmostEquals(PD.vmr.co2[17][23], PD.gm.co2, 0)
  -- CO2 over the 18 experiments: 0.5 x PI (142 ppm) .. 8 x PI (2275 ppm)
  lu.assertAlmostEquals(PD.gm_range.co2[1], 142.1585e-6, 1e-10)
  lu.assertAlmostEquals(PD.gm_range.co2[2], 2274.536e-6, 1e-9)
  lu.assertEquals(PD.gm_range.cfc11[1], 0) -- pre-industrial: none
  -- profiles: water vapour and ozone are mole fractions already
  lu.assertTrue(PD.vmr.h2o:min():item() > 5e-7 and PD.vmr.h2o:max():item() < 0.05)
  lu.assertTrue(PD.vmr.o3:min():item() > 5e-9 and PD.vmr.o3:max():item() < 2e-5)
  lu.assertTrue(PD.t_lay:min():item() > 170 and PD.t_lay:max():item() < 320)
  lu.assertAlmostEquals(PD.sfc_emis:min():item(), 0.98, 1e-6)
end

function TestLoad.test_experiments()
  lu.assertEquals(#rfmip.EXPERIMENTS, 18)
  local x4 = rfmip.load { experiment = 3, fluxes = false }
  lu.assertEquals(x4.label, "4xCO2")
  lu.assertNil(x4.rld)
  local pi = rfmip.load { experiment = 2, fluxes = false }
  lu.assertAlmostEquals(x4.gm.co2 / pi.gm.co2, 4, 1e-6)
  local warm = rfmip.load { experiment = 14, fluxes = false }
  lu.assertEquals(warm.label, "+4K")
  lu.assertAlmostEquals((warm.t_lay - PD.t_lay):mean():item(), 4, 1e-3)
  raises("experiment must be an integer 1..18", rfmip.load, { experiment = 19 })
  raises("unknown option 'expt'", rfmip.load, { expt = 1 })
  raises("MIMIC_RFMIP_DIR", rfmip.load, { dir = "/nonexistent" })
end

-- --- perturbations ------------------------------------------------------------------------
TestPerturb = {}

function TestPerturb.test_shapes_and_ranges()
  local s = rfmip.perturb(PD, mimic.Generator(11), { n = 300, t_amp = 4, h2o_scale = { 0.3, 3 } })
  lu.assertEquals(s.t_lay:size(), { 300, 60 })
  lu.assertEquals(s.t_lev:size(), { 300, 61 })
  lu.assertEquals(s.p_lev:size(), { 300, 61 })
  lu.assertEquals(s.t_sfc:size(), { 300 })
  lu.assertEquals(#s.site, 300)
  for _, gas in ipairs(R.gas_names()) do lu.assertEquals(s.vmr[gas]:size(), { 300, 60 }, gas) end
  -- sites cycle in order; pressures are the site's
  lu.assertEquals(s.site[1], 1)
  lu.assertEquals(s.site[101], 1)
  lu.assertEquals(maxabs(s.p_lev[101] - PD.p_lev[1]), 0)
  -- scale draws in their log-uniform ranges; ozone is exactly scaled
  lu.assertTrue(s.h2o_scale:min():item() >= 0.3 and s.h2o_scale:max():item() <= 3)
  lu.assertTrue(s.o3_scale:min():item() >= 0.5 and s.o3_scale:max():item() <= 2)
  local o3s = s.o3_scale:totable()
  lu.assertAlmostEquals(maxabs(s.vmr.o3[7] - PD.vmr.o3[7] * o3s[7]), 0, 1e-20)
  -- well-mixed gases inside the range the 18 experiments span, and not constant
  for gas, r in pairs(PD.gm_range) do
    local v = s.vmr[gas]
    lu.assertTrue(v:min():item() >= r[1] - 1e-18 and v:max():item() <= r[2] + 1e-18, gas)
    if r[2] > r[1] then lu.assertTrue(v:std():item() > 0, gas) end
  end
  -- water vapour: never above saturation (where the cap applies), scaled otherwise
  local q, t, p = s.vmr.h2o:totable(), s.t_lay:totable(), s.p_lay:totable()
  local qs, hs = PD.vmr.h2o:totable(), s.h2o_scale:totable()
  local capped = 0
  for i = 1, 300 do
    for l = 1, 60 do
      local cap = rfmip.saturation_vmr(p[i][l], t[i][l])
      lu.assertTrue(q[i][l] <= cap, "saturation")
      local want = qs[s.site[i]][l] * hs[i]
      if want > cap then capped = capped + 1 else lu.assertAlmostEquals(q[i][l], want, 1e-15) end
    end
  end
  lu.assertTrue(capped > 0, "a 3x moistening must hit saturation somewhere")
  -- temperatures: offsets applied, clamped to the physical range
  lu.assertTrue(s.t_lay:min():item() >= 150 and s.t_lay:max():item() <= 350)
  lu.assertAlmostEquals(maxabs(s.t_lev[5] - PD.t_lev[5] - s.t_offset[5]), 0, 1e-9) -- site 5, unclamped
end

function TestPerturb.test_gaussian_process_statistics()
  -- amplitude and vertical correlation of the temperature offsets, at one site
  local n = 2000
  local s = rfmip.perturb(PD, mimic.Generator(5), { n = n, sites = { 42 }, t_amp = 2, t_corr = 1 })
  local off = s.t_offset
  lu.assertAlmostEquals(off:std():item(), 2, 0.15)
  local lp = PD.p_lev[42]:log():totable()
  -- find a pair of levels ~0.1 apart in ln p and one ~4 apart
  local function corr(a, b)
    local x, y = off:select(2, a), off:select(2, b)
    x, y = x - x:mean(), y - y:mean()
    return ((x * y):mean() / (x:std() * y:std())):item()
  end
  local a, b, c
  for l = 30, 60 do
    if not b and lp[l + 1] - lp[l] < 0.2 then a, b = l, l + 1 end
  end
  for l = 1, 61 do
    if lp[61] - lp[l] > 4 then c = l end
  end
  lu.assertNotNil(b)
  lu.assertNotNil(c)
  local d_near, d_far = lp[b] - lp[a], lp[61] - lp[c]
  local r_near, r_far = corr(a, b), corr(c, 61)
  -- squared exponential: exp(-d^2 / 2)
  lu.assertAlmostEquals(r_near, math.exp(-d_near * d_near / 2), 0.05)
  lu.assertTrue(math.abs(r_far) < 0.1, "far levels independent: " .. r_far .. " at d = " .. d_far)
  -- the skin follows the lowest level
  lu.assertAlmostEquals(maxabs(s.t_sfc - PD.t_sfc[42] - off:select(2, 61)), 0, 1e-9)
end

function TestPerturb.test_determinism()
  local a = rfmip.perturb(PD, mimic.Generator(7), { n = 50 })
  local b = rfmip.perturb(PD, mimic.Generator(7), { n = 50 })
  local c = rfmip.perturb(PD, mimic.Generator(8), { n = 50 })
  lu.assertEquals(maxabs(a.t_lay - b.t_lay), 0)
  lu.assertEquals(maxabs(a.vmr.h2o - b.vmr.h2o), 0)
  lu.assertEquals(maxabs(a.vmr.co2 - b.vmr.co2), 0)
  lu.assertTrue(maxabs(a.t_lay - c.t_lay) > 0.1)
end

function TestPerturb.test_errors()
  raises("rng", rfmip.perturb, PD, nil)
  raises("unknown option 'amp'", rfmip.perturb, PD, mimic.Generator(1), { amp = 3 })
  raises("site 101 out of range", rfmip.perturb, PD, mimic.Generator(1), { sites = { 101 } })
  raises("scale ranges", rfmip.perturb, PD, mimic.Generator(1), { h2o_scale = { 2, 1 } })
end

function TestPerturb.test_saturation()
  -- tables (Wexler / Murphy & Koop): 2339 Pa at 20 C over water, 12.84 Pa at -40 C over ice;
  -- Alduchov & Eskridge's Magnus forms are within 0.4 %
  lu.assertAlmostEquals(rfmip.saturation_pressure(293.15), 2339, 0.004 * 2339)
  lu.assertAlmostEquals(rfmip.saturation_pressure(273.15), 610.94, 1e-9)
  lu.assertAlmostEquals(rfmip.saturation_pressure(233.15), 12.84, 0.1)
  lu.assertEquals(rfmip.saturation_vmr(1, 250), math.huge)
  local es = rfmip.saturation_pressure(290)
  lu.assertAlmostEquals(rfmip.saturation_vmr(1e5, 290), es / (1e5 - es), 1e-15)
end

-- --- site splits --------------------------------------------------------------------------
TestSplit = {}

function TestSplit.test_disjoint_cover_deterministic()
  local train, test = rfmip.split_sites(100, 20, 3)
  lu.assertEquals(#train, 80)
  lu.assertEquals(#test, 20)
  local seen = {}
  for _, s in ipairs(train) do seen[s] = "train" end
  for _, s in ipairs(test) do
    lu.assertNil(seen[s], "site in both")
    seen[s] = "test"
  end
  for s = 1, 100 do lu.assertNotNil(seen[s]) end
  local train2, test2 = rfmip.split_sites(100, 20, 3)
  lu.assertEquals(test2, test)
  lu.assertEquals(train2, train)
  local _, test3 = rfmip.split_sites(100, 20, 4)
  lu.assertNotEquals(test3, test)
  raises("ntest must be", rfmip.split_sites, 10, 11, 1)
end

-- --- the binding ----------------------------------------------------------------------------
TestBinding = {}

function TestBinding.test_planck_and_angles()
  local sigma = 5.670374419e-8
  lu.assertAlmostEquals(R.planck_band(0, math.huge, 288) * math.pi / (sigma * 288 ^ 4), 1, 1e-10)
  local mu, w = R.angles(3)
  lu.assertEquals(#mu, 3)
  lu.assertAlmostEquals(w[1] + w[2] + w[3], 0.5, 1e-15)
  raises("planck_band: invalid arguments", R.planck_band, 20, 10, 300)
  raises("nmu = 9", R.angles, 9)
end

function TestBinding.test_lw_solve()
  -- transparent atmosphere: the surface emission everywhere, nothing down
  local b = R.planck_band(0, math.huge, 300)
  local r = R.lw_solve { tau = mimic.zeros({ 2, 5, 1 }), lev_src = mimic.ones({ 2, 6, 1 }),
    sfc_src = mimic.full({ 2, 1 }, b, "float64"), sfc_emis = 0.5, nmu = 3, gpt_fluxes = true }
  lu.assertEquals(r.flux_up:size(), { 2, 6 })
  lu.assertAlmostEquals(maxabs(r.flux_up - 0.5 * math.pi * b), 0, 1e-9)
  lu.assertEquals(maxabs(r.flux_dn), 0)
  lu.assertEquals(r.gpt_flux_up:size(), { 2, 6, 1 })
  local bad = mimic.zeros({ 2, 5, 1 })
  bad[2][3][1] = -1
  raises("tau[col 1][2][gpt 0] = -1", R.lw_solve, { tau = bad, lev_src = mimic.ones({ 2, 6, 1 }),
    sfc_src = mimic.ones({ 2, 1 }), sfc_emis = 1 })
  raises("'lev_src' has size 5 in dim 2, expected 6", R.lw_solve, { tau = bad,
    lev_src = mimic.ones({ 2, 5, 1 }), sfc_src = mimic.ones({ 2, 1 }), sfc_emis = 1 })
end

function TestBinding.test_lw_fluxes_callback()
  -- gray optics on the first 3 present-day sites through a Lua callback
  local n = 3
  local vmr = {}
  for gas, v in pairs(PD.vmr) do vmr[gas] = v:narrow(1, 1, n) end
  local calls = 0
  local args = {
    p_lay = PD.p_lay:narrow(1, 1, n), t_lay = PD.t_lay:narrow(1, 1, n), p_lev = PD.p_lev:narrow(1, 1, n),
    t_lev = PD.t_lev:narrow(1, 1, n), t_sfc = PD.t_sfc:narrow(1, 1, n), sfc_emis = PD.sfc_emis:narrow(1, 1, n),
    vmr = vmr, nu1 = { 10 }, nu2 = { 3250 }, nmu = 1,
    optics = function(st)
      calls = calls + 1
      lu.assertEquals(st.column, calls)
      lu.assertEquals(st.p:size(), { 60 })
      local tau = (st.vmr.h2o * st.col_dry * 5e-23 + st.col_dry * 2e-26):view(60, 1)
      return tau, nil
    end,
  }
  local r = R.lw_fluxes(args)
  lu.assertEquals(calls, n)
  lu.assertEquals(r.flux_up:size(), { n, 61 })
  lu.assertEquals(r.heating:size(), { n, 60 })
  local olr, sfc = r.flux_up:select(2, 1):totable(), r.flux_dn:select(2, 61):totable()
  for c = 1, n do
    lu.assertTrue(olr[c] > 150 and olr[c] < 350, "OLR " .. olr[c])
    lu.assertTrue(sfc[c] > 100 and sfc[c] < 450, "surface down " .. sfc[c])
  end
  args.optics = function() error("surrogate exploded") end
  raises("surrogate exploded", R.lw_fluxes, args)
  args.optics = function() return mimic.zeros({ 60, 2 }) end
  raises("must be a tensor [nlay=60, ngpt=1]", R.lw_fluxes, args)
  args.optics = function() return mimic.full({ 60, 1 }, -1) end
  raises("tau = -1", R.lw_fluxes, args)
  args.vmr = { xenon = 1 }
  raises("unknown gas 'xenon'", R.lw_fluxes, args)
end

os.exit(lu.LuaUnit.run())
