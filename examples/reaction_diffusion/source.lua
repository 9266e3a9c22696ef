-- The reaction source term as a Lua function a host calls through mimic/script.h
-- (script_demo.c; docs/embedding.md, "Lua from the host"): the trained model
-- plus what a model file cannot express, here two physical constraints:
-- no more fuel is burnt in a step than the cell holds, and the heat released
-- is exactly Q times the fuel burnt (T + Q Y conserved by construction).
-- RD_MODEL names the model file (train.lua's output).
local mimic = require "mimic"
local model = mimic.load_model(assert(os.getenv("RD_MODEL"), "set RD_MODEL to the model file"))
local Q, DT = 1500, 1.2e-3

-- temperature, fuel: [n, 1] tensors over the host's arrays (read only).
function source(temperature, fuel)
  local y = model:forward { temperature = temperature, fuel = fuel } -- float64, physical units
  local most = -fuel:double() / DT                                  -- burn at most all the fuel
  local rate_y = mimic.where(y.fuel_rate:lt(most), most, y.fuel_rate):clamp(-math.huge, 0)
  return rate_y * -Q, rate_y                                        -- heat_release, fuel_rate
end
