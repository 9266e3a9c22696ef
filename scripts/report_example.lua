-- The worked example of mimic.validate and mimic.report (docs/validation.md):
--   mimic scripts/report_example.lua [epochs] [ntrain] [seed] [outdir]
-- (defaults 60 16384 1 validation/report-example; `make report-example`).
-- Trains a 3-64-64-16 tanh MLP on an analytic stand-in for a gas-optics
-- kernel (below), compares it with the kernel on held-out samples and writes
-- <outdir>/README.md with the metrics per spectral point, the error band
-- versus pressure, the distributions of ln tau and the learning curves (PNG
-- plots through gnuplot). About 10 s on 2 cores. The real radiation
-- surrogate is scripts/flagship.lua (docs/radiation-surrogate.md).

local mimic = require "mimic"
local V, report = mimic.validate, mimic.report

-- The analytic kernel: per layer, (ln p [Pa], T [K], ln q [kg/kg]) -> ln tau at
-- 16 spectral points, with pressure broadening, temperature-dependent line
-- strengths and a water-vapour path.
local toy = { G = 16 }
local G = toy.G

-- Per spectral point k: strength S, broadening half-pressure pb, temperature
-- exponent n and lower-state energy E (as c2*E'' in K). Fixed, deterministic.
local S, PB, NT, E = {}, {}, {}, {}
for k = 1, G do
  local f = (k - 1) / (G - 1)
  S[k] = 10 ^ (-4 + 5 * f)            -- m^2 kg^-1 at 296 K and high pressure
  PB[k] = 10 ^ (1 + 3.5 * (1 - f))    -- Pa: weak points saturate at low pressure
  NT[k] = 0.5 + 0.4 * math.sin(3 * k)
  E[k] = 300 + 1500 * ((k * 7) % G) / G
end
toy.S, toy.PB, toy.NT, toy.E = S, PB, NT, E

-- The input ranges: pressure 1 hPa .. 1050 hPa, temperature 180 .. 310 K,
-- specific humidity 1e-6 .. 2e-2 kg/kg (log-uniform).
toy.range = {
  lnp = { math.log(1e2), math.log(1.05e5) }, T = { 180, 310 }, lnq = { math.log(1e-6), math.log(2e-2) },
}

-- x: [n,3] columns ln p (Pa), T (K), ln q (kg/kg). Returns ln tau: [n,16].
function toy.kernel(x)
  local lnp, T, lnq = x:select(2, 1), x:select(2, 2), x:select(2, 3)
  local p = lnp:exp()
  local dp = p * 0.08                        -- layer thickness, Pa
  local path = (lnq:exp() * dp / 9.81):log() -- ln(water-vapour path), kg m^-2
  local cols = {}
  for k = 1, G do
    local lnk = math.log(S[k]) - NT[k] * (T / 296):log() - (1 / T - 1 / 296) * E[k]
        + (p / (p + PB[k])):log()
    cols[k] = lnk + path
  end
  return mimic.stack(cols, 2)
end

-- n samples uniform in (ln p, T, ln q) over toy.range, from Generator g.
function toy.sample(g, n)
  local r = toy.range
  local lnp = g:uniform({ n }, r.lnp[1], r.lnp[2])
  local T = g:uniform({ n }, r.T[1], r.T[2])
  local lnq = g:uniform({ n }, r.lnq[1], r.lnq[2])
  return mimic.stack({ lnp, T, lnq }, 2)
end

local epochs = tonumber(arg and arg[1]) or 60
local ntrain = tonumber(arg and arg[2]) or 16384
local seed = tonumber(arg and arg[3]) or 1
local outdir = arg and arg[4] or "validation/report-example"
local nval, ntest, batch = 4096, 8192, 256
local g = mimic.Generator(seed)

-- Data and training ---------------------------------------------------------------
local xtr, xva, xte = toy.sample(g, ntrain), toy.sample(g, nval), toy.sample(g, ntest)
local ytr, yva, yte = toy.kernel(xtr), toy.kernel(xva), toy.kernel(xte)
local xmu, xsd = xtr:mean(1), xtr:std(1)
local ymu, ysd = ytr:mean(1), ytr:std(1)
local function encx(x) return (x - xmu) / xsd end
local function ency(y) return (y - ymu) / ysd end

local nn, optim = mimic.nn, mimic.optim
mimic.manual_seed(seed)
local model = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, G))
local opt = optim.Adam(model, { lr = 3e-3 })
local t0 = mimic.clock()
local history = mimic.train {
  model = model, loss = nn.MSELoss(), optimizer = opt,
  data = { x = encx(xtr), y = ency(ytr) }, val = { x = encx(xva), y = ency(yva) },
  epochs = epochs, batch = batch, seed = seed,
  scheduler = optim.CosineAnnealingLR(opt, { T_max = epochs }),
  early_stopping = { patience = 10 },
  verbose = false,
}
local train_s = mimic.clock() - t0
model:evaluate()
local pred = mimic.no_grad(function() return model(encx(xte)) end) * ysd + ymu -- ln tau

