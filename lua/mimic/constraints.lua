-- mimic.constraints: output layers and losses that build physics into a
-- network (docs/mappings.md, "Physical constraints as layers").
--
--   C.Positive([beta = 1 [, threshold = 20]])   softplus head: y >= 0
--   C.Bounded(lo, hi [, n] [, {dtype =}])       lo + (hi - lo) sigmoid(x): lo <= y <= hi
--   C.SymmetricTensor([{dtype =}])              6 -> 9: (xx, yy, zz, xy, xz, yz) -> 3x3 row-major
--   C.ConservationProjection(n, total [, {dtype =}])
--                                               y' = (I - 11^T/n) y + total/n: sum(y') = total
--   C.ConservationProjection(n, "input" [, {dtype =}])
--                                               input [N, n+1], last column the total t:
--                                               y' = (I - 11^T/n) y + t/n
--   C.dissipation(tau, S [, {sign = 1}])        per sample sign * sum_ij tau_ij S_ij ([N])
--   C.dissipation_penalty(tau, S [, {sign =, reduction = "mean"}])
--                                               relu(-dissipation): a loss term
--   C.DissipationLimiter([{mode = "project" | "zero", sign = 1}])
--                                               forward(tau, S): tau' with dissipation >= 0 per sample
--
-- Tensors tau, S are [N, 9] (3x3 row-major) or [N, 6] (the SymmetricTensor
-- order; the off-diagonal products then count twice).
--
-- Each layer's forward is built from differentiable ops (autograd works
-- through it). Each layer that has a C form also has m:lower() (the
-- equivalent tree of built-in modules with fixed weights: Softplus, Sigmoid,
-- BatchNorm1d as the affine scale/shift record, Linear as a fixed dense
-- record) and m:records() (its C layer records). model:compile() and
-- model:save() lower such layers themselves (mimic.plan calls m:lower());
-- C.compile(model, opts) and C.save(model, path, opts) do the same for the
-- whole tree explicitly. The DissipationLimiter takes two inputs and is not a
-- fixed map: it has no C form.
local mimic = require "mimic"
local nn = require "mimic.nn"
local plan = require "mimic.plan"
local util = require "mimic.util"

local C = {}
local THIS = debug.getinfo(1, "S").source

local function raise(fn, fmt, ...) util.raiser(THIS, fn)(fmt, ...) end

local function dtype_of(fn, opts)
  local dt = opts and opts.dtype or "float32"
  if dt ~= "float32" and dt ~= "float64" then raise(fn, "dtype must be float32 or float64, got %s", tostring(dt)) end
  return dt
end

local function check_last(fn, x, w)
  if not mimic.is_tensor(x) then raise(fn, "expected a tensor input, got a %s", type(x)) end
  if x:dim() == 0 or x:size(-1) ~= w then
    raise(fn, "input's last dim must be %d, got shape [%s]", w, table.concat(x:size(), ","))
  end
end

-- The weights w of the fixed maps, converted to the input's dtype once per dtype.
local function as(m, name, dt)
  local t = m[name]
  if t:dtype() == dt then return t end
  local cache = rawget(m, "_cast") or {}
  rawset(m, "_cast", cache)
  local key = name .. dt
  cache[key] = cache[key] or t:to(dt)
  return cache[key]
end

local function records_of(m) return plan.records(m:lower(), "compile") end

-- --- Positive ------------------------------------------------------------------------
local Positive = nn.Module:extend("Positive")
C.Positive = Positive
function Positive:init(beta, threshold)
  beta, threshold = beta or 1, threshold or 20
  if type(beta) ~= "number" or beta <= 0 then raise("Positive", "beta must be a number > 0, got %s", tostring(beta)) end
  if type(threshold) ~= "number" then raise("Positive", "threshold must be a number") end
  self.beta, self.threshold = beta, threshold
end
-- log(1 + u) accurate for tiny u (Goldberg's trick: log(w) u / (w - 1) with
-- w = 1 + u rounded; u itself where w rounds to 1). The guarded denominator
-- keeps the unused branch finite, so its gradient is not NaN.
local function log1p(u)
  local w = u + 1
  local one = w:eq(1)
  local den = mimic.where(one, w, w - 1)
  return mimic.where(one, u, w:log() * u / den)
end

-- relu(z) + log1p(exp(-|z|)) with z = beta x: unlike log(sigmoid), stays > 0
-- for very negative x (down to exp underflow) as the C kernel does.
function Positive:forward(x)
  local z = self.beta == 1 and x or x * self.beta
  local sp = z:relu() + log1p((-z:abs()):exp())
  if self.beta ~= 1 then sp = sp / self.beta end
  return mimic.where(z:gt(self.threshold), x, sp)
end
function Positive:lower() return nn.Softplus(self.beta, self.threshold) end
Positive.records = records_of
function Positive:extra_repr() return string.format("beta=%g", self.beta) end

