-- Separate lower/upper-atmosphere networks for the radiation surrogate (issue #9:
-- "separate lower/upper atmosphere networks if that helps"): the study's data and
-- schedule (scripts/rad_study.lua: 80 training sites x 18 experiments x 7 columns,
-- 2 x 64 tanh, 120 / 60 epochs), but one tau and one Planck network for layers with
-- p >= p_split (11421 Pa, the k-table's own split) and another pair for p < p_split.
-- Compares the held-out fluxes (20 sites x 18 experiments) with the shipped single
-- pair, through the C adapter (radiation.nn with tau_upper / planck_upper).
--   build/bin/mimic scripts/rad_split.lua [outdir]   (default build/rad-split; ~10 min on 2 cores)
-- The RCE host takes the pair too:
--   build/scripts/rad_rce_hybrid --tau DIR/lower_tau.h5 --planck DIR/lower_planck.h5 \
--     --tau-upper DIR/upper_tau.h5 --planck-upper DIR/upper_planck.h5 --out DIR/rce
local mimic = require "mimic"
local here = (arg and arg[0] or "scripts/rad_split.lua"):match("^(.*)/[^/]*$") or "."
local H = assert(loadfile(here .. "/rad_search.lua"))("--lib")
local go = H.go
local out = arg and arg[1] or "build/rad-split"
os.execute("mkdir -p '" .. out .. "'")
local kd = go.kdist()
local train_sites, test_sites = go.split_sites()
local val_sites = {}
for i = 1, 40 do val_sites[i] = train_sites[(i - 1) * #train_sites // 40 + 1] end
local cols_tr = go.sample { sites = train_sites, experiments = H.EXPERIMENTS, per_site = 6, seed = 1, include_base = true }
local cols_va = go.sample { sites = val_sites, experiments = H.EXPERIMENTS, per_site = 1, seed = 8 }
local cols_te = H.test_columns(test_sites, H.EXPERIMENTS)
local ds_tr, ds_va = H.dataset(cols_tr, kd), H.dataset(cols_va, kd)
local lo_tr, up_tr = go.split(ds_tr)
local lo_va, up_va = go.split(ds_va)
H.log("split: %d lower and %d upper training layers", lo_tr.n, up_tr.n)
local paths = {}
for _, part in ipairs({ { "lower", lo_tr, lo_va }, { "upper", up_tr, up_va } }) do
  local name, tr, va = part[1], part[2], part[3]
  local nk = go.train { data = tr, val = va, target = "k", hidden = { 64, 64 }, epochs = 120, lr = 2e-3, seed = 1,
    patience = 12, verbose = true }
  local np = go.train { data = tr, val = va, target = "planck", hidden = { 64, 64 }, epochs = 60, lr = 2e-3, seed = 101,
    patience = 12, verbose = true }
  paths[name .. "_tau"], paths[name .. "_planck"] = out .. "/" .. name .. "_tau.h5", out .. "/" .. name .. "_planck.h5"
  go.save(nk, paths[name .. "_tau"])
  go.save(np, paths[name .. "_planck"])
  H.log("split: %s pair trained, validation RMSE of ln k %.4f", name, nk.metrics.val_rmse_ln_k)
end
local ref = go.fluxes(cols_te, kd)
local function report(label, o)
  local c = go.compare(ref, go.fluxes(cols_te, o), cols_te)
  H.log("split: %-22s worst-level flux MAE %.3f, p95 %.3f W m^-2", label, c.max_mae, c.max_p95)
end
if io.open("models/rad_lw_tau.h5") then
  report("single pair (shipped)", go.nn_optics { tau = "models/rad_lw_tau.h5", planck = "models/rad_lw_planck.h5", kdist = kd, threads = 1 })
end
report("lower/upper pairs", go.nn_optics { tau = paths.lower_tau, planck = paths.lower_planck, tau_upper = paths.upper_tau,
  planck_upper = paths.upper_planck, kdist = kd, threads = 1 })
