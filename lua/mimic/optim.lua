-- mimic.optim: optimizers, learning-rate schedules and gradient clipping
-- (docs/nn.md, "Optimizers", is the reference).
--
-- An optimizer moves its parameters into one flat buffer and their gradients
-- into another (mimic.flatten_parameters: the parameters stay the same Lua
-- objects, now views of their slices), so a step is a handful of in-place
-- vector ops over all parameters at once, with no loop over parameters. The
-- update rules, option names and defaults are PyTorch's (torch.optim), and so
-- are the values, to rounding: tests/lua/test_optim.lua checks them against
-- PyTorch fixtures.
local mimic = require "mimic"

local optim = {}
local is_tensor = mimic.is_tensor

-- --- errors and options ---------------------------------------------------------
-- Errors point at the first caller outside this file (the user's line),
-- however deep inside optim the problem is found.
local THIS = debug.getinfo(1, "S").source
local function raise(fmt, ...)
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or fmt
  local level = 2 -- error(msg, level) cites the function debug.getinfo(level) gives
  while true do
    local info = debug.getinfo(level, "S")
    if not info or info.source ~= THIS then break end
    level = level + 1
  end
  error(msg, level)
end

local REQUIRED = setmetatable({}, { __tostring = function() return "(required)" end })

-- Merges opts over defaults. An unknown key is an error (a typo must not be
-- a silently ignored option), and so is a value of the wrong type.
local function options(fn, opts, defaults)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" or is_tensor(opts) then raise("%s: options must be a table, got %s", fn, type(opts)) end
  for k in pairs(opts) do
    if defaults[k] == nil then
      local names = {}
      for n in pairs(defaults) do names[#names + 1] = n end
      table.sort(names)
      raise("%s: unknown option '%s' (options: %s)", fn, tostring(k), table.concat(names, ", "))
    end
  end
  local o = {}
  for k, d in pairs(defaults) do
    local v = opts[k]
    if v == nil then
      if d == REQUIRED then raise("%s: option '%s' is required", fn, k) end
      v = d
    end
    local want = d == REQUIRED and "number" or type(d)
    if type(v) ~= want then raise("%s: option '%s' must be a %s, got %s", fn, k, want, type(v)) end
    o[k] = v
  end
  return o
end

local function check_range(fn, what, v, lo, hi, hi_open)
  if v ~= v or v < lo or (hi and (v > hi or (hi_open and v == hi))) then
    local range = hi and string.format("in [%g, %g%s", lo, hi, hi_open and ")" or "]") or string.format(">= %g", lo)
    raise("%s: %s must be %s, got %s", fn, what, range, tostring(v))
  end
end

-- betas = {b1, b2}, both in [0, 1).
local function check_betas(fn, b)
  if type(b) ~= "table" or type(b[1]) ~= "number" or type(b[2]) ~= "number" then
    raise("%s: option 'betas' must be a table of two numbers {beta1, beta2}", fn)
  end
  check_range(fn, "betas[1]", b[1], 0, 1, true)
  check_range(fn, "betas[2]", b[2], 0, 1, true)
  return { b[1], b[2] }
end

-- A list of parameters from a list, a single tensor, or anything with a
-- parameters() method (an nn module). Copied: later changes to the caller's
-- list do not reach the optimizer.
local function param_list(fn, params)
  if is_tensor(params) then return { params } end
  if type(params) ~= "table" then
    raise("%s: params must be a list of tensors or a module, got %s", fn, type(params))
  end
  if getmetatable(params) and type(params.parameters) == "function" then params = params:parameters() end
  local list = {}
  for i = 1, #params do list[i] = params[i] end
  return list
end

-- --- optimizers -----------------------------------------------------------------
local Optimizer = {}
Optimizer.__index = Optimizer

-- A new optimizer of class cls over params: flattens them, stores the
-- options as fields (opt.lr, opt.momentum, ...: settable between steps).
local function new_optimizer(cls, params, opts, defaults)
  local fn = "optim." .. cls.__name
  local list = param_list(fn, params)
  local o = options(fn, opts, defaults)
  check_range(fn, "lr", o.lr, 0)
  local ok, fp, fg = pcall(mimic.flatten_parameters, list)
  if not ok then raise("%s: %s", fn, (tostring(fp):gsub("^flatten_parameters: ", ""))) end
  local self = setmetatable(o, cls)
  self.params, self.flat_params, self.flat_grads = list, fp, fg
  self.state = { step = 0 }
  self._scratch = {}
  return self
end

-- A scratch buffer the size of the flat parameters, made once and kept:
-- steps allocate nothing after the first.
function Optimizer:_buf(name)
  local b = self._scratch[name]
  if not b then
    b = mimic.zeros({ self.flat_params:numel() }, self.flat_params:dtype())
    self._scratch[name] = b
  end
  return b
end

-- The state tensor `name`, created as zeros on first use (as PyTorch's
-- lazy state).
function Optimizer:_state(name)
  local t = self.state[name]
  if not t then
    t = mimic.zeros({ self.flat_params:numel() }, self.flat_params:dtype())
    self.state[name] = t
  end
  return t
end

-- g + wd * p into scratch buffer `into` (PyTorch: grad.add(param, alpha=wd)).
function Optimizer:_decayed(g, wd, into)
  return self:_buf(into):copy(self.flat_params):mul_(wd):add_(g)
end

-- opt:step([closure]) -> closure's result: one update from the current
-- gradients. A closure (re)computes the loss and gradients first, as in
-- PyTorch. The update runs with grad mode off.
function Optimizer:step(closure)
  local loss
  if closure ~= nil then loss = mimic.enable_grad(closure) end
  local fn = self.__name .. ":step"
  if type(self.lr) ~= "number" or self.lr ~= self.lr or self.lr < 0 then
    raise("%s: lr must be a number >= 0, got %s", fn, tostring(self.lr))
  end
  -- A gradient replaced or dropped since (p.grad = nil, module:zero_grad())
  -- is linked to the flat buffer again, with its current values.
  mimic.flat_attach_grads(self.params, self.flat_grads)
  mimic.no_grad(self._update, self)
  return loss
end

-- opt:zero_grad(): every gradient to zero, in the flat buffer.
function Optimizer:zero_grad()
  mimic.flat_attach_grads(self.params, self.flat_grads)
  self.flat_grads:fill(0)
end

-- opt:state_dict() -> { name=, step=, options={...}, state={name -> tensor} }:
-- the step count, the options and the state tensors (copies), for
-- checkpoints. options is a valid options table for the constructor.
function Optimizer:state_dict()
  local s = { name = self.__name, step = self.state.step, options = {}, state = {} }
  for k in pairs(self._defaults) do
    local v = self[k]
    s.options[k] = type(v) == "table" and { v[1], v[2] } or v
  end
  for k, v in pairs(self.state) do
    if is_tensor(v) then s.state[k] = v:clone() end
  end
  return s
end

-- opt:load_state_dict(s): restores what state_dict saved (values are
-- copied in, so s stays independent of the optimizer).
function Optimizer:load_state_dict(s)
  local fn = self.__name .. ":load_state_dict"
  if type(s) ~= "table" or type(s.state) ~= "table" or type(s.options) ~= "table" then
    raise("%s: expects a table made by state_dict()", fn)
  end
  if s.name ~= self.__name then
    raise("%s: the state is of a %s optimizer, not %s", fn, tostring(s.name), self.__name)
  end
  if math.type(s.step) ~= "integer" or s.step < 0 then raise("%s: step must be an integer >= 0", fn) end
  local o = options(fn, s.options, self._defaults)
  local n = self.flat_params:numel()
  for k, v in pairs(s.state) do
    if not self._state_names[k] then raise("%s: unknown state '%s' for %s", fn, tostring(k), self.__name) end
    if not is_tensor(v) or v:numel() ~= n then
      raise("%s: state '%s' must be a tensor of %d elements (the parameters' total)", fn, k, n)
    end
  end
  for k in pairs(self._state_names) do
    local v = s.state[k]
    if v == nil then
      self.state[k] = nil
    else
      self:_state(k):copy(v:reshape(n))
    end
  end
  for k, v in pairs(o) do self[k] = type(v) == "table" and { v[1], v[2] } or v end
  self.state.step = s.step
end

function Optimizer:__tostring()
  return string.format("optim.%s (%d parameters, %d values, lr=%g, step %d)", self.__name, #self.params,
                       self.flat_params:numel(), self.lr, self.state.step)
end

-- Classes: a metatable per optimizer, inheriting Optimizer's methods.
local function class(name, defaults, state_names)
  local cls = { __name = name, _defaults = defaults, __tostring = Optimizer.__tostring }
  cls.__index = cls
  cls._state_names = {}
  for _, k in ipairs(state_names) do cls._state_names[k] = true end
  return setmetatable(cls, { __index = Optimizer })
end

-- SGD -------------------------------------------------------------------------------
local SGD = class("SGD", { lr = REQUIRED, momentum = 0, dampening = 0, nesterov = false, weight_decay = 0 },
                  { "momentum_buffer" })

-- optim.SGD(params, {lr=, momentum=0, dampening=0, nesterov=false, weight_decay=0})
function optim.SGD(params, opts)
  local o = options("optim.SGD", opts, SGD._defaults) -- checked here, before flattening changes anything
  check_range("optim.SGD", "momentum", o.momentum, 0)
  check_range("optim.SGD", "weight_decay", o.weight_decay, 0)
  if o.nesterov and (o.momentum <= 0 or o.dampening ~= 0) then
    raise("optim.SGD: nesterov momentum requires a momentum > 0 and zero dampening")
  end
  return new_optimizer(SGD, params, opts, SGD._defaults)
end

function SGD:_update()
  local p, g, st = self.flat_params, self.flat_grads, self.state
  local mom, wd = self.momentum, self.weight_decay
  st.step = st.step + 1
  local scratch = false -- whether g is a scratch buffer (may be overwritten)
  if wd ~= 0 then
    g, scratch = self:_decayed(g, wd, "a"), true
  end
  if mom ~= 0 then
    local buf = st.momentum_buffer
    if not buf then
      buf = g:clone()
      st.momentum_buffer = buf
    else
      buf:mul_(mom)
      if self.dampening ~= 0 then
        buf:add_(self:_buf("b"):copy(g):mul_(1 - self.dampening))
      else
        buf:add_(g)
      end
    end
    if self.nesterov then
      g, scratch = self:_buf("b"):copy(buf):mul_(mom):add_(g), true
    else
      g, scratch = buf, false
    end
  end
  -- p += -lr * g
  if scratch then g:mul_(self.lr) else g = self:_buf("a"):copy(g):mul_(self.lr) end
  p:sub_(g)
end

-- Adam, AdamW -------------------------------------------------------------------------
local ADAM_STATE = { "exp_avg", "exp_avg_sq", "max_exp_avg_sq" }
local Adam = class("Adam", { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 0, amsgrad = false },
                   ADAM_STATE)
local AdamW = class("AdamW", { lr = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8, weight_decay = 1e-2, amsgrad = false },
                    ADAM_STATE)

local function adam(cls, params, opts)
  local fn = "optim." .. cls.__name
  local o = options(fn, opts, cls._defaults)
  check_range(fn, "eps", o.eps, 0)
  check_range(fn, "weight_decay", o.weight_decay, 0)
  local betas = check_betas(fn, o.betas)
  local self = new_optimizer(cls, params, opts, cls._defaults)
  self.betas = betas
  return self
end

-- optim.Adam(params, {lr=1e-3, betas={0.9, 0.999}, eps=1e-8, weight_decay=0, amsgrad=false})
-- (weight_decay is added to the gradient: L2 regularisation).
function optim.Adam(params, opts) return (adam(Adam, params, opts)) end
-- optim.AdamW(params, {..., weight_decay=1e-2}): decoupled weight decay.
function optim.AdamW(params, opts) return (adam(AdamW, params, opts)) end

-- The shared update; decoupled = AdamW. One fused C pass over the flat
-- buffers (mimic.adam_update, core/optim/flat.c): per element, the sequence
--   p = (1 - lr wd) p (AdamW)  or  g = g + wd p (Adam, wd ~= 0)
--   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g g;  vhat = amsgrad and max(vmax, v) or v
--   p += -(lr / (1 - b1^step)) m / (sqrt(vhat) / sqrt(1 - b2^step) + eps)
-- that used to be ~12 tensor ops (each a pass over memory and a Lua call).
local adam_update = mimic.adam_update
local function adam_update_step(self, decoupled)
  local st = self.state
  st.step = st.step + 1
  local m, v = self:_state("exp_avg"), self:_state("exp_avg_sq")
  local vmax = self.amsgrad and self:_state("max_exp_avg_sq") or nil
  adam_update(self.flat_params, self.flat_grads, m, v, vmax, self.lr, self.betas[1], self.betas[2], self.eps,
              self.weight_decay, decoupled, st.step)
end

function Adam:_update() adam_update_step(self, false) end
function AdamW:_update() adam_update_step(self, true) end

-- RMSprop -----------------------------------------------------------------------------
local RMSprop = class("RMSprop", { lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0, momentum = 0,
                                   centered = false }, { "square_avg", "grad_avg", "momentum_buffer" })

-- optim.RMSprop(params, {lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=false})
function optim.RMSprop(params, opts)
  local fn = "optim.RMSprop"
  local o = options(fn, opts, RMSprop._defaults)
  check_range(fn, "alpha", o.alpha, 0)
  check_range(fn, "eps", o.eps, 0)
  check_range(fn, "momentum", o.momentum, 0)
  check_range(fn, "weight_decay", o.weight_decay, 0)
  return new_optimizer(RMSprop, params, opts, RMSprop._defaults)
end

function RMSprop:_update()
  local p, g, st = self.flat_params, self.flat_grads, self.state
  local alpha, wd = self.alpha, self.weight_decay
  st.step = st.step + 1
  if wd ~= 0 then g = self:_decayed(g, wd, "a") end
  local sq, t = self:_state("square_avg"), self:_buf("t")
  sq:mul_(alpha):add_(t:copy(g):mul_(1 - alpha):mul_(g))
  local avg
  if self.centered then
    local ga = self:_state("grad_avg")
    ga:mul_(alpha):add_(t:copy(g):mul_(1 - alpha))
    avg = t:copy(ga):mul_(-1):mul_(ga):add_(sq):sqrt_() -- sqrt(sq - ga^2)
  else
    avg = t:copy(sq):sqrt_()
  end
  avg:add_(self.eps)
  local a = self:_buf("a")
  if not rawequal(a, g) then a:copy(g) end
  if self.momentum > 0 then
    local buf = self:_state("momentum_buffer")
    buf:mul_(self.momentum):add_(a:div_(avg))
    p:sub_(a:copy(buf):mul_(self.lr))
  else
    p:add_(a:mul_(-self.lr):div_(avg))
  end
end

-- --- gradient clipping ----------------------------------------------------------------
-- optim.clip_grad_norm(params_or_opt, max_norm [, norm_type=2 [, error_if_nonfinite=false]])
-- -> the total norm of all gradients (one norm over their concatenation)
-- before clipping; if it exceeds max_norm, every gradient is scaled by
-- max_norm / (total + 1e-6). norm_type may be math.huge (or "inf").
function optim.clip_grad_norm(target, max_norm, norm_type, error_if_nonfinite)
  local fn = "optim.clip_grad_norm"
  if type(max_norm) ~= "number" then raise("%s: max_norm must be a number, got %s", fn, type(max_norm)) end
  if norm_type == nil then norm_type = 2 elseif norm_type == "inf" then norm_type = math.huge end
  if type(norm_type) ~= "number" then raise("%s: norm_type must be a number, got %s", fn, type(norm_type)) end
  local grads = {}
  if type(target) == "table" and getmetatable(target) and is_tensor(rawget(target, "flat_grads")) then
    mimic.flat_attach_grads(target.params, target.flat_grads)
    grads[1] = target.flat_grads
  else
    local ok, list = pcall(param_list, fn, target)
    if not ok then raise("%s: expects an optimizer, a tensor, a list of tensors or a module", fn) end
    for _, p in ipairs(list) do
      if not is_tensor(p) then raise("%s: the parameter list holds a %s, expected tensors", fn, type(p)) end
      local g = p.grad
      if g then grads[#grads + 1] = g end
    end
  end
  if #grads == 0 then return 0 end
  local total
  if #grads == 1 then
    total = grads[1]:norm(norm_type):item()
  else -- the norm of the per-gradient norms (PyTorch's way), combined in double
    local acc = 0
    for _, g in ipairs(grads) do
      local n = g:norm(norm_type):item()
      if norm_type == math.huge then acc = math.max(acc, n) else acc = acc + n ^ norm_type end
    end
    total = norm_type == math.huge and acc or acc ^ (1 / norm_type)
  end
  if error_if_nonfinite and (total ~= total or total == math.huge) then
    raise("%s: the total norm of order %g of the gradients is not finite, so it cannot be clipped", fn, norm_type)
  end
  local coef = max_norm / (total + 1e-6)
  if not (coef >= 1) then -- also for a NaN norm, which spreads to the gradients as in PyTorch
    mimic.no_grad(function()
      for _, g in ipairs(grads) do g:mul_(coef) end
    end)
  end
  return total
end

-- --- learning-rate schedules ---------------------------------------------------------
-- A schedule changes opt.lr on each sched:step(); it works with any table
-- that has a numeric lr field. Like PyTorch's, the chainable forms build each
-- value from the current lr, so a manual change of opt.lr carries on.
local Scheduler = {}
Scheduler.__index = Scheduler

local function scheduler(cls, fn, opt, opts, defaults)
  if type(opt) ~= "table" or type(opt.lr) ~= "number" then
    raise("%s: expects an optimizer (a table with a numeric lr), got %s", fn, type(opt))
  end
  local self = setmetatable(options(fn, opts, defaults), cls)
  self.optimizer = opt
  self.base_lr = opt.lr
  self.last_epoch = 0
  self.last_lr = opt.lr
  return self
end

-- sched:get_last_lr() -> the lr set by the last step (the initial lr before any).
function Scheduler:get_last_lr() return self.last_lr end

function Scheduler:step()
  self.last_epoch = self.last_epoch + 1
  local lr = self:_get_lr()
  self.optimizer.lr = lr
  self.last_lr = lr
  return lr
end

-- sched:state_dict() -> a plain table of the schedule's numbers (and
-- strings); sched:load_state_dict(s) restores them.
function Scheduler:state_dict()
  local s = {}
  for k, v in pairs(self) do
    if k ~= "optimizer" then s[k] = v end
  end
  return s
end

function Scheduler:load_state_dict(s)
  if type(s) ~= "table" then raise("%s:load_state_dict: expects a table made by state_dict()", self.__name) end
  for k, v in pairs(s) do
    if k == "optimizer" or self[k] == nil or type(v) ~= type(self[k]) then
      raise("%s:load_state_dict: unexpected entry '%s'", self.__name, tostring(k))
    end
  end
  for k, v in pairs(s) do self[k] = v end
end

local function sched_class(name)
  local cls = { __name = name }
  cls.__index = cls
  return setmetatable(cls, { __index = Scheduler })
end

-- optim.StepLR(opt, {step_size=, gamma=0.1}): lr times gamma every step_size steps.
local StepLR = sched_class("StepLR")
function optim.StepLR(opt, opts)
  local self = scheduler(StepLR, "optim.StepLR", opt, opts, { step_size = REQUIRED, gamma = 0.1 })
  if math.type(self.step_size) ~= "integer" or self.step_size < 1 then
    raise("optim.StepLR: step_size must be an integer >= 1, got %s", tostring(self.step_size))
  end
  return self
end

function StepLR:_get_lr()
  local lr, e = self.optimizer.lr, self.last_epoch
  if e == 0 or e % self.step_size ~= 0 then return lr end
  return lr * self.gamma
end

-- optim.CosineAnnealingLR(opt, {T_max=, eta_min=0}): half a cosine from the
-- initial lr down to eta_min over T_max steps (then back up, and so on).
local CosineAnnealingLR = sched_class("CosineAnnealingLR")
function optim.CosineAnnealingLR(opt, opts)
  local self = scheduler(CosineAnnealingLR, "optim.CosineAnnealingLR", opt, opts, { T_max = REQUIRED, eta_min = 0 })
  if self.T_max <= 0 then raise("optim.CosineAnnealingLR: T_max must be > 0, got %s", tostring(self.T_max)) end
  return self
end

function CosineAnnealingLR:_get_lr()
  local lr, e, T, eta = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
  local pi, cos = math.pi, math.cos
  if e == 0 then return lr end
  if (e - 1 - T) % (2 * T) == 0 then
    return lr + (self.base_lr - eta) * (1 - cos(pi / T)) / 2
  end
  return (1 + cos(pi * e / T)) / (1 + cos(pi * (e - 1) / T)) * (lr - eta) + eta
end

-- optim.ReduceLROnPlateau(opt, {mode="min", factor=0.1, patience=10,
--   threshold=1e-4, threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8}):
-- sched:step(metric) multiplies lr by factor once the metric has not improved
-- for more than `patience` steps.
local ReduceLROnPlateau = sched_class("ReduceLROnPlateau")
function optim.ReduceLROnPlateau(opt, opts)
  local fn = "optim.ReduceLROnPlateau"
  local self = scheduler(ReduceLROnPlateau, fn, opt, opts, {
    mode = "min", factor = 0.1, patience = 10, threshold = 1e-4, threshold_mode = "rel", cooldown = 0,
    min_lr = 0, eps = 1e-8 })
  if self.factor >= 1 then raise("%s: factor must be < 1, got %s", fn, tostring(self.factor)) end
  if self.mode ~= "min" and self.mode ~= "max" then raise("%s: mode must be \"min\" or \"max\", got \"%s\"", fn, self.mode) end
  if self.threshold_mode ~= "rel" and self.threshold_mode ~= "abs" then
    raise("%s: threshold_mode must be \"rel\" or \"abs\", got \"%s\"", fn, self.threshold_mode)
  end
  self.best = self.mode == "min" and math.huge or -math.huge
  self.num_bad_epochs = 0
  self.cooldown_counter = 0
  return self
end

function ReduceLROnPlateau:_is_better(a)
  local best, th = self.best, self.threshold
  if self.mode == "min" then
    if self.threshold_mode == "rel" then return a < best * (1 - th) end
    return a < best - th
  end
  if self.threshold_mode == "rel" then return a > best * (th + 1) end
  return a > best + th
end

-- sched:step(metric): metric is a number or a one-element tensor.
function ReduceLROnPlateau:step(metric)
  if is_tensor(metric) then metric = metric:item() end
  if type(metric) ~= "number" then
    raise("ReduceLROnPlateau:step: expects the metric (a number or one-element tensor), got %s", type(metric))
  end
  self.last_epoch = self.last_epoch + 1
  if self:_is_better(metric) then
    self.best = metric
    self.num_bad_epochs = 0
  else
    self.num_bad_epochs = self.num_bad_epochs + 1
  end
  if self.cooldown_counter > 0 then
    self.cooldown_counter = self.cooldown_counter - 1
    self.num_bad_epochs = 0 -- bad epochs in cooldown do not count
  end
  if self.num_bad_epochs > self.patience then
    local opt = self.optimizer
    local new = math.max(opt.lr * self.factor, self.min_lr)
    if opt.lr - new > self.eps then opt.lr = new end
    self.cooldown_counter = self.cooldown
    self.num_bad_epochs = 0
  end
  self.last_lr = self.optimizer.lr
  return self.last_lr
end

return optim
