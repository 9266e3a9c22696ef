-- Convolutional models in the compiled plan and in model files
-- (lua/mimic/plan.lua, lua/lplan.c, core/nn/plan.c, core/io/modelfile.c):
-- every spatial layer type against the autograd model's forward (itself
-- checked against PyTorch in test_conv.lua) in float32 and float64, batch
-- sizes around the chunk; model:forward on [n, C, ...] uses the plan;
-- save -> load_model and mimic.embed give model:forward's values; what has
-- no compiled form is an error naming the module.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local helpers = require "helpers"
local raises, maxrel, lua_forward = helpers.raises, helpers.maxrel, helpers.lua_forward

local dir = helpers.tmpdir()

-- Each case: name, per-sample input shape, builder (dt, g).
local CASES = {
  { "conv1d circular groups stride", { 4, 11 }, function(dt, g)
    return nn.Sequential(nn.Conv1d(4, 6, 3, { padding = 2, stride = 2, groups = 2, padding_mode = "circular", dtype = dt, generator = g }),
      nn.Tanh(), nn.MaxPool1d(2, { padding = 1 }), nn.Flatten(), nn.Linear(6 * 4, 3, { dtype = dt, generator = g }))
  end },
  { "conv2d dilation avgpool", { 3, 9, 8 }, function(dt, g)
    return nn.Sequential(nn.Conv2d(3, 4, { 3, 2 }, { padding = { 1, 0 }, dilation = { 2, 1 }, dtype = dt, generator = g }),
      nn.ReLU(), nn.AvgPool2d(2, { padding = 1, count_include_pad = false }),
      nn.Conv2d(4, 4, 1, { bias = false, dtype = dt, generator = g }), nn.AvgPool2d(2), nn.GELU())
  end },
  { "conv3d same + pools + global", { 2, 6, 5, 7 }, function(dt, g)
    return nn.Sequential(nn.Conv3d(2, 4, 3, { padding = "same", dtype = dt, generator = g }), nn.LeakyReLU(0.1),
      nn.MaxPool3d(2, { padding = 1, dilation = 1 }), nn.Conv3d(4, 4, 2, { groups = 4, padding = 1, padding_mode = "circular", dtype = dt, generator = g }),
      nn.GlobalAvgPool3d(), nn.Linear(4, 2, { dtype = dt, generator = g }))
  end },
  { "conv2d global max", { 2, 7, 7 }, function(dt, g)
    return nn.Sequential(nn.Conv2d(2, 3, 3, { stride = 2, dtype = dt, generator = g }), nn.Sigmoid(), nn.GlobalMaxPool2d())
  end },
  { "upsample nearest 2d/3d/1d", { 2, 3, 4 }, function(dt, g)
    return nn.Sequential(nn.Upsample({ scale_factor = { 2, 3 } }), nn.Conv2d(2, 2, 3, { padding = 1, dtype = dt, generator = g }),
      nn.Upsample({ size = { 12, 24 } }), nn.Tanh())
  end },
  { "upsample 3d", { 1, 2, 3, 2 }, function(dt, g)
    return nn.Sequential(nn.Upsample({ scale_factor = 2 }), nn.Conv3d(1, 2, 3, { padding = 1, dtype = dt, generator = g }))
  end },
  { "upsample 1d", { 2, 5 }, function(dt, g)
    return nn.Sequential(nn.Conv1d(2, 2, 1, { dtype = dt, generator = g }), nn.Upsample({ scale_factor = 3 }))
  end },
  { "conv1d to conv output", { 1, 16 }, function(dt, g)
    return nn.Sequential(nn.Conv1d(1, 2, 5, { padding = 2, dilation = 1, dtype = dt, generator = g }), nn.MaxPool1d(3, 2, { dilation = 2 }))
  end },
}

function test_every_spatial_layer_matches_forward()
  helpers.check_compiled_cases(CASES)
end

function test_plan_is_really_used()
  -- after changing the weights, model:forward (eval, no_grad) still gives the compiled snapshot
  local g = mimic.Generator(2)
  local m = nn.Sequential(nn.Conv1d(1, 2, 3, { generator = g }), nn.Flatten()):evaluate()
  local x = g:rand({ 4, 1, 8 })
  local before = lua_forward(m, x)
  m:compile({ input_shape = { 1, 8 } })
  mimic.no_grad(function() m:get(1).weight:mul_(2) end)
  lu.assertTrue(maxrel(mimic.no_grad(function() return m:forward(x) end), before) <= 1e-6)
  m:compile(false)
  lu.assertTrue(maxrel(mimic.no_grad(function() return m:forward(x) end), before) > 0.5)
