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
-- identity at inference). Anything else -- user-defined modules included --
-- is an error naming the module.
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
local function flatten(m, path, out, verb)
  local t = m.__typename
  local where = path == "" and "" or " (at '" .. path .. "')"
  local function child_path(name) return path == "" and name or path .. "." .. name end
  if t == "Sequential" then
    for _, e in ipairs(m:named_children()) do flatten(e[2], child_path(e[1]), out, verb) end
  elseif t == "Residual" then
    out[#out + 1] = { type = "residual_begin" }
    flatten(m._modules["1"], child_path("1"), out, verb)
    out[#out + 1] = { type = "residual_end" }
  elseif t == "Linear" then
    out[#out + 1] = { type = "dense", weight = m.weight, bias = m.bias }
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
  else
    fail(string.format("%s: nn.%s%s has no %s form (%s: Sequential, Residual, Linear, "
      .. "activations, LayerNorm, BatchNorm1d, Dropout)", verb, tostring(t), where,
      verb == "save" and "file" or "compiled", verb == "save" and "saved" or "compiled"))
  end
  return out
end

-- The flat layer records of a built-in module tree (the list that
-- mimic.compile_layers and mimic._save_model take; lua/lplan.c). verb
-- ("compile" by default, "save") starts the error messages.
function plan.records(model, verb)
  return flatten(model, "", {}, verb or "compile")
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
  local known = { dtype = true, chunk = true, deterministic = true, nin = true }
  for k in pairs(opts) do
    if not known[k] then fail("compile: unknown option '" .. tostring(k) .. "' (dtype, chunk, deterministic, nin)") end
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
  local nin = opts.nin or plan.input_width(model)
  if not nin then
    fail("compile: cannot tell the input width (no Linear, LayerNorm or BatchNorm1d); give {nin = ...}")
  end
  local dtype = opts.dtype
  if not dtype then
    local ps = model:parameters()
    dtype = ps[1] and ps[1]:dtype() or "float32"
  end
  local p = mimic.no_grad(function()
    local records = plan.records(model, "compile")
    return mimic.compile_layers(records, nin, { dtype = dtype, chunk = opts.chunk, deterministic = opts.deterministic })
  end)
  rawset(model, "_compiled", p)
  return p
end

-- The plan's output for x if the rule above allows using it, else nil.
function plan.try_forward(model, x)
  local p = rawget(model, "_compiled")
  if not p or model.training or mimic.is_grad_enabled() or not mimic.is_tensor(x) then return nil end
  local d = x:dim()
  if (d ~= 1 and d ~= 2) or x:size(d) ~= p:nin() or x:dtype() ~= p:dtype() then return nil end
  return p:forward(x)
end

return plan