-- --- Bounded -------------------------------------------------------------------------
local Bounded = nn.Module:extend("Bounded")
C.Bounded = Bounded
-- lo, hi numbers (n, the width, is then needed only for the C form) or
-- tables of n per-feature bounds.
function Bounded:init(lo, hi, n, opts)
  if type(n) == "table" and opts == nil then n, opts = nil, n end
  local dt = dtype_of("Bounded", opts)
  if type(lo) == "table" or type(hi) == "table" then
    n = n or (type(lo) == "table" and #lo or #hi)
  end
  local function vec(v, what)
    if type(v) == "number" then return n and mimic.full({ n }, v, dt) or mimic.scalar(v, dt) end
    if type(v) ~= "table" or #v ~= n then
      raise("Bounded", "%s must be a number or a table of %s numbers", what, tostring(n))
    end
    return mimic.tensor(v, dt)
  end
  local l, h = vec(lo, "lo"), vec(hi, "hi")
  if not ((h - l):min():item() > 0) then raise("Bounded", "needs lo < hi for every feature") end
  self.n = n
  self:add_buffer("lo", l)
  self:add_buffer("span", h - l)
end
function Bounded:forward(x)
  if self.n then check_last("Bounded", x, self.n) end
  local dt = x:dtype()
  return x:sigmoid() * as(self, "span", dt) + as(self, "lo", dt)
end
function Bounded:lower()
  if not self.n then
    raise("Bounded", "the C form needs the width: give Bounded(lo, hi, n)")
  end
  local dt = self.lo:dtype()
  -- the affine scale/shift record: BatchNorm1d with mean 0, var 1, eps 0
  local bn = nn.BatchNorm1d(self.n, { eps = 0, dtype = dt })
  mimic.no_grad(function()
    bn.weight:copy(self.span)
    bn.bias:copy(self.lo)
  end)
  bn.training = false
  return nn.Sequential(nn.Sigmoid(), bn)
end
Bounded.records = records_of

-- --- fixed linear maps ---------------------------------------------------------------------
local function fixed_linear(w, b)
  local l = nn.Linear(w:size(2), w:size(1), { bias = b ~= nil, dtype = w:dtype() })
  mimic.no_grad(function()
    l.weight:copy(w)
    if b then l.bias:copy(b) end
  end)
  return l
end

-- --- SymmetricTensor -------------------------------------------------------------------------
local SymmetricTensor = nn.Module:extend("SymmetricTensor")
C.SymmetricTensor = SymmetricTensor
-- Row-major 3x3 entry k takes input component SYM[k]; inputs (xx, yy, zz, xy, xz, yz).
local SYM = { 1, 4, 5, 4, 2, 6, 5, 6, 3 }
C.symmetric_index = SYM
function SymmetricTensor:init(opts)
  local dt = dtype_of("SymmetricTensor", opts)
  local w = mimic.zeros(9, 6, dt)
  for k = 1, 9 do w[{ k, SYM[k] }] = 1 end
  self:add_buffer("map", w)
  rawset(self, "_index", mimic.tensor(SYM, "int64"))
end
function SymmetricTensor:forward(x)
  check_last("SymmetricTensor", x, 6)
  return x:index_select(x:dim(), rawget(self, "_index"))
end
function SymmetricTensor:lower() return nn.Sequential(fixed_linear(self.map)) end
SymmetricTensor.records = records_of

-- --- ConservationProjection ----------------------------------------------------------------
local ConservationProjection = nn.Module:extend("ConservationProjection")
C.ConservationProjection = ConservationProjection
function ConservationProjection:init(n, total, opts)
  if math.type(n) ~= "integer" or n < 1 then raise("ConservationProjection", "n must be an integer >= 1") end
  local dt = dtype_of("ConservationProjection", opts)
  self.n = n
  if total == "input" then
    self.from_input = true
  elseif type(total) == "number" then
    self.total = total
  else
    raise("ConservationProjection", "total must be a number or \"input\" (the last input column), got %s",
      tostring(total))
  end
  -- the fixed map [I - 11^T/n | 1/n] (the last column only for "input")
  local w = mimic.full({ n, self.from_input and n + 1 or n }, -1 / n, "float64")
  for i = 1, n do w[{ i, i }] = 1 - 1 / n end
  if self.from_input then for i = 1, n do w[{ i, n + 1 }] = 1 / n end end
  self:add_buffer("map", w:to(dt))
  if not self.from_input then self:add_buffer("shift", mimic.full({ n }, total / n, dt)) end
end
function ConservationProjection:forward(x)
  local n = self.n
  if self.from_input then
    check_last("ConservationProjection", x, n + 1)
    local y, t = x:narrow(-1, 1, n), x:narrow(-1, n + 1, 1)
    return y - (y:sum(-1, true) - t) / n
  end
  check_last("ConservationProjection", x, n)
  return x - (x:sum(-1, true) - self.total) / n
end
function ConservationProjection:lower()
  return nn.Sequential(fixed_linear(self.map, self.shift))
end
ConservationProjection.records = records_of
function ConservationProjection:extra_repr()
  return string.format("n=%d, total=%s", self.n, self.from_input and "input" or string.format("%g", self.total))
end

-- --- dissipation ---------------------------------------------------------------------------
local function pair_weights(fn, tau, S)
  if not mimic.is_tensor(tau) or not mimic.is_tensor(S) then raise(fn, "tau and S must be tensors") end
  local w = tau:size(-1)
  if (w ~= 9 and w ~= 6) or S:size(-1) ~= w or tau:dim() ~= S:dim() then
    raise(fn, "tau and S must both be [N, 9] (3x3 row-major) or [N, 6] (xx, yy, zz, xy, xz, yz)")
  end
  if w == 9 then return nil end
  return mimic.tensor({ 1, 1, 1, 2, 2, 2 }, tau:dtype())
end

-- sign * sum_ij tau_ij S_ij per sample.
function C.dissipation(tau, S, opts)
  local fn = "dissipation"
  local sign = opts and opts.sign or 1
  local w = pair_weights(fn, tau, S)
  local p = tau * S
  if w then p = p * w end
  local d = p:sum(-1)
  return sign == 1 and d or d * sign
end

-- relu(-dissipation): zero where the sample dissipates, else its deficit.
function C.dissipation_penalty(tau, S, opts)
  opts = opts or {}
  local r = opts.reduction or "mean"
  local p = (-C.dissipation(tau, S, opts)):relu()
  if r == "mean" then return p:mean() elseif r == "sum" then return p:sum() elseif r == "none" then return p end
  raise("dissipation_penalty", "reduction must be \"mean\", \"sum\" or \"none\", got %s", tostring(r))
end

local DissipationLimiter = nn.Module:extend("DissipationLimiter")
C.DissipationLimiter = DissipationLimiter
-- mode "project": tau' = tau - sign min(D, 0) S / |S|^2_w, the smallest change
-- (in the metric of the pair weights) giving D' = max(D, 0); "zero": tau' =
-- tau where D >= 0, else 0.
function DissipationLimiter:init(opts)
  opts = opts or {}
  self.mode = opts.mode or "project"
  self.sign = opts.sign or 1
  if self.mode ~= "project" and self.mode ~= "zero" then
    raise("DissipationLimiter", "mode must be \"project\" or \"zero\", got %s", tostring(self.mode))
  end
  if self.sign ~= 1 and self.sign ~= -1 then raise("DissipationLimiter", "sign must be 1 or -1") end
end
function DissipationLimiter:forward(tau, S)
  local d = C.dissipation(tau, S, { sign = self.sign }):unsqueeze(-1)
  if self.mode == "zero" then return tau * d:ge(0):to(tau:dtype()) end
  local w = pair_weights("DissipationLimiter", tau, S)
  local s2 = w and (S * S * w):sum(-1, true) or (S * S):sum(-1, true)
  local deficit = d:clamp(nil, 0)
  -- where S = 0 the deficit is 0 too: the tiny floor only avoids 0/0
  local tiny = tau:dtype() == "float64" and 1e-300 or 1e-30
  local corr = S * (deficit / (s2 + tiny))
  return self.sign == 1 and tau - corr or tau + corr
end
function DissipationLimiter:lower()
  raise("DissipationLimiter", "has no C form: it takes two inputs (tau, S) and is not a fixed map; "
    .. "apply it in the host after the model, or train with C.dissipation_penalty instead")
end
DissipationLimiter.records = records_of

-- --- compiling and saving models that contain constraint layers --------------------------------
-- The tree of built-in modules equivalent to m at inference (built-in layers shared, not copied).
function C.lower(m)
  if type(m.lower) == "function" then
    return m:lower()
  end
  local t = m.__typename
  if t == "Sequential" then
    local s = nn.Sequential()
    for _, c in ipairs(m:children()) do s:add(C.lower(c)) end
    return s
  elseif t == "Residual" then
    return nn.Residual(C.lower(m._modules["1"]))
  end
  return m
end

-- model:compile for trees with constraint layers; the plan is also attached
-- to model (model:forward uses it under the rule of docs/nn.md).
function C.compile(model, opts)
  local low = C.lower(model)
  local p = low:compile(opts)
  rawset(low, "_compiled", nil)
  rawset(model, "_compiled", p)
  return p
end

-- model:save for trees with constraint layers (same options and result).
function C.save(model, path, opts) return C.lower(model):save(path, opts) end

-- The flat C layer records of a tree with constraint layers.
function C.records(model, verb) return plan.records(C.lower(model), verb) end

return C
