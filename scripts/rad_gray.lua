-- SMOKE TEST OF THE PLUMBING, NOT THE REFERENCE PHYSICS.
--
-- Runs mimic's longwave solver (core/solvers/radiation/rte_lw.c) on the 100
-- RFMIP present-day columns (data/rfmip/) with a deliberately crude GRAY-gas
-- optics plugged in through the optics callback (mimic.radiation.lw_fluxes),
-- and prints outgoing longwave (OLR) and surface downwelling next to RRTMGP's
-- reference fluxes for the same columns (rlu at the top, rld at the surface).
-- Agreement is not expected beyond tens of W m^-2: one band, no spectral
-- windows, two made-up absorption coefficients. It shows that the data, the
-- reader, the Planck sources, the callback and the solver connect.
--
-- Gray optics (one band, 10-3250 cm^-1, Planck fraction 1), per layer:
--   tau = k_h2o * u_h2o * (p / p0) + k_co2 * u_co2,  p0 = 1e5 Pa,
-- u = the gas's mass path in the layer (kg m^-2) from col_dry * vmr, the
-- p / p0 factor a stand-in for pressure broadening of the water lines.
-- k_h2o = 0.05 m^2/kg and k_co2 = 0.1 m^2/kg were picked by hand among a few
-- round values (0.05..0.1, 0.03..0.15) to bring the weighted mean OLR near
-- RRTMGP's; they are not fitted per site and mean nothing physically.
--
-- Usage: build/bin/mimic scripts/rad_gray.lua [nmu]      (nmu = 1..4 directions, default 1)
local mimic = require "mimic"
local rfmip = require "mimic.rfmip"
local R = mimic.radiation

local nmu = tonumber(arg and arg[1]) or 1
local K_H2O, K_CO2, P0 = 0.05, 0.1, 1e5
local M_H2O, M_CO2, NA = 0.018016, 0.044010, 6.02214076e23

local pd = rfmip.load { experiment = 1 }
local t0 = mimic.clock()
local res = R.lw_fluxes {
  p_lay = pd.p_lay, t_lay = pd.t_lay, p_lev = pd.p_lev, t_lev = pd.t_lev,
  t_sfc = pd.t_sfc, sfc_emis = pd.sfc_emis, vmr = pd.vmr,
  nu1 = { 10 }, nu2 = { 3250 }, nmu = nmu,
  optics = function(st)
    -- molecules cm^-2 -> kg m^-2: * 1e4 cm^2/m^2 * M / N_A
    local u_h2o = st.vmr.h2o * st.col_dry * (1e4 * M_H2O / NA)
    local u_co2 = st.vmr.co2 * st.col_dry * (1e4 * M_CO2 / NA)
    local tau = u_h2o * K_H2O * (st.p / P0) + u_co2 * K_CO2
    return tau:view(-1, 1), nil
  end,
}
local secs = mimic.clock() - t0

local n = pd.nsite
local olr, sdn = res.flux_up:select(2, 1):totable(), res.flux_dn:select(2, pd.nlay + 1):totable()
local ref_olr, ref_sdn = pd.rlu:select(2, 1):totable(), pd.rld:select(2, pd.nlay + 1):totable()
local w = pd.profile_weight:totable()
local function stats(a, b)
  local sw, ma, mb, mad, rms = 0, 0, 0, 0, 0
  for i = 1, n do
    sw = sw + w[i]
    ma, mb = ma + w[i] * a[i], mb + w[i] * b[i]
    mad = mad + math.abs(a[i] - b[i]) / n
    rms = rms + (a[i] - b[i]) ^ 2 / n
  end
  return ma / sw, mb / sw, mad, math.sqrt(rms)
end

print("SMOKE TEST of the plumbing (gray gas, one band) -- not the reference physics")
print(string.format("RFMIP %s: %d columns x %d layers, %d direction(s), solver + callback %.3f s",
  pd.label, n, pd.nlay, nmu, secs))
print(string.format("%-26s %12s %12s %12s %12s", "", "gray (mimic)", "RRTMGP", "mean |diff|", "rms diff"))
local a, b, c, d = stats(olr, ref_olr)
print(string.format("%-26s %12.2f %12.2f %12.2f %12.2f", "OLR (W m-2, weighted)", a, b, c, d))
a, b, c, d = stats(sdn, ref_sdn)
print(string.format("%-26s %12.2f %12.2f %12.2f %12.2f", "surface down (W m-2)", a, b, c, d))
print("\nfirst 5 sites: OLR gray / RRTMGP, surface down gray / RRTMGP (W m-2); heating at the lowest layer (K/day)")
local hr = res.heating:select(2, pd.nlay):totable()
for i = 1, 5 do
  print(string.format("  site %3d  %7.2f / %7.2f   %7.2f / %7.2f   %6.2f", i, olr[i], ref_olr[i], sdn[i], ref_sdn[i], hr[i]))
end
