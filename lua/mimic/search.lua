-- mimic.search{...}: grid or random search over network architectures and
-- training settings (docs/nn.md, "Architecture search", is the reference).
--
--   local result = mimic.search {
--     data = {x = X, y = Y}, val_fraction = 0.2,       -- or data.val / val = {x=, y=}
--     space = { depth = {1, 2, 3}, width = {32, 64, 128}, activation = {"tanh", "relu"},
--               lr = {1e-3, 3e-3}, batch = {64, 256}, encoding = {"none", "standardize"} },
--     strategy = "grid",                                -- or "random" with trials = N
--     seed = 0, epochs = 50, early_stopping = {patience = 5},
--     state = "search.h5",                              -- results file: resume after an interruption
--   }
--   print(mimic.search.table(result))
--   local yhat = result.best.predict(x_raw)
--
-- Every trial trains with mimic.train (Adam, early stopping on the validation
-- loss) from seeds derived from the search seed and the trial index only, so
-- a trial gives the same result whether it runs alone, in a full search or
-- after a resume. The results file is written atomically (mimic.save) after
-- every trial; a search restarted with the same file skips the trials it
-- holds.
local mimic = require "mimic"
local util = require "mimic.util"
local nn, optim = mimic.nn, mimic.optim

local FORMAT, VERSION = "mimic.search", 1

-- Errors point at the caller of mimic.search (or of mimic.search.table), the
-- user's line (util.raiser).
local THIS = debug.getinfo(1, "S").source
local raise = util.raiser(THIS, "mimic.search")
local raise_table = util.raiser(THIS, "mimic.search.table")

local OPTIONS = {
  data = true, val = true, val_fraction = true, space = true, strategy = true, trials = true, seed = true,
  epochs = true, early_stopping = true, loss = true, build = true, state = true, verbose = true, on_trial = true,
  output = true,
}

-- The standard dimensions of the space, in enumeration order (the first
-- varies slowest), with the value used when a dimension is not given.
local DIMS = { "depth", "width", "activation", "lr", "batch", "encoding" }
local DEFAULTS = { depth = 2, width = 64, activation = "tanh", lr = 1e-3, batch = 64, encoding = "none" }

local M = {}

-- --- activations and encoders (extensible tables) ----------------------------------------
M.activations = {
  tanh = nn.Tanh, relu = nn.ReLU, sigmoid = nn.Sigmoid, gelu = nn.GELU, elu = nn.ELU,
  leaky_relu = nn.LeakyReLU, softplus = nn.Softplus,
}

-- An encoder: fit(x_train) -> state (a table of tensors/numbers, saved in the
-- results file), apply(state, x) -> encoded x.
M.encoders = {
  none = {
    fit = function() return {} end,
    apply = function(_, x) return x end,
  },
  standardize = {
    fit = function(x)
      local std = x:std(1)
      -- A constant input column is left unscaled (std 1) rather than divided by 0.
      std = mimic.where(std:gt(0), std, std * 0 + 1)
      return { mean = x:mean(1), std = std }
    end,
    apply = function(s, x) return (x - s.mean) / s.std end,
  },
}

-- --- helpers ---------------------------------------------------------------------------------
local callable = util.callable

local function is_list(t)
  if type(t) ~= "table" or mimic.is_tensor(t) then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

local function check_int(name, v, min) return util.check_int(raise, name, v, min) end -- errors as mimic.search

local function check_pair(name, p)
  if type(p) ~= "table" or not mimic.is_tensor(p.x) or not mimic.is_tensor(p.y) then
    raise("%s must be a table {x = tensor, y = tensor}", name)
  end
  if p.x:dim() == 0 or p.y:dim() == 0 or p.x:size(1) ~= p.y:size(1) then
    raise("%s.x and %s.y need the same first dim (samples)", name, name)
  end
end

local function fmt_value(v)
  if math.type(v) == "float" then return string.format("%g", v) end
  return tostring(v)
end

