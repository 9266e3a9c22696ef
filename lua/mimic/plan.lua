-- mimic.plan: compiles a tree of built-in nn modules into the C inference
-- plan (core/include/mimic/model.h) through mimic.compile_layers (lua/lplan.c).
--
--   model:compile([{dtype =, chunk =, deterministic =, nin =}]) -> Plan
--   plan:forward(x)   x [n, nin] (or [nin]) -> [n, nout], no autograd, no Lua per layer
--   plan.records(model [, verb])  the flat layer records (also what model:save writes)
--   plan.input_width(model)       the input width, or nil
--
-- Compiled layers: Sequential, Residual, Linear, ReLU, LeakyReLU, ELU, GELU,
-- Tanh, Sigmoid, Softplus, Identity, LayerNorm (one normalized dim),
-- BatchNorm1d (running statistics: its evaluation form) and Dropout (the
-- identity at inference); convolutional models: Conv1d/2d/3d (zeros or
-- circular padding, stride, dilation, groups), MaxPool/AvgPool 1d/2d/3d,
-- GlobalAvgPool*/GlobalMaxPool*, Upsample (nearest, linear/bilinear/
-- trilinear with align_corners; integer factors), ConvTranspose1d/2d/3d and
-- Flatten; recurrent models: RNN (tanh, relu), LSTM, GRU (any num_layers,
-- one record per layer) and LastStep. Anything else -- user-defined
-- modules included -- is an error naming the module.
--
-- Recurrent models need the per-sample sequence shape: {input_shape = {T,
-- features}}. A plan row is one sample's [T, features] steps (batch first);
-- model:forward(x) of a time-first model (batch_first = false) transposes
-- x [T, B, F] for the plan and a sequence output back.
--
-- Convolutional models need the per-sample input shape: {input_shape = {C,
-- [D, [H,]] W}}. The plan still takes rows (the flattened sample, channels
-- first); model:forward(x) with x [n, C, ...] uses the plan too, reshaping.
--
-- The plan is a snapshot of the weights at compile time. After
-- model:compile(), model:forward(x) (a Sequential) runs the plan when
--   * the model is in evaluate mode (model:evaluate()),
--   * gradients are off (mimic.no_grad), and
--   * x is a [n, nin] or [nin] tensor of the plan's dtype;
-- otherwise it runs the Lua modules as before. Compile again after changing
-- the weights; model:compile(false) drops the plan.
local mimic = require "mimic"

local plan = {}

local ACT = {
  ReLU = "relu", Tanh = "tanh", Sigmoid = "sigmoid", GELU = "gelu", Identity = "identity",
  LeakyReLU = "leaky_relu", ELU = "elu", Softplus = "softplus",
}

local function fail(msg) error(msg, 0) end

-- Appends m's records to out; path names m in the tree for messages, which
-- start with verb ("compile", "save").
local NSP = { Conv1d = 1, Conv2d = 2, Conv3d = 3, MaxPool1d = 1, MaxPool2d = 2, MaxPool3d = 3,
              AvgPool1d = 1, AvgPool2d = 2, AvgPool3d = 3 }
local CONVT = { ConvTranspose1d = 1, ConvTranspose2d = 2, ConvTranspose3d = 3 }
local RECURRENT = { RNN = true, LSTM = true, GRU = true }
local GLOBAL = { GlobalAvgPool1d = "global_avg_pool", GlobalAvgPool2d = "global_avg_pool",
                 GlobalAvgPool3d = "global_avg_pool", GlobalMaxPool1d = "global_max_pool",
                 GlobalMaxPool2d = "global_max_pool", GlobalMaxPool3d = "global_max_pool" }

local function prod(t)
  local p = 1
  for _, v in ipairs(t) do p = p * v end
  return p
end

