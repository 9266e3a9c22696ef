-- mimic.rfmip: the RFMIP clear-sky atmospheres (data/rfmip/, see its README.md)
-- and perturbed samples around them, for the radiation use case (issue #9).
--
--   rfmip.load{dir=, experiment=1, fluxes=true}   one experiment's 100 sites as float64 tensors
--   rfmip.perturb(profiles, rng, opts)             training / test samples around them
--   rfmip.split_sites(nsites, ntest, seed)         held-out whole sites
--   rfmip.saturation_vmr(p, t)                     the water-vapour cap perturb uses
--
-- Orientation: index 1 is the top of the atmosphere (pressure increases with the
-- index), as in rad_atmos.h and as the files store it; load() checks it.
local mimic = require "mimic"

local M = {}

M.INPUT = "multiple_input4MIPs_radiation_RFMIP_UColorado-RFMIP-1-2_none.nc"
M.FLUX_FILES = {
  rld = "rld_Efx_RTE-RRTMGP-181204_rad-irf_r1i1p1f1_gn.nc",
  rlu = "rlu_Efx_RTE-RRTMGP-181204_rad-irf_r1i1p1f1_gn.nc",
  rsd = "rsd_Efx_RTE-RRTMGP-181204_rad-irf_r1i1p1f1_gn.nc",
  rsu = "rsu_Efx_RTE-RRTMGP-181204_rad-irf_r1i1p1f1_gn.nc",
}

-- The file's expt_label (a variable-length string variable, which mimic.data
-- does not read), copied with h5py; the test checks the count against the file.
M.EXPERIMENTS = {
  "Present day (PD)", "Pre-industrial (PI) greenhouse gas concentrations", "4xCO2", '"future"',
  "0.5xCO2", "2xCO2", "3xCO2", "8xCO2", "PI CO2", "PI CH4", "PI N2O", "PI O3", "PI HCs", "+4K",
  "+4K, const. RH", "PI all", '"future" all', "LGM",
}

-- rad_atmos.h gas -> RFMIP variable. h2o and o3 are profiles [expt, site, layer];
-- the others are global means [expt], broadcast to every site and layer. Every
-- gas of rad_atmos.h has an entry (none is left at zero).
M.GAS_VARS = {
  h2o = "water_vapor", o3 = "ozone",
  co2 = "carbon_dioxide_GM", ch4 = "methane_GM", n2o = "nitrous_oxide_GM", co = "carbon_monoxide_GM",
  o2 = "oxygen_GM", n2 = "nitrogen_GM", ccl4 = "carbon_tetrachloride_GM", cfc11 = "cfc11_GM",
  cfc12 = "cfc12_GM", hcfc22 = "hcfc22_GM", hfc143a = "hfc143a_GM", hfc125 = "hfc125_GM",
  hfc23 = "hfc23_GM", hfc32 = "hfc32_GM", hfc134a = "hfc134a_GM", cf4 = "cf4_GM",
}
M.PROFILE_GASES = { h2o = true, o3 = true }

local function default_dir()
  return os.getenv("MIMIC_RFMIP_DIR") or "data/rfmip"
end

-- The RFMIP "units" attribute as a factor: "1.e-6" -> 1e-6, "1" -> 1.
local function units_factor(f, var)
  local u = f:attr(var, "units")
  local x = u and tonumber(u)
  if not x then error(string.format("rfmip: units of '%s' are %q, expected a number like \"1.e-6\"", var, tostring(u)), 3) end
  return x
end

local check_opts = require("mimic.util").check_opts

function M.gas_names()
  return mimic.radiation.gas_names()
end

