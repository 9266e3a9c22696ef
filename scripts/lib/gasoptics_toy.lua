-- The analytic stand-in for an atmospheric gas-optics kernel used by the
-- flagship experiment: per layer, (ln p [Pa], T [K], ln q [kg/kg]) -> ln tau
-- at 16 spectral points, with pressure broadening, temperature-dependent line
-- strengths and a water-vapour path.
--
-- Shared by scripts/flagship.lua and scripts/validate_flagship.lua, so the
-- validation checks exactly the surrogate the flagship trains.
--
--   local toy = dofile("scripts/lib/gasoptics_toy.lua")
--   local x = toy.sample(g, n)   -- [n,3] inputs from Generator g
--   local y = toy.kernel(x)      -- [n,16] ln tau
local mimic = require "mimic"

local toy = { G = 16 }
local G = toy.G

-- Per spectral point k: strength S, broadening half-pressure pb, temperature
-- exponent n and lower-state energy E (as c2*E'' in K). Fixed, deterministic.
local S, PB, NT, E = {}, {}, {}, {}
for k = 1, G do
  local f = (k - 1) / (G - 1)
  S[k] = 10 ^ (-4 + 5 * f)            -- m^2 kg^-1 at 296 K and high pressure
  PB[k] = 10 ^ (1 + 3.5 * (1 - f))    -- Pa: weak points saturate at low pressure
  NT[k] = 0.5 + 0.4 * math.sin(3 * k)
  E[k] = 300 + 1500 * ((k * 7) % G) / G
end
toy.S, toy.PB, toy.NT, toy.E = S, PB, NT, E

-- The input ranges: pressure 1 hPa .. 1050 hPa, temperature 180 .. 310 K,
-- specific humidity 1e-6 .. 2e-2 kg/kg (log-uniform).
toy.range = {
  lnp = { math.log(1e2), math.log(1.05e5) }, T = { 180, 310 }, lnq = { math.log(1e-6), math.log(2e-2) },
}

-- x: [n,3] columns ln p (Pa), T (K), ln q (kg/kg). Returns ln tau: [n,16].
function toy.kernel(x)
  local lnp, T, lnq = x:select(2, 1), x:select(2, 2), x:select(2, 3)
  local p = lnp:exp()
  local dp = p * 0.08                        -- layer thickness, Pa
  local path = (lnq:exp() * dp / 9.81):log() -- ln(water-vapour path), kg m^-2
  local cols = {}
  for k = 1, G do
    local lnk = math.log(S[k]) - NT[k] * (T / 296):log() - (1 / T - 1 / 296) * E[k]
        + (p / (p + PB[k])):log()
    cols[k] = lnk + path
  end
  return mimic.stack(cols, 2)
end

-- n samples uniform in (ln p, T, ln q) over toy.range, from Generator g.
function toy.sample(g, n)
  local r = toy.range
  local lnp = g:uniform({ n }, r.lnp[1], r.lnp[2])
  local T = g:uniform({ n }, r.T[1], r.T[2])
  local lnq = g:uniform({ n }, r.lnq[1], r.lnq[2])
  return mimic.stack({ lnp, T, lnq }, 2)
end

return toy
