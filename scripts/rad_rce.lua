-- Single-column radiative-convective equilibrium (RCE) from an RFMIP tropical
-- profile: the a-posteriori host of the radiation use case (issue #9), here
-- with gray optics and, optionally, the line-by-line model on a coarse
-- spectral grid. The model (core/solvers/radiation/rce.c) and every formula
-- it uses (solar heating profile, fixed-RH water vapour, convective
-- adjustment, time stepping) are documented in core/include/mimic/rad_rce.h.
--
-- Column: the RFMIP present-day site nearest the tropics with the warmest
-- surface (|lat| < 20 deg), its 60 layers and fixed pressure levels, its CO2,
-- O3, ... profiles; water vapour is recomputed at fixed relative humidity
-- (surface RH 0.77). Solar: 70 W m^-2 absorbed in the atmosphere (20 % by
-- stratospheric ozone), 170 W m^-2 at the surface. Convective adjustment to
-- 6.5 K/km, the surface slab (1e7 J m^-2 K^-1) mixing with the boundary layer.
--
-- Gray optics (one band over the whole spectrum):
--   tau = k m_dry (1 + kq h2o / 0.01),  k = 1.5e-4 m^2/kg, kq = 1,
-- m_dry the layer's dry-air mass path (kg m^-2). k and kq were picked by hand
-- among a few round values (k 0.5e-4..2e-4, kq 1..5) to put the surface near the
-- site's 305 K; they mean nothing physically (as in scripts/rad_gray.lua).
--
-- Usage: build/bin/mimic scripts/rad_rce.lua [outdir] [--lbl=dnu] [--lbl-steps=N]
--   outdir     where the summary (README.md), the plot data and gnuplot scripts go (default /tmp/rad_rce)
--   --lbl=dnu  also run with the line-by-line optics on a uniform grid of spacing dnu cm^-1 (10..3250),
--              starting from the gray equilibrium (dnu = 5: 649 points, ~0.4 s per step on 2 cores,
--              241 steps to converge; --lbl-steps caps the steps, default 400)
local mimic = require "mimic"
local rfmip = require "mimic.rfmip"
local report = require "mimic.report"
local R = mimic.radiation

local outdir, lbl_dnu, lbl_steps = "/tmp/rad_rce", nil, 400
for _, a in ipairs(arg or {}) do
  if a:match("^%-%-lbl=") then lbl_dnu = tonumber(a:match("=(.*)"))
  elseif a:match("^%-%-lbl%-steps=") then lbl_steps = math.tointeger(tonumber(a:match("=(.*)")))
  else outdir = a end
end
local K_GRAY, KQ_GRAY = 1.5e-4, 1
local G, RD = 9.80665, 287.04

local pd = rfmip.load { experiment = 1, fluxes = false }
local lat, tsfc = pd.lat:totable(), pd.t_sfc:totable()
local site
for i = 1, pd.nsite do
  if math.abs(lat[i]) < 20 and (not site or tsfc[i] > tsfc[site]) then site = i end
end
local vmr = {}
for gas, v in pairs(pd.vmr) do vmr[gas] = v[site] end
local function new_model()
  return R.rce { p_lev = pd.p_lev[site], p_lay = pd.p_lay[site], vmr = vmr, t_init = pd.t_lay[site],
    t_sfc = tsfc[site] }
end

-- Heights (m) of the layers by the hypsometric equation from the surface up.
local function heights(st)
  local p, t, n = st.p_lev:totable(), st.t_lay:totable(), #st.t_lay:totable()
  local zl, z = {}, 0
  for l = n, 1, -1 do
    local dz = RD * t[l] / G * math.log(p[l + 1] / p[l])
    zl[l] = z + dz * math.log(p[l + 1] / st.p_lay[l]) / math.log(p[l + 1] / p[l])
    z = z + dz
  end
  return zl
end

local function summary(name, st, secs, steps)
  local n = st.t_lay:size(1)
  local z = heights(st)
  local top -- the highest layer of the convective region that touches the surface
  for l = n, 1, -1 do
    if st.convective[l] then top = l else break end
  end
  local t = st.t_lay:totable()
  local cold = 1
  for l = 1, n do
    if st.p_lay[l] > 5000 and (t[cold] > t[l] or st.p_lay[cold] <= 5000) then cold = l end
  end
  local row = {
    name = name, steps = steps, converged = st.converged, secs = secs, t_sfc = st.t_sfc,
    trop_p = top and st.p_lay[top] / 100, trop_z = top and z[top] / 1000,
    cold_t = t[cold], cold_p = st.p_lay[cold] / 100,
    olr = st.olr, toa = st.toa_imbalance, sfc = st.sfc_imbalance, conv = st.sfc_conv_flux,
    max_tend = st.max_tendency,
  }
  print(string.format("%s: %d steps (%s, max |dT/dt| %.1e K/day), %.1f s", name, steps,
    st.converged and "converged" or "NOT converged", st.max_tendency, secs))
  print(string.format("  surface T %.2f K; convective top (tropopause) %.1f hPa, %.2f km; cold point %.2f K at %.1f hPa",
    row.t_sfc, row.trop_p or 0 / 0, row.trop_z or 0 / 0, row.cold_t, row.cold_p))
  print(string.format("  OLR %.3f W m-2; TOA imbalance %.4f, surface imbalance %.4f W m-2; surface convective flux %.2f W m-2",
    row.olr, row.toa, row.sfc, row.conv))
  return row
end

print(string.format("RCE on RFMIP site %d (lat %.1f, RFMIP surface %.2f K), %d layers, %.3g..%.0f Pa",
  site, lat[site], tsfc[site], pd.nlay, pd.p_lev[site][1], pd.p_lev[site][pd.nlay + 1]))

local m = new_model()
local t0 = mimic.clock()
local gray = m:run { optics = "gray", k = K_GRAY, kq = KQ_GRAY, dt = 20 * 86400, tol = 1e-4, max_steps = 20000 }
local rows = { summary("gray", gray, mimic.clock() - t0, gray.steps) }
local runs = { { label = "gray RCE", st = gray } }

if lbl_dnu then
  local lbl = R.lbl {}
  local nu, w = R.uniform_grid(10, 3250, lbl_dnu)
  print(string.format("line-by-line optics: %d points (%.3g cm^-1), up to %d steps", nu:size(1), lbl_dnu, lbl_steps))
  t0 = mimic.clock()
  local st = m:run { optics = lbl, nu = nu, weight = w, dt = 20 * 86400, tol = 1e-3, max_steps = lbl_steps,
    progress = function(info)
      if info.steps % 20 == 0 then
        io.write(string.format("  step %d: max |dT/dt| %.2e K/day, Ts %.2f K, OLR %.2f\n", info.steps,
          info.max_tendency, info.t_sfc, info.olr))
        io.flush()
      end
    end }
  rows[#rows + 1] = summary(string.format("lbl %.3g cm-1", lbl_dnu), st, mimic.clock() - t0, st.steps - gray.steps)
  runs[#runs + 1] = { label = "line-by-line RCE", st = st }
end

-- report: a table and the temperature profiles against pressure
local rep = report.new { dir = outdir, title = "Single-column radiative-convective equilibrium",
  command = "build/bin/mimic scripts/rad_rce.lua " .. outdir .. (lbl_dnu and (" --lbl=" .. lbl_dnu) or ""),
  provenance = { site = site, optics = string.format("gray k = %g m^2/kg, kq = %g", K_GRAY, KQ_GRAY) } }
local trows = {}
for _, r in ipairs(rows) do
  trows[#trows + 1] = { r.name, r.steps, tostring(r.converged), r.t_sfc, r.trop_p or "-", r.trop_z or "-",
    r.cold_t, r.olr, r.toa, r.sfc }
end
rep:table { header = { "optics", "steps", "converged", "Ts (K)", "tropopause (hPa)", "tropopause (km)",
  "cold point (K)", "OLR (W m-2)", "TOA imbalance", "surface imbalance" }, rows = trows }
local x = {}
for l = 1, pd.nlay do x[l] = gray.p_lay[l] / 100 end
local series = { { label = "RFMIP site " .. site, y = pd.t_lay[site]:totable() } }
for _, r in ipairs(runs) do series[#series + 1] = { label = r.label, y = r.st.t_lay:totable() } end
rep:curves { name = "rce_temperature", x = x, series = series, logx = true, logy = false,
  xlabel = "pressure (hPa)", ylabel = "temperature (K)",
  caption = "Equilibrium temperature against pressure (top of the atmosphere on the left)." }
local hs = {}
for _, r in ipairs(runs) do
  hs[#hs + 1] = { label = r.label .. " longwave", y = r.st.lw_heating:totable() }
end
hs[#hs + 1] = { label = "solar (prescribed)", y = gray.solar_heating:totable() }
rep:curves { name = "rce_heating", x = x, series = hs, logx = true, logy = false,
  xlabel = "pressure (hPa)", ylabel = "heating rate (K/day)",
  caption = "Radiative heating rates at equilibrium; in the convective region the net radiative cooling is " ..
      "balanced by convection." }
local path, drawn = rep:write()
print(string.format("report: %s%s", path, drawn and "" or " (gnuplot not found: data and scripts only)"))
