-- mimic.gasoptics: neural-network gas optics for the longwave k-distribution
-- (issue #9; docs/radiation-surrogate.md). Data generation around the RFMIP
-- atmospheres, the reference targets from the k-distribution kernel, training
-- of the tau and Planck-fraction MLPs, model files with the rad_nn.h contract,
-- the guard, fluxes with either optics, and the error metrics.
--
--   local go = mimic.gasoptics
--   go.kdist()                                  the reference kernel (cached)
--   go.sample{sites=, experiments=, per_site=, seed=, perturb=, pin_gm=, include_base=} -> cols
--   go.layers(cols) -> state                    flattened layers, col_dry as lw_fluxes computes it
--   go.columns(cols, idx), go.concat_columns({cols, ...})
--   go.dataset(cols [, kd]) -> {x, k, pf, n, state, ncol, nlay}
--   go.rows(ds, idx), go.split(ds [, p_split]) -> lower, upper
--   go.train{data=, val=, target="k"|"planck", hidden=, activation=, epochs=, ...} -> net
--   go.save(net, path [, {meta=}]), go.fit_guard(x, path [, opts])
--   go.nn_optics{tau=, planck=, guard=, kdist=, ...} -> optics (R.nn when built, else Lua)
--   go.fluxes(cols, optics), go.compare(ref, sur, cols), go.forcing(ra, rb, sa, sb)
--   go.apriori(model, ds)
--
-- Column sets ("cols") use rfmip.load/perturb's layout with dim 1 = column:
-- {n, nlay, p_lay, t_lay [n, nlay], p_lev, t_lev [n, nlay+1], t_sfc, sfc_emis [n],
--  vmr = {gas = [n, nlay]}, site = {...}, experiment = {...}, rld, rlu (when known)}.
-- Level 1 is the top of the atmosphere. Every tensor is float64.
local mimic = require "mimic"
local R = mimic.radiation
local rfmip = mimic.rfmip
local data = mimic.data

local M = {}

M.KDIST_PATH = os.getenv("MIMIC_KDIST") or "data/kdist/mimic-lw-kdist.h5"
M.NFEAT = 18
-- The project's held-out RFMIP sites: rfmip.split_sites(100, 20, 9). The
-- flagship, the search and the study all test on these 20 whole sites and
-- train on the other 80, so a shipped model is never validated on its own
-- training sites.
M.SPLIT = { nsite = 100, ntest = 20, seed = 9 }
function M.split_sites()
  return require("mimic.rfmip").split_sites(M.SPLIT.nsite, M.SPLIT.ntest, M.SPLIT.seed)
end
M.FEATURE_UNITS = select(2, R.nn_feature_names())
-- The contract of the two models (rad_nn.h): output name and units per target.
M.TARGETS = {
  k = { output = "k", units = "cm^2", field = "k" },
  planck = { output = "planck_frac", units = "1", field = "pf" },
}

local function fail(fn, fmt, ...) error(string.format("gasoptics.%s: " .. fmt, fn, ...), 3) end

local check_opts = require("mimic.util").check_opts

local function set_of(list)
  local s = {}
  for _, k in ipairs(list) do s[k] = true end
  return s
end

-- --- the kernel ----------------------------------------------------------------------

local kd_cache = {}
function M.kdist(path)
  path = path or M.KDIST_PATH
  if not kd_cache[path] then kd_cache[path] = R.kdist(path) end
  return kd_cache[path]
end

local info_cache = setmetatable({}, { __mode = "k" })
local function kd_info(kd)
  if not info_cache[kd] then info_cache[kd] = kd:info() end
  return info_cache[kd]
end

-- --- column sets -----------------------------------------------------------------------

local COL_TENSORS = { "p_lay", "t_lay", "p_lev", "t_lev", "t_sfc", "sfc_emis", "rld", "rlu" }
local COL_LISTS = { "site", "experiment", "base" }

local load_cache = {}
-- rfmip.load, cached per experiment (the profiles are small and read-only).
function M.rfmip(experiment)
  if not load_cache[experiment] then load_cache[experiment] = rfmip.load { experiment = experiment } end
  return load_cache[experiment]
end

-- The unperturbed profiles of `sites` (list) of a loaded experiment, with fluxes.
local function base_columns(prof, sites, e)
  local idx = mimic.tensor(sites, "int64")
  local c = { n = #sites, nlay = prof.nlay, vmr = {}, site = {}, experiment = {}, base = {} }
  for _, f in ipairs(COL_TENSORS) do
    if prof[f] then c[f] = prof[f]:index_select(1, idx) end
  end
  for gas, v in pairs(prof.vmr) do c.vmr[gas] = v:index_select(1, idx) end
  for i, s in ipairs(sites) do c.site[i], c.experiment[i], c.base[i] = s, e, true end
  return c
end

local function perturbed_columns(prof, g, sites, n, e, popts, gm_range)
  local o = {}
  for k, v in pairs(popts) do o[k] = v end
  o.n, o.sites, o.gm_range = n, sites, gm_range
  local p = rfmip.perturb(prof, g, o)
  local c = { n = p.n, nlay = p.nlay, vmr = p.vmr, site = p.site, experiment = {}, base = {} }
  for _, f in ipairs(COL_TENSORS) do c[f] = p[f] end
  for i = 1, p.n do c.experiment[i], c.base[i] = e, false end
  return c
end

-- columns(cols, idx) -> the columns at the 1-based indices idx (a list), copied.
function M.columns(cols, idx)
  if type(cols) ~= "table" or not cols.p_lay then fail("columns", "cols must be a column set (gasoptics.sample)") end
  if type(idx) ~= "table" or #idx < 1 then fail("columns", "idx must be a non-empty list of 1-based column indices") end
  for _, i in ipairs(idx) do
    if math.type(i) ~= "integer" or i < 1 or i > cols.n then fail("columns", "index %s out of range 1..%d", tostring(i), cols.n) end
  end
  local t = mimic.tensor(idx, "int64")
  local c = { n = #idx, nlay = cols.nlay, vmr = {} }
  for _, f in ipairs(COL_TENSORS) do
    if cols[f] then c[f] = cols[f]:index_select(1, t) end
  end
  for gas, v in pairs(cols.vmr) do c.vmr[gas] = v:index_select(1, t) end
  for _, f in ipairs(COL_LISTS) do
    if cols[f] then
      c[f] = {}
      for k, i in ipairs(idx) do c[f][k] = cols[f][i] end
    end
  end
  return c
end

-- concat_columns({cols, ...}) -> one column set (fields present in every part).
function M.concat_columns(list)
  if type(list) ~= "table" or #list < 1 then fail("concat_columns", "expected a non-empty list of column sets") end
  if #list == 1 then return list[1] end
  local nlay = list[1].nlay
  local c = { n = 0, nlay = nlay, vmr = {} }
  for _, p in ipairs(list) do
    if p.nlay ~= nlay then fail("concat_columns", "column sets have %d and %d layers", nlay, p.nlay) end
    c.n = c.n + p.n
  end
  for _, f in ipairs(COL_TENSORS) do
    local parts, all = {}, true
    for i, p in ipairs(list) do
      if not p[f] then all = false break end
      parts[i] = p[f]
    end
    if all then c[f] = mimic.cat(parts, 1) end
  end
  for gas in pairs(list[1].vmr) do
    local parts = {}
    for i, p in ipairs(list) do
      if not p.vmr[gas] then fail("concat_columns", "part %d has no vmr of %s", i, gas) end
      parts[i] = p.vmr[gas]
    end
    c.vmr[gas] = mimic.cat(parts, 1)
  end
  for _, f in ipairs(COL_LISTS) do
    local out, all = {}, true
    for _, p in ipairs(list) do
      if not p[f] then all = false break end
      for _, v in ipairs(p[f]) do out[#out + 1] = v end
    end
    if all then c[f] = out end
  end
  return c
end

local SAMPLE_OPTS = set_of { "sites", "experiments", "per_site", "seed", "perturb", "pin_gm", "include_base" }

-- sample{sites = all 100, experiments = {1}, per_site = 1, seed = 0,
--        perturb = {rfmip.perturb options: t_amp, t_corr, h2o_scale, o3_scale, ...},
--        pin_gm = 0.25, include_base = (per_site == 0)} -> cols
-- Per experiment (in order), per_site perturbed columns around each site
-- (rfmip.perturb: correlated temperature offsets, log-uniform h2o and o3
-- scaling capped at saturation, well-mixed gases uniform over the range of the
-- 18 experiments). A fraction pin_gm of them keeps the experiment's own
-- well-mixed gas concentrations (the combinations the experiments use, which a
-- uniform draw over 13 gases rarely comes near). include_base adds the
-- unperturbed profiles (with RRTMGP's fluxes rld, rlu when every column is one).
-- Deterministic for a seed.
function M.sample(o)
  o = o or {}
  check_opts("gasoptics.sample", o, SAMPLE_OPTS)
  local sites = o.sites
  if sites == nil then
    sites = {}
    for s = 1, 100 do sites[s] = s end
  end
  if type(sites) ~= "table" or #sites < 1 then fail("sample", "option 'sites' must be a non-empty list of sites 1..100") end
  for _, s in ipairs(sites) do
    if math.type(s) ~= "integer" or s < 1 or s > 100 then fail("sample", "option 'sites': site %s is not in 1..100", tostring(s)) end
  end
  local exps = o.experiments or { 1 }
  if type(exps) ~= "table" or #exps < 1 then fail("sample", "option 'experiments' must be a non-empty list of 1..18") end
  for _, e in ipairs(exps) do
    if math.type(e) ~= "integer" or e < 1 or e > #rfmip.EXPERIMENTS then
      fail("sample", "option 'experiments': %s is not an experiment 1..%d", tostring(e), #rfmip.EXPERIMENTS)
    end
  end
  local per_site = o.per_site == nil and 1 or o.per_site
  if math.type(per_site) ~= "integer" or per_site < 0 then fail("sample", "option 'per_site' must be an integer >= 0, got %s", tostring(per_site)) end
  local seed = o.seed or 0
  if math.type(seed) ~= "integer" or seed < 0 then fail("sample", "option 'seed' must be an integer >= 0") end
  local pin = o.pin_gm == nil and 0.25 or o.pin_gm
  if type(pin) ~= "number" or pin < 0 or pin > 1 then fail("sample", "option 'pin_gm' must be a fraction in [0, 1], got %s", tostring(pin)) end
  local popts = o.perturb or {}
  if type(popts) ~= "table" then fail("sample", "option 'perturb' must be a table of rfmip.perturb options") end
  for _, k in ipairs({ "n", "sites", "gm_range" }) do
    if popts[k] ~= nil then fail("sample", "option 'perturb' must not set '%s' (sample sets it)", k) end
  end
  local include_base = o.include_base
  if include_base == nil then include_base = per_site == 0 end
  if per_site == 0 and not include_base then fail("sample", "per_site = 0 and include_base = false give no columns") end

  local g = mimic.Generator(seed)
  local parts = {}
  for _, e in ipairs(exps) do
    local prof = M.rfmip(e)
    if include_base then parts[#parts + 1] = base_columns(prof, sites, e) end
    if per_site > 0 then
      local n = per_site * #sites
      local npin = math.floor(pin * n + 0.5)
      if n - npin > 0 then
        local ok, r = pcall(perturbed_columns, prof, g, sites, n - npin, e, popts, nil)
        if not ok then fail("sample", "%s", tostring(r)) end
        parts[#parts + 1] = r
      end
      if npin > 0 then
        local pinned = {}
        for gas, v in pairs(prof.gm) do pinned[gas] = { v, v } end
        -- a different site order for the pinned ones: start mid-list
        local rot = {}
        for i = 1, #sites do rot[i] = sites[(i - 1 + #sites // 2) % #sites + 1] end
        local ok, r = pcall(perturbed_columns, prof, g, rot, npin, e, popts, pinned)
        if not ok then fail("sample", "%s", tostring(r)) end
        parts[#parts + 1] = r
      end
    end
  end
  return M.concat_columns(parts)
end

-- layers(cols) -> state {p, t, col_dry [N], vmr = {gas = [N]}, ncol, nlay}, N = ncol * nlay,
-- column-major by column (layer l of column i is row (i - 1) nlay + l). col_dry is
-- radiation.col_dry of each layer, exactly what lw_fluxes computes.
function M.layers(cols)
  if type(cols) ~= "table" or not cols.p_lay or not cols.p_lev or not cols.vmr then
    fail("layers", "cols must be a column set {p_lay, t_lay, p_lev, vmr, ...} (gasoptics.sample)")
  end
  local n, nlay = cols.p_lay:size(1), cols.p_lay:size(2)
  local N = n * nlay
  local pl = cols.p_lev:totable()
  local q = cols.vmr.h2o and cols.vmr.h2o:totable()
  local cd = {}
  local col_dry = R.col_dry
  for i = 1, n do
    local pi, qi = pl[i], q and q[i]
    local b = (i - 1) * nlay
    for l = 1, nlay do cd[b + l] = col_dry(pi[l], pi[l + 1], qi and qi[l] or 0) end
  end
  local st = {
    p = cols.p_lay:reshape({ N }), t = cols.t_lay:reshape({ N }), col_dry = mimic.tensor(cd, "float64"),
    vmr = {}, ncol = n, nlay = nlay,
  }
  for gas, v in pairs(cols.vmr) do
    st.vmr[gas] = mimic.is_tensor(v) and v:reshape({ N }) or v
  end
  return st
end

-- --- the data set --------------------------------------------------------------------

-- dataset(cols [, kd]) -> {x [N, 18] (R.nn_features), k [N, ngpt] = tau / col_dry (cm^2),
--   pf [N, ngpt], n = N, state (go.layers), ncol, nlay}; float64 throughout.
function M.dataset(cols, kd)
  kd = kd or M.kdist()
  local st = M.layers(cols)
  local x = R.nn_features(st)
  local tau, pf = kd:optics(st)
  local k = tau / st.col_dry:reshape({ st.col_dry:size(1), 1 })
  return { x = x, k = k, pf = pf, n = x:size(1), state = st, ncol = st.ncol, nlay = st.nlay }
end

-- rows(ds, idx) -> the data set's rows idx (a list or an int64 tensor of 1-based
-- layer indices), state included; no longer whole columns (ncol, nlay are nil).
function M.rows(ds, idx)
  if type(ds) ~= "table" or not mimic.is_tensor(ds.x) then fail("rows", "ds must be a data set from gasoptics.dataset") end
  local t = mimic.is_tensor(idx) and idx or mimic.tensor(idx, "int64")
  local st = ds.state
  local s = { p = st.p:index_select(1, t), t = st.t:index_select(1, t), col_dry = st.col_dry:index_select(1, t), vmr = {} }
  for gas, v in pairs(st.vmr) do s.vmr[gas] = mimic.is_tensor(v) and v:index_select(1, t) or v end
  return { x = ds.x:index_select(1, t), k = ds.k:index_select(1, t), pf = ds.pf:index_select(1, t), n = t:numel(), state = s }
end

-- split(ds [, p_split = kd's p_split]) -> lower (p >= p_split), upper (p < p_split): the data
-- of the two pressure regimes of a split surrogate (nn_optics tau_upper/planck_upper).
function M.split(ds, p_split)
  p_split = p_split or kd_info(M.kdist()).p_split
  local p = ds.state.p:totable()
  local lo, up = {}, {}
  for i = 1, #p do
    if p[i] >= p_split then lo[#lo + 1] = i else up[#up + 1] = i end
  end
  if #lo == 0 or #up == 0 then fail("split", "every layer is on one side of p_split = %g Pa", p_split) end
  return M.rows(ds, lo), M.rows(ds, up)
end

-- --- encoders and training ----------------------------------------------------------------

-- A standard encoder fitted on x; features that do not vary in x (e.g. a gas
-- held at one value) get std 1 instead of eps, so a value outside training
-- stays of order 1 after encoding rather than 1e12.
local function fit_standard(x)
  local e = data.encoder { kind = "standard" }:fit(x)
  local sd, mu = e.std:totable(), e.mean:totable()
  local changed = false
  for j = 1, #sd do
    if sd[j] <= 1e-9 * math.max(1, math.abs(mu[j])) then sd[j], changed = 1, true end
  end
  if changed then e.std = mimic.tensor(sd, "float64") end
  return e
end

-- The encoders of a target: input standard, output log + standard (k) or standard (planck).
function M.encoders(ds, target)
  local t = M.TARGETS[target]
  if not t then fail("encoders", "target must be \"k\" or \"planck\", got %s", tostring(target)) end
  local xe = fit_standard(ds.x)
  local ye
  if target == "k" then
    local lg = data.encoder { kind = "log", offset = 0 }
    ye = data.chain { lg, fit_standard(lg:encode(ds.k)) }
  else
    ye = fit_standard(ds.pf)
  end
  return { input = xe, output = ye }
end

local Net = {}
Net.__index = Net

-- net:predict(x_raw [N, 18]) -> raw targets [N, ngpt] float64 (k in cm^2, or Planck fractions
-- as the network gives them, not yet clamped or renormalised).
function Net:predict(x)
  local z = self.encoders.input:encode(x:double()):float()
  local y = mimic.no_grad(function() return self.model(z) end)
  return self.encoders.output:decode(y:double())
end

local ACT = { tanh = "Tanh", relu = "ReLU", gelu = "GELU", elu = "ELU", sigmoid = "Sigmoid" }

local TRAIN_OPTS = set_of { "data", "val", "target", "hidden", "activation", "epochs", "batch", "lr", "seed", "verbose",
  "patience", "schedule", "compiled", "on_epoch" }

-- train{data = ds, val = ds_val, target = "k" | "planck", hidden = {64, 64}, activation = "tanh",
--       epochs = 30, batch = 256, lr = 2e-3, seed = 0, verbose = true, patience = 8,
--       schedule = "cosine" | "none", on_epoch = fn} -> net
-- The MLP trains in float32 on the encoded data (MSE of standardised ln k, or
-- of standardised Planck fractions) with Adam, a cosine learning-rate schedule
-- and early stopping on the validation loss (the best weights are kept).
-- net = {model, encoders = {input, output}, target, history, metrics = {val_rmse, ...},
--        config, ntrain, nval, seconds}; net:predict(x_raw) -> raw targets.
function M.train(o)
  check_opts("gasoptics.train", o or {}, TRAIN_OPTS)
  local ds, val = o.data, o.val
  if type(ds) ~= "table" or not mimic.is_tensor(ds.x) then fail("train", "option 'data' must be a data set from gasoptics.dataset") end
  if val ~= nil and (type(val) ~= "table" or not mimic.is_tensor(val.x)) then
    fail("train", "option 'val' must be a data set from gasoptics.dataset")
  end
  local target = o.target or "k"
  local tg = M.TARGETS[target]
  if not tg then fail("train", "option 'target' must be \"k\" or \"planck\", got %s", tostring(target)) end
  local hidden = o.hidden or { 64, 64 }
  if type(hidden) ~= "table" or #hidden < 1 then fail("train", "option 'hidden' must be a list of layer widths, e.g. {64, 64}") end
  for _, h in ipairs(hidden) do
    if math.type(h) ~= "integer" or h < 1 then fail("train", "option 'hidden': widths must be integers >= 1, got %s", tostring(h)) end
  end
  local act = o.activation or "tanh"
  if not ACT[act] then fail("train", "option 'activation' must be one of tanh, relu, gelu, elu, sigmoid; got %s", tostring(act)) end
  local epochs = o.epochs or 30
  if math.type(epochs) ~= "integer" or epochs < 1 then fail("train", "option 'epochs' must be an integer >= 1, got %s", tostring(epochs)) end
  local batch = o.batch or 256
  if math.type(batch) ~= "integer" or batch < 1 then fail("train", "option 'batch' must be an integer >= 1, got %s", tostring(batch)) end
  local lr = o.lr or 2e-3
  if type(lr) ~= "number" or not (lr > 0) then fail("train", "option 'lr' must be a number > 0, got %s", tostring(lr)) end
  local seed = o.seed or 0
  if math.type(seed) ~= "integer" or seed < 0 then fail("train", "option 'seed' must be an integer >= 0") end
  local schedule = o.schedule or "cosine"
  if schedule ~= "cosine" and schedule ~= "none" then fail("train", "option 'schedule' must be \"cosine\" or \"none\"") end
  local patience = o.patience or 8

  local nn, optim = mimic.nn, mimic.optim
  local enc = M.encoders(ds, target)
  local function xy(d)
    return enc.input:encode(d.x):float(), enc.output:encode(d[tg.field]):float()
  end
  local X, Y = xy(ds)
  local Xv, Yv
  if val then Xv, Yv = xy(val) end
  local nout = Y:size(2)
  local gen = mimic.Generator(seed)
  local layers, nin = {}, M.NFEAT
  for _, h in ipairs(hidden) do
    layers[#layers + 1] = nn.Linear(nin, h, { generator = gen })
    layers[#layers + 1] = nn[ACT[act]]()
    nin = h
  end
  layers[#layers + 1] = nn.Linear(nin, nout, { generator = gen })
  local model = nn.Sequential(table.unpack(layers))
  local opt = optim.Adam(model, { lr = lr })
  local t0 = mimic.clock()
  local history = mimic.train {
    model = model, loss = nn.MSELoss(), optimizer = opt,
    data = { x = X, y = Y }, val = val and { x = Xv, y = Yv } or nil,
    epochs = epochs, batch = batch, seed = seed,
    scheduler = schedule == "cosine" and optim.CosineAnnealingLR(opt, { T_max = epochs }) or nil,
    early_stopping = val and { patience = patience } or nil,
    verbose = o.verbose ~= false, on_epoch = o.on_epoch, compiled = o.compiled,
  }
  local seconds = mimic.clock() - t0
  model:evaluate()
  local net = setmetatable({
    model = model, encoders = enc, target = target, output = tg.output, units = tg.units, history = history,
    ntrain = ds.n, nval = val and val.n or 0, seconds = seconds,
    config = { hidden = hidden, activation = act, epochs = epochs, batch = batch, lr = lr, seed = seed, schedule = schedule },
    metrics = {},
  }, Net)
  net.epochs_run = #history
  net.best_epoch, net.best_val = history.best_epoch, history.best
  if val then
    local p = net:predict(val.x)
    if target == "k" then
      local e = p:log() - val.k:log()
      net.metrics.val_rmse_ln_k = e:square():mean():sqrt():item()
      net.metrics.val_mae_ln_k = e:abs():mean():item()
    else
      local e = p - val.pf
      net.metrics.val_rmse_pf = e:square():mean():sqrt():item()
      net.metrics.val_max_pf = e:abs():max():item()
    end
  end
  return net
end

-- --- files ---------------------------------------------------------------------------

local function git_commit()
  local f = io.popen("git rev-parse --short HEAD 2>/dev/null")
  if not f then return nil end
  local s = f:read("l")
  f:close()
  if s and s:match("^%x+$") then
    local d = io.popen("git status --porcelain --untracked-files=no 2>/dev/null")
    local dirty = d and d:read("a") or ""
    if d then d:close() end
    return s .. (dirty ~= "" and "-dirty" or "")
  end
  return nil
end
M.git_commit = git_commit

-- save(net, path [, {meta = {...}}]) -> content hash. The model file of the
-- rad_nn.h contract: input "features" [18] (units FEATURE_UNITS), output "k"
-- [ngpt] "cm^2" or "planck_frac" [ngpt] "1", the encoders, and provenance meta
-- (sizes, seed, epochs, validation metrics, git commit, date) plus meta.
function M.save(net, path, o)
  o = o or {}
  check_opts("gasoptics.save", o, { meta = true })
  if getmetatable(net) ~= Net then fail("save", "net must come from gasoptics.train") end
  if type(path) ~= "string" then fail("save", "path must be a string") end
  local meta = {
    kind = "mimic-rad-nn", target = net.target, created = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    ntrain = net.ntrain, nval = net.nval, seed = net.config.seed, epochs = net.config.epochs,
    epochs_run = net.epochs_run, best_epoch = net.best_epoch, best_val_loss = net.best_val,
    hidden = table.concat(net.config.hidden, "x"), activation = net.config.activation, lr = net.config.lr,
    batch = net.config.batch, train_seconds = net.seconds, kdist = M.KDIST_PATH,
    git_commit = git_commit() or "unknown",
  }
  for k, v in pairs(net.metrics) do meta[k] = v end
  for k, v in pairs(o.meta or {}) do meta[k] = v end
  local nout = net.model:forward(mimic.zeros(1, M.NFEAT)):size(2)
  return net.model:save(path, {
    inputs = { { name = "features", units = M.FEATURE_UNITS, size = M.NFEAT } },
    outputs = { { name = net.output, units = net.units, size = nout } },
    encoders = net.encoders, meta = meta,
  })
end

-- fit_guard(x [N, 18] raw features, path [, {margin = 0.05, distance = true, quantile = 0.999}])
-- -> the guard (mimic.guard.fit on the training features), saved atomically at path when given.
function M.fit_guard(x, path, o)
  o = o or {}
  check_opts("gasoptics.fit_guard", o, { margin = true, distance = true, quantile = true })
  if not mimic.is_tensor(x) or x:dim() ~= 2 or x:size(2) ~= M.NFEAT then
    fail("fit_guard", "x must be the raw features [N, %d]", M.NFEAT)
  end
  local g = mimic.guard.fit(x, { margin = o.margin or 0.05, distance = o.distance ~= false, quantile = o.quantile or 0.999 })
  if path then g:save(path) end
  return g
end

-- --- surrogate optics ---------------------------------------------------------------------

-- A predictor of raw targets: a net (train), a loaded model file, or a path.
local function predictor(m, what)
  if type(m) == "string" then m = mimic.load_model(m) end
  if getmetatable(m) == Net then return function(x) return m:predict(x) end end
  if type(m) == "table" and m.forward and m.contract then return function(x) return m:forward(x) end end
  fail("nn_optics", "%s must be a net (gasoptics.train), a loaded model file or a path", what)
end

-- Clamps at 0 and renormalises each band's g-points to sum 1 (as rad_nn.h).
local function renormalise(pf, nband)
  local n, ngpt = pf:size(1), pf:size(2)
  local p = pf:clamp(0, math.huge):reshape({ n, nband, ngpt // nband })
  local s = p:sum(3, true):clamp(1e-300, math.huge)
  return (p / s):reshape({ n, ngpt })
end
M.renormalise = renormalise

local Lopt = {}
Lopt.__index = Lopt

-- optics:optics(state) -> tau [n, ngpt], planck_frac [n, ngpt]
function Lopt:optics(st)
  local x = R.nn_features(st)
  local n = x:size(1)
  local cd = mimic.is_tensor(st.col_dry) and st.col_dry:double() or mimic.tensor(st.col_dry, "float64")
  local k = self.tau(x)
  local pf = self.planck(x)
  if self.upper then
    local up = st.p:double():lt(self.p_split):double():reshape({ n, 1 })
    if up:sum():item() > 0 then
      k = k * (1 - up) + self.upper.tau(x) * up
      pf = pf * (1 - up) + self.upper.planck(x) * up
    end
  end
  local tau = k * cd:reshape({ n, 1 })
  pf = renormalise(pf, self.nband)
  self.layers = self.layers + n
  if self.guard then
    local f = self.guard:check(x):ne(0):double() -- check gives a reason code per row, 0 = fine
    local nf = f:sum():item()
    if nf > 0 then
      local tr, pr = self.kd:optics(st)
      f = f:reshape({ n, 1 })
      tau = tau * (1 - f) + tr * f
      pf = pf * (1 - f) + pr * f
      self.fallback = self.fallback + nf
    end
  end
  return tau, pf
end

function Lopt:stats() return { layers = self.layers, fallback = self.fallback } end

local NN_OPTS = set_of { "tau", "planck", "guard", "kdist", "tau_upper", "planck_upper", "p_split", "guard_upper",
  "precision", "threads", "lua" }

-- nn_optics{tau = path, planck = path, guard = path, kdist = kd, tau_upper =, planck_upper =,
--   p_split =, guard_upper =, precision = "f32", threads =, lua = false} -> optics usable by
-- go.fluxes (and, R.nn's object, as optics= of lw_fluxes and rce:run). With R.nn (the C
-- adapter, rad_nn.h) unless lua = true or R.nn is not built; the Lua version takes paths,
-- nets or loaded models, computes tau = k col_dry and clamped, renormalised Planck
-- fractions, and sends guard-flagged layers to the reference kernel.
function M.nn_optics(o)
  check_opts("gasoptics.nn_optics", o or {}, NN_OPTS)
  if o.tau == nil or o.planck == nil then fail("nn_optics", "options 'tau' and 'planck' (the two model files) are required") end
  if (o.tau_upper == nil) ~= (o.planck_upper == nil) then fail("nn_optics", "give both 'tau_upper' and 'planck_upper' or neither") end
  local kd = o.kdist or M.kdist()
  local use_c = R.nn ~= nil and not o.lua
  if use_c then
    for _, k in ipairs({ "tau", "planck", "guard", "tau_upper", "planck_upper", "guard_upper" }) do
      if o[k] ~= nil and type(o[k]) ~= "string" then use_c = false end
    end
  end
  if use_c then
    local info = kd_info(kd)
    return R.nn { tau = o.tau, planck = o.planck, guard = o.guard, tau_upper = o.tau_upper, planck_upper = o.planck_upper,
      p_split = o.tau_upper and (o.p_split or info.p_split) or nil, guard_upper = o.guard_upper, kdist = kd,
      precision = o.precision, threads = o.threads }
  end
  local info = kd_info(kd)
  local s = setmetatable({ kd = kd, nband = info.nband, nu1 = info.nu1, nu2 = info.nu2, layers = 0, fallback = 0,
    tau = predictor(o.tau, "tau"), planck = predictor(o.planck, "planck"), kind = "lua" }, Lopt)
  if o.guard then s.guard = type(o.guard) == "string" and mimic.guard.load(o.guard) or o.guard end
  if o.tau_upper then
    s.upper = { tau = predictor(o.tau_upper, "tau_upper"), planck = predictor(o.planck_upper, "planck_upper") }
    s.p_split = o.p_split or info.p_split
    if o.guard_upper then fail("nn_optics", "guard_upper is supported by the C adapter (R.nn) only") end
  end
  return s
end

-- --- fluxes and metrics -------------------------------------------------------------------

local function is_lopt(x) return getmetatable(x) == Lopt end

-- fluxes(cols, optics [, {nmu = 1, kdist = kd}]) -> {flux_up, flux_dn [ncol, nlev], heating [ncol, nlay]}
-- optics: a radiation.kdist, R.nn's object, go.nn_optics's Lua object, or function(state) -> tau, pf.
-- The Lua object and functions compute the optics of every layer in one batch
-- (same layers, same col_dry as lw_fluxes) and hand each column its rows.
function M.fluxes(cols, optics, o)
  o = o or {}
  check_opts("gasoptics.fluxes", o, { nmu = true, kdist = true })
  if type(cols) ~= "table" or not cols.p_lay then fail("fluxes", "cols must be a column set (gasoptics.sample)") end
  if optics == nil then fail("fluxes", "optics is required (a kdist, go.nn_optics(...) or a function)") end
  local args = { p_lay = cols.p_lay, t_lay = cols.t_lay, p_lev = cols.p_lev, t_lev = cols.t_lev, t_sfc = cols.t_sfc,
    sfc_emis = cols.sfc_emis, vmr = cols.vmr, nmu = o.nmu }
  if is_lopt(optics) or type(optics) == "function" then
    local kd = o.kdist or M.kdist()
    local info = kd_info(kd)
    local st = M.layers(cols)
    local tau, pf
    if is_lopt(optics) then tau, pf = optics:optics(st) else tau, pf = optics(st) end
    local nlay = cols.nlay or cols.p_lay:size(2)
    args.optics = function(s)
      local c = s.column
      return tau:narrow(1, (c - 1) * nlay + 1, nlay), pf:narrow(1, (c - 1) * nlay + 1, nlay)
    end
    args.nu1, args.nu2 = info.nu1, info.nu2
  else
    args.optics = optics
  end
  return R.lw_fluxes(args)
end

-- Linear-interpolation quantile (NumPy's default) of each column of a sorted [n, m] tensor.
local function quantiles(sorted_t, q)
  local n = #sorted_t
  local pos = q * (n - 1) + 1
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, n)
  local a = pos - lo
  local out = {}
  for j = 1, #sorted_t[1] do out[j] = sorted_t[lo][j] * (1 - a) + sorted_t[hi][j] * a end
  return out
end

-- Statistics over columns (dim 1) of a difference d [ncol, m], per entry of dim 2.
local function col_stats(d)
  local sorted = d:sort(1):totable()
  local asorted = d:abs():sort(1):totable()
  return {
    mean = d:mean(1):totable(), mae = d:abs():mean(1):totable(), rmse = d:square():mean(1):sqrt():totable(),
    p05 = quantiles(sorted, 0.05), p50 = quantiles(sorted, 0.5), p95 = quantiles(sorted, 0.95), p95_abs = quantiles(asorted, 0.95),
    max_abs = d:abs():max(1):totable(),
  }
end

local function max_of(list)
  local m = -math.huge
  for _, v in ipairs(list) do if v > m then m = v end end
  return m
end

local function check_flux(fn, r, what)
  if type(r) ~= "table" or not mimic.is_tensor(r.flux_up) or not mimic.is_tensor(r.flux_dn) then
    fail(fn, "%s must be a result of gasoptics.fluxes {flux_up, flux_dn, heating}", what)
  end
end

-- compare(ref, sur [, cols]) -> surrogate - reference statistics over columns:
--   per_level = {up, dn, net = {mean, mae, rmse, p05, p50, p95, p95_abs, max_abs [nlev]}}, p_lev [nlev]
--   (mean pressure of each level, Pa; with cols), net = dn - up (downward);
--   max_mae, max_p95 (largest per-level MAE and 95th percentile of |error| over levels and up/dn/net),
--   heating = {mae, rmse, max, mae_below_10hpa, max_below, mae_above_10hpa, max_above} (K/day),
--   olr_bias, olr_mae, sfc_dn_bias, sfc_dn_mae (W m^-2), ncol.
function M.compare(ref, sur, cols)
  check_flux("compare", ref, "ref")
  check_flux("compare", sur, "sur")
  local ncol, nlev = ref.flux_up:size(1), ref.flux_up:size(2)
  if sur.flux_up:size(1) ~= ncol or sur.flux_up:size(2) ~= nlev then
    fail("compare", "ref has [%d, %d] fluxes, sur [%d, %d]", ncol, nlev, sur.flux_up:size(1), sur.flux_up:size(2))
  end
  local du = sur.flux_up - ref.flux_up
  local dd = sur.flux_dn - ref.flux_dn
  local dn = dd - du
  local r = { ncol = ncol, nlev = nlev, per_level = { up = col_stats(du), dn = col_stats(dd), net = col_stats(dn) } }
  local mm, mp = 0, 0
  for _, k in ipairs({ "up", "dn", "net" }) do
    mm = math.max(mm, max_of(r.per_level[k].mae))
    mp = math.max(mp, max_of(r.per_level[k].p95_abs))
  end
  r.max_mae, r.max_p95 = mm, mp
  local olr = du:narrow(2, 1, 1)
  r.olr_bias, r.olr_mae = olr:mean():item(), olr:abs():mean():item()
  local sd = dd:narrow(2, nlev, 1)
  r.sfc_dn_bias, r.sfc_dn_mae = sd:mean():item(), sd:abs():mean():item()
  if cols then r.p_lev = cols.p_lev:mean(1):totable() end
  if mimic.is_tensor(ref.heating) and mimic.is_tensor(sur.heating) then
    local dh = (sur.heating - ref.heating):abs()
    local h = { mae = dh:mean():item(), rmse = (sur.heating - ref.heating):square():mean():sqrt():item(), max = dh:max():item() }
    if cols then
      local below = cols.p_lay:ge(1000):double() -- p >= 10 hPa: below the 10 hPa level
      local nb = below:sum():item()
      local na = below:numel() - nb
      if nb > 0 then
        h.mae_below_10hpa = (dh * below):sum():item() / nb
        h.max_below_10hpa = (dh * below):max():item()
      end
      if na > 0 then
        h.mae_above_10hpa = (dh * (1 - below)):sum():item() / na
        h.max_above_10hpa = (dh * (1 - below)):max():item()
      end
    end
    r.heating = h
  end
  return r
end

-- forcing(ref_a, ref_b, sur_a, sur_b) -> the forcing a - b (net downward flux, W m^-2) at the
-- top (level 1) and the surface, reference and surrogate, and its error:
--   {toa = {ref, sur, err_mean, err_mae, err_max (over columns)}, sfc = {...}, ncol}
-- ref_* and sur_* are gasoptics.fluxes results on the same columns (a: e.g. 4xCO2, b: PI).
function M.forcing(ra, rb, sa, sb)
  for i, r in ipairs({ ra, rb, sa, sb }) do check_flux("forcing", r, ({ "ref_a", "ref_b", "sur_a", "sur_b" })[i]) end
  local nlev = ra.flux_up:size(2)
  local function net(r, lev) return (r.flux_dn - r.flux_up):narrow(2, lev, 1) end
  local out = { ncol = ra.flux_up:size(1) }
  for name, lev in pairs({ toa = 1, sfc = nlev }) do
    local fr = net(ra, lev) - net(rb, lev)
    local fs = net(sa, lev) - net(sb, lev)
    local e = fs - fr
    out[name] = { ref = fr:mean():item(), sur = fs:mean():item(), err_mean = e:mean():item(), err_mae = e:abs():mean():item(),
      err_max = e:abs():max():item() }
  end
  return out
end

-- apriori(model, ds) -> errors of the surrogate's optics against the data set's targets:
--   per_gpt = {ln_tau_rmse, ln_tau_bias, rel_tau_mae, pf_mae [ngpt]},
--   per_level = {ln_tau_rmse, rel_tau_mae, pf_mae [nlay]}, p_lay [nlay] (mean, Pa; whole columns only),
--   ln_tau_rmse, rel_tau_mae, rel_tau_p95, pf_mae, pf_max (overall).
-- model: an optics object (go.nn_optics or anything with :optics(state)), {tau =, planck =}
-- (nets, loaded models or paths), or one net (its target's entries only). Planck fractions
-- are compared after renormalisation.
function M.apriori(model, ds)
  if type(ds) ~= "table" or not ds.state then fail("apriori", "ds must be a data set from gasoptics.dataset") end
  local st = ds.state
  local cd = st.col_dry:reshape({ ds.n, 1 })
  local tau_s, pf_s
  if getmetatable(model) == Net then -- one network: its own target only
    if model.target == "k" then tau_s = model:predict(ds.x) * cd
    else pf_s = renormalise(model:predict(ds.x), kd_info(M.kdist()).nband) end
  elseif (type(model) == "table" or type(model) == "userdata") and model.optics then
    tau_s, pf_s = model:optics(st)
  elseif type(model) == "table" and model.tau and model.planck then
    tau_s = predictor(model.tau, "tau")(ds.x) * cd
    pf_s = renormalise(predictor(model.planck, "planck")(ds.x), kd_info(M.kdist()).nband)
  else
    fail("apriori", "model must be an optics object (go.nn_optics), a net (go.train) or {tau =, planck =}")
  end
  local ngpt = ds.k:size(2)
  local nlay, ncol = ds.nlay, ds.ncol
  local whole = ncol and nlay -- whole columns: a per-level view (not for go.rows subsets)
  local function by_level(t) return t:reshape({ ncol, nlay, ngpt }):mean(3):mean(1):totable() end
  local r = { per_gpt = {}, per_level = whole and {} or nil }
  if tau_s then
    local tau_r = ds.k * cd
    local le = tau_s:clamp(1e-300, math.huge):log() - tau_r:log()
    local rel = (tau_s / tau_r - 1):abs()
    r.per_gpt.ln_tau_rmse = le:square():mean(1):sqrt():totable()
    r.per_gpt.ln_tau_bias = le:mean(1):totable()
    r.per_gpt.rel_tau_mae = rel:mean(1):totable()
    r.ln_tau_rmse, r.rel_tau_mae = le:square():mean():sqrt():item(), rel:mean():item()
    local srt = rel:flatten():sort()
    local v = srt[math.max(1, math.floor(0.95 * srt:numel()))]
    r.rel_tau_p95 = mimic.is_tensor(v) and v:item() or v
    if whole then
      r.per_level.rel_tau_mae = by_level(rel)
      local ms = by_level(le:square())
      r.per_level.ln_tau_rmse = {}
      for l = 1, nlay do r.per_level.ln_tau_rmse[l] = math.sqrt(ms[l]) end
    end
  end
  if pf_s then
    local pe = (pf_s - ds.pf):abs()
    r.per_gpt.pf_mae = pe:mean(1):totable()
    r.pf_mae, r.pf_max = pe:mean():item(), pe:max():item()
    if whole then r.per_level.pf_mae = by_level(pe) end
  end
  if whole then r.p_lay = st.p:reshape({ ncol, nlay }):mean(1):totable() end
  return r
end

return M