-- load{dir=, experiment=1, fluxes=true} -> {
--   experiment, label, nsite, nlay,
--   p_lay [site, lay], p_lev [site, lev], t_lay, t_lev (Pa, K), t_sfc [site], sfc_emis [site],
--   vmr = {gas = [site, lay]} (mol/mol, units attributes applied),
--   gm = {gas = value} this experiment's global means, gm_range = {gas = {min, max}} over the 18,
--   rld, rlu [site, lev] (W m^-2, RTE-RRTMGP-181204, level 1 = top) unless fluxes = false,
--   profile_weight [site], lat, lon [site] }
function M.load(opts)
  opts = opts or {}
  check_opts("rfmip.load", opts, { dir = true, experiment = true, fluxes = true })
  local dir = opts.dir or default_dir()
  local e = opts.experiment or 1
  if math.type(e) ~= "integer" or e < 1 or e > #M.EXPERIMENTS then
    error(string.format("rfmip.load: experiment must be an integer 1..%d (1 = present day), got %s", #M.EXPERIMENTS,
      tostring(e)), 2)
  end
  local path = dir .. "/" .. M.INPUT
  local ok, f = pcall(mimic.h5open, path)
  if not ok then error("rfmip.load: " .. tostring(f) .. " (set dir= or MIMIC_RFMIP_DIR to the folder with the RFMIP files)", 2) end
  local nexp = f:info("temp_layer").shape[1]
  if nexp ~= #M.EXPERIMENTS then error(string.format("rfmip.load: %s has %d experiments, expected %d", path, nexp, #M.EXPERIMENTS), 2) end
  local d64 = { dtype = "float64", finite = true }
  local row = { dtype = "float64", finite = true, start = e, count = 1 }
  local r = { experiment = e, label = M.EXPERIMENTS[e] }
  r.p_lay = f:read("pres_layer", d64)
  r.p_lev = f:read("pres_level", d64)
  r.t_lay = f:read("temp_layer", row)[1]
  r.t_lev = f:read("temp_level", row)[1]
  r.t_sfc = f:read("surface_temperature", row)[1]
  r.sfc_emis = f:read("surface_emissivity", d64)
  r.profile_weight = f:read("profile_weight", d64)
  r.lat = f:read("lat", d64)
  r.lon = f:read("lon", d64)
  r.nsite, r.nlay = r.p_lay:size(1), r.p_lay:size(2)
  -- orientation: pressure must increase with the index (top first)
  local pl = r.p_lev:totable()
  for s = 1, r.nsite do
    for l = 1, r.nlay do
      if not (pl[s][l + 1] > pl[s][l]) then
        error(string.format("rfmip.load: pres_level of site %d does not increase at level %d; expected the top first", s, l), 2)
      end
    end
  end
  r.vmr, r.gm, r.gm_range = {}, {}, {}
  for gas, var in pairs(M.GAS_VARS) do
    local k = units_factor(f, var)
    if M.PROFILE_GASES[gas] then
      r.vmr[gas] = f:read(var, row)[1] * k
    else
      local all = f:read(var, d64):totable()
      local lo, hi = math.huge, -math.huge
      for i = 1, #all do
        all[i] = all[i] * k
        lo, hi = math.min(lo, all[i]), math.max(hi, all[i])
      end
      r.gm[gas] = all[e]
      r.gm_range[gas] = { lo, hi }
      r.vmr[gas] = mimic.full({ r.nsite, r.nlay }, all[e], "float64")
    end
  end
  f:close()
  if opts.fluxes ~= false then
    for _, name in ipairs({ "rld", "rlu" }) do
      local ff <close> = mimic.h5open(dir .. "/" .. M.FLUX_FILES[name])
      local t = ff:read(name, row)[1]
      if t:size(1) ~= r.nsite or t:size(2) ~= r.nlay + 1 then
        error(string.format("rfmip.load: %s has shape [%d, %d] per experiment, expected [%d, %d]", name, t:size(1),
          t:size(2), r.nsite, r.nlay + 1), 2)
      end
      r[name] = t
    end
  end
  return r
end

-- --- saturation -------------------------------------------------------------------------

