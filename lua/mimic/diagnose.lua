-- mimic.diagnose: questions a surrogate's developer asks after the first
-- validation (docs/validation.md, "Diagnostics"):
--
--   D.learning_curve{...}  do I have enough data?   (error vs training-set size, power-law trend)
--   D.importance{...}      which inputs matter?     (permutation importance, ablation by the mean)
--   D.worst{...}           where does it fail?      (the worst samples with their inputs)
--   D.error_by_input{...}  ... and in which region  (error quantiles binned along each input)
--   D.rollout{...}         does it stay stable?     (error growth when the model replaces a time step)
--
-- Every function takes one table of options and returns plain tables; each
-- result also has a :report(rep [, opts]) method that adds its tables and
-- figures to a mimic.report. Inputs x are [N, F] tensors (F features), outputs
-- y [N] or [N, C]; a model is given as predict(x) -> tensor shaped like y
-- (run under mimic.no_grad). The error of one sample is the RMS over its
-- outputs; a summary error is the RMS over samples (the RMSE).
-- Randomness (subsets, permutations) comes from mimic.Generator(seed) only.
local mimic = require "mimic"
local util = require "mimic.util"

local D = {}
local THIS = debug.getinfo(1, "S").source

-- A raise per API function: errors point at the user's line (util.raiser).
local function raiser(fn) return util.raiser(THIS, "mimic.diagnose." .. fn) end

local function check_options(raise, o, names)
  local known = {}
  for _, n in ipairs(names) do known[n] = true end
  util.check_options(raise, o, known)
end

local function check_tensor(raise, v, what, dims)
  if not mimic.is_tensor(v) then raise("%s must be a mimic.Tensor, got %s", what, type(v)) end
  if dims and v:dim() ~= dims then raise("%s must be %d-D, got shape [%s]", what, dims, table.concat(v:size(), ",")) end
  return v
end

local function check_xy(raise, x, y, xwhat, ywhat)
  check_tensor(raise, x, xwhat or "x", 2)
  check_tensor(raise, y, ywhat or "y")
  if y:dim() < 1 or y:size(1) ~= x:size(1) then
    raise("%s has %d samples, %s %s", xwhat or "x", x:size(1), ywhat or "y",
      y:dim() < 1 and "is 0-dim" or tostring(y:size(1)))
  end
end

-- predict(x) without recording a graph; the result must be a tensor of y's numel.
local function run_predict(raise, predict, x, y)
  local p = mimic.no_grad(predict, x)
  if not mimic.is_tensor(p) then raise("predict must return a mimic.Tensor, got %s", type(p)) end
  if p:numel() ~= y:numel() then
    raise("predict returned shape [%s] for targets of shape [%s]", table.concat(p:size(), ","), table.concat(y:size(), ","))
  end
  return p
end

-- Per-sample error: RMS over the outputs of each sample, a float64 [N] tensor.
local function sample_error(pred, y)
  local n = y:size(1)
  local d = (pred:double():reshape(n, -1) - y:double():reshape(n, -1))
  return (d * d):mean(2):sqrt():reshape(n)
end

local function rms(e) return math.sqrt((e * e):mean():item()) end

-- Ordinary least squares of ly on lx: slope, intercept, R^2.
local function linfit(lx, ly)
  local n, sx, sy = #lx, 0, 0
  for i = 1, n do sx, sy = sx + lx[i], sy + ly[i] end
  local mx, my = sx / n, sy / n
  local sxx, sxy, syy = 0, 0, 0
  for i = 1, n do
    sxx = sxx + (lx[i] - mx) ^ 2
    sxy = sxy + (lx[i] - mx) * (ly[i] - my)
    syy = syy + (ly[i] - my) ^ 2
  end
  local b = sxx > 0 and sxy / sxx or 0 / 0
  local r2 = syy > 0 and (sxy * sxy) / (sxx * syy) or 1
  return b, my - b * mx, r2
