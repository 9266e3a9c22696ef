-- Compiled inference plans (lua/mimic/plan.lua, lua/lplan.c): a model using
-- every compiled layer type matches the autograd model's forward in float32
-- and float64, model:forward uses the plan only under the documented rule,
-- and what cannot be compiled is an error naming the module.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local raises = require("helpers").raises

local function maxdiff(a, b)
  lu.assertEquals(a:size(), b:size())
  return (a:detach():to("float64") - b:detach():to("float64")):abs():max():item()
end

-- Every compiled layer type, with non-trivial BatchNorm statistics.
local function every_layer(dt)
  local g = mimic.Generator(7)
  local m = nn.Sequential(
    nn.Linear(6, 16, { dtype = dt, generator = g }), nn.LeakyReLU(0.2),
    nn.Residual(nn.Sequential(nn.Linear(16, 16, { dtype = dt, generator = g }), nn.GELU(), nn.Dropout(0.3))),
    nn.LayerNorm(16, { dtype = dt }), nn.ELU(0.7),
    nn.Linear(16, 12, { dtype = dt, generator = g }), nn.BatchNorm1d(12, { dtype = dt }), nn.Tanh(),
    nn.Linear(12, 12, { dtype = dt, generator = g }), nn.Softplus(2, 3), nn.ReLU(), nn.Identity(),
    nn.Linear(12, 5, { bias = false, dtype = dt, generator = g }), nn.Sigmoid())
  -- train BatchNorm a little so its running stats are not 0/1
  for _ = 1, 3 do m(g:rand({ 32, 6 }, { dtype = dt }) * 3) end
  mimic.no_grad(function()
    m:get(4).weight:uniform_(0.5, 1.5, g)
    m:get(4).bias:uniform_(-0.5, 0.5, g)
  end)
  return m:evaluate(), g
end

function test_matches_autograd_forward()
  for _, dt in ipairs({ "float32", "float64" }) do
    local m, g = every_layer(dt)
    local p = m:compile({ chunk = 16 })
    lu.assertEquals(p:dtype(), dt)
    lu.assertEquals(p:nin(), 6)
    lu.assertEquals(p:nout(), 5)
    for _, n in ipairs({ 1, 7, 16, 50 }) do
      local x = g:rand({ n, 6 }, { dtype = dt }) * 4 - 2
      local ref = mimic.no_grad(function()
        local y = x
        for _, c in ipairs(m:children()) do y = c(y) end -- the Lua path, layer by layer
        return y
      end)
      local tol = dt == "float32" and 2e-5 or 1e-12
      lu.assertTrue(maxdiff(p:forward(x), ref) <= tol, dt .. " n=" .. n)
      -- deterministic mode: same values within tolerance
      p:set_deterministic(true)
      lu.assertTrue(maxdiff(p:forward(x), ref) <= tol, dt .. " deterministic n=" .. n)
      p:set_deterministic(false)
    end
    -- one row as a 1-D tensor
    local x1 = g:rand({ 6 }, { dtype = dt })
    lu.assertEquals(p:forward(x1):size(), { 5 })
  end
end

function test_forward_uses_plan_under_the_rule()
  local m, g = every_layer("float32")
  local x = g:rand({ 9, 6 })
  local ref = mimic.no_grad(function() return m(x) end)
  local p = m:compile()
  -- poison the weights: only a snapshot (the plan) still gives ref
  mimic.no_grad(function() m:get(1).weight:fill(0) end)
  lu.assertTrue(maxdiff(mimic.no_grad(function() return m(x) end), ref) <= 2e-5)
  -- grad enabled, training mode or another dtype: the Lua path
  lu.assertTrue(maxdiff(m(x), ref) > 1e-3)
  m:train()
  lu.assertTrue(maxdiff(mimic.no_grad(function() return m(x) end), ref) > 1e-3)
  m:evaluate()
  lu.assertEquals(mimic.no_grad(function() return m(x:to("float64")) end):dtype(), "float64")
  -- compile(false) drops the plan
  lu.assertNil(m:compile(false))
  lu.assertTrue(maxdiff(mimic.no_grad(function() return m(x) end), ref) > 1e-3)
  lu.assertNotNil(p:forward(x)) -- a plan outlives its model's link to it
end

function test_options_and_sizes()
  local m = nn.Sequential(nn.Linear(7, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 256))
  local p = m:compile({ dtype = "float64", chunk = 100 })
  lu.assertEquals(p:dtype(), "float64")
  lu.assertEquals(p:chunk(), 100)
  lu.assertEquals(p:weight_bytes(), (7 * 64 + 64 + 64 * 64 + 64 + 64 * 256 + 256) * 8)
  lu.assertTrue(p:workspace_bytes() >= 2 * 100 * 256 * 8)
  lu.assertStrContains(tostring(p), "Plan(7 -> 256, float64")
  local y = p:forward(mimic.rand(3, 7, { dtype = "float64" }))
  lu.assertEquals(y:size(), { 3, 256 })
  -- activations only: the width must be given
  raises("cannot tell the input width", function() nn.Sequential(nn.ReLU()):compile() end)
  local q = nn.Sequential(nn.ReLU()):compile({ nin = 3 })
  lu.assertEquals(q:forward(mimic.tensor({ { -1, 2, -3 } })):totable(), { { 0, 2, 0 } })
end

function test_errors()
  local MyLayer = nn.Module:extend("MyLayer")
  function MyLayer:forward(x) return x * 2 end
  local m = nn.Sequential(nn.Linear(3, 4), MyLayer())
  local msg = raises("MyLayer", function() m:compile() end)
  lu.assertStrContains(msg, "'2'")
  raises("has no compiled form", function() nn.Sequential(nn.Linear(3, 4), nn.Concat(2, nn.ReLU())):compile() end)
  raises("normalizes over 2 dims", function() nn.Sequential(nn.LayerNorm({ 2, 3 })):compile() end)
  raises("running statistics",
    function() nn.Sequential(nn.BatchNorm1d(3, { track_running_stats = false })):compile() end)
  raises("unknown option 'chunks'", function() nn.Sequential(nn.Linear(3, 4)):compile({ chunks = 3 }) end)
  raises("x + f(x) needs the same width", function() nn.Sequential(nn.Residual(nn.Linear(3, 4))):compile() end)
  local p = nn.Sequential(nn.Linear(3, 4)):compile()
  raises("expected [n, 3]", function() p:forward(mimic.zeros(2, 5)) end)
  raises("compiled for float32", function() p:forward(mimic.zeros(2, 3, "float64")) end)
  -- NaN passes through
  local y = p:forward(mimic.tensor({ { 0 / 0, 1, 2 } }))
  for _, v in ipairs(y:totable()[1]) do lu.assertTrue(v ~= v) end
end

os.exit(lu.LuaUnit.run())
