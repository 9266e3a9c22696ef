-- mimic.gasoptics (lua/mimic/gasoptics.lua): data around the RFMIP atmospheres,
-- targets from the reference kernel, encoders, training, model files with the
-- rad_nn.h contract, surrogate optics, fluxes and error metrics.
local lu = require "luaunit"
local mimic = require "mimic"
local go = require "mimic.gasoptics"
local H = require "helpers"
local raises, close = H.raises, H.close

local R = mimic.radiation
local kd = go.kdist()
local NGPT = kd:info().ngpt

local function maxabs(t) return t:abs():max():item() end
local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  os.execute("mkdir -p " .. d)
  return d
end

-- A small shared set: 3 sites of PD, 2 perturbed columns each (180 layers).
local COLS = go.sample { sites = { 3, 17, 60 }, experiments = { 1 }, per_site = 2, seed = 5 }
local DS = go.dataset(COLS, kd)

-- --- sample, columns ----------------------------------------------------------------------
TestSample = {}

function TestSample.test_counts_and_layout()
  local c = go.sample { sites = { 1, 2 }, experiments = { 1, 3 }, per_site = 3, seed = 1 }
  lu.assertEquals(c.n, 2 * 2 * 3)
  lu.assertEquals(c.nlay, 60)
  lu.assertEquals(c.p_lay:size(), { 12, 60 })
  lu.assertEquals(c.p_lev:size(), { 12, 61 })
  lu.assertEquals(c.t_sfc:size(), { 12 })
  for _, gas in ipairs(R.gas_names()) do lu.assertEquals(c.vmr[gas]:size(), { 12, 60 }, gas) end
  lu.assertEquals(#c.site, 12)
  lu.assertEquals(c.experiment[1], 1)
  lu.assertEquals(c.experiment[12], 3)
  lu.assertNil(c.rld) -- perturbed columns have no RRTMGP fluxes
end

function TestSample.test_deterministic_and_seeded()
  local a = go.sample { sites = { 5 }, per_site = 2, seed = 7 }
  local b = go.sample { sites = { 5 }, per_site = 2, seed = 7 }
  local c = go.sample { sites = { 5 }, per_site = 2, seed = 8 }
  lu.assertEquals(maxabs(a.t_lay - b.t_lay), 0)
  lu.assertTrue(maxabs(a.t_lay - c.t_lay) > 0)
end

function TestSample.test_base_columns_are_the_rfmip_profiles()
  local c = go.sample { sites = { 4, 9 }, experiments = { 3 }, per_site = 0 }
  local e = mimic.rfmip.load { experiment = 3 }
  lu.assertEquals(c.n, 2)
  lu.assertEquals(maxabs(c.t_lay[2] - e.t_lay[9]), 0)
  lu.assertEquals(maxabs(c.vmr.co2[1] - e.vmr.co2[4]), 0)
  lu.assertEquals(maxabs(c.rlu[2] - e.rlu[9]), 0)
end

function TestSample.test_pinned_columns_keep_the_experiment_gases()
  local e = go.rfmip(2)
  local c = go.sample { sites = { 10 }, experiments = { 2 }, per_site = 4, pin_gm = 0.5, seed = 3 }
  local co2 = c.vmr.co2:narrow(2, 1, 1):reshape({ 4 }):totable()
  local pinned = 0
  for i = 1, 4 do
    if co2[i] == e.gm.co2 then pinned = pinned + 1 end
    lu.assertTrue(co2[i] >= e.gm_range.co2[1] and co2[i] <= e.gm_range.co2[2])
  end
  lu.assertEquals(pinned, 2)
end

function TestSample.test_columns_and_concat()
  local a = go.columns(COLS, { 2, 5 })
  lu.assertEquals(a.n, 2)
  lu.assertEquals(maxabs(a.t_lay[2] - COLS.t_lay[5]), 0)
  lu.assertEquals(a.site[2], COLS.site[5])
  local b = go.concat_columns({ a, go.columns(COLS, { 1 }) })
  lu.assertEquals(b.n, 3)
  lu.assertEquals(maxabs(b.vmr.h2o[3] - COLS.vmr.h2o[1]), 0)
end

-- --- layers, dataset ------------------------------------------------------------------------
TestLayers = {}

-- The state the lw_fluxes callback receives for each column is exactly the
-- rows of go.layers (col_dry included).
function TestLayers.test_col_dry_is_what_lw_fluxes_uses()
  local st = go.layers(COLS)
  lu.assertEquals(st.p:size(), { COLS.n * 60 })
  local seen = 0
  local info = kd:info()
  R.lw_fluxes { p_lay = COLS.p_lay, t_lay = COLS.t_lay, p_lev = COLS.p_lev, t_lev = COLS.t_lev, t_sfc = COLS.t_sfc,
    sfc_emis = COLS.sfc_emis, vmr = COLS.vmr, nu1 = info.nu1, nu2 = info.nu2,
    optics = function(s)
      local rows = st.col_dry:narrow(1, (s.column - 1) * 60 + 1, 60)
      lu.assertEquals(maxabs(s.col_dry - rows), 0)
      lu.assertEquals(maxabs(s.p - st.p:narrow(1, (s.column - 1) * 60 + 1, 60)), 0)
      seen = seen + 1
      return kd:optics(s)
    end }
  lu.assertEquals(seen, COLS.n)
end

-- Fluxes with optics = kd and with a function of go.layers' state are identical.
function TestLayers.test_fluxes_kd_equal_function_of_layers()
  local a = go.fluxes(COLS, kd)
  local b = go.fluxes(COLS, function(st) return kd:optics(st) end)
  lu.assertEquals(maxabs(a.flux_up - b.flux_up), 0)
  lu.assertEquals(maxabs(a.flux_dn - b.flux_dn), 0)
  lu.assertEquals(maxabs(a.heating - b.heating), 0)
end

function TestLayers.test_dataset_targets_are_the_kernel()
  local st = go.layers(COLS)
  local tau, pf = kd:optics(st)
  lu.assertEquals(DS.n, COLS.n * 60)
  lu.assertEquals(DS.k:size(), { DS.n, NGPT })
  lu.assertEquals(DS.k:dtype(), "float64")
  close(DS.k * st.col_dry:reshape({ DS.n, 1 }), tau, 1e-14, 0, "k * col_dry")
  lu.assertEquals(maxabs(DS.pf - pf), 0)
  lu.assertEquals(maxabs(DS.x - R.nn_features(st)), 0)
  lu.assertTrue(DS.k:min():item() > 0)
end

-- --- encoders, training, files ----------------------------------------------------------------
TestTrain = {}

function TestTrain.test_encoders_round_trip()
  for _, target in ipairs({ "k", "planck" }) do
    local e = go.encoders(DS, target)
    local y = target == "k" and DS.k or DS.pf
    close(e.output:decode(e.output:encode(y)), y, 1e-10, 0, target .. " output")
    close(e.input:decode(e.input:encode(DS.x)), DS.x, 1e-12, 1e-12, target .. " input")
    local z = e.output:encode(y)
    lu.assertTrue(maxabs(z:mean(1)) < 1e-8, target .. ": standardised mean")
  end
  local s = go.encoders(DS, "k").output:state()
  lu.assertEquals(s.kind, "chain")
  lu.assertEquals(s[1].kind, "log")
  lu.assertEquals(s[1].offset, 0)
  lu.assertEquals(s[2].kind, "standard")
  -- a feature constant in the data (a well-mixed gas of one experiment) gets std 1, not eps
  local sd = go.encoders(go.dataset(go.sample { sites = { 1 }, per_site = 0 }), "planck").input.std:totable()
  lu.assertEquals(sd[18], 1)
end

local NETS = {}
local function nets()
  if not NETS.k then
    for _, t in ipairs({ "k", "planck" }) do
      NETS[t] = go.train { data = DS, val = DS, target = t, hidden = { 16 }, epochs = 4, batch = 32, verbose = false, seed = 1 }
    end
  end
  return NETS
end

function TestTrain.test_training_reduces_loss()
  for _, t in ipairs({ "k", "planck" }) do
    local net = nets()[t]
    local h = net.history
    lu.assertEquals(#h, 4)
    lu.assertTrue(h[#h].loss < h[1].loss, t)
    local y = net:predict(DS.x)
    lu.assertEquals(y:size(), { DS.n, NGPT })
    lu.assertEquals(y:dtype(), "float64")
  end
  lu.assertTrue(nets().k:predict(DS.x):min():item() > 0) -- k = exp(...) > 0
  lu.assertNotNil(nets().k.metrics.val_rmse_ln_k)
end

function TestTrain.test_save_model_file_contract()
  local d = tmpdir()
  local n = nets()
  go.save(n.k, d .. "/tau.h5", { meta = { note = "test" } })
  go.save(n.planck, d .. "/planck.h5")
  local m = mimic.load_model(d .. "/tau.h5")
  lu.assertEquals(#m.contract.inputs, 1)
  lu.assertEquals(m.contract.inputs[1].name, "features")
  lu.assertEquals(m.contract.inputs[1].units, "mimic-rad-nn-features-1")
  lu.assertEquals(m.contract.inputs[1].size, 18)
  lu.assertEquals(m.contract.outputs[1].name, "k")
  lu.assertEquals(m.contract.outputs[1].units, "cm^2")
  lu.assertEquals(m.contract.outputs[1].size, NGPT)
  lu.assertEquals(m.meta.ntrain, DS.n)
  lu.assertEquals(m.meta.seed, 1)
  lu.assertEquals(m.meta.note, "test")
  lu.assertEquals(m.meta.target, "k")
  lu.assertNotNil(m.meta.created)
  lu.assertNotNil(m.meta.git_commit)
  lu.assertNotNil(m.meta.val_rmse_ln_k)
  close(m:forward(DS.x), n.k:predict(DS.x), 1e-4, 0, "file vs net")
  local p = mimic.load_model(d .. "/planck.h5")
  lu.assertEquals(p.contract.outputs[1].name, "planck_frac")
  lu.assertEquals(p.contract.outputs[1].units, "1")
  -- the guard, saved beside
  local g = go.fit_guard(DS.x, d .. "/guard.h5")
  local g2 = mimic.guard.load(d .. "/guard.h5")
  lu.assertEquals(g2:nfeat(), 18)
  lu.assertEquals(g:check(DS.x):double():sum():item(), 0)
  os.execute("rm -rf " .. d)
end

-- The Lua optics: tau = k col_dry, Planck fractions clamped and renormalised per band.
function TestTrain.test_lua_optics()
  local n = nets()
  local o = go.nn_optics { tau = n.k, planck = n.planck, lua = true }
  local tau, pf = o:optics(DS.state)
  close(tau, n.k:predict(DS.x) * DS.state.col_dry:reshape({ DS.n, 1 }), 1e-12, 0, "tau")
  local sums = pf:reshape({ DS.n, 16, NGPT // 16 }):sum(3)
  close(sums, mimic.ones({ DS.n, 16 }, "float64"), 1e-12, 0, "band sums")
  lu.assertTrue(pf:min():item() >= 0)
  local f = go.fluxes(COLS, o)
  lu.assertEquals(f.flux_up:size(), { COLS.n, 61 })
  lu.assertEquals(o:stats().layers, 2 * DS.n)
end

-- Layers the guard flags get the reference kernel's optics.
function TestTrain.test_lua_optics_guard_falls_back_to_kernel()
  local n = nets()
  local g = go.fit_guard(DS.x)
  local o = go.nn_optics { tau = n.k, planck = n.planck, guard = g, lua = true }
  local hot = { p = DS.state.p, t = DS.state.t + 120, col_dry = DS.state.col_dry, vmr = DS.state.vmr }
  local tau, pf = o:optics(hot)
  local tr, pr = kd:optics(hot)
  lu.assertEquals(maxabs(tau - tr), 0)
  lu.assertEquals(maxabs(pf - pr), 0)
  lu.assertEquals(o:stats().fallback, DS.n)
  o:optics(DS.state) -- inside the training range: nothing flagged
  lu.assertEquals(o:stats().fallback, DS.n)
end

-- The upper pair serves p < p_split, the lower one the rest.
function TestTrain.test_split_and_upper_pair()
  local n = nets()
  local p_split = kd:info().p_split
  local lo, up = go.split(DS)
  lu.assertEquals(lo.n + up.n, DS.n)
  lu.assertTrue(lo.state.p:min():item() >= p_split)
  lu.assertTrue(up.state.p:max():item() < p_split)
  lu.assertEquals(maxabs(go.rows(DS, { 7 }).k - DS.k:narrow(1, 7, 1)), 0)
  -- upper pair = the same nets scaled: k x 2 above p_split
  local twice = { predict = function(_, x) return n.k:predict(x) * 2 end }
  local o = go.nn_optics { tau = n.k, planck = n.planck, lua = true, tau_upper = setmetatable(twice, getmetatable(n.k)),
    planck_upper = n.planck }
  local tau = o:optics(DS.state)
  local base = n.k:predict(DS.x) * DS.state.col_dry:reshape({ DS.n, 1 })
  local ratio = (tau / base):narrow(2, 1, 1):reshape({ DS.n }):totable()
  local p = DS.state.p:totable()
  for i = 1, DS.n do lu.assertAlmostEquals(ratio[i], p[i] < p_split and 2 or 1, 1e-12) end
end

-- The C adapter (radiation.nn, when built) and the Lua optics agree on the same files.
function TestTrain.test_c_adapter_matches_lua_optics()
  if not R.nn then return end
  local d = tmpdir()
  local n = nets()
  go.save(n.k, d .. "/tau.h5")
  go.save(n.planck, d .. "/planck.h5")
  local c = go.nn_optics { tau = d .. "/tau.h5", planck = d .. "/planck.h5" }
  local l = go.nn_optics { tau = d .. "/tau.h5", planck = d .. "/planck.h5", lua = true }
  local tc, pc = c:optics(DS.state)
  local tl, pl = l:optics(DS.state)
  close(tc, tl, 1e-3, 0, "tau C vs Lua")
  close(pc, pl, 1e-3, 1e-6, "planck C vs Lua")
  os.execute("rm -rf " .. d)
end

-- --- metrics ------------------------------------------------------------------------------
TestMetrics = {}

function TestMetrics.test_compare_identical_is_zero()
  local f = go.fluxes(COLS, kd)
  local c = go.compare(f, f, COLS)
  lu.assertEquals(c.max_mae, 0)
  lu.assertEquals(c.max_p95, 0)
  lu.assertEquals(c.olr_bias, 0)
  lu.assertEquals(c.sfc_dn_bias, 0)
  lu.assertEquals(c.heating.mae, 0)
  lu.assertEquals(c.heating.max, 0)
  for _, k in ipairs({ "up", "dn", "net" }) do
    for _, s in ipairs({ "mean", "mae", "rmse", "p05", "p50", "p95" }) do
      lu.assertEquals(#c.per_level[k][s], 61)
      for l = 1, 61 do lu.assertEquals(c.per_level[k][s][l], 0) end
    end
  end
  lu.assertEquals(#c.p_lev, 61)
end

function TestMetrics.test_compare_known_offset()
  local f = go.fluxes(COLS, kd)
  local g = { flux_up = f.flux_up + 1, flux_dn = f.flux_dn, heating = f.heating }
  local c = go.compare(f, g, COLS)
  lu.assertAlmostEquals(c.olr_bias, 1, 1e-12)
  lu.assertAlmostEquals(c.per_level.net.mean[30], -1, 1e-12) -- net = down - up
  lu.assertAlmostEquals(c.max_mae, 1, 1e-12)
  lu.assertAlmostEquals(c.per_level.up.p95[10], 1, 1e-12)
end

function TestMetrics.test_forcing_4xco2_positive()
  local pi = go.sample { sites = { 3, 50 }, experiments = { 2 }, per_site = 0 }
  local x4 = go.sample { sites = { 3, 50 }, experiments = { 3 }, per_site = 0 }
  local fa, fb = go.fluxes(x4, kd), go.fluxes(pi, kd)
  local r = go.forcing(fa, fb, fa, fb)
  lu.assertTrue(r.toa.ref > 3, "4xCO2 - PI forcing at the top is positive (a few W m^-2)")
  lu.assertEquals(r.toa.err_max, 0)
  lu.assertEquals(r.sfc.err_mean, 0)
end

function TestMetrics.test_apriori_of_the_kernel_is_zero()
  local exact = { optics = function(_, st) return kd:optics(st) end }
  local a = go.apriori(exact, DS)
  lu.assertTrue(a.ln_tau_rmse < 1e-12)
  lu.assertTrue(a.rel_tau_mae < 1e-12)
  lu.assertEquals(a.pf_mae, 0)
  lu.assertEquals(#a.per_gpt.ln_tau_rmse, NGPT)
  lu.assertEquals(#a.per_level.rel_tau_mae, 60)
  -- one net: its own target's entries only; rows of a data set: no per-level view
  local t = go.apriori(nets().k, DS)
  lu.assertTrue(t.ln_tau_rmse > 0)
  lu.assertNil(t.pf_mae)
  local p = go.apriori(nets().planck, go.rows(DS, { 1, 2, 3 }))
  lu.assertNil(p.ln_tau_rmse)
  lu.assertTrue(p.pf_mae > 0)
  lu.assertNil(p.per_level)
end

-- --- errors --------------------------------------------------------------------------------
TestErrors = {}

function TestErrors.test_bad_options_name_the_option()
  raises("unknown option 'per_sit'", go.sample, { per_sit = 1 })
  raises("option 'sites'", go.sample, { sites = { 101 } })
  raises("option 'experiments'", go.sample, { experiments = { 19 } })
  raises("option 'per_site'", go.sample, { per_site = -1 })
  raises("option 'pin_gm'", go.sample, { pin_gm = 2 })
  raises("must not set 'n'", go.sample, { perturb = { n = 3 } })
  raises("unknown option 't_ampl'", go.sample, { sites = { 1 }, perturb = { t_ampl = 3 } })
  raises("option 'target'", go.train, { data = DS, target = "tau" })
  raises("option 'data'", go.train, { target = "k" })
  raises("option 'hidden'", go.train, { data = DS, hidden = { 0 } })
  raises("option 'activation'", go.train, { data = DS, activation = "swish" })
  raises("option 'epochs'", go.train, { data = DS, epochs = 0 })
  raises("unknown option 'epoch'", go.train, { data = DS, epoch = 3 })
  raises("options 'tau' and 'planck'", go.nn_optics, { tau = "x.h5" })
  raises("unknown option 'gaurd'", go.nn_optics, { tau = "a", planck = "b", gaurd = "c" })
  raises("fit_guard: x must be", go.fit_guard, mimic.zeros(3, 4))
  raises("optics is required", go.fluxes, COLS)
  raises("unknown option 'meta_data'", go.save, nets().k, "/nonexistent/x.h5", { meta_data = {} })
  raises("compare: sur must be", go.compare, { flux_up = mimic.zeros(1, 2), flux_dn = mimic.zeros(1, 2) }, {})
end

os.exit(lu.LuaUnit.run())