-- Saturation vapour pressure (Pa) over liquid water at T >= 273.15 K and over
-- ice below: the Magnus forms of Alduchov & Eskridge (1996), J. Appl. Meteor.
-- 35, 601-609 (their AERK and AERKi), accurate to ~0.4 % from -40 to 50 C (water)
-- and -80 to 0 C (ice).
function M.saturation_pressure(t)
  local c = t - 273.15
  if t >= 273.15 then return 610.94 * math.exp(17.625 * c / (c + 243.04)) end
  return 611.21 * math.exp(22.587 * c / (c + 273.86))
end

-- The largest water-vapour mixing ratio perturb allows (mol/mol dry air):
-- saturation, e_s / (p - e_s). Where e_s > p / 2 (the upper stratosphere and
-- mesosphere, where the vapour is ~5 ppmv, far from saturation) the ratio is
-- meaningless and no cap applies (math.huge).
function M.saturation_vmr(p, t)
  local es = M.saturation_pressure(t)
  if es > 0.5 * p then return math.huge end
  return es / (p - es)
end

-- --- perturbations ------------------------------------------------------------------------

-- Lower Cholesky factor of a symmetric positive-definite matrix (Lua tables).
local function cholesky(a, n)
  local l = {}
  for i = 1, n do l[i] = {} for j = 1, n do l[i][j] = 0 end end
  for j = 1, n do
    local s = a[j][j]
    for k = 1, j - 1 do s = s - l[j][k] * l[j][k] end
    if s <= 0 then return nil end
    l[j][j] = math.sqrt(s)
    for i = j + 1, n do
      local t = a[i][j]
      for k = 1, j - 1 do t = t - l[i][k] * l[j][k] end
      l[i][j] = t / l[j][j]
    end
  end
  return l
end

-- Linear interpolation weights of the points xs onto the uniform grid x0 + h (k - 1), k = 1..ng.
local function interp_weights(xs, x0, h, ng)
  local w = {}
  for i, x in ipairs(xs) do
    local u = (x - x0) / h
    local k = math.floor(u) + 1
    if k < 1 then k, u = 1, 0 elseif k >= ng then k, u = ng - 1, ng - 1 end
    local a = u - (k - 1)
    w[i] = { k, 1 - a, a }
  end
  return w
end

local PERTURB_OPTS = {
  n = true, sites = true, t_amp = true, t_corr = true, t_min = true, t_max = true, h2o_scale = true,
  o3_scale = true, gm_range = true, jitter = true,
}