-- The dimensions of a space in enumeration order: the standard ones, then
-- any others (for a custom build) sorted by name.
local function dim_order(space)
  local order, seen = {}, {}
  for _, k in ipairs(DIMS) do
    if space[k] ~= nil then order[#order + 1] = k end
    seen[k] = true
  end
  local extra = {}
  for k in pairs(space) do if not seen[k] then extra[#extra + 1] = k end end
  table.sort(extra)
  for _, k in ipairs(extra) do order[#order + 1] = k end
  return order
end

local function check_space(space, custom_build)
  if type(space) ~= "table" or mimic.is_tensor(space) then
    raise("space must be a table {depth = {...}, width = {...}, ...}, got %s", type(space))
  end
  if next(space) == nil then raise("space is empty: give at least one dimension, e.g. space = {depth = {1, 2}}") end
  local known = {}
  for _, k in ipairs(DIMS) do known[k] = true end
  for k, v in pairs(space) do
    if type(k) ~= "string" then raise("space keys must be names, got %s", tostring(k)) end
    if not known[k] and not custom_build then
      raise("unknown space dimension '%s' (dimensions: %s; others need build =)", k, table.concat(DIMS, ", "))
    end
    if not is_list(v) or #v == 0 then raise("space.%s must be a non-empty list of values", k) end
    for i, x in ipairs(v) do
      local t = type(x)
      if t ~= "number" and t ~= "string" and t ~= "boolean" then
        raise("space.%s[%d] is a %s (values are numbers, strings or booleans)", k, i, t)
      end
    end
  end
  local function ints(k, min)
    for i, x in ipairs(space[k] or {}) do
      if math.type(x) ~= "integer" or x < min then raise("space.%s[%d] must be an integer >= %d, got %s", k, i, min, tostring(x)) end
    end
  end
  ints("depth", custom_build and 0 or 1)
  ints("width", 1)
  ints("batch", 1)
  for i, x in ipairs(space.lr or {}) do
    if type(x) ~= "number" or not (x > 0) then raise("space.lr[%d] must be a number > 0, got %s", i, tostring(x)) end
  end
  for i, x in ipairs(space.encoding or {}) do
    if not M.encoders[x] then
      raise("space.encoding[%d]: unknown encoding '%s' (encodings: %s)", i, tostring(x),
        table.concat(util.sorted_keys(M.encoders), ", "))
    end
  end
  if not custom_build then
    for i, x in ipairs(space.activation or {}) do
      if not M.activations[x] then
        raise("space.activation[%d]: unknown activation '%s' (activations: %s)", i, tostring(x),
          table.concat(util.sorted_keys(M.activations), ", "))
      end
    end
  end
end

-- The configuration number `k` (1-based) of the grid, the first dimension
-- varying slowest; standard dimensions not in the space take their default.
local function grid_cfg(space, order, k)
  local cfg = {}
  local rest = k - 1
  for j = #order, 1, -1 do
    local vals = space[order[j]]
    cfg[order[j]] = vals[rest % #vals + 1]
    rest = rest // #vals
  end
  for _, d in ipairs(DIMS) do if cfg[d] == nil then cfg[d] = DEFAULTS[d] end end
  return cfg
end

-- A canonical string of the search's definition, checked on resume.
local function signature(c)
  local parts = { "strategy=" .. c.strategy, "seed=" .. c.seed, "epochs=" .. c.epochs,
                  "patience=" .. tostring(c.es and c.es.patience), "ntrials=" .. c.ntrials,
                  string.format("data=%d+%d", c.n, c.nval) }
  for _, k in ipairs(c.order) do
    local vals = {}
    for i, v in ipairs(c.space[k]) do vals[i] = type(v) .. ":" .. fmt_value(v) end
    parts[#parts + 1] = k .. "={" .. table.concat(vals, ",") .. "}"
  end
  return table.concat(parts, ";")
end

-- Seeds of trial i: the model's initialisation (and the default generator,
-- for dropout in a custom build) and the training shuffles.
local function trial_seeds(seed, i)
  local base = (seed * 1000003 + i * 7919) % 2147483647
  return base, (base + 104729) % 2147483647
end

-- The default model: depth hidden layers of width units, the activation
-- after each, and a linear output layer.
local function default_build(cfg, nin, nout, opts)
  local layers, n = {}, nin
  for _ = 1, cfg.depth do
    layers[#layers + 1] = nn.Linear(n, cfg.width, opts)
    layers[#layers + 1] = M.activations[cfg.activation]()
    n = cfg.width
  end
  layers[#layers + 1] = nn.Linear(n, nout, opts)
  return nn.Sequential(table.unpack(layers))
end

-- FLOPs per sample of a model made of Linear layers, activations and
-- containers: 2 in out per Linear (a multiply and an add per weight) plus
-- one per output for the bias and one per activation output. nil for any
-- other kind of module (the count would be a guess).
local FLOP_FREE = { Sequential = true, Identity = true }
local function flops_per_sample(model)
  if type(model) ~= "table" or type(model.modules) ~= "function" then return nil end
  local total, width = 0, nil
  for _, m in ipairs(model:modules()) do
    local t = m.__typename
    if t == "Linear" then
      total = total + 2 * m.in_features * m.out_features + (m.bias and m.out_features or 0)
      width = m.out_features
    elseif FLOP_FREE[t] then -- nothing
    elseif t and M.activations[t:lower()] or t == "LeakyReLU" then
      if not width then return nil end
      total = total + width
    else
      return nil
    end
  end
  return total
end

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or (xs[n // 2] + xs[n // 2 + 1]) / 2
end

-- Median wall time of the forward pass over x under no_grad, in seconds.
local function time_forward(model, x, repeats)
  if type(model.evaluate) == "function" then model:evaluate() end
  local times = {}
  mimic.no_grad(function()
    model(x) -- warm-up
    for r = 1, repeats do
      local t0 = mimic.clock()
      model(x)
      times[r] = mimic.clock() - t0
    end
  end)
  return median(times)
end

-- --- options ----------------------------------------------------------------------------------
local function configure(o)
  util.check_options(raise, o, OPTIONS)
  local c = {}
  if type(o.data) ~= "table" then raise("data must be a table {x = tensor, y = tensor}, got %s", type(o.data)) end
  check_pair("data", o.data)
  local x, y = o.data.x, o.data.y
  local val = util.val_option(raise, o)
  local n = x:size(1)
  if val ~= nil then
    check_pair("val", val)
    c.vx, c.vy = val.x, val.y
  else
    -- The last fraction, as mimic.train does: independent of any generator.
    local f = o.val_fraction == nil and 0.2 or o.val_fraction
    if type(f) ~= "number" or not (f > 0 and f < 1) then raise("val_fraction must be in (0, 1), got %s", tostring(f)) end
    local nv = math.floor(n * f)
    if nv < 1 or nv >= n then raise("val_fraction = %g of %d samples leaves %d for validation", f, n, nv) end
    c.vx, c.vy = x:narrow(1, n - nv + 1, nv), y:narrow(1, n - nv + 1, nv)
    x, y = x:narrow(1, 1, n - nv), y:narrow(1, 1, n - nv)
    n = n - nv
  end
  c.x, c.y, c.n, c.nval = x, y, n, c.vx:size(1)
  c.nin, c.nout = x:size(-1), y:size(-1)

  if o.build ~= nil and not callable(o.build) then raise("build must be a function(cfg, nin, nout) -> model") end
  c.build = o.build
  if o.space == nil then raise("space is required, e.g. space = {depth = {1, 2}, width = {32, 64}}") end
  check_space(o.space, c.build ~= nil)
  c.space, c.order = o.space, dim_order(o.space)
  local total = 1
  for _, k in ipairs(c.order) do total = total * #c.space[k] end
  c.total = total

  c.strategy = o.strategy == nil and "grid" or o.strategy
  c.seed = o.seed == nil and 0 or check_int("seed", o.seed, 0)
  if c.strategy == "grid" then
    if o.trials ~= nil then raise("trials is for strategy = \"random\"; a grid runs all %d configurations", total) end
    c.ntrials = total
    c.cfgs = {}
    for k = 1, total do c.cfgs[k] = grid_cfg(c.space, c.order, k) end
  elseif c.strategy == "random" then
    if o.trials == nil then raise("strategy = \"random\" needs trials = <number of trials>") end
    c.ntrials = check_int("trials", o.trials, 1)
    -- Distinct configurations drawn without replacement from the grid (all of
    -- them, in a random order, when trials >= the grid's size).
    local g = mimic.Generator(c.seed)
    c.cfgs = {}
    if total <= 1000000 then
      local perm = g:randperm(total):totable()
      for i = 1, math.min(c.ntrials, total) do c.cfgs[i] = grid_cfg(c.space, c.order, perm[i]) end
      c.ntrials = #c.cfgs
    else -- a huge grid: independent draws (a repeat is possible, if unlikely)
      for i = 1, c.ntrials do
        local u = g:uniform({ 1 }, 0, 1):item()
        c.cfgs[i] = grid_cfg(c.space, c.order, math.min(total, math.floor(u * total) + 1))
      end
    end
  else
    raise("strategy must be \"grid\" or \"random\", got %s", tostring(o.strategy))
  end

  c.epochs = check_int("epochs", o.epochs == nil and 50 or o.epochs, 1)
  local es = o.early_stopping
  if es == nil then es = { patience = 5 } end
  if es ~= false then
    if type(es) ~= "table" then raise("early_stopping must be a table {patience=, min_delta=} or false") end
    for k in pairs(es) do
      if k ~= "patience" and k ~= "min_delta" then
        raise("unknown early_stopping option '%s' (options: min_delta, patience)", tostring(k))
      end
    end
    c.es = { patience = check_int("early_stopping.patience", es.patience == nil and 5 or es.patience, 1),
             min_delta = es.min_delta }
  end
  if o.loss ~= nil and not callable(o.loss) then raise("loss must be callable (loss(pred, y) -> tensor)") end
  c.loss = o.loss or nn.MSELoss()
  if o.state ~= nil and (type(o.state) ~= "string" or o.state == "") then raise("state must be a file name") end
  c.state = o.state
  if o.verbose ~= nil and type(o.verbose) ~= "boolean" then raise("verbose must be a boolean") end
  c.verbose = o.verbose == true
  if o.on_trial ~= nil and not callable(o.on_trial) then raise("on_trial must be a function(trial, i, n)") end
  c.on_trial = o.on_trial
  if o.output ~= nil and io.type(o.output) ~= "file" then raise("output must be an open file") end
  c.out = o.output or io.stdout
  c.dtype = x:dtype() == "float64" and "float64" or "float32"
  c.signature = signature(c)
  return c
end

-- --- trials ----------------------------------------------------------------------------------
local function make_model(c, cfg, i)
  local init_seed = trial_seeds(c.seed, i)
  mimic.manual_seed(init_seed) -- the default generator, for a custom build's dropout or init
  local model
  if c.build then
    local copy = {}
    for k, v in pairs(cfg) do copy[k] = v end
    model = c.build(copy, c.nin, c.nout)
    if not callable(model) then raise("build returned a %s, not a model", type(model)) end
  else
    model = default_build(cfg, c.nin, c.nout, { generator = mimic.Generator(init_seed), dtype = c.dtype })
  end
  return model
end

local function run_trial(c, i)
  local cfg = c.cfgs[i]
  local enc = M.encoders[cfg.encoding]
  local est = enc.fit(c.x)
  local x, vx = enc.apply(est, c.x), enc.apply(est, c.vx)
  local model = make_model(c, cfg, i)
  if type(model.parameters) ~= "function" then raise("the model of trial %d has no parameters() method", i) end
  local _, shuffle_seed = trial_seeds(c.seed, i)
  local t0 = mimic.clock()
  local h = mimic.train {
    model = model, loss = c.loss, optimizer = optim.Adam(model:parameters(), { lr = cfg.lr }),
    data = { x = x, y = c.y }, val = { x = vx, y = c.vy }, epochs = c.epochs, batch = cfg.batch,
    seed = shuffle_seed, early_stopping = c.es, verbose = false,
  }
  local seconds = mimic.clock() - t0
  local val = c.es and h.best or h[#h].val_loss
  local fwd = time_forward(model, vx, 5)
  local trial = {
    index = i, cfg = cfg, val = val, epochs = #h, best_epoch = h.best_epoch or #h,
    params = type(model.num_parameters) == "function" and model:num_parameters() or nil,
    flops = flops_per_sample(model), seconds = seconds, us_per_sample = fwd / c.nval * 1e6,
  }
  return trial, model, est
end

local function predictor(model, enc_name, est)
  local enc = M.encoders[enc_name]
  return function(x)
    if type(model.evaluate) == "function" then model:evaluate() end
    return mimic.no_grad(function() return model(enc.apply(est, x)) end)
  end
end

local function better(a, b) -- a strictly better than b (ties: the earlier trial)
  return b == nil or a.val < b.val or (a.val == b.val and a.index < b.index)
end

local function save_state(c, trials, best)
  mimic.save(c.state, {
    format = FORMAT, version = VERSION, signature = c.signature, trials = trials,
    best = best and { index = best.trial.index, weights = best.model:state_dict(), encoder = best.est } or nil,
  })
end

-- --- the markdown table ----------------------------------------------------------------------
-- M.table(result [, {timing = true}]): one row per trial, best first.
function M.table(result, opts)
  if type(result) ~= "table" or type(result.trials) ~= "table" then
    raise_table("expects the result of mimic.search (a table with trials), got %s", type(result))
  end
  opts = opts or {}
  if type(opts) ~= "table" then raise_table("options must be a table {timing = true}") end
  for k in pairs(opts) do if k ~= "timing" then raise_table("unknown option '%s' (options: timing)", tostring(k)) end end
  local timing = opts.timing ~= false
  local rows = {}
  for _, t in ipairs(result.trials) do rows[#rows + 1] = t end
  table.sort(rows, function(a, b) return better(a, b) end)
  local order = result.dims or DIMS
  local head = { "rank", "trial" }
  for _, k in ipairs(order) do head[#head + 1] = k end
  for _, h in ipairs({ "val", "epochs", "params", "FLOPs/sample" }) do head[#head + 1] = h end
  if timing then head[#head + 1] = "train s"; head[#head + 1] = "µs/sample" end
  local lines = { "| " .. table.concat(head, " | ") .. " |" }
  local sep = {}
  for j = 1, #head do sep[j] = j <= 2 and "---:" or (j <= 2 + #order and "---" or "---:") end
  lines[2] = "|" .. table.concat(sep, "|") .. "|"
  for r, t in ipairs(rows) do
    local cells = { tostring(r), tostring(t.index) }
    for _, k in ipairs(order) do cells[#cells + 1] = fmt_value(t.cfg[k]) end
    cells[#cells + 1] = string.format("%.3e", t.val)
    cells[#cells + 1] = string.format("%d", t.epochs)
    cells[#cells + 1] = t.params and tostring(t.params) or "-"
    cells[#cells + 1] = t.flops and tostring(t.flops) or "-"
    if timing then
      cells[#cells + 1] = string.format("%.3f", t.seconds)
      cells[#cells + 1] = string.format("%.3f", t.us_per_sample)
    end
    lines[#lines + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  return table.concat(lines, "\n")
end

-- --- the search ------------------------------------------------------------------------------
local function search(o)
  local c = configure(o)
  local trials, best = {}, nil -- best = {trial=, model=, est=}
  local function log(fmt, ...)
    if c.verbose then c.out:write(string.format(fmt, ...), "\n"); c.out:flush() end
  end

  if c.state and util.file_exists(c.state) then
    local ok, s = pcall(mimic.load, c.state)
    if not ok then raise("cannot resume from '%s': %s", c.state, tostring(s)) end
    if type(s) ~= "table" or s.format ~= FORMAT then raise("'%s' is not a mimic.search results file", c.state) end
    if s.version ~= VERSION then raise("'%s' has version %s; this mimic reads version %d", c.state, tostring(s.version), VERSION) end
    if s.signature ~= c.signature then
      raise("'%s' holds a different search (%s); this one is (%s): use another state file or remove it",
        c.state, tostring(s.signature), c.signature)
    end
    for _, t in ipairs(s.trials or {}) do trials[#trials + 1] = t end
    if s.best then
      -- The best model so far, rebuilt from its weights (no training).
      local bt
      for _, t in ipairs(trials) do if t.index == s.best.index then bt = t end end
      local model = make_model(c, bt.cfg, bt.index)
      model:load_state_dict(s.best.weights)
      best = { trial = bt, model = model, est = s.best.encoder }
    end
    log("search: resuming from '%s' with %d of %d trials done", c.state, #trials, c.ntrials)
  end

  for i = #trials + 1, c.ntrials do
    local t, model, est = run_trial(c, i)
    trials[i] = t
    if best == nil or better(t, best.trial) then best = { trial = t, model = model, est = est } end
    if c.state then save_state(c, trials, best) end
    local desc = {}
    for _, k in ipairs(c.order) do desc[#desc + 1] = k .. "=" .. fmt_value(t.cfg[k]) end
    log("trial %d/%d  %s  val %.4e  epochs %d  %.2f s  %.3f us/sample%s", i, c.ntrials, table.concat(desc, " "),
      t.val, t.epochs, t.seconds, t.us_per_sample, best.trial == t and "  (best)" or "")
    if c.on_trial then c.on_trial(t, i, c.ntrials) end
  end

  local b = best.trial
  local result = {
    trials = trials, dims = c.order,
    best = { cfg = b.cfg, val = b.val, index = b.index, trial = b, model = best.model, encoder = best.est,
             predict = predictor(best.model, b.cfg.encoding, best.est) },
  }
  if c.verbose then log("%s", M.table(result)) end
  return result
end

return setmetatable(M, { __call = function(_, o) return search(o) end })