end

local function feature_names(raise, names, f)
  if names == nil then
    local l = {}
    for j = 1, f do l[j] = "x" .. j end
    return l
  end
  if type(names) ~= "table" or #names ~= f then raise("names must be a list of %d strings (one per input)", f) end
  return names
end

local function fmt(x) return mimic.report.fmt(x) end

-- --- learning curves -----------------------------------------------------------------------

local LC = {}
LC.__index = LC

--- Validation error versus training-set size. Options:
---   x, y         training data (nested subsets of it are used)
---   val          {x =, y =} validation data; without it the last val_fraction
---                (default 0.2) of x/y, split off before the subsets are drawn
---   fractions    sizes as fractions of the training data (default 1/8, 1/4, 1/2, 1)
---   seed         the subsets are prefixes of one permutation from mimic.Generator(seed)
---   fit          function(x, y, info) -> predict: trains on a subset by any means; or
---   build        function(info) -> model (an nn module), trained with mimic.train:
---   train        options for mimic.train (epochs, batch, early_stopping, ...; default
---                epochs 50, batch 64), loss (default nn.MSELoss), lr (Adam, default 1e-3),
---                optimizer (function(model) -> optimizer, replaces lr)
--- info = {size =, index =, seed =}. Returns {sizes, val_rmse, train_rmse,
--- trend = {exponent, coefficient, r2}, last_exponent, doubling_gain,
--- verdict}: the trend is the log-log least-squares fit val_rmse ~
--- coefficient * size^exponent over all sizes; last_exponent the slope
--- between the two largest sizes, and doubling_gain the fraction of the
--- error that doubling the data would remove at that slope (1 - 2^slope).
function D.learning_curve(o)
  local raise = raiser("learning_curve")
  check_options(raise, o, { "x", "y", "val", "val_fraction", "fractions", "seed", "fit", "build", "train", "loss",
    "lr", "optimizer" })
  check_xy(raise, o.x, o.y)
  if (o.fit == nil) == (o.build == nil) then raise("give exactly one of fit (function(x, y) -> predict) or build") end
  local fit = o.fit
  if fit ~= nil and not util.callable(fit) then raise("fit must be a function, got %s", type(fit)) end
  if o.build ~= nil and not util.callable(o.build) then raise("build must be a function, got %s", type(o.build)) end
  local x, y, xv, yv = o.x, o.y, nil, nil
  if o.val ~= nil then
    if type(o.val) ~= "table" then raise("val must be {x =, y =}") end
    xv, yv = o.val.x, o.val.y
    check_xy(raise, xv, yv, "val.x", "val.y")
  else
    local vf = o.val_fraction or 0.2
    if type(vf) ~= "number" or vf <= 0 or vf >= 1 then raise("val_fraction must be in (0, 1), got %s", tostring(vf)) end
    local n = x:size(1)
    local nv = math.floor(n * vf + 0.5)
    if nv < 1 or nv >= n then raise("val_fraction %g of %d samples leaves no training or validation data", vf, n) end
    xv, yv = x:narrow(1, n - nv + 1, nv), y:narrow(1, n - nv + 1, nv)
    x, y = x:narrow(1, 1, n - nv), y:narrow(1, 1, n - nv)
  end
  local fractions = o.fractions or { 1 / 8, 1 / 4, 1 / 2, 1 }
  if type(fractions) ~= "table" or #fractions < 2 then raise("fractions must be a list of at least 2 numbers") end
  local seed = o.seed or 0
  local n = x:size(1)
  local sizes = {}
  for i, f in ipairs(fractions) do
    if type(f) ~= "number" or f <= 0 or f > 1 then raise("fractions[%d] must be in (0, 1], got %s", i, tostring(f)) end
    sizes[i] = math.max(1, math.floor(n * f + 0.5))
    if i > 1 and sizes[i] <= sizes[i - 1] then raise("fractions must increase (sizes %d, %d)", sizes[i - 1], sizes[i]) end
  end
  if fit == nil then
    local nn, optim = mimic.nn, mimic.optim
    local topts = o.train or {}
    fit = function(xs, ys, info)
      local model = o.build(info)
      local opt = o.optimizer and o.optimizer(model) or optim.Adam(model, { lr = o.lr or 1e-3 })
      local t = { model = model, optimizer = opt, loss = o.loss or nn.MSELoss(), data = { x = xs, y = ys },
        val = { x = xv, y = yv }, verbose = false, seed = info.seed, epochs = 50, batch = 64 }
      for k, v in pairs(topts) do t[k] = v end
      mimic.train(t)
      if model.evaluate then model:evaluate() end
      return function(xx) return model(xx) end
    end
  end
  -- Nested subsets: prefixes of one permutation, so each size contains the
  -- smaller ones and the curve measures data, not luck of the draw.
  local perm = mimic.Generator(seed):randperm(n)
  local r = setmetatable({ sizes = sizes, val_rmse = {}, train_rmse = {} }, LC)
  for i, m in ipairs(sizes) do
    local idx = perm:narrow(1, 1, m)
    local xs, ys = x:index_select(1, idx), y:index_select(1, idx)
    local predict = fit(xs, ys, { size = m, index = i, seed = seed + i })
    if not util.callable(predict) then raise("fit must return a predict function, got %s", type(predict)) end
    r.val_rmse[i] = rms(sample_error(run_predict(raise, predict, xv, yv), yv))
    r.train_rmse[i] = rms(sample_error(run_predict(raise, predict, xs, ys), ys))
  end
  local lx, ly = {}, {}
  for i, m in ipairs(sizes) do
    if r.val_rmse[i] > 0 then lx[#lx + 1], ly[#ly + 1] = math.log(m), math.log(r.val_rmse[i]) end
  end
  local b, a, r2 = 0 / 0, 0 / 0, 0 / 0
  if #lx >= 2 then b, a, r2 = linfit(lx, ly) end
  r.trend = { exponent = b, coefficient = math.exp(a), r2 = r2 }
  -- The verdict uses the slope of the last step of the curve: a curve that
  -- is flattening has a global fit steeper than its present slope, and the
  -- present slope is what the next batch of data will buy.
  local last = #sizes
  local e1, e0 = r.val_rmse[last], r.val_rmse[last - 1]
  local lb = (e1 > 0 and e0 > 0) and math.log(e1 / e0) / math.log(sizes[last] / sizes[last - 1]) or 0 / 0
  r.last_exponent = lb
  r.doubling_gain = 1 - 2 ^ lb
  if lb ~= lb then
    r.verdict = "the validation error is zero: nothing to learn from more data"
  elseif lb < -0.1 then
    r.verdict = string.format("over the last step the validation error still falls as n^%.2f: more data helps "
      .. "(doubling it would cut the error by about %.0f %%, to %s)", lb, 100 * r.doubling_gain, fmt(e1 * 2 ^ lb))
  else
    r.verdict = string.format("the validation error has flattened (n^%.2f over the last step): more data of the same "
      .. "kind helps little; look at the model's capacity, its training, its inputs or where the data are sampled", lb)
  end
  if r.train_rmse[last] < 0.5 * r.val_rmse[last] then
    r.verdict = r.verdict .. string.format("; the training error (%s) is well below the validation error: overfitting",
      fmt(r.train_rmse[last]))
  end
  return r
end

--- Adds a section (table, figure with the power-law trend, verdict) to rep.
--- opts: name (figure name, default "learning_curve"), title, ylabel.
function LC:report(rep, opts)
  opts = opts or {}
  local trend = {}
  for i, m in ipairs(self.sizes) do trend[i] = self.trend.coefficient * m ^ self.trend.exponent end
  rep:text("## " .. (opts.title or "Learning curve: error versus training-set size"))
  local rows = {}
  for i, m in ipairs(self.sizes) do rows[i] = { m, self.train_rmse[i], self.val_rmse[i], trend[i] } end
  rep:table { header = { "training samples", "training RMSE", "validation RMSE", "power-law fit" }, rows = rows }
  rep:curves { name = opts.name or "learning_curve", x = self.sizes, logx = true, xlabel = "training samples",
    ylabel = opts.ylabel or "RMSE", series = { { label = "validation", y = self.val_rmse },
      { label = "training", y = self.train_rmse },
      { label = string.format("fit %.3g n^%.2f", self.trend.coefficient, self.trend.exponent), y = trend } } }
  rep:text(string.format("Trend: validation RMSE ~ %s · n^%s (R² %s of the log-log fit); %s.",
    fmt(self.trend.coefficient), fmt(self.trend.exponent), fmt(self.trend.r2), self.verdict))
  return rep
end

-- --- importance ------------------------------------------------------------------------------

local IMP = {}
IMP.__index = IMP

--- Which inputs matter. Options: predict, x [N, F], y, names (one per input),
--- seed (default 0), repeats (permutations per input, default 5).
--- For each input j: permutation = mean increase of the RMSE when column j is
--- shuffled (breaking its link to y, keeping its distribution), with its
--- standard deviation over the repeats; ablation = increase when column j is
--- replaced by its mean. Returns {base_rmse, features = {{index, name,
--- permutation, permutation_std, ablation}, ...} in input order, order =
--- input indices from the most to the least important (by permutation)}.
function D.importance(o)
  local raise = raiser("importance")
  check_options(raise, o, { "predict", "x", "y", "names", "seed", "repeats" })
  check_xy(raise, o.x, o.y)
  if not util.callable(o.predict) then raise("predict must be a function, got %s", type(o.predict)) end
  local x, y = o.x, o.y
  local n, f = x:size(1), x:size(2)
  local names = feature_names(raise, o.names, f)
  local repeats = util.check_int(raise, "repeats", o.repeats or 5, 1)
  local g = mimic.Generator(o.seed or 0)
  local base = rms(sample_error(run_predict(raise, o.predict, x, y), y))
  local r = setmetatable({ base_rmse = base, features = {}, order = {} }, IMP)
  for j = 1, f do
    local col = x:select(2, j)
    local incs, s = {}, 0
    for k = 1, repeats do
      local xp = x:clone()
      xp[{ {}, j }] = col:index_select(1, g:randperm(n))
      incs[k] = rms(sample_error(run_predict(raise, o.predict, xp, y), y)) - base
      s = s + incs[k]
    end
    local mean = s / repeats
    local var = 0
    for k = 1, repeats do var = var + (incs[k] - mean) ^ 2 end
    local xa = x:clone()
    xa[{ {}, j }] = col:double():mean():item()
    r.features[j] = { index = j, name = names[j], permutation = mean,
      permutation_std = repeats > 1 and math.sqrt(var / (repeats - 1)) or 0,
      ablation = rms(sample_error(run_predict(raise, o.predict, xa, y), y)) - base }
    r.order[j] = j
  end
  table.sort(r.order, function(a, b)
    local fa, fb = r.features[a].permutation, r.features[b].permutation
    if fa ~= fb then return fa > fb end
    return a < b
  end)
  return r
end

--- Adds a table and a bar chart (permutation ± std, ablation) to rep.
function IMP:report(rep, opts)
  opts = opts or {}
  rep:text("## " .. (opts.title or "Which inputs matter: permutation importance and ablation"))
  local rows, labels, perm, std, abl = {}, {}, {}, {}, {}
  for i, j in ipairs(self.order) do
    local ft = self.features[j]
    rows[i] = { ft.name, ft.permutation, ft.permutation_std, ft.ablation }
  end
  for j, ft in ipairs(self.features) do
    labels[j], perm[j], std[j], abl[j] = ft.name, ft.permutation, ft.permutation_std, ft.ablation
  end
  rep:table { header = { "input", "RMSE increase, permuted", "std over repeats", "RMSE increase, set to its mean" },
    rows = rows, caption = string.format("Baseline RMSE %s; inputs from the most to the least important.",
      fmt(self.base_rmse)) }
  rep:bars { name = opts.name or "importance", labels = labels, ylabel = "increase of the RMSE",
    series = { { label = "permuted (± std)", y = perm, err = std }, { label = "set to its mean", y = abl } } }
  return rep
end

-- --- where it fails ------------------------------------------------------------------------

local WORST = {}
WORST.__index = WORST

local function predictions(raise, o)
  if o.pred ~= nil then
    check_tensor(raise, o.pred, "pred")
    if o.pred:numel() ~= o.y:numel() then raise("pred has %d values, y %d", o.pred:numel(), o.y:numel()) end
    return o.pred
  end
  if not util.callable(o.predict) then raise("give pred (a tensor) or predict (a function)") end
  return run_predict(raise, o.predict, o.x, o.y)
end

--- The n worst samples. Options: x [N, F], y, pred (a tensor like y) or
--- predict, n (default 10), names. Returns a list, worst first, of {index
--- (1-based row), error (RMS over outputs), inputs = {x values}, pred = {...},
--- ref = {...}}.
function D.worst(o)
  local raise = raiser("worst")
  check_options(raise, o, { "x", "y", "pred", "predict", "n", "names" })
  check_xy(raise, o.x, o.y)
  local pred = predictions(raise, o)
  local err = sample_error(pred, o.y)
  local N = o.y:size(1)
  local n = math.min(util.check_int(raise, "n", o.n or 10, 1), N)
  local v, idx = err:topk(n)
  local r = setmetatable({ names = feature_names(raise, o.names, o.x:size(2)) }, WORST)
  local p2, y2 = pred:double():reshape(N, -1), o.y:double():reshape(N, -1)
  for k = 1, n do
    local i = idx[k]
    r[k] = { index = i, error = v[k], inputs = o.x[i]:double():totable(), pred = p2[i]:totable(), ref = y2[i]:totable() }
  end
  return r
end

function WORST:report(rep, opts)
  opts = opts or {}
  rep:text("## " .. (opts.title or "Worst samples"))
  local header = { "sample", "error" }
  for _, nm in ipairs(self.names) do header[#header + 1] = nm end
  local rows = {}
  for k, w in ipairs(self) do
    local row = { w.index, w.error }
    for _, xv in ipairs(w.inputs) do row[#row + 1] = xv end
    rows[k] = row
  end
  rep:table { header = header, rows = rows }
  return rep
end

local EBI = {}
EBI.__index = EBI

--- Error conditioned on each input: quantiles of the per-sample error in
--- bins of each input (mimic.validate.binned_quantiles). Options: x, y, pred
--- or predict, bins (default 8, equal width over each input's range), probs
--- (default {0.05, 0.5, 0.95}), names. Returns a list per input of {index,
--- name, binned (binned_quantiles result), worst = {lo, hi, mean}: the bin
--- with the largest mean error}.
function D.error_by_input(o)
  local raise = raiser("error_by_input")
  check_options(raise, o, { "x", "y", "pred", "predict", "bins", "probs", "names" })
  check_xy(raise, o.x, o.y)
  local V = mimic.validate
  local err = sample_error(predictions(raise, o), o.y)
  local bins = util.check_int(raise, "bins", o.bins or 8, 1)
  local names = feature_names(raise, o.names, o.x:size(2))
  local r = setmetatable({}, EBI)
  for j = 1, o.x:size(2) do
    local col = o.x:select(2, j):double()
    local edges = V.edges({ col }, bins)
    local b = V.binned_quantiles(err, col, edges, o.probs or { 0.05, 0.5, 0.95 })
    local w = 0
    for k = 1, #b.mean do
      if b.count[k] > 0 and (w == 0 or b.mean[k] > b.mean[w]) then w = k end
    end
    r[j] = { index = j, name = names[j], binned = b, worst = { lo = edges[w], hi = edges[w + 1], mean = b.mean[w] } }
  end
  return r
end

function EBI:report(rep, opts)
  opts = opts or {}
  rep:text("## " .. (opts.title or "Error versus each input"))
  local rows = {}
  for j, e in ipairs(self) do rows[j] = { e.name, string.format("%s … %s", fmt(e.worst.lo), fmt(e.worst.hi)), e.worst.mean } end
  rep:table { header = { "input", "bin with the largest mean error", "its mean error" }, rows = rows }
  for _, e in ipairs(self) do
    rep:band { name = (opts.name or "error_vs") .. "_" .. tostring(e.name):gsub("[^%w_%-]", "_"), binned = e.binned,
      xlabel = e.name, ylabel = opts.ylabel or "per-sample error (RMS over outputs)" }
  end
  return rep
end

-- --- roll-out ------------------------------------------------------------------------------

local RO = {}
RO.__index = RO

--- Error growth when a model replaces a whole time step. Options: step_ref
--- (state -> next state, the reference), step_model (the surrogate), state
--- (the initial batch, a tensor [B, ...]), steps. Both trajectories start
--- from state and each advances with its own step. Returns {step = {1..n},
--- rmse, max_abs, rel (rmse / RMS of the reference state), growth (the mean
--- exponential rate d ln rmse / d step over the steps with rmse > 0, NaN if
--- fewer than 2)}.
function D.rollout(o)
  local raise = raiser("rollout")
  check_options(raise, o, { "step_ref", "step_model", "state", "steps" })
  if not util.callable(o.step_ref) or not util.callable(o.step_model) then
    raise("step_ref and step_model must be functions (state -> next state)")
  end
  check_tensor(raise, o.state, "state")
  local steps = util.check_int(raise, "steps", o.steps, 1)
  local sr, sm = o.state, o.state
  local r = setmetatable({ step = {}, rmse = {}, max_abs = {}, rel = {} }, RO)
  local lx, ly = {}, {}
  for t = 1, steps do
    sr = mimic.no_grad(o.step_ref, sr)
    sm = mimic.no_grad(o.step_model, sm)
    if not mimic.is_tensor(sr) or not mimic.is_tensor(sm) or sr:numel() ~= sm:numel() then
      raise("at step %d the steps returned %s and %s of different sizes", t, tostring(sr), tostring(sm))
    end
    local d = (sm:double() - sr:double():reshape(table.unpack(sm:size())))
    local e = rms(d)
    local ref = rms(sr:double())
    r.step[t], r.rmse[t], r.max_abs[t] = t, e, d:abs():max():item()
    r.rel[t] = ref > 0 and e / ref or 0 / 0
    if e > 0 then lx[#lx + 1], ly[#ly + 1] = t, math.log(e) end
  end
  r.growth = #lx >= 2 and (linfit(lx, ly)) or 0 / 0
  return r
end

function RO:report(rep, opts)
  opts = opts or {}
  rep:text("## " .. (opts.title or "Roll-out: error versus time steps"))
  local positive = true
  for _, e in ipairs(self.rmse) do positive = positive and e > 0 end
  rep:curves { name = opts.name or "rollout", x = self.step, xlabel = "time step", ylabel = "error of the state",
    logy = positive, series = { { label = "RMSE", y = self.rmse }, { label = "max |error|", y = self.max_abs } } }
  rep:text(string.format("After %d steps: RMSE %s (%s of the state's RMS), max |error| %s; growth rate %s per step.",
    #self.step, fmt(self.rmse[#self.rmse]), fmt(self.rel[#self.rel]), fmt(self.max_abs[#self.max_abs]), fmt(self.growth)))
  return rep
end

return D
