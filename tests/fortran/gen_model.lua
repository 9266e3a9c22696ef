-- Writes the Fortran tests' fixture into DIR (arg 1): model.h5, a small
-- trained-shape model with encoders and a two-input, two-output contract, and
-- data.txt: n, then n rows of raw inputs (t1 t2 t3 q1 q2) and n rows of the
-- raw outputs (heat1 heat2 flux) computed by the in-memory nn pipeline (not
-- the plan the embedding API runs), in float64.
local mimic = require "mimic"
local nn, data = mimic.nn, mimic.data
local dir = assert(arg[1], "usage: mimic gen_model.lua DIR")

local g = mimic.Generator(11)
local n = 9
local x = g:rand({ 64, 5 }, { dtype = "float64" }) * 20 + 250
local xe = data.encoder { kind = "standard" }:fit(x)
local model = nn.Sequential(nn.Linear(5, 8, { dtype = "float64", generator = g }), nn.Tanh(),
  nn.Linear(8, 3, { dtype = "float64", generator = g }))
local y0 = mimic.no_grad(function() return model(xe:encode(x)) end)
local ye = data.encoder { kind = "minmax", per_feature = false }:fit(y0 * 3 + 1)
model:evaluate()
model:save(dir .. "/model.h5", {
  inputs = { { name = "t", units = "K", size = 3 }, { name = "q", units = "kg/kg", size = 2 } },
  outputs = { { name = "heat", units = "K/s", size = 2 }, { name = "flux", units = "W/m2", size = 1 } },
  encoders = { input = xe, output = ye } })

local xs = x:narrow(1, 1, n)
local ys = mimic.no_grad(function() return ye:decode(model(xe:encode(xs))) end)
local f = assert(io.open(dir .. "/data.txt", "w"))
f:write(n, "\n")
for _, t in ipairs({ xs, ys }) do
  for _, row in ipairs(t:totable()) do
    for j, v in ipairs(row) do f:write(string.format("%.17g", v), j < #row and " " or "\n") end
  end
end
f:close()
