-- mimic.modelfile: versioned model files (docs/model-format.md, lua/lmodelfile.c).
--
--   model:save(path, {inputs = {{name =, units =, size =}, ...}, outputs = {...},
--                     encoders = {input = enc, output = enc}, meta = {...}, dtype =,
--                     input_shape = {C, ...} (convolutional models: the sample shape)})
--       -> the content hash ("sha256:..."). Built-in Sequential models only.
--   mimic.load_model(path) -> M with
--       M:forward(x)          raw x [n, nin] (or [nin]) -> raw [n, nout] float64
--       M:forward{name = t}   named inputs (each [n, size] or [n]) -> {name = [n, size]}
--       M:bind(names [, "outputs"])  check a host's variable order against the contract
--       M.contract, M.meta, M.hash, M.dtype, M.nin, M.nout
local mimic = require "mimic"
local plan = require "mimic.plan"

local M = {}

local function fail(msg) error(msg, 0) end

local OPTS = { inputs = true, outputs = true, encoders = true, meta = true, dtype = true, nin = true, data_file = true,
               input_shape = true }

local function enc_state(e, which)
  if e == nil then return nil end
  if type(e) == "table" and e.state then return e:state() end
  if type(e) == "table" and e.kind then return e end
  fail("save: encoders." .. which .. " must be a data.encoder / data.chain (or its state())")
end

function M.save(model, path, o)
  if type(path) ~= "string" then fail("model:save(path, {inputs =, outputs =, ...}): path must be a string") end
  o = o or {}
  for k in pairs(o) do
    if not OPTS[k] then fail("model:save: unknown option '" .. tostring(k) .. "' (inputs, outputs, encoders, meta, dtype, nin, data_file, input_shape)") end
  end
  model:check_builtin("a model file (model:save)")
  if not o.inputs or not o.outputs then
    fail("model:save: the contract is required: inputs = {{name =, units =, size =}, ...}, outputs = {...}")
  end
  local nin = plan.width_of(model, o, "model:save")
  if not nin then fail("model:save: cannot tell the input width; give nin =") end
  local dtype = o.dtype
  if not dtype then
    local ps = model:parameters()
    dtype = ps[1] and ps[1]:dtype() or "float32"
  end
  local enc = o.encoders or {}
  for k in pairs(enc) do
    if k ~= "input" and k ~= "output" then fail("model:save: encoders = {input =, output =}, got '" .. tostring(k) .. "'") end
  end
  local meta = {}
  for k, v in pairs(o.meta or {}) do meta[k] = v end
  if o.data_file ~= nil then -- provenance: which data trained it, fingerprinted
    if type(o.data_file) ~= "string" then fail("model:save: data_file must be a path") end
    local ok, h = pcall(mimic.sha256_file, o.data_file)
    if not ok then fail("model:save: data_file: " .. tostring(h)) end
    meta.data_file, meta.data_sha256 = o.data_file, h
  end
  return mimic.no_grad(function()
    return mimic._save_model(path, (plan.records(model, "save", o.input_shape)), nin, dtype, o.inputs, o.outputs,
      enc_state(enc.input, "input"), enc_state(enc.output, "output"), meta)
  end)
end

local Loaded = {}
Loaded.__index = Loaded

local function names_of(vars)
  local t = {}
  for i, v in ipairs(vars) do t[i] = string.format("%s [%s] (%d)", v.name, v.units, v.size) end
  return table.concat(t, ", ")
end

-- Named inputs -> one [n, nin] tensor in the contract's order; any missing,
-- unknown or mis-sized name is an error listing what the model expects.
local function gather(self, named)
  local parts, n = {}, nil
  local known = {}
  for _, v in ipairs(self.contract.inputs) do known[v.name] = v end
  for k in pairs(named) do
    if not known[k] then
      fail(string.format("forward: '%s' is not an input of this model; it expects: %s", tostring(k),
        names_of(self.contract.inputs)))
    end
  end
  for i, v in ipairs(self.contract.inputs) do
    local t = named[v.name]
    if not mimic.is_tensor(t) then
      fail(string.format("forward: input '%s' [%s] (%d features) is missing; the model expects: %s", v.name, v.units,
        v.size, names_of(self.contract.inputs)))
    end
    if t:dim() == 1 and v.size == 1 then t = t:reshape({ t:size(1), 1 }) end
    if t:dim() ~= 2 or t:size(2) ~= v.size then
      fail(string.format("forward: input '%s' must be [n, %d], got a %d-dim tensor", v.name, v.size, t:dim()))
    end
    n = n or t:size(1)
    if t:size(1) ~= n then fail(string.format("forward: input '%s' has %d rows, the others %d", v.name, t:size(1), n)) end
    parts[i] = t:double()
  end
  return mimic.cat(parts, 2)
end

function Loaded:forward(x)
  if mimic.is_tensor(x) then return self._h:forward(x) end
  if type(x) ~= "table" then fail("forward: expected a tensor [n, nin] or a table {name = tensor}") end
  local y = self._h:forward(gather(self, x))
  local out, at = {}, 1
  for _, v in ipairs(self.contract.outputs) do
    out[v.name] = y:narrow(2, at, v.size)
    at = at + v.size
  end
  return out
end

function Loaded:bind(names, which)
  local w = (which == nil or which == "inputs") and 0 or which == "outputs" and 1 or
    fail("bind: which must be 'inputs' or 'outputs'")
  return self._h:bind(w, names)
end

function M.load(path)
  if type(path) ~= "string" then fail("mimic.load_model(path): path must be a string") end
  local h, contract, meta, hash, dtype = mimic._load_model(path)
  local nin, nout = 0, 0
  for _, v in ipairs(contract.inputs) do nin = nin + v.size end
  for _, v in ipairs(contract.outputs) do nout = nout + v.size end
  return setmetatable({ _h = h, contract = contract, meta = meta, hash = hash, dtype = dtype, nin = nin, nout = nout },
    Loaded)
end

return M