-- perturb(profiles, rng, opts) -> samples in load()'s layout, dim 1 = sample:
--   {p_lay, p_lev, t_lay, t_lev [n, ...], t_sfc, sfc_emis [n], vmr = {gas = [n, lay]},
--    site = {1-based site of each sample}, t_offset [n, lev] (K, at the levels),
--    h2o_scale, o3_scale [n] (the draws), n, nlay}
-- opts: n (samples; default one per site), sites (list of 1-based sites to draw
-- around, cycled in order; default all), t_amp = 3 (K, std of the temperature
-- offset), t_corr = 1 (its correlation length in ln p), t_min = 150, t_max = 350
-- (K, clamp), h2o_scale = {0.5, 2}, o3_scale = {0.5, 2} (log-uniform factor
-- ranges), gm_range (default profiles.gm_range: uniform ranges of the well-mixed
-- gases), jitter = 1e-6 (relative nugget on the covariance diagonal).
-- Deterministic for a given generator state; draws from rng in a fixed order.
function M.perturb(profiles, rng, opts)
  opts = opts or {}
  check_opts("rfmip.perturb", opts, PERTURB_OPTS)
  if type(profiles) ~= "table" or not profiles.p_lay then error("rfmip.perturb: profiles must be a table from rfmip.load", 2) end
  if rng == nil then error("rfmip.perturb: rng (a mimic.Generator) is required for reproducible samples", 2) end
  local nsite, nlay = profiles.p_lay:size(1), profiles.p_lay:size(2)
  local nlev = nlay + 1
  local sites = opts.sites
  if not sites then sites = {} for s = 1, nsite do sites[s] = s end end
  if #sites < 1 then error("rfmip.perturb: sites is empty", 2) end
  for _, s in ipairs(sites) do
    if math.type(s) ~= "integer" or s < 1 or s > nsite then error("rfmip.perturb: site " .. tostring(s) .. " out of range 1.." .. nsite, 2) end
  end
  local n = opts.n or #sites
  local t_amp, t_corr = opts.t_amp or 3.0, opts.t_corr or 1.0
  local t_min, t_max = opts.t_min or 150.0, opts.t_max or 350.0
  local hq, ho = opts.h2o_scale or { 0.5, 2 }, opts.o3_scale or { 0.5, 2 }
  local gmr = opts.gm_range or profiles.gm_range or {}
  if not (t_amp >= 0 and t_corr > 0) then error("rfmip.perturb: need t_amp >= 0 and t_corr > 0", 2) end
  for _, r in ipairs({ hq, ho }) do
    if not (r[1] > 0 and r[2] >= r[1]) then error("rfmip.perturb: scale ranges must be {lo, hi} with 0 < lo <= hi", 2) end
  end

  local P_lay, P_lev = profiles.p_lay:totable(), profiles.p_lev:totable()
  local T_lay, T_lev, T_sfc = profiles.t_lay:totable(), profiles.t_lev:totable(), profiles.t_sfc:totable()
  local emis = profiles.sfc_emis:totable()
  local Q, O = profiles.vmr.h2o:totable(), profiles.vmr.o3:totable()

  -- The Gaussian process on a uniform ln p grid spanning every site, squared
  -- exponential covariance t_amp^2 exp(-d^2 / (2 t_corr^2)), sampled as L z.
  local xmin, xmax = math.huge, -math.huge
  for s = 1, nsite do
    xmin = math.min(xmin, math.log(P_lev[s][1]))
    xmax = math.max(xmax, math.log(P_lev[s][nlev]))
  end
  local ng = math.max(32, math.ceil((xmax - xmin) / (t_corr / 4)) + 1)
  local h = (xmax - xmin) / (ng - 1)
  local cov = {}
  local jitter = opts.jitter or 1e-6
  for i = 1, ng do
    cov[i] = {}
    for j = 1, ng do
      local d = (i - j) * h
      cov[i][j] = math.exp(-d * d / (2 * t_corr * t_corr)) + (i == j and jitter or 0)
    end
  end
  local chol = cholesky(cov, ng)
  if not chol then error("rfmip.perturb: covariance not positive definite; raise jitter", 2) end
  local lt = mimic.tensor(chol, "float64"):t() * t_amp                 -- [ng, ng] = L^T * amp
  local z = rng:randn({ n, ng }, "float64")
  local off_grid = z:matmul(lt):totable()                               -- [n, ng]: rows (L z)^T
  local u_h2o = rng:rand({ n }, "float64"):totable()
  local u_o3 = rng:rand({ n }, "float64"):totable()
  local wm = {}
  for _, gas in ipairs(mimic.radiation.gas_names()) do
    if not M.PROFILE_GASES[gas] then wm[#wm + 1] = gas end
  end
  local u_gm = rng:rand({ n, #wm }, "float64"):totable()

  -- interpolation weights per site (levels, layers)
  local wlev, wlay = {}, {}
  local function weights(s)
    if not wlev[s] then
      local xl, xy = {}, {}
      for l = 1, nlev do xl[l] = math.log(P_lev[s][l]) end
      for l = 1, nlay do xy[l] = math.log(P_lay[s][l]) end
      wlev[s], wlay[s] = interp_weights(xl, xmin, h, ng), interp_weights(xy, xmin, h, ng)
    end
    return wlev[s], wlay[s]
  end
  local function clamp(t) return math.min(t_max, math.max(t_min, t)) end

  local out = { p_lay = {}, p_lev = {}, t_lay = {}, t_lev = {}, t_sfc = {}, sfc_emis = {}, t_offset = {},
    h2o = {}, o3 = {}, site = {}, h2o_scale = {}, o3_scale = {} }
  local lhq, lho = { math.log(hq[1]), math.log(hq[2]) }, { math.log(ho[1]), math.log(ho[2]) }
  for i = 1, n do
    local s = sites[(i - 1) % #sites + 1]
    out.site[i] = s
    local wv, wy = weights(s)
    local og = off_grid[i]
    local tl, tv, dv = {}, {}, {}
    for l = 1, nlev do
      local w = wv[l]
      dv[l] = w[2] * og[w[1]] + w[3] * og[w[1] + 1]
      tv[l] = clamp(T_lev[s][l] + dv[l])
    end
    for l = 1, nlay do
      local w = wy[l]
      tl[l] = clamp(T_lay[s][l] + w[2] * og[w[1]] + w[3] * og[w[1] + 1])
    end
    local sq = math.exp(lhq[1] + (lhq[2] - lhq[1]) * u_h2o[i])
    local so = math.exp(lho[1] + (lho[2] - lho[1]) * u_o3[i])
    local q, o = {}, {}
    for l = 1, nlay do
      q[l] = math.min(Q[s][l] * sq, M.saturation_vmr(P_lay[s][l], tl[l]))
      o[l] = O[s][l] * so
    end
    out.p_lay[i], out.p_lev[i] = P_lay[s], P_lev[s]
    out.t_lay[i], out.t_lev[i], out.t_offset[i] = tl, tv, dv
    out.t_sfc[i] = clamp(T_sfc[s] + dv[nlev])  -- the skin follows the lowest level
    out.sfc_emis[i] = emis[s]
    out.h2o[i], out.o3[i] = q, o
    out.h2o_scale[i], out.o3_scale[i] = sq, so
  end
  local T = function(x) return mimic.tensor(x, "float64") end
  local res = {
    n = n, nlay = nlay, site = out.site,
    p_lay = T(out.p_lay), p_lev = T(out.p_lev), t_lay = T(out.t_lay), t_lev = T(out.t_lev),
    t_sfc = T(out.t_sfc), sfc_emis = T(out.sfc_emis), t_offset = T(out.t_offset),
    h2o_scale = T(out.h2o_scale), o3_scale = T(out.o3_scale),
    vmr = { h2o = T(out.h2o), o3 = T(out.o3) },
  }
  for k, gas in ipairs(wm) do
    local r = gmr[gas]
    if not r then error("rfmip.perturb: no range for well-mixed gas '" .. gas .. "' (pass gm_range or profiles from rfmip.load)", 2) end
    local col = {}
    for i = 1, n do
      local v = r[1] + (r[2] - r[1]) * u_gm[i][k]
      local rowv = {}
      for l = 1, nlay do rowv[l] = v end
      col[i] = rowv
    end
    res.vmr[gas] = T(col)
  end
  return res
end

-- split_sites(nsites, ntest, seed) -> train, test: sorted lists of 1-based sites,
-- disjoint, covering 1..nsites; the test sites are a seeded random choice.
function M.split_sites(nsites, ntest, seed)
  if math.type(nsites) ~= "integer" or nsites < 1 then error("rfmip.split_sites: nsites must be an integer >= 1", 2) end
  if math.type(ntest) ~= "integer" or ntest < 0 or ntest > nsites then
    error(string.format("rfmip.split_sites: ntest must be an integer in 0..%d", nsites), 2)
  end
  local perm = mimic.Generator(seed or 0):randperm(nsites):totable()
  local train, test = {}, {}
  for i, s in ipairs(perm) do
    s = math.tointeger(s)
    if i <= ntest then test[#test + 1] = s else train[#train + 1] = s end
  end
  table.sort(train)
  table.sort(test)
  return train, test
end

return M
