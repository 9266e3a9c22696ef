-- Recurrent models, transposed convolutions and linear upsampling in the
-- compiled plan and in model files (lua/mimic/plan.lua, lua/lplan.c,
-- core/nn/plan.c + rnn_kernels.h + spatial_kernels.h, core/io/modelfile.c):
-- each layer and option against the autograd model's forward (itself checked
-- against PyTorch in test_rnn.lua / test_conv.lua) in float32 and float64,
-- batch sizes around the chunk, deterministic mode; model:forward uses the
-- plan (also for time-first models); save -> load_model and mimic.embed give
-- the same values; a mis-shaped record is an error naming it.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local helpers = require "helpers"
local raises, maxrel, lua_forward = helpers.raises, helpers.maxrel, helpers.lua_forward

local dir = helpers.tmpdir()

-- Each case: name, per-sample input shape, builder (dt, g).
local CASES = {
  { "lstm 2 layers + last step", { 7, 3 }, function(dt, g)
    return nn.Sequential(nn.LSTM(3, 5, { num_layers = 2, batch_first = true, dtype = dt, generator = g }),
      nn.LastStep({ batch_first = true }), nn.Linear(5, 2, { dtype = dt, generator = g }))
  end },
  { "gru sequence out", { 6, 4 }, function(dt, g)
    return nn.Sequential(nn.GRU(4, 3, { batch_first = true, dtype = dt, generator = g }), nn.Tanh())
  end },
  { "gru 3 layers no bias + last", { 5, 2 }, function(dt, g)
    return nn.Sequential(nn.GRU(2, 4, { num_layers = 3, bias = false, batch_first = true, dtype = dt, generator = g }),
      nn.LastStep({ batch_first = true }))
  end },
  { "rnn tanh 2 layers", { 4, 3 }, function(dt, g)
    return nn.Sequential(nn.RNN(3, 6, { num_layers = 2, batch_first = true, dtype = dt, generator = g }),
      nn.LastStep({ batch_first = true }), nn.ReLU())
  end },
  { "rnn relu no bias", { 9, 2 }, function(dt, g)
    return nn.Sequential(nn.RNN(2, 3, { nonlinearity = "relu", bias = false, batch_first = true, dtype = dt, generator = g }))
  end },
  { "lstm one step", { 1, 3 }, function(dt, g)
    return nn.Sequential(nn.LSTM(3, 2, { batch_first = true, dtype = dt, generator = g }), nn.LastStep({ batch_first = true }))
  end },
  { "conv_transpose1d stride padding output_padding", { 3, 7 }, function(dt, g)
    return nn.Sequential(nn.ConvTranspose1d(3, 4, 3, { stride = 2, padding = 1, output_padding = 1, dtype = dt, generator = g }),
      nn.GELU())
  end },
  { "conv_transpose2d groups dilation", { 4, 5, 6 }, function(dt, g)
    return nn.Sequential(nn.ConvTranspose2d(4, 6, { 3, 2 }, { stride = { 2, 1 }, padding = { 1, 0 }, output_padding = { 1, 0 },
      groups = 2, dilation = { 1, 2 }, dtype = dt, generator = g }), nn.ReLU(),
      nn.ConvTranspose2d(6, 2, 2, { stride = 2, bias = false, dtype = dt, generator = g }))
  end },
  { "conv_transpose3d + conv", { 2, 3, 4, 3 }, function(dt, g)
    return nn.Sequential(nn.ConvTranspose3d(2, 3, 2, { stride = 2, padding = { 0, 1, 0 }, dtype = dt, generator = g }),
      nn.Conv3d(3, 2, 3, { padding = 1, dtype = dt, generator = g }), nn.GlobalAvgPool3d())
  end },
  { "upsample linear 1d", { 2, 5 }, function(dt, g)
    return nn.Sequential(nn.Conv1d(2, 2, 1, { dtype = dt, generator = g }), nn.Upsample({ scale_factor = 3, mode = "linear" }))
  end },
  { "upsample linear 1d align_corners", { 2, 5 }, function(dt, g)
    return nn.Sequential(nn.Conv1d(2, 2, 1, { dtype = dt, generator = g }),
      nn.Upsample({ scale_factor = 2, mode = "linear", align_corners = true }))
  end },
  { "upsample bilinear", { 2, 3, 4 }, function(dt, g)
    return nn.Sequential(nn.Conv2d(2, 3, 1, { dtype = dt, generator = g }), nn.Upsample({ scale_factor = { 2, 3 }, mode = "bilinear" }),
      nn.Upsample({ size = { 12, 24 }, mode = "bilinear", align_corners = true }))
  end },
  { "upsample trilinear", { 1, 2, 3, 2 }, function(dt, g)
    return nn.Sequential(nn.Conv3d(1, 2, 1, { dtype = dt, generator = g }), nn.Upsample({ scale_factor = 2, mode = "trilinear" }),
      nn.Upsample({ scale_factor = { 1, 2, 3 }, mode = "trilinear", align_corners = true }))
  end },
}

