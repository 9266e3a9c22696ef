-- mimic.train{...}: the training loop, with validation, schedules, early
-- stopping, atomic checkpoints and bit-for-bit resume (docs/nn.md,
-- "Training" and "Checkpoints", is the reference).
--
--   local history = mimic.train{
--     model = m, loss = nn.MSELoss(), optimizer = optim.Adam(m:parameters()),
--     data = {x = X, y = Y},            -- tensors, first dim = samples
--     val = {x = Xv, y = Yv},           -- or val_fraction = 0.1 (the last 10 %)
--     epochs = 50, batch = 64,
--     seed = 1,                         -- or generator = mimic.Generator(1)
--     scheduler = sched, clip_grad_norm = 1.0,
--     early_stopping = {patience = 5, min_delta = 0, monitor = "val"},
--     checkpoint = "run.h5", checkpoint_every = 1, resume = true,
--     on_epoch = function(info) ... end, -- return false to stop
--     verbose = true,
--     compiled = true,                  -- false: always the autograd path
--   }
--
-- Contracts (duck-typed): model(x) -> prediction; model:train(),
-- model:evaluate() if present; model:state_dict()/load_state_dict(sd) for
-- checkpoints and early stopping. loss(pred, y) -> a one-element tensor with
-- :item() and :backward(). optimizer:zero_grad(), :step(), .lr, and
-- :state_dict()/load_state_dict(s) for checkpoints. scheduler:step(metric)
-- once per epoch, :state_dict()/load_state_dict(s) for checkpoints.
--
-- Determinism: every random choice (the per-epoch shuffle) comes from one
-- explicit generator, and mimic's ops give the same bits on every run of the
-- same build (reductions do not depend on the thread count). A checkpoint holds everything the rest of the run depends on (model,
-- optimizer, scheduler, early-stopping state and best weights, history, the
-- generator's and the default generator's states, the sampler position), so
-- a resumed run ends with the same bits as one never interrupted.
local mimic = require "mimic"
local util = require "mimic.util"

local FORMAT, VERSION = "mimic.train", 1