-- The spatial record of conv/pool module m on per-sample shape st.shape
-- ({C, sizes...}); updates st.shape to the output shape.
local function spatial_record(m, t, st, verb, where)
  local nsp = NSP[t]
  local sh = st.shape
  if not sh or #sh ~= nsp + 1 then
    fail(string.format("%s: %s%s needs a [C, %d spatial] sample, but the shape there is %s; give "
      .. "input_shape = {C, ...} (channels first)", verb, tostring(m), where, nsp,
      sh and ("[" .. table.concat(sh, ", ") .. "]") or "unknown"))
  end
  local r = { ndim = nsp, in_channels = sh[1], size = {}, kernel = m.kernel_size, stride = m.stride,
              dilation = m.dilation or {} }
  for i = 1, nsp do r.size[i] = sh[i + 1]; r.dilation[i] = r.dilation[i] or 1 end
  if t:sub(1, 4) == "Conv" then
    r.type, r.out_channels, r.groups = "conv", m.out_channels, m.groups
    r.circular = m.padding_mode == "circular"
    r.weight, r.bias = m.weight, m.bias
    if m.padding == "same" then
      r.padding = {}
      for i = 1, nsp do
        local tot = r.dilation[i] * (r.kernel[i] - 1)
        if tot % 2 ~= 0 then
          fail(string.format("%s: %s%s: padding 'same' with an even window is asymmetric; give explicit padding",
            verb, tostring(m), where))
        end
        r.padding[i] = tot // 2
      end
    else
      r.padding = m.padding
    end
  else
    r.type = t:sub(1, 3) == "Max" and "max_pool" or "avg_pool"
    r.padding = m.padding
    r.circular = r.type == "avg_pool" and m.count_include_pad
  end
  local o = { r.out_channels or sh[1] }
  for i = 1, nsp do
    local span = r.dilation[i] * (r.kernel[i] - 1) + 1
    local room = r.size[i] + 2 * r.padding[i]
    if room < span then
      fail(string.format("%s: %s%s: the window does not fit the input size %d (dim %d)", verb, tostring(m),
        where, r.size[i], i))
    end
    o[i + 1] = (room - span) // r.stride[i] + 1
  end
  st.shape = o
  return r
end

local function shape_s(sh) return sh and ("[" .. table.concat(sh, ", ") .. "]") or "unknown" end

-- The record of ConvTransposeNd m on per-sample shape st.shape; updates it.
local function convt_record(m, t, st, verb, where)
  local nsp = CONVT[t]
  local sh = st.shape
  if not sh or #sh ~= nsp + 1 then
    fail(string.format("%s: %s%s needs a [C, %d spatial] sample, but the shape there is %s; give "
      .. "input_shape = {C, ...} (channels first)", verb, tostring(m), where, nsp, shape_s(sh)))
  end
  if m.padding == "same" then
    fail(string.format("%s: %s%s: padding 'same' has no transposed form; give explicit padding", verb, tostring(m), where))
  end
  local r = { type = "conv_transpose", ndim = nsp, in_channels = sh[1], out_channels = m.out_channels,
              groups = m.groups, size = {}, kernel = m.kernel_size, stride = m.stride, padding = m.padding,
              dilation = m.dilation, output_padding = m.output_padding, weight = m.weight, bias = m.bias }
  local o = { m.out_channels }
  for i = 1, nsp do
    r.size[i] = sh[i + 1]
    o[i + 1] = (sh[i + 1] - 1) * r.stride[i] - 2 * r.padding[i] + r.dilation[i] * (r.kernel[i] - 1) + 1
      + r.output_padding[i]
    if o[i + 1] < 1 then
      fail(string.format("%s: %s%s: the output size along dim %d is %d (padding too large)", verb, tostring(m),
        where, i, o[i + 1]))
    end
  end
  st.shape = o
  return r
end