-- Metrics -------------------------------------------------------------------------
local ref64, pred64 = yte:double(), pred:double()
local err = pred64 - ref64                          -- error in ln tau
local relpct = (err:exp() - 1) * 100                -- error of tau itself, %
local reg = V.regression(pred64, ref64)              -- per spectral point, ln tau
local regtau = V.regression(pred64:exp(), ref64:exp()) -- per spectral point, tau (for the relative error)
local all = V.regression(pred64:reshape(-1), ref64:reshape(-1))[1]
local abs_rel = relpct:abs():reshape(-1)
local q = V.binned_quantiles(abs_rel, mimic.zeros(abs_rel:numel()), { -1, 1 }, { 0.5, 0.95, 0.999 })
local pmax = abs_rel:max():item()

-- Error band versus pressure: one pressure per layer, shared by its 16 points.
local p_hpa = xte:select(2, 1):double():exp() / 100
local pedges = V.edges(p_hpa, 12, { log = true, range = { 1, 1050 } })
local band = V.binned_quantiles(relpct, p_hpa, pedges, { 0.05, 0.5, 0.95 })

-- Distributions of ln tau: all points pooled, and the worst point alone.
local worst, worst_rmse = 1, -1
for k, r in ipairs(reg) do if r.rmse > worst_rmse then worst, worst_rmse = k, r.rmse end end
local cmp_all = V.compare(pred64:reshape(-1), ref64:reshape(-1), { bins = 60 })
local cmp_worst = V.compare(pred64:select(2, worst), ref64:select(2, worst), { bins = 40 })

-- The worst predictions: a good RMSE can hide a few very wrong samples.
local flat = relpct:abs():reshape(-1)
local _, order = flat:sort(1, true)
local worst_rows = {}
for i = 1, 5 do
  local idx = math.tointeger(order[i]) - 1 -- 0-based flat index
  local row, k = idx // G + 1, idx % G + 1
  worst_rows[i] = {
    i, k, string.format("%.1f", math.exp(xte[row][1]) / 100), string.format("%.0f", xte[row][2]),
    string.format("%.1e", math.exp(xte[row][3])), string.format("%.2f", yte[row][k]),
    string.format("%+.1f %%", relpct[row][k]),
  }
end

-- Report ----------------------------------------------------------------------------
local cmd = string.format("build/bin/mimic scripts/report_example.lua %d %d %d %s", epochs, ntrain, seed, outdir)
local rep = report.new {
  dir = outdir, title = "Report example: a priori validation of an analytic-kernel surrogate",
  command = cmd,
  provenance = {
    kernel = "analytic gas-optics stand-in, in scripts/report_example.lua (16 spectral points)",
    inputs = "ln p ~ U(ln 1 hPa, ln 1050 hPa), T ~ U(180 K, 310 K), ln q ~ U(ln 1e-6, ln 2e-2 kg/kg)",
    data = string.format("%d train / %d validation / %d test samples, Generator(%d)", ntrain, nval, ntest, seed),
    model = string.format("MLP 3-64-64-%d tanh, %d parameters; Adam lr 3e-3, cosine schedule, batch %d, early stopping",
      G, model:num_parameters(), batch),
    training = string.format("%d epochs run (best validation MSE %.3e at epoch %d), %.1f s", #history, history.best,
      history.best_epoch, train_s),
    seed = seed,
  },
}

rep:text("The surrogate maps one atmospheric layer's (pressure, temperature, specific humidity) to the optical "
  .. "depth tau at 16 spectral points, trained on ln tau. Everything below compares it with the kernel on "
  .. string.format("%d held-out layers (%d predictions), which training never saw.", ntest, ntest * G))
rep:text("## Summary")
rep:table {
  header = { "metric", "value" },
  rows = {
    { "RMSE of ln tau (all points)", string.format("%.4f", all.rmse) },
    { "bias of ln tau", string.format("%+.2e", all.bias) },
    { "R^2 of ln tau, worst spectral point", string.format("%.5f (point %d)", (function()
      local m, mk = math.huge, 0
      for k, r in ipairs(reg) do if r.r2 < m then m, mk = r.r2, k end end
      return m, mk
    end)()) },
    { "|tau error| median / 95th / 99.9th percentile",
      string.format("%.2f %% / %.2f %% / %.2f %%", q.q[1][1], q.q[2][1], q.q[3][1]) },
    { "|tau error| maximum", string.format("%.1f %%", pmax) },
    { "KS distance of the ln tau distributions (all points)", string.format("%.4f", cmp_all.ks) },
  },
}
rep:text(string.format("The largest error is %.0f times the 95th percentile: a few layers are predicted far "
  .. "worse than the RMSE suggests. The five worst are listed at the end.", pmax / q.q[2][1]))