-- Errors point at the caller of mimic.train (the user's line), however deep
-- inside this file they are raised: error(msg, 2) from the API function.
local raise = util.raiser(debug.getinfo(1, "S").source, "mimic.train")

local OPTIONS = {
  model = true, loss = true, optimizer = true, data = true, val = true, val_fraction = true, epochs = true,
  batch = true, val_batch = true, shuffle = true, generator = true, seed = true, scheduler = true,
  clip_grad_norm = true, early_stopping = true, checkpoint = true, checkpoint_every = true, resume = true,
  on_epoch = true, verbose = true, output = true, compiled = true,
}

local callable = util.callable

local function has_method(obj, name) return type(obj) == "table" and type(obj[name]) == "function" end

local function is_generator(g)
  return type(g) == "userdata" and tostring(g):match("^mimic%.Generator") ~= nil
end

local function check_int(name, v, min) return util.check_int(raise, name, v, min) end -- errors as mimic.train

local function check_pair(name, p)
  if type(p) ~= "table" or mimic.is_tensor(p) then raise("%s must be a table {x = tensor, y = tensor}", name) end
  if not mimic.is_tensor(p.x) or not mimic.is_tensor(p.y) then
    raise("%s.x and %s.y must be tensors (first dim = samples), got %s and %s", name, name, type(p.x), type(p.y))
  end
  if p.x:dim() == 0 or p.y:dim() == 0 then raise("%s.x and %s.y need a first dim of samples (got a 0-dim tensor)", name, name) end
  local n, m = p.x:size(1), p.y:size(1)
  if n ~= m then raise("%s.x has %d samples but %s.y has %d", name, n, name, m) end
  return n
end

-- A streaming source (mimic.data.loader or anything alike): it owns batching,
-- shuffling and its position, which checkpoints save and resume restores.
local function is_loader(d)
  return type(d) == "table" and not mimic.is_tensor(d) and has_method(d, "batches") and has_method(d, "nbatches")
    and has_method(d, "size") and has_method(d, "state") and has_method(d, "set_state")
end

local finite = util.finite
-- tostring(0/0) is "-nan" or "nan" depending on the C library.
local function nonfinite_name(v) return v ~= v and "NaN" or v > 0 and "+Inf" or "-Inf" end

-- A deep copy of a state_dict's tensors (they are views of the live model).
local function clone_state(sd)
  local c = {}
  for k, v in pairs(sd) do
    if mimic.is_tensor(v) then c[k] = v:clone()
    elseif type(v) == "table" then c[k] = clone_state(v)
    else c[k] = v end
  end
  return c
end

local fmt_time = util.fmt_time

local function fmt_loss(v) return v and string.format("%.4e", v) or "-" end
-- "epoch  7/50": the epoch number padded to the width of the total, so columns align.
local function fmt_epoch(e, n) return string.format("epoch %" .. #tostring(n) .. "d/%d", e, n) end

-- --- progress ------------------------------------------------------------------
-- On a terminal: one line, rewritten in place (at most 10 times a second).
-- Otherwise (a log file, a batch job's output): one plain line per epoch.
-- util.progress's object with the training loop's own lines added.
local Progress = setmetatable({}, { __index = getmetatable(util.progress(io.stdout, false)).__index })
Progress.__index = Progress

local function new_progress(o)
  return setmetatable(util.progress(o.output or io.stdout, o.verbose), Progress)
end

function Progress:batch(st, b, nb, running)
  if not (self.on and self.tty) then return end
  local now = mimic.clock()
  if now - self.last < 0.1 and b < nb then return end
  self.last = now
  local frac = b / nb
  local elapsed = now - st.epoch_t0
  local per_epoch = st.done_epochs > 0 and st.run_seconds / st.done_epochs or elapsed / frac
  local eta = per_epoch * (1 - frac) + per_epoch * (st.epochs - st.epoch)
  self:line(string.format("%s  batch %" .. #tostring(nb) .. "d/%d  loss %s  val %s  %.0f samples/s  ETA %s",
    fmt_epoch(st.epoch, st.epochs), b, nb, fmt_loss(running), fmt_loss(st.last_val), st.seen / math.max(elapsed, 1e-9),
    fmt_time(eta)))
end

function Progress:epoch(st, h)
  if not self.on then return end
  if self.tty then
    local per_epoch = st.run_seconds / st.done_epochs
    self:line(string.format("%s  loss %s  val %s  %.0f samples/s  ETA %s", fmt_epoch(h.epoch, st.epochs),
      fmt_loss(h.loss), fmt_loss(h.val_loss), h.samples_per_s, fmt_time(per_epoch * (st.epochs - h.epoch))))
  else
    self:line(string.format("%s  loss %s  val %s  lr %s  %.3f s  %.0f samples/s  ETA %s", fmt_epoch(h.epoch, st.epochs),
      fmt_loss(h.loss), fmt_loss(h.val_loss), h.lr and string.format("%.3g", h.lr) or "-", h.seconds,
      h.samples_per_s, fmt_time(st.run_seconds / st.done_epochs * (st.epochs - h.epoch))))
  end
end

-- --- the loop -------------------------------------------------------------------
-- Validates the options and derives the run's fixed configuration.
local function configure(o)
  util.check_options(raise, o, OPTIONS)
  local c = {}
  if not callable(o.model) then raise("model must be callable (model(x) -> prediction), got %s", type(o.model)) end
  if not callable(o.loss) then raise("loss must be callable (loss(pred, y) -> tensor), got %s", type(o.loss)) end
  local opt = o.optimizer
  if not (has_method(opt, "step") and has_method(opt, "zero_grad")) then
    raise("optimizer must have step() and zero_grad() methods, got %s", type(opt))
  end
  c.model, c.loss, c.opt, c.sched = o.model, o.loss, opt, o.scheduler
  if c.sched ~= nil and not has_method(c.sched, "step") then raise("scheduler must have a step(metric) method") end

  if type(o.data) ~= "table" then
    raise("data must be a table {x = tensor, y = tensor} or a loader (mimic.data.loader), got %s", type(o.data))
  end
  local n
  if is_loader(o.data) then
    for _, k in ipairs({ "batch", "shuffle", "val_fraction", "generator" }) do
      if o[k] ~= nil then raise("%s belongs to the loader when data is a loader", k) end
    end
    c.loader, n = o.data, o.data:size()
  else
    n = check_pair("data", o.data)
    c.x, c.y = o.data.x, o.data.y
  end
  local val = util.val_option(raise, o)
  if val ~= nil and is_loader(val) then
    c.vloader, c.vx = val, true -- c.vx: "there is validation data"
  elseif val ~= nil then
    check_pair("val", val)
    c.vx, c.vy = val.x, val.y
  elseif o.val_fraction ~= nil then
    local f = o.val_fraction
    if type(f) ~= "number" or not (f > 0 and f < 1) then raise("val_fraction must be in (0, 1), got %s", tostring(f)) end
    -- The last samples, as Keras does: deterministic, and independent of
    -- the generator, so a resumed run splits the same way.
    local nv = math.floor(n * f)
    if nv < 1 or nv >= n then
      raise("val_fraction = %g of %d samples leaves %d for validation and %d for training", f, n, nv, n - nv)
    end
    c.vx, c.vy = c.x:narrow(1, n - nv + 1, nv), c.y:narrow(1, n - nv + 1, nv)
    c.x, c.y = c.x:narrow(1, 1, n - nv), c.y:narrow(1, 1, n - nv)
    n = n - nv
  end
  c.n = n
  c.nval = c.vloader and c.vloader:size() or c.vx and c.vx:size(1) or 0

  c.epochs = check_int("epochs", o.epochs == nil and 10 or o.epochs, 0)
  c.batch = c.loader and c.loader.batch or math.min(check_int("batch", o.batch == nil and 32 or o.batch, 1), n)
  c.val_batch = check_int("val_batch", o.val_batch == nil and math.max(c.batch, 256) or o.val_batch, 1)
  c.nb = c.loader and c.loader:nbatches() or (n + c.batch - 1) // c.batch
  if o.shuffle ~= nil and type(o.shuffle) ~= "boolean" then raise("shuffle must be a boolean") end
  c.shuffle = o.shuffle ~= false
  if o.generator ~= nil then
    if not is_generator(o.generator) then raise("generator must be a mimic.Generator, got %s", type(o.generator)) end
    if o.seed ~= nil then raise("give either generator or seed, not both") end
    c.gen = o.generator
  else
    -- Reproducible by default: the same call trains the same model.
    c.gen = mimic.Generator(o.seed == nil and 0 or check_int("seed", o.seed, 0))
  end
  if o.clip_grad_norm ~= nil then
    if type(o.clip_grad_norm) ~= "number" or not (o.clip_grad_norm > 0) then
      raise("clip_grad_norm must be a number > 0, got %s", tostring(o.clip_grad_norm))
    end
    c.clip = o.clip_grad_norm
  end

  local es = o.early_stopping
  if es ~= nil then
    if type(es) ~= "table" then raise("early_stopping must be a table {patience=, min_delta=, monitor=}") end
    for k in pairs(es) do
      if k ~= "patience" and k ~= "min_delta" and k ~= "monitor" then
        raise("unknown early_stopping option '%s' (options: min_delta, monitor, patience)", tostring(k))
      end
    end
    local monitor = es.monitor or (c.vx and "val" or "loss")
    if monitor ~= "val" and monitor ~= "loss" then
      raise("early_stopping.monitor must be \"val\" or \"loss\", got %s", tostring(monitor))
    end
    if monitor == "val" and not c.vx then raise("early_stopping monitors \"val\" but there is no validation data (give val= or val_fraction=)") end
    local md = es.min_delta or 0
    if type(md) ~= "number" or not (md >= 0) then raise("early_stopping.min_delta must be a number >= 0") end
    c.es = { patience = check_int("early_stopping.patience", es.patience == nil and 10 or es.patience, 1),
             min_delta = md, monitor = monitor }
    if not (has_method(c.model, "state_dict") and has_method(c.model, "load_state_dict")) then
      raise("early_stopping needs model:state_dict() and model:load_state_dict() to keep the best weights")
    end
  end

  if o.checkpoint ~= nil then
    if type(o.checkpoint) ~= "string" or o.checkpoint == "" then raise("checkpoint must be a file name") end
    c.ckpt = o.checkpoint
    c.every = check_int("checkpoint_every", o.checkpoint_every == nil and 1 or o.checkpoint_every, 1)
    for _, p in ipairs({ { c.model, "model" }, { c.opt, "optimizer" }, { c.sched, "scheduler" } }) do
      if p[1] ~= nil and not (has_method(p[1], "state_dict") and has_method(p[1], "load_state_dict")) then
        raise("checkpoints need %s:state_dict() and %s:load_state_dict()", p[2], p[2])
      end
    end
  elseif o.checkpoint_every ~= nil then
    raise("checkpoint_every needs checkpoint = <file>")
  end
  if o.resume ~= nil and type(o.resume) ~= "boolean" then raise("resume must be a boolean") end
  if o.resume and not c.ckpt then raise("resume = true needs checkpoint = <file>") end
  c.resume = o.resume == true
  if o.on_epoch ~= nil and not callable(o.on_epoch) then raise("on_epoch must be a function") end
  c.on_epoch = o.on_epoch
  if o.verbose ~= nil and type(o.verbose) ~= "boolean" then raise("verbose must be a boolean") end
  c.verbose = o.verbose ~= false
  if o.output ~= nil and io.type(o.output) ~= "file" then raise("output must be an open file (io.stdout, io.open(...))") end
  c.output = o.output
  if o.compiled ~= nil and type(o.compiled) ~= "boolean" then raise("compiled must be a boolean") end
  c.compiled = o.compiled ~= false
  return c
end

-- --- the compiled step ------------------------------------------------------------
-- A batch step of an nn.Sequential of Linear layers and activations, trained
-- with a built-in MSE, L1 or Huber loss and mimic.optim's Adam, AdamW or SGD,
-- runs as one C call (mimic.trainstep, core/include/mimic/trainstep.h):
-- forward, loss, backward and update with no autograd graph, over the
-- optimizer's flat buffers, so the model, its state_dict, checkpoints and the
-- optimizer state see every update exactly as after an autograd step. Any
-- other model, loss, optimizer or option that needs the graph between
-- backward and step (clip_grad_norm) keeps the autograd loop.
local COMPILED_ACT = {
  ReLU = "relu", Tanh = "tanh", Sigmoid = "sigmoid", GELU = "gelu", Identity = "identity",
  LeakyReLU = "leaky_relu", ELU = "elu", Softplus = "softplus",
}
local COMPILED_OPTIM = { Adam = true, AdamW = true, SGD = true }

-- "mse", "l1" or "huber", delta, sum for a supported loss, else nil.
local function compiled_loss(loss, nn)
  local F = nn.functional
  if rawequal(loss, F.mse_loss) then return "mse", 1, false end
  if rawequal(loss, F.l1_loss) then return "l1", 1, false end
  if rawequal(loss, F.huber_loss) then return "huber", 1, false end
  if type(loss) ~= "table" then return nil end
  local mt, o = getmetatable(loss), rawget(loss, "opts")
  if rawget(loss, "forward") ~= nil or type(o) ~= "table" or o.weights ~= nil then return nil end
  local r = o.reduction or "mean"
  if r ~= "mean" and r ~= "sum" then return nil end
  local kind = mt == nn.MSELoss and "mse" or mt == nn.L1Loss and "l1" or mt == nn.HuberLoss and "huber" or nil
  if not kind then return nil end
  local delta = o.delta or 1
  if type(delta) ~= "number" or not (delta > 0) then return nil end
  return kind, delta, r == "sum"
end

-- The compiled step for this run's model, loss and optimizer, or nil.
local function compile_step(c)
  if not c.compiled or c.clip then return nil end
  local nn = require "mimic.nn"
  local model, opt = c.model, c.opt
  if type(model) ~= "table" or getmetatable(model) ~= nn.Sequential or rawget(model, "forward") ~= nil then
    return nil
  end
  local layers, params = {}, {}
  for _, m in ipairs(model:children()) do
    local mt = type(m) == "table" and getmetatable(m)
    if not mt or rawget(m, "forward") ~= nil then return nil end
    if mt == nn.Linear then
      layers[#layers + 1] = { type = "dense", out = m.out_features, bias = m.bias ~= nil }
      params[#params + 1] = m.weight
      if m.bias then params[#params + 1] = m.bias end
    elseif COMPILED_ACT[mt.__typename] and mt == nn[mt.__typename] then
      layers[#layers + 1] = { type = COMPILED_ACT[mt.__typename], p0 = m.negative_slope or m.alpha or m.beta,
                              p1 = m.threshold }
    else
      return nil
    end
  end
  -- The optimizer must hold exactly these parameters, in this order (its
  -- flat buffers are then laid out as the compiled step expects), all of
  -- them trainable.
  local omt = type(opt) == "table" and getmetatable(opt)
  if not omt or not COMPILED_OPTIM[omt.__name] or rawget(opt, "step") ~= nil or rawget(opt, "zero_grad") ~= nil
    or not mimic.is_tensor(rawget(opt, "flat_params")) or type(rawget(opt, "params")) ~= "table" then
    return nil
  end
  if #opt.params ~= #params then return nil end
  for i, p in ipairs(params) do
    if not rawequal(opt.params[i], p) or not p:requires_grad() then return nil end
  end
  local kind, delta, sum = compiled_loss(c.loss, nn)
  if not kind then return nil end
  local nin = layers[1] and layers[1].type == "dense" and model:get(1).in_features
  if not nin then return nil end
  local ok, ts = pcall(mimic.trainstep, layers, nin, opt.flat_params, opt.flat_grads, c.batch)
  if not ok then return nil end -- a layer sequence the C step does not take
  ts:set_loss(kind, delta, sum)
  return { ts = ts, dtype = opt.flat_params:dtype(), nin = nin, nout = ts:nout(), max = c.batch }
end

-- Whether the compiled step takes this batch (else: the autograd path).
local function compiled_fits(cs, xb, yb)
  return xb:dim() == 2 and yb:dim() == 2 and xb:size(1) <= cs.max and xb:size(2) == cs.nin
    and yb:size(2) == cs.nout and xb:size(1) == yb:size(1) and xb:dtype() == cs.dtype and yb:dtype() == cs.dtype
end

-- The mean loss over a data set, without gradients, in evaluation mode.
local function evaluate(c, st)
  if has_method(c.model, "evaluate") then c.model:evaluate() end
  local sum = 0
  local seen = 0
  local function add(xb, yb)
    local len = xb:size(1)
    local v = c.loss(c.model(xb), yb):item()
    if not finite(v) then
      raise("validation loss is %s at epoch %d (validation samples %d-%d)", nonfinite_name(v), st.epoch, seen + 1,
        seen + len)
    end
    sum, seen = sum + v * len, seen + len
  end
  mimic.no_grad(function()
    if c.vloader then
      for b in c.vloader:batches() do add(b.x, b.y) end
    else
      for s = 1, c.nval, c.val_batch do
        local len = math.min(c.val_batch, c.nval - s + 1)
        add(c.vx:narrow(1, s, len), c.vy:narrow(1, s, len))
      end
    end
  end)
  if has_method(c.model, "train") then c.model:train() end
  return sum / seen
end

-- finished: nil for a checkpoint between epochs, else why the run ended
-- ("epochs", "early" or "callback").
local function write_checkpoint(c, st, finished)
  local hist = {}
  for i, h in ipairs(st.history) do hist[i] = h end
  local ck = {
    format = FORMAT, version = VERSION, epoch = st.done, finished = finished ~= nil, stop_reason = finished,
    model = c.model:state_dict(),
    optimizer = c.opt:state_dict(),
    scheduler = c.sched and c.sched:state_dict() or nil,
    history = hist,
    rng = { generator = c.gen:state(), default = mimic.default_generator():state() },
    -- Checkpoints fall between epochs: the next batch is the first of the
    -- next epoch, whose permutation the restored generator draws.
    sampler = { next_epoch = st.done + 1, next_batch = 1, samples = c.n, batch = c.batch, shuffle = c.shuffle,
                loader = c.loader and c.loader:state() or nil, val_loader = c.vloader and c.vloader:state() or nil },
  }
  if c.es then
    ck.early_stopping = { best = st.best, best_epoch = st.best_epoch, bad_epochs = st.bad, weights = st.best_weights }
  end
  mimic.save(c.ckpt, ck) -- atomic: written next to the file, then renamed over it
end

-- Restores the state of a checkpoint. Returns the number of completed epochs
-- and, if the run had ended for good, why.
local function restore(c, st, ck)
  local where = "checkpoint '" .. c.ckpt .. "'"
  if type(ck) ~= "table" or ck.format ~= FORMAT then raise("%s is not a mimic.train checkpoint", where) end
  if ck.version ~= VERSION then raise("%s has version %s; this mimic reads version %d", where, tostring(ck.version), VERSION) end
  local s = ck.sampler or {}
  if s.samples ~= c.n or s.batch ~= c.batch or s.shuffle ~= c.shuffle then
    raise("%s was written for %s training samples in batches of %s (shuffle %s); this run has %d in batches of %d " ..
      "(shuffle %s): resuming needs the same data and batch", where, tostring(s.samples), tostring(s.batch),
      tostring(s.shuffle), c.n, c.batch, tostring(c.shuffle))
  end
  if (ck.scheduler ~= nil) ~= (c.sched ~= nil) then
    raise("%s was written %s a scheduler; this run has %s", where, ck.scheduler and "with" or "without",
      c.sched and "one" or "none")
  end
  if (ck.early_stopping ~= nil) ~= (c.es ~= nil) then
    raise("%s was written %s early stopping; this run has %s", where, ck.early_stopping and "with" or "without",
      c.es and "it" or "none")
  end
  c.model:load_state_dict(ck.model)
  c.opt:load_state_dict(ck.optimizer)
  if c.sched then c.sched:load_state_dict(ck.scheduler) end
  if c.loader then c.loader:set_state(s.loader) end
  if c.vloader then c.vloader:set_state(s.val_loader) end
  c.gen:set_state(ck.rng.generator)
  mimic.default_generator():set_state(ck.rng.default)
  st.history = {}
  for i, h in ipairs(ck.history or {}) do st.history[i] = h end
  if c.es then
    local e = ck.early_stopping
    st.best, st.best_epoch, st.bad, st.best_weights = e.best, e.best_epoch, e.bad_epochs, e.weights
  end
  -- A run that ended because its epochs were done may go on for more
  -- epochs; one that stopped early (or with restored best weights) may not.
  local ended = ck.finished == true and (ck.stop_reason ~= "epochs" or c.es ~= nil)
  return ck.epoch, ended and (ck.stop_reason or "epochs") or nil
end

local function train(o)
  local c = configure(o)
  local model, opt = c.model, c.opt
  local progress = new_progress({ output = c.output, verbose = c.verbose })
  local st = { history = {}, done = 0, best = math.huge, bad = 0, epochs = c.epochs, run_seconds = 0,
               done_epochs = 0 }
  local finished -- why a resumed run had ended for good, or nil
  if c.resume and util.file_exists(c.ckpt) then
    local ok, ck = pcall(mimic.load, c.ckpt)
    if not ok then raise("cannot resume: %s", tostring(ck)) end
    st.done, finished = restore(c, st, ck)
    progress:note(string.format("resuming from '%s' after epoch %d%s", c.ckpt, st.done,
      finished and " (the run had ended: nothing to do)" or ""))
  end
  local params
  if c.clip then
    if not has_method(model, "parameters") then raise("clip_grad_norm needs model:parameters()") end
    params = model:parameters()
  end
  local stop_reason = finished -- "early" or "callback" once the loop is to end early
  if has_method(model, "train") then model:train() end
  local cs = not finished and compile_step(c) or nil

  local epoch = st.done
  while not stop_reason and epoch < c.epochs do
    epoch = epoch + 1
    st.epoch, st.epoch_t0, st.seen = epoch, mimic.clock(), 0
    local perm = not c.loader and c.shuffle and c.gen:randperm(c.n) or nil
    local next_loader_batch = c.loader and c.loader:batches()
    local sum = 0
    -- Gradients replaced or dropped since the last epoch (by a callback) are
    -- linked to the flat buffer again, which the compiled step writes.
    if cs then mimic.flat_attach_grads(opt.params, opt.flat_grads) end
    for b = 1, c.nb do
      local s = st.seen + 1
      local xb, yb
      if c.loader then
        local lb = next_loader_batch()
        if not lb then break end -- a loader may yield fewer batches than announced (sharding remainders)
        xb, yb = lb.x, lb.y
      elseif perm then
        local idx = perm:narrow(1, s, math.min(c.batch, c.n - s + 1))
        xb, yb = c.x:index_select(1, idx), c.y:index_select(1, idx)
      else
        xb, yb = c.x:narrow(1, s, math.min(c.batch, c.n - s + 1)), c.y:narrow(1, s, math.min(c.batch, c.n - s + 1))
      end
      local len = xb:size(1)
      local v, l
      local compiled = cs and compiled_fits(cs, xb, yb)
      if compiled then
        v = cs.ts:step(xb, yb, opt) -- forward, loss, backward and update; none if v is not finite
      else
        opt:zero_grad()
        l = c.loss(model(xb), yb)
        v = l:item()
      end
      if not finite(v) then
        progress:finish()
        raise("loss is %s at epoch %d, batch %d of %d (samples %d-%d of the epoch); lower the learning rate, " ..
          "check the data for NaN/Inf, or clip gradients (clip_grad_norm =)", nonfinite_name(v), epoch, b, c.nb, s,
          s + len - 1)
      end
      if not compiled then
        l:backward()
        if c.clip then mimic.optim.clip_grad_norm(params, c.clip) end
        opt:step()
      end
      sum = sum + v * len
      st.seen = st.seen + len
      progress:batch(st, b, c.nb, sum / st.seen)
    end
    local lr = opt.lr -- the rate this epoch used, before the schedule moves it
    if c.loader then -- finish the loader's epoch so its state points at the next one
      while next_loader_batch() do end
    end
    local h = { epoch = epoch, loss = sum / st.seen, lr = type(lr) == "number" and lr or nil }
    if c.vx then h.val_loss = evaluate(c, st) end
    h.seconds = mimic.clock() - st.epoch_t0
    h.samples_per_s = st.seen / math.max(h.seconds, 1e-9)
    st.history[#st.history + 1] = h
    st.done, st.last_val = epoch, h.val_loss
    st.run_seconds, st.done_epochs = st.run_seconds + h.seconds, st.done_epochs + 1
    if c.sched then c.sched:step(h.val_loss or h.loss) end

    if c.es then
      local m = c.es.monitor == "val" and h.val_loss or h.loss
      if m < st.best - c.es.min_delta then
        st.best, st.best_epoch, st.bad = m, epoch, 0
        st.best_weights = clone_state(model:state_dict())
      else
        st.bad = st.bad + 1
        if st.bad >= c.es.patience then stop_reason = "early" end
      end
    end
    progress:epoch(st, h)
    if c.ckpt and not stop_reason and epoch < c.epochs and epoch % c.every == 0 then
      write_checkpoint(c, st, nil)
    end
    if c.on_epoch then
      local info = { epochs = c.epochs, history = st.history }
      for k, v in pairs(h) do info[k] = v end
      if c.on_epoch(info) == false then stop_reason = stop_reason or "callback" end
    end
  end

  local history = st.history
  if c.es then
    if st.best_weights and not finished then
      -- The best weights go back into the model, and the final checkpoint
      -- holds them: resuming a finished run gives the same model.
      model:load_state_dict(st.best_weights)
    end
    history.best_epoch, history.best = st.best_epoch, st.best
    if stop_reason == "early" then
      progress:note(string.format("early stopping after epoch %d: best %s %s at epoch %d (weights restored)", st.done,
        c.es.monitor == "val" and "val_loss" or "loss", fmt_loss(st.best), st.best_epoch))
    end
  end
  history.stopped_early = stop_reason == "early" or nil
  history.compiled = cs ~= nil -- whether batches ran the compiled step
  if c.ckpt and not finished then
    write_checkpoint(c, st, stop_reason or "epochs")
  end
  progress:finish()
  return history
end

return train