-- A recurrent layer (one record per layer) or LastStep on a per-sample
-- sequence st.shape = {T, features}: a row is one sample's [T, F] steps,
-- whatever the layer's batch_first (st.time_first remembers which layout
-- the Lua model takes, for model:forward).
local function recurrent_records(m, t, out, st, verb, where)
  local sh = st.shape
  local bf = m.batch_first == true
  if st.time_first ~= nil and st.time_first == bf then
    fail(string.format("%s: %s%s: batch_first = %s differs from an earlier recurrent layer's; use one layout in a "
      .. "model", verb, tostring(m), where, tostring(bf)))
  end
  st.time_first = not bf
  if not sh or #sh ~= 2 then
    fail(string.format("%s: %s%s needs a [T, features] sequence per sample, but the shape there is %s; give "
      .. "input_shape = {T, features}", verb, tostring(m), where, shape_s(sh)))
  end
  if t == "LastStep" then
    out[#out + 1] = { type = "last_step", seq_len = sh[1] }
    st.shape = { sh[2] }
    return
  end
  if sh[2] ~= m.input_size then
    fail(string.format("%s: %s%s: the sequence has %d features per step, the layer takes %d", verb, tostring(m),
      where, sh[2], m.input_size))
  end
  for l = 0, m.num_layers - 1 do
    out[#out + 1] = { type = m.mode, seq_len = sh[1], input_size = l == 0 and m.input_size or m.hidden_size,
      hidden_size = m.hidden_size, weight_ih = m["weight_ih_l" .. l], weight_hh = m["weight_hh_l" .. l],
      bias_ih = m["bias_ih_l" .. l], bias_hh = m["bias_hh_l" .. l] }
  end
  st.shape = { sh[1], m.hidden_size }
end

local function flatten(m, path, out, verb, st)
  local t = m.__typename
  local where = path == "" and "" or " (at '" .. path .. "')"
  local function child_path(name) return path == "" and name or path .. "." .. name end
  if t == "Sequential" then
    for _, e in ipairs(m:named_children()) do flatten(e[2], child_path(e[1]), out, verb, st) end
  elseif t == "Residual" then
    out[#out + 1] = { type = "residual_begin" }
    flatten(m._modules["1"], child_path("1"), out, verb, st)
    out[#out + 1] = { type = "residual_end" }
  elseif t == "Linear" then
    out[#out + 1] = { type = "dense", weight = m.weight, bias = m.bias }
    st.shape = { m.out_features }
  elseif NSP[t] then
    out[#out + 1] = spatial_record(m, t, st, verb, where)
  elseif CONVT[t] then
    out[#out + 1] = convt_record(m, t, st, verb, where)
  elseif RECURRENT[t] or t == "LastStep" then
    recurrent_records(m, t, out, st, verb, where)
  elseif GLOBAL[t] then
    if not st.shape or #st.shape < 2 then
      fail(string.format("%s: %s%s needs a [C, spatial...] sample; give input_shape = {C, ...}", verb,
        tostring(m), where))
    end
    out[#out + 1] = { type = GLOBAL[t], channels = st.shape[1] }
    st.shape = { st.shape[1] }
  elseif t == "Upsample" then
    local sh = st.shape
    local label = verb == "save" and "file" or "compiled"
    if not sh or #sh < 2 or #sh > 4 then
      fail(string.format("%s: %s%s needs a [C, spatial...] sample; give input_shape = {C, ...}", verb, tostring(m), where))
    end
    local nsp = #sh - 1
    local linear = ({ "linear", "bilinear", "trilinear" })[nsp]
    if m.mode ~= "nearest" and m.mode ~= "linear" and m.mode ~= linear then
      fail(string.format("%s: %s%s: mode '%s' does not fit a sample with %d spatial dims (nearest, %s)", verb,
        tostring(m), where, tostring(m.mode), nsp, linear))
    end
    local r = { type = m.mode == "nearest" and "upsample" or "upsample_linear", ndim = nsp, in_channels = sh[1],
                size = {}, stride = {}, circular = m.mode ~= "nearest" and m.align_corners == true }
    local o = { sh[1] }
    for i = 1, nsp do
      local f
      if m.scale_factor ~= nil then
        f = type(m.scale_factor) == "table" and m.scale_factor[i] or m.scale_factor
      else
        local sz = type(m.size) == "table" and m.size[i] or m.size
        f = sz / sh[i + 1]
      end
      if math.type(f) ~= "integer" and not (type(f) == "number" and f == math.floor(f)) then
        fail(string.format("%s: %s%s: only integer scale factors have a %s form", verb, tostring(m), where, label))
      end
      f = math.tointeger(f)
      r.size[i], r.stride[i] = sh[i + 1], f
      o[i + 1] = sh[i + 1] * f
    end
    st.shape = o
    out[#out + 1] = r
  elseif t == "Flatten" then
    if m.start_dim ~= 2 or m.end_dim ~= -1 then
      fail(string.format("%s: %s%s: only Flatten(2, -1) (all but the batch dim) has a %s form", verb,
        tostring(m), where, verb == "save" and "file" or "compiled"))
    end
    out[#out + 1] = { type = "flatten" }
    if st.shape then st.shape = { prod(st.shape) } end
  elseif ACT[t] then
    out[#out + 1] = { type = ACT[t], p0 = m.negative_slope or m.alpha or m.beta, p1 = m.threshold }
  elseif t == "Dropout" then
    -- the identity at inference: no record
  elseif t == "LayerNorm" then
    if #m.normalized_shape ~= 1 then
      fail(string.format("%s: %s%s normalizes over %d dims; %s take one (rows of features)",
        verb, tostring(m), where, #m.normalized_shape, verb == "save" and "model files" or "compiled plans"))
    end
    out[#out + 1] = { type = "layernorm", eps = m.eps, weight = m.weight, bias = m.bias }
  elseif t == "BatchNorm1d" then
    if not m.track_running_stats then
      fail(string.format("%s: %s%s has no running statistics (track_running_stats=false), so it has no "
        .. "evaluation form to %s", verb, tostring(m), where, verb))
    end
    out[#out + 1] = { type = "batchnorm1d", eps = m.eps, mean = m.running_mean, var = m.running_var,
      weight = m.weight, bias = m.bias }
  elseif type(m.lower) == "function" then
    -- a module that says which built-in modules it equals (mimic.constraints)
    flatten(m:lower(), path, out, verb, st)
  else
    fail(string.format("%s: nn.%s%s has no %s form (%s: Sequential, Residual, Linear, "
      .. "activations, LayerNorm, BatchNorm1d, Dropout, Conv1d/2d/3d, ConvTranspose1d/2d/3d, MaxPool/AvgPool, "
      .. "GlobalAvgPool/GlobalMaxPool, Upsample (nearest, linear), Flatten, RNN, LSTM, GRU, LastStep)", verb, tostring(t), where,
      verb == "save" and "file" or "compiled", verb == "save" and "saved" or "compiled"))
  end
  return out
end

-- The flat layer records of a built-in module tree (the list that
-- mimic.compile_layers and mimic._save_model take; lua/lplan.c). verb
-- ("compile" by default, "save") starts the error messages.
-- input_shape: the per-sample shape {C, sizes...} (needed by spatial
-- layers). Returns the records and the per-sample output shape (nil if
-- unknown).
function plan.records(model, verb, input_shape)
  local st = { shape = input_shape }
  local recs = flatten(model, "", {}, verb or "compile", st)
  return recs, st.shape, st.time_first
end

-- True if the model has layers that need the input's spatial shape.
function plan.is_spatial(m)
  for _, e in ipairs(m:named_modules()) do
    local t = e[2].__typename
    if NSP[t] or CONVT[t] or GLOBAL[t] or t == "Upsample" or RECURRENT[t] or t == "LastStep" then return true end
  end
  return false
end

-- The input width from opts.input_shape / opts.nin / the first layer; errors
-- for spatial models without input_shape. verb starts the messages.
function plan.width_of(model, opts, verb)
  local shp = opts.input_shape
  if shp ~= nil then
    if type(shp) ~= "table" or #shp < 1 then fail(verb .. ": input_shape must be a table {C, sizes...}") end
    for _, v in ipairs(shp) do
      if math.type(v) ~= "integer" or v < 1 then fail(verb .. ": input_shape entries must be integers >= 1") end
    end
    local nin = prod(shp)
    if opts.nin and opts.nin ~= nin then
      fail(string.format("%s: nin = %d but input_shape gives %d", verb, opts.nin, nin))
    end
    return nin
  end
  if plan.is_spatial(model) then
    fail(verb .. ": a convolutional or recurrent model needs the sample shape: give input_shape = {C, [D, [H,]] W} "
      .. "(channels first) or {T, features} (one sequence)")
  end
  return opts.nin or plan.input_width(model)
end

-- The input width: from the first layer that has one (nil if none has).
function plan.input_width(m)
  for _, e in ipairs(m:named_modules()) do
    local c = e[2]
    if c.__typename == "Linear" then return c.in_features end
    if c.__typename == "LayerNorm" then return c.normalized_shape[1] end
    if c.__typename == "BatchNorm1d" then return c.num_features end
  end
end

local function check_opts(opts)
  local known = { dtype = true, chunk = true, deterministic = true, nin = true, input_shape = true }
  for k in pairs(opts) do
    if not known[k] then fail("compile: unknown option '" .. tostring(k) .. "' (dtype, chunk, deterministic, nin, input_shape)") end
  end
end

function plan.compile(model, opts)
  if opts == false then
    rawset(model, "_compiled", nil)
    return nil
  end
  opts = opts or {}
  check_opts(opts)
  model:check_builtin("a compiled inference plan (model:compile)")
  local nin = plan.width_of(model, opts, "compile")
  if not nin then
    fail("compile: cannot tell the input width (no Linear, LayerNorm or BatchNorm1d); give {nin = ...}")
  end
  local dtype = opts.dtype
  if not dtype then
    local ps = model:parameters()
    dtype = ps[1] and ps[1]:dtype() or "float32"
  end
  local out_shape, time_first
  local p = mimic.no_grad(function()
    local records
    records, out_shape, time_first = plan.records(model, "compile", opts.input_shape)
    return mimic.compile_layers(records, nin, { dtype = dtype, chunk = opts.chunk, deterministic = opts.deterministic })
  end)
  rawset(model, "_compiled", p)
  rawset(model, "_compiled_shapes", opts.input_shape and { opts.input_shape, out_shape, time_first } or nil)
  return p
end

-- The plan's output for x if the rule above allows using it, else nil.
function plan.try_forward(model, x)
  local p = rawget(model, "_compiled")
  if not p or model.training or mimic.is_grad_enabled() or not mimic.is_tensor(x) then return nil end
  local d = x:dim()
  local shapes = rawget(model, "_compiled_shapes")
  if shapes then -- [n, C, ...] or [C, ...] samples: rows in, the output shape back
    local ins, outs = shapes[1], shapes[2]
    local lead = d - #ins
    -- time-first recurrent models take [T, B, F]: the plan's rows are samples [T, F]
    local tf = shapes[3] and lead == 1
    if tf then x = x:transpose(1, 2):contiguous() end
    if (lead ~= 0 and lead ~= 1) or x:dtype() ~= p:dtype() then return nil end
    for i = 1, #ins do if x:size(lead + i) ~= ins[i] then return nil end end
    local n = lead == 1 and x:size(1) or 1
    local y = p:forward(x:reshape({ n, p:nin() }))
    local shp = lead == 1 and { n } or {}
    for _, v in ipairs(outs or { p:nout() }) do shp[#shp + 1] = v end
    y = y:reshape(shp)
    if tf and #shp == 3 then y = y:transpose(1, 2) end -- a sequence output back to [T, B, H]
    return y
  end
  if (d ~= 1 and d ~= 2) or x:size(d) ~= p:nin() or x:dtype() ~= p:dtype() then return nil end
  return p:forward(x)
end

return plan