function test_every_layer_matches_forward()
  helpers.check_compiled_cases(CASES)
end

function test_deterministic_rows_do_not_depend_on_batch()
  local g = mimic.Generator(4)
  local m = nn.Sequential(nn.LSTM(3, 8, { num_layers = 2, batch_first = true, generator = g }),
    nn.LastStep({ batch_first = true })):evaluate()
  local p = m:compile({ input_shape = { 6, 3 }, deterministic = true, chunk = 5 })
  local x = g:rand({ 13, 18 })
  local all = p:forward(x)
  for _, i in ipairs({ 1, 6, 13 }) do
    local one = p:forward(x:narrow(1, i, 1))
    lu.assertEquals((one - all:narrow(1, i, 1)):abs():max():item(), 0)
  end
end

function test_time_first_model_forward_uses_the_plan()
  local g = mimic.Generator(8)
  local m = nn.Sequential(nn.GRU(3, 4, { num_layers = 2, generator = g })):evaluate()
  local x = g:rand({ 6, 5, 3 }) -- [T, B, F]
  local ref = lua_forward(m, x)
  m:compile({ input_shape = { 6, 3 } })
  local y = mimic.no_grad(function() return m:forward(x) end)
  lu.assertEquals(y:size(), { 6, 5, 4 })
  lu.assertTrue(maxrel(y, ref) <= 1e-5)
  -- the plan is the snapshot: changing the weights does not change model:forward
  mimic.no_grad(function() m:get(1).weight_hh_l1:mul_(3) end)
  lu.assertTrue(maxrel(mimic.no_grad(function() return m:forward(x) end), ref) <= 1e-5)
  local s = nn.Sequential(nn.LSTM(3, 4, { generator = g }), nn.LastStep()):evaluate()
  local r2 = lua_forward(s, x)
  s:compile({ input_shape = { 6, 3 } })
  lu.assertTrue(maxrel(mimic.no_grad(function() return s:forward(x) end), r2) <= 1e-5)
end

function test_errors_name_the_module()
  local m = nn.Sequential(nn.LSTM(3, 4, { batch_first = true }), nn.LastStep({ batch_first = true }))
  raises("a convolutional or recurrent model needs the sample shape", m.compile, m)
  raises("needs a [T, features] sequence per sample", m.compile, m, { input_shape = { 2, 3, 4 } })
  raises("the sequence has 2 features per step, the layer takes 3", m.compile, m, { input_shape = { 5, 2 } })
  local mix = nn.Sequential(nn.LSTM(3, 4, { batch_first = true }), nn.LastStep())
  raises("batch_first = false differs from an earlier recurrent layer's", mix.compile, mix, { input_shape = { 5, 3 } })
  local t = nn.Sequential(nn.ConvTranspose1d(1, 1, 3, { padding = 3 }))
  raises("the output size along dim 1 is -2", t.compile, t, { input_shape = { 1, 2 } })
  local u = nn.Sequential(nn.Upsample({ scale_factor = 2, mode = "bilinear" }))
  raises("mode 'bilinear' does not fit a sample with 1 spatial dims", u.compile, u, { input_shape = { 1, 8 } })
  local u2 = nn.Sequential(nn.Upsample({ scale_factor = 1.5, mode = "linear" }))
  raises("only integer scale factors", u2.compile, u2, { input_shape = { 1, 8 } })
  -- a Linear on a sequence output (per step) has no row form: the width does not match
  local w = nn.Sequential(nn.GRU(2, 3, { batch_first = true }), nn.Linear(3, 1))
  raises("dense weight must be [out, 12]", w.compile, w, { input_shape = { 4, 2 } })
  -- the records themselves are checked by the C builders
  raises("give both biases", mimic.compile_layers, { { type = "lstm", seq_len = 2, input_size = 1, hidden_size = 1,
    weight_ih = mimic.zeros(4, 1), weight_hh = mimic.zeros(4, 1), bias_ih = mimic.zeros(4) } }, 2)
  raises("seq_len 2 x input_size 3 = 6 features, the model's current width is 5", mimic.compile_layers,
    { { type = "gru", seq_len = 2, input_size = 3, hidden_size = 1, weight_ih = mimic.zeros(3, 3),
        weight_hh = mimic.zeros(3, 1) } }, 5)
  raises("seq_len 4 does not divide the width 6", mimic.compile_layers, { { type = "last_step", seq_len = 4 } }, 6)
  raises("output_padding 2 must be smaller than stride 2 or dilation 1", mimic.compile_layers,
    { { type = "conv_transpose", ndim = 1, in_channels = 1, out_channels = 1, size = { 4 }, kernel = { 3 }, stride = { 2 },
        output_padding = { 2 }, weight = mimic.zeros(1, 1, 3) } }, 4)
