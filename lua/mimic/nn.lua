-- mimic.nn: Torch7-style modules, layers, losses and initialisers on top of
-- mimic's autograd (docs/nn.md is the reference).
--
-- A module is an instance of a class made with Module:extend(name). Its state
-- lives in three ordered registries, filled in declaration order:
--   self.weight = nn.Parameter(t)   a parameter (trainable; requires grad)
--   self.layer  = SomeModule(...)   a child module
--   self:add_buffer("running_mean", t)   a buffer (state that is not trained)
-- (self:add_parameter / add_module / add_buffer do the same explicitly.) Any
-- other value assigned to self is a plain field. Registered entries are read
-- back as self.name; dotted paths ("1.weight") name them in the tree.
--
-- Layers are compositions of differentiable C ops, so gradients flow through
-- them exactly as through hand-written code; the C inference engine may fuse
-- them later without changing the maths.
local mimic = require "mimic"

local nn = {}
local F = {}   -- nn.functional
local init = {} -- nn.init
nn.functional = F
nn.init = init

local is_tensor = mimic.is_tensor

-- --- errors -----------------------------------------------------------------------
-- Errors point at the first caller outside this file (the user's line), however
-- deep inside nn the problem is found: as error(msg, 2) would from the API
-- function the user called.
local THIS = debug.getinfo(1, "S").source
local function raise(msg)
  local level = 2 -- the caller of raise; levels count as error()'s do
  while true do
    local info = debug.getinfo(level, "S")
    -- also past C frames (mimic.no_grad, pcall) between nn and the caller
    if not info or (info.source ~= THIS and info.what ~= "C") then break end
    level = level + 1
  end
  error(msg, level)
end

local function shape_str(t)
  return "[" .. table.concat(t:size(), ",") .. "]"
end

-- Checks an options table against the known keys (a typo is an error, not a
-- silently ignored option). Returns the table (or an empty one for nil).
local function check_opts(fn, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or is_tensor(opts) then
    raise(string.format("%s: options must be a table, got %s", fn, type(opts)))
  end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      raise(string.format("%s: unknown option '%s' (options: %s)", fn, tostring(k), table.concat(names, ", ")))
    end
  end
  return opts
end

local FLOAT_DTYPES = { float32 = "float32", float = "float32", f32 = "float32",
                       float64 = "float64", double = "float64", f64 = "float64" }
local function float_dtype(fn, dt)
  if dt == nil then return "float32" end
  local c = FLOAT_DTYPES[dt]
  if not c then raise(string.format("%s: dtype must be float32 or float64, got %s", fn, tostring(dt))) end
  return c
end

local function check_size(fn, what, v, min)
  if math.type(v) ~= "integer" or v < (min or 1) then
    raise(string.format("%s: %s must be an integer >= %d, got %s", fn, what, min or 1, tostring(v)))
  end
end

local function check_number(fn, what, v, lo, hi)
  if type(v) ~= "number" or v ~= v or (lo and v < lo) or (hi and v > hi) then
    local range = lo and hi and string.format(" in [%g, %g]", lo, hi) or lo and string.format(" >= %g", lo) or ""
    raise(string.format("%s: %s must be a number%s, got %s", fn, what, range, tostring(v)))
  end
end

local function check_tensor(fn, what, v)
  if not is_tensor(v) then
    raise(string.format("%s: %s must be a mimic.Tensor, got %s", fn, what, type(v)))
  end
  return v
end

-- --- parameters -------------------------------------------------------------------
-- A Parameter is an ordinary tensor that requires grad, remembered here (weakly)
-- so that assigning it to a module field registers it.
local param_marks = setmetatable({}, { __mode = "k" })

-- nn.Parameter(t [, requires_grad = true]): marks t (or, if t was computed
-- with autograd, a detached leaf sharing its data) as a parameter; returns it.
function nn.Parameter(t, requires_grad)
  check_tensor("nn.Parameter", "argument", t)
  local dt = t:dtype()
  if dt ~= "float32" and dt ~= "float64" then
    raise("nn.Parameter: parameters must be float32 or float64 tensors, got " .. dt)
  end
  if not t:is_leaf() then t = t:detach() end
  t:requires_grad_(requires_grad ~= false)
  param_marks[t] = true
  return t
end

function nn.is_parameter(v) return param_marks[v] == true end

-- --- the Module class ------------------------------------------------------------------
local Module = {}
nn.Module = Module

local function is_module(v) return type(v) == "table" and rawget(v, "_modules") ~= nil end
local function is_class(v) return type(v) == "table" and rawget(v, "__typename") ~= nil and rawget(v, "_modules") == nil end
-- How a class is written in code: nn.Linear for built-ins, MyBlock for user classes.
local function class_name(cls) return (rawget(cls, "__builtin") and "nn." or "") .. cls.__typename end
nn.is_module = is_module

local KINDS = {
  parameter = { map = "_parameters", names = "_parameter_names" },
  buffer = { map = "_buffers", names = "_buffer_names" },
  module = { map = "_modules", names = "_module_names" },
}

local function typename(m) return m.__typename or "Module" end

-- Registry keys are strings; integer keys (Sequential's children) map to "1", "2", ...
local function key_of(k)
  if math.type(k) == "integer" then return tostring(k) end
  if math.type(k) == "float" and k == math.floor(k) then return string.format("%d", k) end
  return k
end

local function unregister(self, name)
  for _, kind in pairs(KINDS) do
    local map, names = rawget(self, kind.map), rawget(self, kind.names)
    if map[name] ~= nil then
      map[name] = nil
      for i = 1, #names do
        if names[i] == name then table.remove(names, i) break end
      end
    end
  end
end

-- Registers value under name as `kind`, keeping the position of a name that
-- is re-registered (so replacing a parameter keeps the declaration order).
local function register(self, kind, name, value, fn)
  name = key_of(name)
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) then
    raise(string.format("%s: %s name must be a non-empty string without '.', got %s", fn, kind, tostring(name)))
  end
  local cls = getmetatable(self)
  if cls and type(cls[name]) == "function" then
    raise(string.format("%s: cannot register %s '%s': the name is a method of %s", fn, kind, name, typename(self)))
  end
  local k = KINDS[kind]
  local map, names = rawget(self, k.map), rawget(self, k.names)
  if value == nil then
    unregister(self, name)
    return
  end
  if map[name] == nil then
    unregister(self, name) -- the name may change kind (buffer -> parameter, ...)
    rawset(self, name, nil)  -- a plain field of that name would hide the entry
    names[#names + 1] = name
  end
  map[name] = value
end

local function instance_index(cls)
  return function(self, k)
    local key = key_of(k)
    local v = rawget(self, "_parameters")[key]
    if v ~= nil then return v end
    v = rawget(self, "_modules")[key]
    if v ~= nil then return v end
    v = rawget(self, "_buffers")[key]
    if v ~= nil then return v end
    return cls[k]
  end
end

local function instance_newindex(self, k, v)
  local key = key_of(k)
  if param_marks[v] then return register(self, "parameter", key, v, typename(self)) end
  if is_module(v) then return register(self, "module", key, v, typename(self)) end
  if rawget(self, "_parameters")[key] ~= nil then
    if v == nil then return unregister(self, key) end
    raise(string.format("%s: cannot assign a %s to parameter '%s' (assign nn.Parameter(t), or nil to remove it)",
      typename(self), is_tensor(v) and "plain tensor" or type(v), key))
  end
  if rawget(self, "_buffers")[key] ~= nil then
    if v == nil or is_tensor(v) then return register(self, "buffer", key, v, typename(self)) end
    raise(string.format("%s: cannot assign a %s to buffer '%s' (assign a tensor, or nil to remove it)",
      typename(self), type(v), key))
  end
  if rawget(self, "_modules")[key] ~= nil then
    if v == nil then return unregister(self, key) end
    if is_class(v) then
      raise(string.format("%s: assigned the class %s to child '%s'; create an instance, e.g. %s()",
        typename(self), class_name(v), key, class_name(v)))
    end
    raise(string.format("%s: cannot assign a %s to child module '%s'", typename(self), type(v), key))
  end
  if is_class(v) then -- almost always a forgotten call: self.act = nn.Tanh
    raise(string.format("%s: assigned the class %s to field '%s'; create an instance, e.g. %s() (to keep the "
      .. "class itself, use rawset)", typename(self), class_name(v), tostring(k), class_name(v)))
  end
  rawset(self, k, v)
end

-- m(...) is m:forward(...); a tail call, so errors point at the user's line.
local function call_forward(self, ...) return self:forward(...) end

local module_tostring -- defined below

local function construct(cls, ...)
  local self = {
    _parameters = {}, _parameter_names = {},
    _buffers = {}, _buffer_names = {},
    _modules = {}, _module_names = {},
    training = true,
  }
  setmetatable(self, cls)
  self:init(...)
  return self
end

-- Metamethods are looked up raw in an instance's metatable (its class), so
-- every class carries its own copies, inherited from the parent at creation.
local INHERITED_META = { "__call", "__tostring", "__len", "__close" }

local function new_class(name, parent, builtin)
  local cls = { __typename = name, __builtin = builtin, __parent = parent }
  cls.__index = instance_index(cls)
  cls.__newindex = instance_newindex
  for _, mm in ipairs(INHERITED_META) do cls[mm] = parent and parent[mm] end
  cls.__call = cls.__call or call_forward
  cls.__tostring = cls.__tostring or module_tostring
  return setmetatable(cls, {
    __index = parent,
    __call = construct,
    __tostring = function() return (builtin and "nn." or "") .. name .. " (class)" end,
  })
end

-- Module:extend(name): a user-defined subclass (of Module or of any module
-- class). Define cls:init(...) and cls:forward(...); instances are made by
-- calling the class: cls(...).
function Module.extend(parent, name)
  if not is_class(parent) then raise("extend: call it on a class, as nn.Module:extend(\"Name\")") end
  if type(name) ~= "string" or name == "" then
    raise("extend: give the new class a name, e.g. nn.Module:extend(\"MyBlock\")")
  end
  return new_class(name, parent, false)
end

Module.__typename = "Module"
Module.__builtin = false -- a bare nn.Module() is a user's container, forward written in Lua
Module.__index = instance_index(Module)
Module.__newindex = instance_newindex
Module.__call = call_forward
setmetatable(Module, { __call = construct, __tostring = function() return "Module (class)" end })

-- Built-in classes: marked so that model-file writers know a C implementation exists.
local function builtin(name, parent)
  local cls = new_class(name, parent or Module, true)
  nn[name] = cls
  return cls
end

Module.new = construct
function Module:init() end

function Module:forward()
  raise(string.format("%s: forward is not implemented; define function %s:forward(x)", typename(self), typename(self)))
end

-- A built-in class, and no forward defined on the instance itself.
function Module:is_builtin()
  return rawget(getmetatable(self), "__builtin") == true and rawget(self, "forward") == nil
end

function Module:add_parameter(name, t)
  if t ~= nil then
    check_tensor(typename(self) .. ":add_parameter", "the parameter", t)
    if not param_marks[t] then t = nn.Parameter(t) end
  end
  register(self, "parameter", name, t, typename(self) .. ":add_parameter")
  return t
end

function Module:add_buffer(name, t)
  if t ~= nil then check_tensor(typename(self) .. ":add_buffer", "the buffer", t) end
  register(self, "buffer", name, t, typename(self) .. ":add_buffer")
  return t
end

function Module:add_module(name, m)
  if m ~= nil and not is_module(m) then
    if is_class(m) then
      raise(string.format("%s:add_module: '%s' is the class %s; create an instance, e.g. %s()",
        typename(self), tostring(name), class_name(m), class_name(m)))
    end
    raise(string.format("%s:add_module: '%s' is a %s, expected a module", typename(self), tostring(name), type(m)))
  end
  register(self, "module", name, m, typename(self) .. ":add_module")
  return m
end

-- Walks the tree in declaration order: own entries first, then each child's.
local function collect(m, kind, prefix, out, seen)
  local k = KINDS[kind]
  local map = rawget(m, k.map)
  for _, name in ipairs(rawget(m, k.names)) do
    local v = map[name]
    if not seen or not seen[v] then
      if seen then seen[v] = true end
      out[#out + 1] = { prefix .. name, v }
    end
  end
  local mods = rawget(m, "_modules")
  for _, name in ipairs(rawget(m, "_module_names")) do
    collect(mods[name], kind, prefix .. name .. ".", out, seen)
  end
  return out
end

local function values(pairs_list)
  local out = {}
  for i, p in ipairs(pairs_list) do out[i] = p[2] end
  return out
end

-- Each tensor once, even if shared by several modules (weight tying).
function Module:named_parameters() return collect(self, "parameter", "", {}, {}) end
function Module:parameters() return values(self:named_parameters()) end
function Module:named_buffers() return collect(self, "buffer", "", {}, {}) end
function Module:buffers() return values(self:named_buffers()) end

function Module:named_children()
  local out = {}
  for _, name in ipairs(rawget(self, "_module_names")) do out[#out + 1] = { name, rawget(self, "_modules")[name] } end
  return out
end
function Module:children() return values(self:named_children()) end

-- Every module of the tree (self first, named ""), pre-order, each once.
function Module:named_modules()
  local out, seen = {}, {}
  local function walk(m, name)
    if seen[m] then return end
    seen[m] = true
    out[#out + 1] = { name, m }
    for _, c in ipairs(m:named_children()) do walk(c[2], name == "" and c[1] or name .. "." .. c[1]) end
  end
  walk(self, "")
  return out
end
function Module:modules() return values(self:named_modules()) end

-- f(m) for every module of the tree (children first, as PyTorch), returns self.
function Module:apply(f)
  for _, c in ipairs(self:children()) do c:apply(f) end
  f(self)
  return self
end

-- Raises a clear error naming the first user-defined module of the tree: for
-- writers of files that the C runtime must execute without Lua. A module with
-- a lower() method (it returns the built-in modules it equals, as the layers
-- of mimic.constraints do) counts as built-in.
function Module:check_builtin(purpose)
  for _, e in ipairs(self:named_modules()) do
    if not e[2]:is_builtin() and type(e[2].lower) ~= "function" then
      raise(string.format("cannot save user-defined module '%s'%s into %s", typename(e[2]),
        e[1] == "" and "" or " (at '" .. e[1] .. "')", purpose or "a C-runnable model file"))
    end
  end
  return self
end

-- Compiles the (built-in) module tree into the C inference plan; see lua/mimic/plan.lua.
function Module:compile(opts) return require("mimic.plan").compile(self, opts) end
function Module:save(path, opts) return require("mimic.modelfile").save(self, path, opts) end -- docs/model-format.md

function Module:train(mode)
  if mode == nil then mode = true end
  for _, m in ipairs(self:modules()) do rawset(m, "training", mode and true or false) end
  return self
end
function Module:evaluate() return self:train(false) end
Module.eval = Module.evaluate

-- Drops the gradients (as PyTorch's set_to_none): the next backward starts afresh.
function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do p.grad = nil end
  return self
end

function Module:num_parameters()
  local n = 0
  for _, p in ipairs(self:parameters()) do n = n + p:numel() end
  return n
end

-- name -> tensor for parameters and buffers (detached views: they share the
-- module's storage). named_parameters()/named_buffers() give the order.
function Module:state_dict()
  local sd = {}
  for _, kind in ipairs({ "parameter", "buffer" }) do
    for _, e in ipairs(collect(self, kind, "", {})) do sd[e[1]] = e[2]:detach() end
  end
  return sd
end

-- Copies the values of sd into the module's tensors (converting dtypes).
-- Every problem is reported at once: missing and unexpected names (unless
-- opts.strict == false) and mismatched shapes. Returns the lists of missing
-- and unexpected names.
function Module:load_state_dict(sd, opts)
  local fn = typename(self) .. ":load_state_dict"
  opts = check_opts(fn, opts, { strict = true })
  if type(sd) ~= "table" or is_tensor(sd) then raise(fn .. ": expects a table name -> tensor, got " .. type(sd)) end
  local own = {}
  for _, kind in ipairs({ "parameter", "buffer" }) do
    for _, e in ipairs(collect(self, kind, "", {})) do own[#own + 1] = e end
  end
  local known, missing, unexpected, bad = {}, {}, {}, {}
  for _, e in ipairs(own) do
    known[e[1]] = true
    local v = sd[e[1]]
    if v == nil then
      missing[#missing + 1] = e[1]
    elseif not is_tensor(v) then
      bad[#bad + 1] = string.format("%s (a %s, expected a tensor)", e[1], type(v))
    elseif shape_str(v) ~= shape_str(e[2]) then
      bad[#bad + 1] = string.format("%s (model %s, given %s)", e[1], shape_str(e[2]), shape_str(v))
    end
  end
  for k in pairs(sd) do
    if not known[k] then unexpected[#unexpected + 1] = tostring(k) end
  end
  table.sort(missing)
  table.sort(unexpected)
  table.sort(bad)
  local problems = {}
  if opts.strict ~= false and #missing > 0 then problems[#problems + 1] = "missing " .. table.concat(missing, ", ") end
  if opts.strict ~= false and #unexpected > 0 then
    problems[#problems + 1] = "unexpected " .. table.concat(unexpected, ", ")
  end
  if #bad > 0 then problems[#problems + 1] = "mismatched " .. table.concat(bad, ", ") end
  if #problems > 0 then raise(fn .. ": " .. table.concat(problems, "; ")) end
  mimic.no_grad(function()
    for _, e in ipairs(own) do
      local v = sd[e[1]]
      if v ~= nil then e[2]:copy(v) end
    end
  end)
  return missing, unexpected
end

-- m:type() -> dtype of the first parameter (or float buffer), or nil;
-- m:type(dtype) converts float parameters and buffers (gradients are dropped)
-- and returns m. Convert before creating an optimizer: it holds the tensors.
function Module:type(dt)
  if dt == nil then
    local t = self:parameters()[1]
    if not t then
      for _, b in ipairs(self:buffers()) do
        if FLOAT_DTYPES[b:dtype()] then t = b break end
      end
    end
    return t and t:dtype() or nil
  end
  dt = float_dtype(typename(self) .. ":type", dt)
  local done = {} -- old -> new, so a tensor shared by two modules stays shared
  mimic.no_grad(function()
    for _, m in ipairs(self:modules()) do
      local params, buffers = rawget(m, "_parameters"), rawget(m, "_buffers")
      for _, name in ipairs(rawget(m, "_parameter_names")) do
        local p = params[name]
        if p:dtype() ~= dt then
          done[p] = done[p] or nn.Parameter(p:to(dt), p:requires_grad())
          params[name] = done[p]
        end
      end
      for _, name in ipairs(rawget(m, "_buffer_names")) do
        local b = buffers[name]
        if FLOAT_DTYPES[b:dtype()] and b:dtype() ~= dt then
          done[b] = done[b] or b:to(dt)
          buffers[name] = done[b]
        end
      end
    end
  end)
  return self
end
function Module:float() return self:type("float32") end
function Module:double() return self:type("float64") end

-- One line describing the module's configuration, e.g. "2 -> 3" for Linear.
function Module:extra_repr() return "" end

module_tostring = function(self)
  local function describe(m, indent)
    local head = (m:is_builtin() and "nn." or "") .. typename(m)
    local extra = m:extra_repr()
    if extra ~= "" then head = head .. "(" .. extra .. ")" end
    local children = m:named_children()
    if #children == 0 then return head end
    local lines = { head .. " {" }
    for _, c in ipairs(children) do
      lines[#lines + 1] = indent .. "  (" .. c[1] .. "): " .. describe(c[2], indent .. "  ")
    end
    lines[#lines + 1] = indent .. "}"
    return table.concat(lines, "\n")
  end
  return describe(self, "")
end
Module.__tostring = module_tostring

-- --- initialisers (nn.init) -----------------------------------------------------------
-- Each fills a tensor in place (with grad mode off, so parameters can be
-- filled) and returns it. Random ones draw from opts.generator, or from the
-- default generator (mimic.manual_seed) when none is given.
local function generator_of(fn, opts)
  if opts == nil then return nil end
  if type(opts) == "userdata" and not is_tensor(opts) then return opts end
  local g = opts.generator
  if g ~= nil and (type(g) ~= "userdata" or is_tensor(g)) then
    raise(fn .. ": option 'generator' must be a mimic.Generator")
  end
  return g
end

local function fill(f) return mimic.no_grad(f) end

function init.calculate_gain(nonlinearity, param)
  local n = nonlinearity or "linear"
  if n == "linear" or n == "identity" or n == "sigmoid" or n == "conv1d" or n == "conv2d" then return 1 end
  if n == "tanh" then return 5 / 3 end
  if n == "relu" then return math.sqrt(2) end
  if n == "leaky_relu" then
    local slope = param == nil and 0.01 or param
    return math.sqrt(2 / (1 + slope * slope))
  end
  if n == "selu" then return 3 / 4 end
  raise("calculate_gain: unknown nonlinearity '" .. tostring(n) .. "' (linear, sigmoid, tanh, relu, leaky_relu, selu)")
end

-- PyTorch's fans: dim 1 is outputs, dim 2 inputs, further dims a receptive field.
local function fans(fn, t)
  check_tensor(fn, "argument 1", t)
  local s = t:size()
  if #s < 2 then
    raise(string.format("%s: fan in and fan out need a tensor of at least 2 dims, got shape %s", fn, shape_str(t)))
  end
  local rf = 1
  for i = 3, #s do rf = rf * s[i] end
  return s[2] * rf, s[1] * rf
end

function init.uniform_(t, a, b, opts)
  check_tensor("uniform_", "argument 1", t)
  local g = generator_of("uniform_", opts)
  return fill(function() return t:uniform_(a or 0, b or 1, g) end)
end

function init.normal_(t, mean, std, opts)
  check_tensor("normal_", "argument 1", t)
  local g = generator_of("normal_", opts)
  return fill(function() return t:normal_(mean or 0, std or 1, g) end)
end

function init.constant_(t, v)
  check_tensor("constant_", "argument 1", t)
  check_number("constant_", "the value", v)
  return fill(function() return t:fill(v) end)
end
function init.zeros_(t) return init.constant_(t, 0) end
function init.ones_(t) return init.constant_(t, 1) end

function init.xavier_uniform_(t, opts)
  opts = check_opts("xavier_uniform_", opts, { gain = true, generator = true })
  local fan_in, fan_out = fans("xavier_uniform_", t)
  local a = (opts.gain or 1) * math.sqrt(6 / (fan_in + fan_out))
  return init.uniform_(t, -a, a, opts)
end

function init.xavier_normal_(t, opts)
  opts = check_opts("xavier_normal_", opts, { gain = true, generator = true })
  local fan_in, fan_out = fans("xavier_normal_", t)
  return init.normal_(t, 0, (opts.gain or 1) * math.sqrt(2 / (fan_in + fan_out)), opts)
end

local function kaiming_std(fn, t, opts)
  opts = check_opts(fn, opts, { a = true, mode = true, nonlinearity = true, generator = true })
  local fan_in, fan_out = fans(fn, t)
  local mode = opts.mode or "fan_in"
  if mode ~= "fan_in" and mode ~= "fan_out" then
    raise(string.format("%s: mode must be 'fan_in' or 'fan_out', got %s", fn, tostring(mode)))
  end
  local fan = mode == "fan_in" and fan_in or fan_out
  local gain = init.calculate_gain(opts.nonlinearity or "leaky_relu", opts.a or 0)
  return gain / math.sqrt(fan), opts
end

-- He initialisation; defaults as PyTorch: a = 0, mode "fan_in", nonlinearity "leaky_relu".
function init.kaiming_uniform_(t, opts)
  local std, o = kaiming_std("kaiming_uniform_", t, opts)
  local bound = math.sqrt(3) * std
  return init.uniform_(t, -bound, bound, o)
end

function init.kaiming_normal_(t, opts)
  local std, o = kaiming_std("kaiming_normal_", t, opts)
  return init.normal_(t, 0, std, o)
end

-- The initialiser named by a layer's `init` option ("xavier_uniform" or "xavier_uniform_").
local function named_init(fn, name)
  local f = init[name] or init[tostring(name) .. "_"]
  if type(f) ~= "function" or name == "calculate_gain" then
    raise(string.format("%s: unknown init '%s' (xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal, "
      .. "uniform, normal, zeros, ...; or a function(layer, generator))", fn, tostring(name)))
  end
  return f
end

-- --- functional: activations -----------------------------------------------------------
function F.relu(x) return x:relu() end
function F.tanh(x) return x:tanh() end
function F.sigmoid(x) return x:sigmoid() end

-- x > 0 ? x : slope * x (gradient `slope` at 0, as PyTorch): one fused C op
-- (core/ops/elementwise.c), with the same values as the where/compare/mul
-- composition it replaces but one pass forward and one backward.
function F.leaky_relu(x, slope)
  return x:leaky_relu(slope or 0.01)
end

-- x > 0 ? x : alpha * (exp(x) - 1). exp sees min(x, 0), so the branch not
-- taken stays finite and contributes an exact zero to the gradient.
function F.elu(x, alpha)
  alpha = alpha or 1
  return mimic.where(x:gt(0), x, (x:clamp(nil, 0):exp() - 1) * alpha)
end

-- The tanh approximation (PyTorch's GELU(approximate='tanh')):
-- 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); mimic has no erf op yet.
local GELU_C = math.sqrt(2 / math.pi)
function F.gelu(x)
  local inner = (x + x * x * x * 0.044715) * GELU_C
  return x * (inner:tanh() + 1) * 0.5
end

-- log(1 + exp(z)) for any z, stable, with gradient sigmoid(z) everywhere
-- (including 0): for z > 0 it is z - log(sigmoid(z)), else -log(sigmoid(-z));
-- each branch is evaluated on z clamped to its own side, so both stay finite
-- (sigmoid >= 1/2 inside the log). Absolute error ~ machine epsilon.
local function softplus0(z)
  local p, n = z:clamp(0, nil), z:clamp(nil, 0)
  return mimic.where(z:gt(0), p - p:sigmoid():log(), -((-n):sigmoid():log()))
end

-- (1/beta) log(1 + exp(beta x)), and x itself where beta x > threshold (as PyTorch).
function F.softplus(x, beta, threshold)
  beta, threshold = beta or 1, threshold or 20
  local z = beta == 1 and x or x * beta
  local sp = softplus0(z)
  if beta ~= 1 then sp = sp / beta end
  return mimic.where(z:gt(threshold), x, sp)
end

-- log_softmax along dim (default: the last), shifted by the (detached) max.
function F.log_softmax(x, dim)
  dim = dim or -1
  local m = x:detach():max(dim, true)
  local z = x - m
  return z - z:exp():sum(dim, true):log()
end

function F.softmax(x, dim)
  return F.log_softmax(x, dim):exp()
end

-- Inverted dropout: zero each element with probability p, scale the rest by
-- 1/(1-p); identity when not training or p == 0.
function F.dropout(x, p, training, generator)
  p = p or 0.5
  check_number("dropout", "p", p, 0, 1)
  if training == false or p == 0 then return x end
  if p == 1 then return x * 0 end
  local dt = x:dtype()
  local r = generator and generator:rand(x:size(), { dtype = dt }) or mimic.rand(x:size(), { dtype = dt })
  return x * (r:ge(p):to(dt) * (1 / (1 - p)))
end

-- x W^T + b; W is [out, in] (PyTorch's layout), x is [..., in].
function F.linear(x, weight, bias)
  local y = x:matmul(weight:t())
  if bias then y = y + bias end
  return y
end

-- Normalises over the trailing dims given by `shape` (biased variance, as PyTorch).
function F.layer_norm(x, shape, weight, bias, eps)
  eps = eps or 1e-5
  local k, xs = #shape, x:size()
  local lead, flat = {}, x
  if k > 1 then
    for i = 1, #xs - k do lead[#lead + 1] = xs[i] end
    lead[#lead + 1] = -1
    flat = x:reshape(lead)
  end
  local mu = flat:mean(-1, true)
  local xc = flat - mu
  local var = (xc * xc):mean(-1, true)
  local y = xc / (var + eps):sqrt()
  if k > 1 then y = y:reshape(xs) end
  if weight then y = y * weight end
  if bias then y = y + bias end
  return y
end

-- --- layers -----------------------------------------------------------------------------
local Identity = builtin("Identity")
function Identity:forward(x) return x end

local Linear = builtin("Linear")
-- Linear(in, out [, {bias = true, generator =, init =, dtype = "float32"}])
function Linear:init(in_features, out_features, opts)
  check_size("Linear", "in_features", in_features)
  check_size("Linear", "out_features", out_features)
  opts = check_opts("Linear", opts, { bias = true, generator = true, init = true, dtype = true })
  local dt = float_dtype("Linear", opts.dtype)
  self.in_features, self.out_features = in_features, out_features
  self.weight = nn.Parameter(mimic.zeros(out_features, in_features, dt))
  if opts.bias ~= false then self.bias = nn.Parameter(mimic.zeros(out_features, dt)) end
  self:reset_parameters(opts)
end

-- PyTorch's default: kaiming_uniform_(a = sqrt(5)), i.e. weight and bias both
-- U(-1/sqrt(in), 1/sqrt(in)), drawn weight first. `init` = a name of nn.init
-- (weight only; the bias is then zero) or function(layer, generator).
function Linear:reset_parameters(opts)
  opts = opts or {}
  local g = generator_of("Linear", opts)
  if opts.init == nil or opts.init == "default" then
    init.kaiming_uniform_(self.weight, { a = math.sqrt(5), generator = g })
    if self.bias then
      local bound = 1 / math.sqrt(self.in_features)
      init.uniform_(self.bias, -bound, bound, { generator = g })
    end
  elseif type(opts.init) == "function" then
    opts.init(self, g)
  else
    named_init("Linear", opts.init)(self.weight, { generator = g })
    if self.bias then init.zeros_(self.bias) end
  end
  return self
end

function Linear:forward(x)
  check_tensor(tostring(self), "input", x)
  if x:dim() == 0 or x:size(-1) ~= self.in_features then
    raise(string.format("%s: input of shape %s; its last dim must be %d", tostring(self), shape_str(x),
      self.in_features))
  end
  return F.linear(x, self.weight, self.bias)
end

function Linear:extra_repr()
  return string.format("%d -> %d%s", self.in_features, self.out_features, self.bias and "" or ", bias=false")
end

-- Element-wise activations: a class per function; `params` are the
-- constructor's positional arguments, defaults and checks.
local function activation(name, f, params)
  local cls = builtin(name)
  function cls:init(...)
    local args = table.pack(...)
    for i, p in ipairs(params or {}) do
      local v = args[i]
      if v == nil then v = p.default end
      check_number(name, p.name, v)
      if p.positive and v <= 0 then raise(string.format("%s: %s must be > 0, got %s", name, p.name, tostring(v))) end
      self[p.name] = v
    end
  end
  function cls:forward(x)
    check_tensor(name, "input", x)
    if not params then return f(x) end
    local a = {}
    for i, p in ipairs(params) do a[i] = self[p.name] end
    return f(x, table.unpack(a, 1, #params))
  end
  function cls:extra_repr()
    local parts = {}
    for _, p in ipairs(params or {}) do parts[#parts + 1] = string.format("%s=%g", p.name, self[p.name]) end
    return table.concat(parts, ", ")
  end
  return cls
end

activation("ReLU", F.relu)
activation("Tanh", F.tanh)
activation("Sigmoid", F.sigmoid)
activation("GELU", F.gelu)
activation("LeakyReLU", F.leaky_relu, { { name = "negative_slope", default = 0.01 } })
activation("ELU", F.elu, { { name = "alpha", default = 1 } })
activation("Softplus", F.softplus, { { name = "beta", default = 1, positive = true }, { name = "threshold", default = 20 } })

local Dropout = builtin("Dropout")
-- Dropout([p = 0.5] [, {generator = g}]): the mask is drawn from g (or the
-- default generator) in training mode; identity in evaluate mode.
function Dropout:init(p, opts)
  if type(p) == "table" and opts == nil then p, opts = nil, p end
  p = p == nil and 0.5 or p
  check_number("Dropout", "p", p, 0, 1)
  opts = check_opts("Dropout", opts, { generator = true })
  self.p = p
  self.generator = generator_of("Dropout", opts)
end
function Dropout:forward(x)
  check_tensor("Dropout", "input", x)
  return F.dropout(x, self.p, self.training, self.generator)
end
function Dropout:extra_repr() return string.format("p=%g", self.p) end

local function normalized_shape(fn, s)
  if math.type(s) == "integer" then return { s } end
  if type(s) ~= "table" or is_tensor(s) or #s == 0 then
    raise(fn .. ": normalized_shape must be an integer or a non-empty table of integers")
  end
  local out = {}
  for i, v in ipairs(s) do
    check_size(fn, "normalized_shape[" .. i .. "]", v)
    out[i] = v
  end
  return out
end

local LayerNorm = builtin("LayerNorm")
-- LayerNorm(normalized_shape [, {eps = 1e-5, elementwise_affine = true, dtype =}])
function LayerNorm:init(shape, opts)
  self.normalized_shape = normalized_shape("LayerNorm", shape)
  opts = check_opts("LayerNorm", opts, { eps = true, elementwise_affine = true, dtype = true })
  self.eps = opts.eps or 1e-5
  check_number("LayerNorm", "eps", self.eps, 0)
  local dt = float_dtype("LayerNorm", opts.dtype)
  if opts.elementwise_affine ~= false then
    self.weight = nn.Parameter(mimic.ones(self.normalized_shape, dt))
    self.bias = nn.Parameter(mimic.zeros(self.normalized_shape, dt))
  end
end
function LayerNorm:forward(x)
  check_tensor("LayerNorm", "input", x)
  local s, ns = x:size(), self.normalized_shape
  local ok = #s >= #ns
  for i = 1, #ns do ok = ok and s[#s - #ns + i] == ns[i] end
  if not ok then
    raise(string.format("%s: input of shape %s does not end with the normalized shape [%s]", tostring(self),
      shape_str(x), table.concat(ns, ",")))
  end
  return F.layer_norm(x, ns, self.weight, self.bias, self.eps)
end
function LayerNorm:extra_repr()
  return string.format("[%s], eps=%g%s", table.concat(self.normalized_shape, ","), self.eps,
    self.weight and "" or ", elementwise_affine=false")
end

local BatchNorm1d = builtin("BatchNorm1d")
-- BatchNorm1d(features [, {eps = 1e-5, momentum = 0.1, affine = true,
-- track_running_stats = true, dtype =}]); momentum = false gives the
-- cumulative average (PyTorch's momentum=None).
function BatchNorm1d:init(features, opts)
  check_size("BatchNorm1d", "num_features", features)
  opts = check_opts("BatchNorm1d", opts,
    { eps = true, momentum = true, affine = true, track_running_stats = true, dtype = true })
  local dt = float_dtype("BatchNorm1d", opts.dtype)
  self.num_features = features
  self.eps = opts.eps or 1e-5
  check_number("BatchNorm1d", "eps", self.eps, 0)
  if opts.momentum == nil then self.momentum = 0.1 else self.momentum = opts.momentum end
  if self.momentum ~= false then check_number("BatchNorm1d", "momentum", self.momentum, 0, 1) end
  self.affine = opts.affine ~= false
  self.track_running_stats = opts.track_running_stats ~= false
  if self.affine then
    self.weight = nn.Parameter(mimic.ones(features, dt))
    self.bias = nn.Parameter(mimic.zeros(features, dt))
  end
  if self.track_running_stats then
    self:add_buffer("running_mean", mimic.zeros(features, dt))
    self:add_buffer("running_var", mimic.ones(features, dt))
    self:add_buffer("num_batches_tracked", mimic.scalar(0, "int64"))
  end
end

-- Mean over every dim but the feature dim (2), kept as size-1 dims.
local function channel_mean(x)
  local m = x:mean(1, true)
  if x:dim() == 3 then m = m:mean(3, true) end
  return m
end

-- Training (or no running stats): normalise with the batch's biased variance
-- and update the running mean and unbiased variance. Evaluation: use the
-- running stats. Input [N, C] or [N, C, L].
function BatchNorm1d:forward(x)
  check_tensor("BatchNorm1d", "input", x)
  local C = self.num_features
  if (x:dim() ~= 2 and x:dim() ~= 3) or x:size(2) ~= C then
    raise(string.format("%s: input of shape %s; expected [N, %d] or [N, %d, L]", tostring(self), shape_str(x), C, C))
  end
  local shape = x:dim() == 3 and { 1, C, 1 } or { 1, C }
  local y
  if self.training or not self.track_running_stats then
    local n = x:numel() // C
    if self.training and n <= 1 then
      raise(string.format("%s: expected more than 1 value per feature when training, got input of shape %s",
        tostring(self), shape_str(x)))
    end
    local mean = channel_mean(x)
    local xc = x - mean
    local var = channel_mean(xc * xc)
    if self.training and self.track_running_stats then
      mimic.no_grad(function()
        local nbt = self.num_batches_tracked
        nbt:fill(nbt:item() + 1)
        local f = self.momentum == false and 1 / nbt:item() or self.momentum
        local rm, rv = self.running_mean, self.running_var
        rm:mul_(1 - f):add_(mean:detach():reshape(C):to(rm:dtype()) * f)
        rv:mul_(1 - f):add_(var:detach():reshape(C):to(rv:dtype()) * (f * n / (n - 1)))
      end)
    end
    y = xc / (var + self.eps):sqrt()
  else
    local rm, rv = self.running_mean:reshape(shape), self.running_var:reshape(shape)
    y = (x - rm) / (rv + self.eps):sqrt()
  end
  if self.affine then y = y * self.weight:reshape(shape) + self.bias:reshape(shape) end
  return y
end
function BatchNorm1d:extra_repr()
  return string.format("%d, eps=%g, momentum=%s%s%s", self.num_features, self.eps, tostring(self.momentum),
    self.affine and "" or ", affine=false", self.track_running_stats and "" or ", track_running_stats=false")
end

-- --- containers -------------------------------------------------------------------------
local function check_child(fn, i, m)
  if is_module(m) then return m end
  if is_class(m) then
    raise(string.format("%s: argument %d is the class %s; create an instance, e.g. %s()", fn, i, class_name(m),
      class_name(m)))
  end
  raise(string.format("%s: argument %d is a %s, expected a module", fn, i, type(m)))
end

local Sequential = builtin("Sequential")
-- Sequential(m1, m2, ...): children named "1", "2", ...; m:add(m) appends.
function Sequential:init(...)
  for i = 1, select("#", ...) do self:add(check_child("Sequential", i, (select(i, ...)))) end
end
function Sequential:add(m)
  check_child("Sequential:add", 1, m)
  self:add_module(#rawget(self, "_module_names") + 1, m)
  return self
end
function Sequential:get(i) return self._modules[key_of(i)] end
function Sequential:size() return #rawget(self, "_module_names") end
Sequential.__len = Sequential.size
function Sequential:forward(x)
  -- compiled (model:compile), evaluate mode, no grad: the C plan (lua/mimic/plan.lua)
  if rawget(self, "_compiled") then
    local y = require("mimic.plan").try_forward(self, x)
    if y then return y end
  end
  for _, m in ipairs(self:children()) do x = m(x) end
  return x
end

local Residual = builtin("Residual")
-- Residual(f): x + f(x)
function Residual:init(m)
  self:add_module("1", check_child("Residual", 1, m))
end
function Residual:forward(x)
  local fx = self._modules["1"](x)
  if shape_str(fx) ~= shape_str(x) then
    raise(string.format("Residual: the inner module maps shape %s to %s; x + f(x) needs the same shape",
      shape_str(x), shape_str(fx)))
  end
  return x + fx
end

local Concat = builtin("Concat")
-- Concat(dim, m1, m2, ...): each child applied to the same input, outputs
-- concatenated along dim (1-based; negative from the end). nn.Parallel is the
-- same class (note: Torch7's Parallel instead split its input).
function Concat:init(dim, ...)
  if math.type(dim) ~= "integer" or dim == 0 then
    raise("Concat: the first argument is the (1-based) dim to concatenate along, got " .. tostring(dim))
  end
  self.dim = dim
  for i = 1, select("#", ...) do self:add(check_child("Concat", i + 1, (select(i, ...)))) end
end
Concat.add = Sequential.add
Concat.get = Sequential.get
Concat.size = Sequential.size
Concat.__len = Sequential.size
function Concat:forward(x)
  local outs = {}
  for i, m in ipairs(self:children()) do outs[i] = m(x) end
  if #outs == 0 then raise("Concat: has no children to apply") end
  return mimic.cat(outs, self.dim)
end
function Concat:extra_repr() return "dim=" .. self.dim end
nn.Parallel = Concat

-- --- losses -----------------------------------------------------------------------------
-- Every loss takes opts {reduction = "mean" | "sum" | "none", weights = w}:
-- w (a tensor, a Lua list or a number) scales the element-wise loss along the
-- last dim (one weight per output). "mean" averages the weighted loss over
-- all elements (the weights are not renormalised), except cross_entropy, which
-- follows PyTorch's class weights.
local function reduction_of(fn, opts, extra)
  local r = opts.reduction or "mean"
  if r ~= "mean" and r ~= "sum" and r ~= "none" and r ~= extra then
    raise(string.format("%s: reduction must be 'mean', 'sum' or 'none'%s, got %s", fn,
      extra and (" or '" .. extra .. "'") or "", tostring(r)))
  end
  return r
end

local function weights_of(fn, w, x)
  if w == nil then return nil end
  local D = x:dim() > 0 and x:size(-1) or 1
  if type(w) == "number" then return w end
  if type(w) == "table" and not is_tensor(w) then w = mimic.tensor(w, x:dtype()) end
  if not is_tensor(w) then raise(fn .. ": weights must be a tensor, a list of numbers or a number, got " .. type(w)) end
  if w:dim() ~= 1 or w:size(1) ~= D then
    raise(string.format("%s: weights of shape %s; expected one weight per output: shape [%d] (the last dim of the "
      .. "input %s)", fn, shape_str(w), D, shape_str(x)))
  end
  if w:dtype() ~= x:dtype() then w = w:to(x:dtype()) end
  return w
end

local function check_pair(fn, input, target)
  check_tensor(fn, "input", input)
  check_tensor(fn, "target", target)
  if shape_str(input) ~= shape_str(target) then
    raise(string.format("%s: input of shape %s and target of shape %s differ (broadcasting a loss is a classic "
      .. "bug; reshape one of them)", fn, shape_str(input), shape_str(target)))
  end
end

local function reduce(l, r)
  if r == "sum" then return l:sum() end
  if r == "mean" then return l:mean() end
  return l
end

local LOSS_OPTS = { reduction = true, weights = true }

local function elementwise_loss(name, f, extra_opts)
  local known = { reduction = true, weights = true }
  for k in pairs(extra_opts or {}) do known[k] = true end
  return function(input, target, opts)
    opts = check_opts(name, opts, known)
    check_pair(name, input, target)
    local r = reduction_of(name, opts)
    local l = f(input, target, opts, name)
    local w = weights_of(name, opts.weights, input)
    if w then l = l * w end
    return reduce(l, r)
  end
end

F.mse_loss = elementwise_loss("mse_loss", function(x, y) return (x - y):square() end)
F.l1_loss = elementwise_loss("l1_loss", function(x, y) return (x - y):abs() end)
F.mae_loss = F.l1_loss

-- 0.5 d^2 where |d| <= delta, else delta (|d| - delta/2); both branches finite.
F.huber_loss = elementwise_loss("huber_loss", function(x, y, opts, name)
  local delta = opts.delta or 1
  check_number(name, "delta", delta, 0)
  local d = x - y
  local a = d:abs()
  return mimic.where(a:le(delta), d:square() * 0.5, (a - 0.5 * delta) * delta)
end, { delta = true })

-- (1 - y) x + (1 + (pw - 1) y) softplus(-x): never evaluates exp of a positive
-- number; pos_weight (per output, like weights) weighs the positive term.
F.binary_cross_entropy_with_logits = elementwise_loss("binary_cross_entropy_with_logits", function(x, y, opts, name)
  local sp = softplus0(-x)
  local pw = weights_of(name, opts.pos_weight, x)
  if pw then return (1 - y) * x + (1 + (pw - 1) * y) * sp end
  return (1 - y) * x + sp
end, { pos_weight = true })
F.bce_with_logits = F.binary_cross_entropy_with_logits

-- cross_entropy(logits [..., C], target [, opts]): the class dim is the last.
-- target: int64 class indices (1-based) of shape [...], or probabilities of
-- the logits' shape. weights: one per class, as PyTorch's `weight` ("mean"
-- divides by the summed weights of the targets' classes for class indices).
function F.cross_entropy(logits, target, opts)
  local fn = "cross_entropy"
  opts = check_opts(fn, opts, LOSS_OPTS)
  check_tensor(fn, "input", logits)
  check_tensor(fn, "target", target)
  local r = reduction_of(fn, opts)
  if logits:dim() == 0 then raise(fn .. ": logits must have a class dim (the last), got a 0-dim tensor") end
  local C = logits:size(-1)
  local w = weights_of(fn, opts.weights, logits)
  local logp = F.log_softmax(logits, -1)
  if target:dtype() == "int64" then
    local ls, ts = logits:size(), target:size()
    local ok = #ts == #ls - 1
    for i = 1, #ts do ok = ok and ts[i] == ls[i] end
    if not ok then
      raise(string.format("%s: class-index target of shape %s for logits of shape %s; expected the logits' shape "
        .. "without its last (class) dim", fn, shape_str(target), shape_str(logits)))
    end
    for _, bad in ipairs({ target:lt(1), target:gt(C) }) do
      local v = target:masked_select(bad)
      if v:numel() > 0 then
        raise(string.format("%s: target class %d is out of range 1..%d (class indices are 1-based)", fn, v[1], C))
      end
    end
    local onehot = mimic.arange(1, C + 1, "int64"):eq(target:unsqueeze(-1)):to(logits:dtype())
    local l = -(onehot * logp):sum(-1)
    if not w then return reduce(l, r) end
    local wy = (onehot * w):sum(-1)
    l = l * wy
    if r == "mean" then return l:sum() / wy:sum() end
    return reduce(l, r)
  end
  if target:dtype() == "float32" or target:dtype() == "float64" then
    if shape_str(target) ~= shape_str(logits) then
      raise(string.format("%s: probability target of shape %s for logits of shape %s; they must match (or give "
        .. "int64 class indices)", fn, shape_str(target), shape_str(logits)))
    end
    local t = w and target * w or target
    return reduce(-(t * logp):sum(-1), r)
  end
  raise(string.format("%s: target must be int64 class indices or float probabilities, got %s", fn, target:dtype()))
end

-- KL(N(mu, exp(logvar)) || N(mu2, exp(logvar2))) element-wise, N(0, 1) when
-- mu2/logvar2 are omitted: 0.5 (logvar2 - logvar + (exp(logvar) + (mu -
-- mu2)^2) / exp(logvar2) - 1). reduction may also be "batchmean": the sum
-- divided by the size of dim 1 (the usual VAE term).
function F.gaussian_kl(mu, logvar, mu2, logvar2, opts)
  local fn = "gaussian_kl"
  if type(mu2) == "table" and not is_tensor(mu2) and opts == nil then mu2, opts = nil, mu2 end
  opts = check_opts(fn, opts, LOSS_OPTS)
  check_pair(fn, mu, logvar)
  local r = reduction_of(fn, opts, "batchmean")
  local l
  if mu2 == nil and logvar2 == nil then
    l = (logvar:exp() + mu:square() - 1 - logvar) * 0.5
  else
    check_pair(fn, mu, check_tensor(fn, "mu2", mu2))
    check_pair(fn, mu, check_tensor(fn, "logvar2", logvar2))
    l = (logvar2 - logvar + (logvar:exp() + (mu - mu2):square()) / logvar2:exp() - 1) * 0.5
  end
  local w = weights_of(fn, opts.weights, mu)
  if w then l = l * w end
  if r == "batchmean" then return l:sum() / (mu:dim() > 0 and mu:size(1) or 1) end
  return reduce(l, r)
end

-- Loss modules: callable objects holding their options; crit(input, target).
-- `extra`: options besides reduction/weights; `lead`: the name of an optional
-- leading positional number (HuberLoss(delta)).
local function loss_class(name, f, extra, lead)
  local cls = builtin(name)
  local known = { reduction = true, weights = true }
  for _, k in ipairs(extra or {}) do known[k] = true end
  function cls:init(a, b)
    local opts = a
    if lead and type(a) == "number" then
      opts = {}
      for k, v in pairs(check_opts(name, b, known)) do opts[k] = v end
      opts[lead] = a
    end
    self.opts = check_opts(name, opts, known)
  end
  cls.forward = function(self, ...)
    local args = table.pack(...)
    args[args.n + 1] = self.opts
    return f(table.unpack(args, 1, args.n + 1))
  end
  function cls:extra_repr()
    local parts = {}
    for k, v in pairs(self.opts) do
      if type(v) ~= "userdata" and type(v) ~= "table" then parts[#parts + 1] = k .. "=" .. tostring(v) end
    end
    table.sort(parts)
    return table.concat(parts, ", ")
  end
  return cls
end

loss_class("MSELoss", F.mse_loss)
loss_class("L1Loss", F.l1_loss)
nn.MAELoss = nn.L1Loss
loss_class("HuberLoss", F.huber_loss, { "delta" }, "delta")
loss_class("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits, { "pos_weight" })
loss_class("CrossEntropyLoss", F.cross_entropy)
-- GaussianKLLoss(opts)(mu, logvar [, mu2, logvar2])
local GaussianKLLoss = loss_class("GaussianKLLoss", F.gaussian_kl)
function GaussianKLLoss:forward(mu, logvar, mu2, logvar2)
  return F.gaussian_kl(mu, logvar, mu2, logvar2, self.opts)
end

-- --- convolution and pooling (core/ops/conv.c; docs/mappings.md) ---------------------------
-- Channels first as PyTorch: [N, C, L], [N, C, H, W], [N, C, D, H, W]; an
-- unbatched input (one dim fewer) is treated as a batch of one. Weights are
-- [out, in/groups, k...], PyTorch's layout, so its state dicts load unchanged.
for nsp = 1, 3 do
  local suffix = nsp .. "d"
  F["conv" .. suffix] = mimic["conv" .. suffix]
  F["conv_transpose" .. suffix] = mimic["conv_transpose" .. suffix]
  F["max_pool" .. suffix] = mimic["max_pool" .. suffix]
  F["avg_pool" .. suffix] = mimic["avg_pool" .. suffix]
end

-- A per-dim size as a table of nsp integers (a number repeats).
local function dims_of(fn, what, v, nsp, min)
  local t = {}
  if type(v) == "table" then
    if #v ~= nsp then raise(string.format("%s: %s must have %d entries, got %d", fn, what, nsp, #v)) end
    for i = 1, nsp do t[i] = v[i] end
  else
    for i = 1, nsp do t[i] = v end
  end
  for i = 1, nsp do check_size(fn, what, t[i], min) end
  return t
end

local function dims_str(t) return table.concat(t, "x") end

-- Runs f on x with a batch dim added when x is unbatched (nsp + 1 dims). A
-- core error (kernel larger than the input, ...) is raised at the user's line.
local function batched(fn, x, nsp, f)
  check_tensor(fn, "input", x)
  local unbatched = x:dim() == nsp + 1
  if not unbatched and x:dim() ~= nsp + 2 then
    raise(string.format("%s: input of shape %s must have %d dims (batch, channels, %d spatial) or %d (unbatched)",
      fn, shape_str(x), nsp + 2, nsp, nsp + 1))
  end
  local ok, y = pcall(f, unbatched and x:unsqueeze(1) or x)
  if not ok then raise((tostring(y):gsub("^[^:]*:%d+: ", ""))) end
  return unbatched and y:squeeze(1) or y
end

local CONV_OPTS = { stride = true, padding = true, dilation = true, groups = true, bias = true, padding_mode = true,
                    generator = true, init = true, dtype = true }

local function conv_class(nsp, transposed)
  local name = (transposed and "ConvTranspose" or "Conv") .. nsp .. "d"
  local cls = builtin(name)
  local fwd = transposed and mimic["conv_transpose" .. nsp .. "d"] or mimic["conv" .. nsp .. "d"]
  -- ConvNd(in_channels, out_channels, kernel_size [, {stride = 1, padding = 0 | "same" | "valid",
  --   dilation = 1, groups = 1, bias = true, padding_mode = "zeros" | "circular", generator =, init =,
  --   dtype = "float32"}]); ConvTransposeNd also takes output_padding.
  function cls:init(in_channels, out_channels, kernel_size, opts)
    check_size(name, "in_channels", in_channels)
    check_size(name, "out_channels", out_channels)
    local known = CONV_OPTS
    if transposed then
      known = { output_padding = true }
      for k in pairs(CONV_OPTS) do known[k] = true end
    end
    opts = check_opts(name, opts, known)
    local g = opts.groups or 1
    check_size(name, "groups", g)
    if in_channels % g ~= 0 or out_channels % g ~= 0 then
      raise(string.format("%s: in_channels (%d) and out_channels (%d) must be divisible by groups (%d)", name,
        in_channels, out_channels, g))
    end
    local pm = opts.padding_mode or "zeros"
    if pm ~= "zeros" and pm ~= "circular" then
      raise(string.format("%s: padding_mode must be 'zeros' or 'circular', got %s", name, tostring(pm)))
    end
    if transposed and pm ~= "zeros" then raise(name .. ": only padding_mode 'zeros' is supported (as PyTorch)") end
    local dt = float_dtype(name, opts.dtype)
    self.in_channels, self.out_channels, self.groups = in_channels, out_channels, g
    self.kernel_size = dims_of(name, "kernel_size", kernel_size, nsp)
    self.stride = dims_of(name, "stride", opts.stride or 1, nsp)
    self.dilation = dims_of(name, "dilation", opts.dilation or 1, nsp)
    local p = opts.padding or 0
    if p == "valid" then p = 0 end
    self.padding = p == "same" and "same" or dims_of(name, "padding", p, nsp, 0)
    if transposed then self.output_padding = dims_of(name, "output_padding", opts.output_padding or 0, nsp, 0) end
    self.padding_mode = pm
    local shape = transposed and { in_channels, out_channels // g } or { out_channels, in_channels // g }
    for i = 1, nsp do shape[#shape + 1] = self.kernel_size[i] end
    self.weight = nn.Parameter(mimic.zeros(shape, dt))
    if opts.bias ~= false then self.bias = nn.Parameter(mimic.zeros(out_channels, dt)) end
    self:reset_parameters(opts)
  end

  -- PyTorch's default: kaiming_uniform_(a = sqrt(5)) on the weight, the bias
  -- U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = weight:size(2) * prod(kernel).
  function cls:reset_parameters(opts)
    opts = opts or {}
    local g = generator_of(name, opts)
    if opts.init == nil or opts.init == "default" then
      init.kaiming_uniform_(self.weight, { a = math.sqrt(5), generator = g })
      if self.bias then
        local fan_in = fans(name, self.weight)
        local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
        init.uniform_(self.bias, -bound, bound, { generator = g })
      end
    elseif type(opts.init) == "function" then
      opts.init(self, g)
    else
      named_init(name, opts.init)(self.weight, { generator = g })
      if self.bias then init.zeros_(self.bias) end
    end
    return self
  end

  function cls:forward(x)
    local o = { stride = self.stride, padding = self.padding, dilation = self.dilation, groups = self.groups }
    if transposed then o.output_padding = self.output_padding else o.padding_mode = self.padding_mode end
    return batched(tostring(self), x, nsp, function(xb)
      local c = xb:size(2)
      if c ~= self.in_channels then
        raise(string.format("%s: input of shape %s has %d channels (dim 2), expected %d", tostring(self),
          shape_str(xb), c, self.in_channels))
      end
      return fwd(xb, self.weight, self.bias, o)
    end)
  end

  function cls:extra_repr()
    local parts = { string.format("%d -> %d", self.in_channels, self.out_channels),
                    "kernel_size=" .. dims_str(self.kernel_size) }
    local function add(key, v, default)
      local s = type(v) == "table" and dims_str(v) or tostring(v)
      if s ~= default then parts[#parts + 1] = key .. "=" .. s end
    end
    local ones = dims_str(dims_of(name, "stride", 1, nsp))
    add("stride", self.stride, ones)
    add("padding", self.padding, dims_str(dims_of(name, "padding", 0, nsp, 0)))
    add("dilation", self.dilation, ones)
    add("groups", self.groups, "1")
    add("padding_mode", self.padding_mode, "zeros")
    if transposed then add("output_padding", self.output_padding, dims_str(dims_of(name, "padding", 0, nsp, 0))) end
    if not self.bias then parts[#parts + 1] = "bias=false" end
    return table.concat(parts, ", ")
  end
  return cls
end

-- MaxPoolNd(kernel_size [, stride] [, {stride = kernel_size, padding = 0, dilation = 1}]) and
-- AvgPoolNd(kernel_size [, stride] [, {stride, padding, count_include_pad = true}]).
local function pool_class(nsp, avg)
  local name = (avg and "AvgPool" or "MaxPool") .. nsp .. "d"
  local cls = builtin(name)
  local fwd = avg and mimic["avg_pool" .. nsp .. "d"] or mimic["max_pool" .. nsp .. "d"]
  local known = avg and { stride = true, padding = true, count_include_pad = true }
                     or { stride = true, padding = true, dilation = true }
  function cls:init(kernel_size, stride, opts)
    if type(stride) == "table" and opts == nil then stride, opts = nil, stride end
    opts = check_opts(name, opts, known)
    self.kernel_size = dims_of(name, "kernel_size", kernel_size, nsp)
    self.stride = dims_of(name, "stride", stride or opts.stride or kernel_size, nsp)
    self.padding = dims_of(name, "padding", opts.padding or 0, nsp, 0)
    if avg then
      self.count_include_pad = opts.count_include_pad ~= false
    else
      self.dilation = dims_of(name, "dilation", opts.dilation or 1, nsp)
    end
  end
  function cls:forward(x)
    local o = { stride = self.stride, padding = self.padding }
    if avg then o.count_include_pad = self.count_include_pad else o.dilation = self.dilation end
    return batched(tostring(self), x, nsp, function(xb) return fwd(xb, self.kernel_size, o) end)
  end
  function cls:extra_repr()
    local s = "kernel_size=" .. dims_str(self.kernel_size) .. ", stride=" .. dims_str(self.stride)
    if self.padding[1] ~= 0 or dims_str(self.padding):find("[1-9]") then s = s .. ", padding=" .. dims_str(self.padding) end
    if avg and not self.count_include_pad then s = s .. ", count_include_pad=false" end
    return s
  end
  return cls
end

for nsp = 1, 3 do
  conv_class(nsp, false)
  conv_class(nsp, true)
  pool_class(nsp, false)
  pool_class(nsp, true)
end

F.upsample = mimic.upsample
F.interpolate = mimic.upsample

-- Upsample({size = | scale_factor =, mode = "nearest" | "linear" | "bilinear" | "trilinear",
-- align_corners = false}): resizes the spatial dims (PyTorch's nn.Upsample).
local Upsample = builtin("Upsample")
function Upsample:init(opts)
  opts = check_opts("Upsample", opts, { size = true, scale_factor = true, mode = true, align_corners = true })
  if (opts.size == nil) == (opts.scale_factor == nil) then raise("Upsample: give exactly one of size and scale_factor") end
  self.size, self.scale_factor = opts.size, opts.scale_factor
  self.mode, self.align_corners = opts.mode or "nearest", opts.align_corners
end
function Upsample:forward(x)
  check_tensor("Upsample", "input", x)
  return mimic.upsample(x, { size = self.size, scale_factor = self.scale_factor, mode = self.mode,
                             align_corners = self.align_corners })
end
function Upsample:extra_repr()
  local v = self.size or self.scale_factor
  local s = (self.size and "size=" or "scale_factor=") .. (type(v) == "table" and table.concat(v, "x") or tostring(v))
  return s .. ", mode=" .. self.mode .. (self.align_corners and ", align_corners=true" or "")
end

-- Flatten([start_dim = 2 [, end_dim = -1]]): merges dims, by default all but
-- the batch dim (PyTorch's defaults), e.g. between a convolution and a Linear.
local Flatten = builtin("Flatten")
function Flatten:init(start_dim, end_dim)
  self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
  if math.type(self.start_dim) ~= "integer" or math.type(self.end_dim) ~= "integer" then
    raise("Flatten: start_dim and end_dim must be integers")
  end
end
function Flatten:forward(x)
  check_tensor("Flatten", "input", x)
  return x:flatten(self.start_dim, self.end_dim)
end
function Flatten:extra_repr() return string.format("%d, %d", self.start_dim, self.end_dim) end

-- === Recurrent layers: nn.RNN, nn.LSTM, nn.GRU, nn.LastStep (issue #7) ================
-- RNN/LSTM/GRU(input_size, hidden_size [, {num_layers = 1, bias = true,
--   batch_first = false, nonlinearity = "tanh" (RNN only; or "relu"),
--   generator =, dtype = "float32"}])
-- PyTorch's parameters, names and layout, so state dicts carry over:
-- weight_ih_l{k} [G H, in], weight_hh_l{k} [G H, H], bias_ih_l{k}, bias_hh_l{k}
-- [G H] with G = 1, 4 (LSTM gates i, f, g, o) or 3 (GRU gates r, z, n), all
-- drawn U(-1/sqrt(H), 1/sqrt(H)) in that order, layer by layer.
-- batch_first defaults to false as in PyTorch (input [T, B, in]); with
-- batch_first = true the input and output are [B, T, ...] (the states stay
-- [num_layers, B, H], as in PyTorch).
-- forward(x [, h0 [, c0]]) -> output, h_n (LSTM: output, h_n, c_n):
-- output [T, B, H] is the last layer's hidden state at every step (a sequence
-- to sequence map), h_n and c_n [num_layers, B, H] the final states; h0 and c0
-- default to zeros (LSTM also takes forward(x, {h0, c0})). Each layer is one
-- fused op (mimic.rnn_layer) over the whole sequence. Inter-layer dropout and
-- bidirectional layers are not supported.
local RECURRENT = { RNN = 1, LSTM = 4, GRU = 3 }
local function recurrent(name)
  local cls = builtin(name)
  local G = RECURRENT[name]
  function cls:init(input_size, hidden_size, opts)
    check_size(name, "input_size", input_size)
    check_size(name, "hidden_size", hidden_size)
    local known = { num_layers = true, bias = true, batch_first = true, generator = true, dtype = true }
    if name == "RNN" then known.nonlinearity = true end
    opts = check_opts(name, opts, known)
    local dt = float_dtype(name, opts.dtype)
    self.input_size, self.hidden_size = input_size, hidden_size
    self.num_layers = opts.num_layers or 1
    check_size(name, "num_layers", self.num_layers)
    self.batch_first = opts.batch_first == true
    self.bias = opts.bias ~= false
    if name == "RNN" then
      local nl = opts.nonlinearity or "tanh"
      if nl ~= "tanh" and nl ~= "relu" then
        raise(string.format("RNN: nonlinearity '%s' is not known ('tanh' or 'relu')", tostring(nl)))
      end
      self.nonlinearity, self.mode = nl, "rnn_" .. nl
    else
      self.mode = name:lower()
    end
    for l = 0, self.num_layers - 1 do
      local in_l = l == 0 and input_size or hidden_size
      self["weight_ih_l" .. l] = nn.Parameter(mimic.zeros(G * hidden_size, in_l, dt))
      self["weight_hh_l" .. l] = nn.Parameter(mimic.zeros(G * hidden_size, hidden_size, dt))
      if self.bias then
        self["bias_ih_l" .. l] = nn.Parameter(mimic.zeros(G * hidden_size, dt))
        self["bias_hh_l" .. l] = nn.Parameter(mimic.zeros(G * hidden_size, dt))
      end
    end
    self:reset_parameters(opts)
  end
  function cls:reset_parameters(opts)
    local g = generator_of(name, opts or {})
    local bound = 1 / math.sqrt(self.hidden_size)
    for l = 0, self.num_layers - 1 do
      for _, p in ipairs({ "weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l" }) do
        local t = self[p .. l]
        if t then init.uniform_(t, -bound, bound, { generator = g }) end
      end
    end
    return self
  end
  function cls:forward(x, h0, c0)
    check_tensor(tostring(self), "input", x)
    if x:dim() ~= 3 or x:size(3) ~= self.input_size then
      raise(string.format("%s: input of shape %s must be %s with %d features", tostring(self), shape_str(x),
        self.batch_first and "[B, T, features] (batch_first)" or "[T, B, features] (time first; or batch_first = true)",
        self.input_size))
    end
    if name == "LSTM" and type(h0) == "table" and not is_tensor(h0) then h0, c0 = h0[1], h0[2] end
    if c0 ~= nil and name ~= "LSTM" then raise(name .. ": a cell state c0 is for LSTM only") end
    if self.batch_first then x = x:transpose(1, 2) end
    local T, B, H, L = x:size(1), x:size(2), self.hidden_size, self.num_layers
    for what, s in pairs({ h0 = h0, c0 = c0 }) do
      check_tensor(tostring(self), what, s)
      if s:dim() ~= 3 or s:size(1) ~= L or s:size(2) ~= B or s:size(3) ~= H then
        raise(string.format("%s: %s of shape %s must be [num_layers = %d, batch = %d, hidden = %d]", tostring(self),
          what, shape_str(s), L, B, H))
      end
    end
    local hs, cs, inp = {}, {}, x
    for l = 0, L - 1 do
      local y = mimic.rnn_layer(self.mode, inp, h0 and h0:select(1, l + 1), c0 and c0:select(1, l + 1),
        self["weight_ih_l" .. l], self["weight_hh_l" .. l], self["bias_ih_l" .. l], self["bias_hh_l" .. l])
      if name == "LSTM" then
        cs[l + 1] = y:select(1, 2):select(1, T)
        y = y:select(1, 1)
      end
      hs[l + 1] = y:select(1, T)
      inp = y
    end
    local out = self.batch_first and inp:transpose(1, 2) or inp
    if name == "LSTM" then return out, mimic.stack(hs, 1), mimic.stack(cs, 1) end
    return out, mimic.stack(hs, 1)
  end
  function cls:extra_repr()
    return string.format("%d, %d%s%s%s%s", self.input_size, self.hidden_size,
      self.num_layers ~= 1 and (", num_layers=" .. self.num_layers) or "",
      self.nonlinearity == "relu" and ", nonlinearity=relu" or "",
      self.bias and "" or ", bias=false", self.batch_first and ", batch_first=true" or "")
  end
  return cls
end
recurrent("RNN")
recurrent("LSTM")
recurrent("GRU")

-- LastStep([{batch_first = false}]): a recurrent layer's output at the last
-- step, [B, H] (sequence to one): nn.Sequential(nn.LSTM(3, 64), nn.LastStep(),
-- nn.Linear(64, 1)). Give it the recurrent layer's batch_first.
local LastStep = builtin("LastStep")
function LastStep:init(opts)
  opts = check_opts("LastStep", opts, { batch_first = true })
  self.batch_first = opts.batch_first == true
end
function LastStep:forward(x)
  check_tensor("LastStep", "input", x)
  if x:dim() ~= 3 then raise("LastStep: input of shape " .. shape_str(x) .. " must be [T, B, H] or [B, T, H]") end
  local d = self.batch_first and 2 or 1
  return x:select(d, x:size(d))
end
function LastStep:extra_repr() return self.batch_first and "batch_first=true" or "" end

-- === Global pooling: nn.GlobalAvgPool1d/2d/3d, nn.GlobalMaxPool1d/2d/3d (issue #7, inference plan) ===
-- GlobalAvgPoolNd() / GlobalMaxPoolNd(): [N, C, spatial...] (or unbatched
-- [C, spatial...]) -> [N, C] ([C]): the mean or max over all spatial
-- positions (PyTorch's AdaptiveAvgPoolNd(1) / AdaptiveMaxPoolNd(1) followed by
-- a flatten). Compiled and saved as "global_avg_pool" / "global_max_pool".
for nsp = 1, 3 do
  for _, kind in ipairs({ "Avg", "Max" }) do
    local name = "Global" .. kind .. "Pool" .. nsp .. "d"
    local cls = builtin(name)
    function cls:forward(x)
      check_tensor(name, "input", x)
      local unbatched = x:dim() == nsp + 1
      if not unbatched and x:dim() ~= nsp + 2 then
        raise(string.format("%s: input of shape %s must have %d dims (batch, channels, %d spatial) or %d (unbatched)",
          name, shape_str(x), nsp + 2, nsp, nsp + 1))
      end
      local xb = unbatched and x:unsqueeze(1) or x
      local f = xb:flatten(3)
      local y = kind == "Avg" and f:mean(3) or f:max(3)
      return unbatched and y:squeeze(1) or y
    end
  end
end

return nn
