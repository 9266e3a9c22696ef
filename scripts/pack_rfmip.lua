-- Packs real simulation output into one training file: the RFMIP-1-2
-- atmospheres (inputs) and the RTE-RRTMGP fluxes computed for them (outputs),
-- one sample per (experiment, site) column. Streams one experiment at a time
-- (a hyperslab of each variable) and appends, so the output may be larger than
-- memory; writes to <out>.part and renames it when complete.
--
--   mimic scripts/pack_rfmip.lua [rfmip_dir] [out.h5]
local mimic = require "mimic"
local data = mimic.data

local dir = arg[1] or "../shared/data/rfmip"
local out = arg[2] or "rfmip_packed.h5"
local FLUXES = { "rsd", "rsu", "rld", "rlu" }

local inp <close> = data.open(dir .. "/multiple_input4MIPs_radiation_RFMIP_UColorado-RFMIP-1-2_none.nc")
local flux = {}
for _, v in ipairs(FLUXES) do
  flux[v] = data.open(string.format("%s/%s_Efx_RTE-RRTMGP-181204_rad-irf_r1i1p1f1_gn.nc", dir, v))
end

local nexpt = inp:info("temp_layer").shape[1]
-- finite = true: a _FillValue (1e20 in the flux files) or NaN stops the
-- packing with the element's index instead of poisoning the training set.
local logp = inp:read("pres_layer", { finite = true }):log() -- [site, layer], the same in every experiment
local tmp = out .. ".part"
local w = data.create(tmp)
for e = 1, nexpt do
  local t = inp:read("temp_layer", { start = e, count = 1, finite = true })[1]  -- [site, layer]
  local q = inp:read("water_vapor", { start = e, count = 1, finite = true })[1]
  local x = mimic.cat({ t, logp, q }, 2)
  local ys = {}
  for _, v in ipairs(FLUXES) do
    ys[#ys + 1] = flux[v]:read(v, { start = e, count = 1, finite = true })[1]    -- [site, level]
  end
  local y = mimic.cat(ys, 2)
  if e == 1 then
    -- One chunk per experiment's 100 columns: the loader reads whole chunks.
    w:write("x", x, { gzip = 4, shuffle = true, extendable = true, chunk = { x:size(1), x:size(2) } })
    w:write("y", y, { gzip = 4, shuffle = true, extendable = true, chunk = { y:size(1), y:size(2) } })
  else
    w:append("x", x)
    w:append("y", y)
  end
end
w:set_attr("x", "columns", "temp_layer[60] K, log(pres_layer[60]) ln(Pa), water_vapor[60] mol/mol")
w:set_attr("y", "columns", "rsd[61], rsu[61], rld[61], rlu[61] W m-2 (levels top to bottom as in the source)")
w:set_attr("", "source", "RFMIP-1-2 atmospheres and RTE-RRTMGP-181204 fluxes, one row per (expt, site)")
w:close()
for _, f in pairs(flux) do f:close() end
assert(os.rename(tmp, out))
local check <close> = data.open(out)
print(string.format("%s: x %s, y %s", out, table.concat(check:info("x").shape, "x"), table.concat(check:info("y").shape, "x")))