end

function test_save_load_embed_equal_forward()
  for _, dt in ipairs({ "float32", "float64" }) do
    for k, c in ipairs({
      { { 8, 3 }, 2, function(g)
        return nn.Sequential(nn.LSTM(3, 6, { num_layers = 2, batch_first = true, dtype = dt, generator = g }),
          nn.LastStep({ batch_first = true }), nn.Linear(6, 2, { dtype = dt, generator = g }))
      end },
      { { 5, 2 }, 15, function(g)
        return nn.Sequential(nn.GRU(2, 3, { batch_first = true, dtype = dt, generator = g }),
          nn.RNN(3, 3, { nonlinearity = "relu", batch_first = true, bias = false, dtype = dt, generator = g }))
      end },
      { { 2, 3, 4 }, 4 * 6 * 8, function(g)
        return nn.Sequential(nn.ConvTranspose2d(2, 4, 3, { stride = 2, padding = 1, output_padding = 1, groups = 2, dtype = dt, generator = g }),
          nn.Tanh(), nn.Upsample({ scale_factor = { 1, 1 }, mode = "bilinear", align_corners = true }))
      end },
    }) do
      local g = mimic.Generator(5 + k)
      local m = c[3](g):evaluate()
      local nin = helpers.numel(c[1])
      local inputs = { { name = "x", units = "1", size = nin } }
      local outputs = { { name = "y", units = "1", size = c[2] } }
      local shp = { 5 }
      for _, v in ipairs(c[1]) do shp[#shp + 1] = v end
      local x = g:rand(shp, { dtype = dt }) * 2 - 1
      local ref = lua_forward(m, x):reshape({ 5, c[2] })
      local path = dir .. "/m" .. k .. "_" .. dt .. ".h5"
      local hash = m:save(path, { inputs = inputs, outputs = outputs, input_shape = c[1] })
      local tol = dt == "float32" and 1e-5 or 1e-12
      local L = mimic.load_model(path)
      lu.assertEquals(L.hash, hash)
      lu.assertTrue(maxrel(L:forward(x:reshape({ 5, nin }):to("float64")), ref) <= tol)
      local h = mimic.embed.open(path)
      local y = h:run { x = x:reshape({ 5, nin }) }
      lu.assertTrue(maxrel(y.y, ref) <= tol)
      h:close()
      -- the embedding API converts every record to the other precision at open
      local other = dt == "float32" and "float64" or "float32"
      local hc = mimic.embed.open(path, { precision = other })
      lu.assertTrue(maxrel(hc:run { x = x:reshape({ 5, nin }) }.y, ref) <= 1e-5)
      hc:close()
      -- saving again gives the same hash (the records are canonical)
      lu.assertEquals(m:save(dir .. "/again.h5", { inputs = inputs, outputs = outputs, input_shape = c[1] }), hash)
    end
  end
end

os.exit(lu.LuaUnit.run())