rep:text("## Per spectral point")
local rows = {}
for k, r in ipairs(reg) do
  rows[k] = { k, string.format("%.2f", V.moments(ref64:select(2, k))[1].mean), string.format("%.4f", r.rmse),
    string.format("%+.1e", r.bias), string.format("%.3f", r.max_abs), string.format("%.6f", r.r2),
    string.format("%.6f", r.spearman), string.format("%.2f %%", 100 * regtau[k].rel) }
end
rep:table {
  header = { "point", "mean ln tau", "RMSE ln tau", "bias ln tau", "max |error| ln tau", "R^2", "Spearman",
    "mean |tau error|" },
  rows = rows,
  caption = "Errors of ln tau are close to relative errors of tau (an error of 0.01 in ln tau is 1 % in tau).",
}

rep:text("## Error versus pressure")
rep:band {
  name = "error_vs_pressure", binned = band, vertical = true, logx = true,
  xlabel = "pressure (hPa)", ylabel = "error of tau, surrogate - kernel (%)",
  title = "tau error by pressure (all 16 spectral points)",
  caption = "Shaded: 5-95 % of the errors in each pressure bin (all 16 points); lines: median and mean. "
      .. "The surface is at the bottom.",
}
local brows = {}
for i = 1, #band.count do
  brows[i] = { string.format("%.0f-%.0f", pedges[i], pedges[i + 1]), band.count[i],
    string.format("%+.2f", band.mean[i]), string.format("%+.2f", band.q[1][i]), string.format("%+.2f", band.q[2][i]),
    string.format("%+.2f", band.q[3][i]) }
end
rep:table { header = { "pressure (hPa)", "predictions", "mean (%)", "5 % (%)", "median (%)", "95 % (%)" }, rows = brows }

rep:text("## Distributions")
rep:scatter {
  name = "pred_vs_true", truth = ref64, pred = pred64, bins = 90,
  xlabel = "ln tau, kernel", ylabel = "ln tau, surrogate", title = "surrogate vs kernel, all points",
  caption = "Density of (kernel, surrogate) pairs over all 16 points; on the dashed line the surrogate is exact. "
      .. "At this scale the errors are thinner than a bin: the next figure magnifies them.",
}
rep:scatter {
  name = "error_vs_true", truth = ref64, pred = pred64, residual = true, bins = 90,
  xlabel = "ln tau, kernel", ylabel = "error of ln tau, surrogate - kernel (~ relative error of tau)",
  title = "error density versus the kernel's ln tau, all points",
  caption = "The same pairs as errors: 95 % lie within about +-0.03 (3 % in tau); the sparse outer bins are the rare "
      .. "large errors a mean hides.",
}
rep:histograms {
  name = "hist_ln_tau", compare = cmp_all, labels = { "surrogate", "kernel" }, xlabel = "ln tau (all points)",
  title = "distribution of ln tau, all 16 points",
  caption = "Distribution of ln tau over all points; lower panel: ratio surrogate / kernel per bin.",
}
rep:histograms {
  name = string.format("hist_ln_tau_point%d", worst), compare = cmp_worst, labels = { "surrogate", "kernel" },
  xlabel = string.format("ln tau at spectral point %d", worst),
  title = string.format("distribution of ln tau at point %d (largest RMSE)", worst),
  caption = string.format("The spectral point with the largest RMSE (%d).", worst),
}
local function drow(name, c)
  return { name, string.format("%.4f", c.ks), string.format("%.2g", c.p_ks), string.format("%.4f", c.w1),
    string.format("%.2e", c.js), string.format("%.1f / %d", c.chi2, c.dof) }
end
rep:table {
  header = { "ln tau", "KS distance", "KS p-value", "Wasserstein-1", "Jensen-Shannon (bits)", "chi^2 / dof" },
  rows = { drow("all points", cmp_all), drow("point " .. worst, cmp_worst) },
  caption = "With this many samples the tests resolve tiny differences: a p-value below 0.05 flags a "
      .. "measurable distribution shift, and the distances say how large it is.",
}

rep:text("## Learning curves")
local ep, tr, va = {}, {}, {}
for i, h in ipairs(history) do ep[i], tr[i], va[i] = h.epoch, h.loss, h.val_loss end
rep:curves {
  name = "learning_curves", x = ep, series = { { label = "training loss", y = tr }, { label = "validation loss", y = va } },
  xlabel = "epoch", ylabel = "MSE of standardised ln tau", title = "learning curves",
  caption = "Mean squared error on standardised outputs, per epoch.",
}

rep:text("## The five worst predictions")
rep:table {
  header = { "rank", "point", "pressure (hPa)", "T (K)", "q (kg/kg)", "ln tau (kernel)", "tau error" },
  rows = worst_rows,
}

local path, plotted = rep:write()
print(string.format("wrote %s%s", path, plotted and " and plots" or " (no gnuplot: tables and plot data only)"))