end

function test_errors_name_the_module()
  local m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
  raises("give input_shape", m.compile, m)
  raises("needs a [C, 2 spatial] sample", m.compile, m, { input_shape = { 2, 36 } })
  raises("nin = 5 but input_shape gives 72", m.compile, m, { input_shape = { 2, 6, 6 }, nin = 5 })
  raises("does not fit", m.compile, m, { input_shape = { 2, 2, 6 } })
  local u = nn.Sequential(nn.Conv1d(1, 1, 3), nn.Upsample({ scale_factor = 2, mode = "trilinear" }))
  raises("mode 'trilinear' does not fit a sample with 1 spatial dims (nearest, linear)", u.compile, u, { input_shape = { 1, 8 } })
  local u2 = nn.Sequential(nn.Upsample({ scale_factor = 1.5 }))
  raises("only integer scale factors", u2.compile, u2, { input_shape = { 1, 8 } })
  local t = nn.Sequential(nn.Conv1d(1, 1, 3), nn.Concat(2, nn.Identity()))
  raises("nn.Concat (at '2') has no compiled form", t.compile, t, { input_shape = { 1, 8 } })
  local f = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(1, 2))
  raises("only Flatten(2, -1)", f.compile, f, { input_shape = { 1, 8 } })
  local e = nn.Sequential(nn.Conv1d(1, 2, 2, { padding = "same" }))
  raises("padding 'same' with an even window", e.compile, e, { input_shape = { 1, 8 } })
  -- the Linear after a conv must match the flattened width (a C error from the builder)
  local w = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(5, 2))
  raises("dense weight must be [out, 12]", w.compile, w, { input_shape = { 1, 8 } })
end

function test_save_load_embed_equal_forward()
  local inputs = { { name = "field", units = "1", size = 2 * 6 * 6 * 6 } }
  local outputs = { { name = "class", units = "1", size = 2 } }
  for _, dt in ipairs({ "float32", "float64" }) do
    local g = mimic.Generator(5)
    local m = nn.Sequential(nn.Conv3d(2, 4, 3, { padding = 1, padding_mode = "circular", dtype = dt, generator = g }), nn.ReLU(),
      nn.MaxPool3d(2), nn.Conv3d(4, 4, 3, { padding = 1, groups = 2, dtype = dt, generator = g }), nn.ReLU(),
      nn.AvgPool3d(3), nn.Upsample({ scale_factor = 2 }), nn.GlobalMaxPool3d(), nn.Linear(4, 2, { dtype = dt, generator = g })):evaluate()
    local x = g:rand({ 5, 2, 6, 6, 6 }, { dtype = dt }) * 2 - 1
    local ref = lua_forward(m, x)
    local path = dir .. "/cnn_" .. dt .. ".h5"
    local hash = m:save(path, { inputs = inputs, outputs = outputs, input_shape = { 2, 6, 6, 6 } })
    lu.assertStrContains(hash, "sha256:")
    local tol = dt == "float32" and 1e-5 or 1e-12
    local L = mimic.load_model(path)
    lu.assertEquals(L.hash, hash)
    lu.assertTrue(maxrel(L:forward(x:reshape({ 5, 432 }):to("float64")), ref) <= tol)
    local h = mimic.embed.open(path)
    local y = h:run { field = x:reshape({ 5, 432 }) }
    lu.assertTrue(maxrel(y.class, ref) <= tol)
    h:close()
    -- the hash covers the geometry: the same weights with another padding mode hash differently
    m:get(1).padding_mode = "zeros"
    local h2 = m:save(dir .. "/cnn2.h5", { inputs = inputs, outputs = outputs, input_shape = { 2, 6, 6, 6 } })
    lu.assertNotEquals(h2, hash)
  end
  local m = nn.Sequential(nn.Conv1d(1, 1, 3))
  raises("model:save: a convolutional or recurrent model needs the sample shape", m.save, m, dir .. "/x.h5",
    { inputs = { { name = "a", units = "1", size = 8 } }, outputs = { { name = "b", units = "1", size = 6 } } })
end

os.exit(lu.LuaUnit.run())
