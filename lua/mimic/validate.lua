-- mimic.validate: metrics for validating a surrogate against its reference
-- (docs/validation.md). The numerics are C (core/validate/metrics.c, through
-- the raw functions in mimic._validate); this module converts arguments,
-- chooses defaults, and shifts class labels to Lua's 1-based convention.
--
-- Data arguments are mimic.Tensor or (nested) Lua lists of numbers. "Per
-- column" means along the last dim: a [N, C] tensor is C columns.
-- NaN or infinity in any input is an error that names its position.
local mimic = require "mimic"
local C = mimic._validate

local validate = {}

-- x as a tensor: a tensor as is, a Lua list converted to float64.
local function tensor(x, what, level)
  if mimic.is_tensor(x) then return x end
  if type(x) == "table" then
    local ok, t = pcall(mimic.tensor, x, "float64")
    if ok then return t end
    error(string.format("mimic.validate: %s: %s", what, tostring(t)), level + 1)
  end
  error(string.format("mimic.validate: %s must be a mimic.Tensor or a list of numbers, got %s", what, type(x)),
    level + 1)
end

-- A list of numbers (a histogram or edges) from a list or a tensor.
local function list(x, what, level)
  if mimic.is_tensor(x) then return x:double():reshape(-1):totable() end
  if type(x) ~= "table" then
    error(string.format("mimic.validate: %s must be a list of numbers, got %s", what, type(x)), level + 1)
  end
  return x
end

-- Runs a raw C function, re-raising its error at the caller of the public
-- function (level 3: our caller's caller), so messages point at user code.
local function call(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then error(tostring(r[2]):gsub("^[^:]*:%d+: ", ""), 3) end
  return table.unpack(r, 2, r.n)
end

--- Regression scores per column: list of {n, bias, mae, rmse, max_abs, rel,
--- r2, pearson, spearman}. opts.rel_floor (default 0): the relative error is
--- |pred - ref| / max(|ref|, rel_floor).
function validate.regression(pred, ref, opts)
  opts = opts or {}
  return call(C.regression, tensor(pred, "pred", 2), tensor(ref, "ref", 2), opts.rel_floor or 0)
end

--- Regression scores per column in bins of a coordinate (e.g. per height of
--- a subgrid model): coord has one value per row of pred/ref ([N] for
--- [N, C] data). Returns {edges, centers, bins}, where bins[b] is the
--- regression list of bin b (per column), or nil for an empty bin.
function validate.regression_binned(pred, ref, coord, edges, opts)
  pred, ref, coord = tensor(pred, "pred", 2), tensor(ref, "ref", 2), tensor(coord, "coord", 2)
  edges = list(edges, "edges", 2)
  local rows = pred:dim() >= 2 and pred:size(1) or pred:numel()
  if coord:numel() ~= rows then
    error(string.format("mimic.validate.regression_binned: coord has %d values, expected one per row (%d)",
      coord:numel(), rows), 2)
  end
  -- Bin membership through the C histogram's rule (validated edges, last bin
  -- closed), one bin at a time, so each bin's rows are gathered once.
  local c = coord:double():reshape(-1)
  local cv = c:totable()
  local out = { edges = edges, centers = validate.centers(edges), bins = {} }
  for i, v in ipairs(cv) do
    if v ~= v or v == math.huge or v == -math.huge then
      error(string.format("validate_regression_binned: coord has %s at element %d (0-based); remove or mask it first",
        v ~= v and "NaN" or "an infinity", i - 1), 2)
    end
  end
  call(C.histogram, c, edges) -- checks the edges with the usual messages
  local nb = #edges - 1
  local members = {}
  for b = 1, nb do members[b] = {} end
  for i, v in ipairs(cv) do
    if v >= edges[1] and v <= edges[nb + 1] then
      local lo, hi = 1, nb + 1 -- edges[lo] <= v < edges[hi]
      while hi - lo > 1 do
        local mid = (lo + hi) // 2
        if v >= edges[mid] then lo = mid else hi = mid end
      end
      local m = members[lo]
      m[#m + 1] = i
    end
  end
  for b = 1, nb do
    if #members[b] > 0 then
      local idx = mimic.tensor(members[b], "int64")
      out.bins[b] = call(C.regression, pred:index_select(1, idx), ref:index_select(1, idx), (opts or {}).rel_floor or 0)
    end
  end
  return out
end

--- n + 1 edges spanning all the given samples (shared binning), linear or,
--- with opts.log, logarithmic (samples must then be > 0). opts.range = {lo, hi}
--- overrides the span.
function validate.edges(samples, n, opts)
  opts = opts or {}
  n = n or 50
  if math.type(n) ~= "integer" or n < 1 then error("mimic.validate.edges: n must be an integer >= 1", 2) end
  local lo, hi
  if opts.range then
    lo, hi = opts.range[1], opts.range[2]
  else
    if mimic.is_tensor(samples) or type(samples[1]) == "number" then samples = { samples } end
    for i, s in ipairs(samples) do
      local t = tensor(s, "sample " .. i, 2)
      if t:numel() > 0 then
        local a, b = t:min():item(), t:max():item()
        lo, hi = math.min(lo or a, a), math.max(hi or b, b)
      end
    end
    if not lo then error("mimic.validate.edges: all samples are empty", 2) end
  end
  if not (lo == lo and hi == hi) or lo == -math.huge or hi == math.huge then
    error("mimic.validate.edges: the samples hold NaN or infinity; remove them first", 2)
  end
  if opts.log and lo <= 0 then error("mimic.validate.edges: log bins need positive values (min " .. lo .. ")", 2) end
  if hi == lo then -- constant data: one unit-wide span around it, so bins stay valid
    local w = lo ~= 0 and math.abs(lo) * 0.5 or 0.5
    lo, hi = lo - w, hi + w
    if opts.log then lo = hi / 3 end
  end
  local e = {}
  for i = 0, n do
    local f = i / n
    e[i + 1] = opts.log and math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo))) or lo + f * (hi - lo)
  end
  e[1], e[n + 1] = lo, hi -- exact ends: min and max fall inside
  return e
end

local function centers(edges, log)
  local c = {}
  for i = 1, #edges - 1 do
    c[i] = log and math.sqrt(edges[i] * edges[i + 1]) or 0.5 * (edges[i] + edges[i + 1])
  end
  return c
end
validate.centers = centers

--- Quantiles of value binned along coord (e.g. the error per height):
--- {edges, centers, count, mean, probs, q} where q[j][b] is quantile probs[j]
--- in bin b (NaN for an empty bin). probs default {0.05, 0.5, 0.95}. coord
--- has one element per value, or one per row of a [N, C] value.
function validate.binned_quantiles(value, coord, edges, probs)
  probs = probs or { 0.05, 0.5, 0.95 }
  local r = call(C.binned_quantiles, tensor(value, "value", 2), tensor(coord, "coord", 2), list(edges, "edges", 2),
    list(probs, "probs", 2))
  r.edges, r.centers, r.probs = edges, centers(edges), probs
  return r
end

--- Histogram counts of x over edges (bin i is [e_i, e_i+1), the last closed),
--- and the number of elements outside.
function validate.histogram(x, edges)
  return call(C.histogram, tensor(x, "x", 2), list(edges, "edges", 2))
end

--- counts[i][j] for x bin i and y bin j, and the number of pairs outside.
function validate.histogram2d(x, y, xedges, yedges)
  return call(C.histogram2d, tensor(x, "x", 2), tensor(y, "y", 2), list(xedges, "xedges", 2), list(yedges, "yedges", 2))
end

local function flat(h)
  if type(h) == "table" and type(h[1]) == "table" then
    local f = {}
    for _, row in ipairs(h) do for _, v in ipairs(row) do f[#f + 1] = v end end
    return f
  end
  return h
end

--- Two-sample chi-square of two histograms (same bins): {chi2, dof, p}. Bins
--- empty in both are skipped.
function validate.chi2(a, b)
  local s, dof, p = call(C.chi2, flat(list(a, "a", 2)), flat(list(b, "b", 2)))
  return { chi2 = s, dof = dof, p = p }
end

--- Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms.
function validate.js(p, q) return call(C.js, flat(list(p, "p", 2)), flat(list(q, "q", 2))) end

--- Bins populated in ref and empty in sample (holes) and the converse
--- (spurious): {ref_bins, holes, spurious, hole_mass, spurious_mass}.
--- Histograms may be 2-D (lists of rows).
function validate.holes(ref, sample) return call(C.holes, flat(list(ref, "ref", 2)), flat(list(sample, "sample", 2))) end

--- Two-sample Kolmogorov-Smirnov: {d, p} (asymptotic p-value).
function validate.ks(a, b)
  local d, p = call(C.ks, tensor(a, "a", 2), tensor(b, "b", 2))
  return { d = d, p = p }
end

--- P(K > x) for the Kolmogorov distribution.
function validate.kolmogorov_sf(x) return call(C.kolmogorov_sf, x) end

--- Wasserstein-1 distance between the empirical distributions of a and b.
function validate.wasserstein(a, b) return call(C.wasserstein, tensor(a, "a", 2), tensor(b, "b", 2)) end

--- Per column: {n, mean, var (ddof 1), skew, kurt (excess)}.
function validate.moments(x) return call(C.moments, tensor(x, "x", 2)) end

--- Everything to compare a sample's distribution with a reference's, on
--- shared bins: {edges, centers, ref, sample (counts), chi2, dof, p_chi2, ks,
--- p_ks, w1, js, moments_ref, moments_sample}. opts.bins (default 40),
--- opts.edges (explicit), opts.log (log-spaced bins).
function validate.compare(sample, ref, opts)
  opts = opts or {}
  local s, r = tensor(sample, "sample", 2), tensor(ref, "ref", 2)
  local e = opts.edges or validate.edges({ s, r }, opts.bins or 40, { log = opts.log })
  local hs = call(C.histogram, s, e)
  local hr = call(C.histogram, r, e)
  local c2, dof, p = call(C.chi2, hs, hr)
  local d, pk = call(C.ks, s, r)
  return {
    edges = e, centers = centers(e, opts.log), sample = hs, ref = hr,
    chi2 = c2, dof = dof, p_chi2 = p, ks = d, p_ks = pk,
    w1 = call(C.wasserstein, s, r), js = call(C.js, hs, hr),
    moments_sample = call(C.moments, s:reshape(-1))[1], moments_ref = call(C.moments, r:reshape(-1))[1],
  }
end

--- 2-D comparison (e.g. of generated events in two observables): histograms on
--- shared bins, holes and chi-square. opts.bins (default 20 per axis).
function validate.compare2d(xs, ys, xr, yr, opts)
  opts = opts or {}
  local n = opts.bins or 20
  xs, ys, xr, yr = tensor(xs, "xs", 2), tensor(ys, "ys", 2), tensor(xr, "xr", 2), tensor(yr, "yr", 2)
  local ex = opts.xedges or validate.edges({ xs, xr }, n)
  local ey = opts.yedges or validate.edges({ ys, yr }, n)
  local hs = call(C.histogram2d, xs, ys, ex, ey)
  local hr = call(C.histogram2d, xr, yr, ex, ey)
  local c2, dof, p = call(C.chi2, flat(hs), flat(hr))
  local h = call(C.holes, flat(hr), flat(hs))
  h.xedges, h.yedges, h.sample, h.ref, h.chi2, h.dof, h.p_chi2 = ex, ey, hs, hr, c2, dof, p
  return h
end

-- Class labels are 1..k in Lua and 0..k-1 in C.
local function labels(x, what, level)
  return tensor(x, what, level + 1):double() - 1
end

--- Confusion matrix of labels 1..k: cm[t][p] counts true class t predicted p.
function validate.confusion(pred, truth, k)
  return call(C.confusion, labels(pred, "pred", 2), labels(truth, "truth", 2), k)
end

--- Accuracy, balanced accuracy, macro precision/recall/F1 and per-class
--- lists from labels 1..k; the result's .confusion is the matrix.
function validate.classification(pred, truth, k)
  local cm = call(C.confusion, labels(pred, "pred", 2), labels(truth, "truth", 2), k)
  local r = call(C.class_scores, cm)
  r.confusion = cm
  return r
end

--- ROC curve and AUC of scores against binary labels (0/1 or false/true):
--- {auc, fpr, tpr, threshold}.
function validate.roc(score, label)
  return call(C.roc, tensor(score, "score", 2), tensor(label, "label", 2):double())
end

--- Reliability diagram of probabilities against binary labels:
--- {count, mean_prob, frac_pos, ece}; nbins equal bins (default 10).
function validate.calibration(prob, label, nbins)
  return call(C.calibration, tensor(prob, "prob", 2), tensor(label, "label", 2):double(), nbins)
end

--- Conservation of a weighted sum over the last dim: {before, after,
--- global_rel, max_row_rel, mean_row_rel}. weight: nil or one per column.
function validate.conservation(before, after, weight)
  return call(C.conservation, tensor(before, "before", 2), tensor(after, "after", 2),
    weight and tensor(weight, "weight", 2) or nil)
end

-- --- periodic fields (mimic._spectra, libmimic_solvers: links FFTW) --------------------------

-- A field as its list of components: a tensor is one scalar field, a list of
-- tensors the components of a vector field.
local function components(f, what, level)
  if mimic.is_tensor(f) then return { f } end
  if type(f) == "table" and #f > 0 then
    for i, c in ipairs(f) do
      if not mimic.is_tensor(c) then
        error(string.format("mimic.validate: %s[%d] is a %s, expected a mimic.Tensor", what, i, type(c)), level + 1)
      end
    end
    return f
  end
  error(string.format("mimic.validate: %s must be a mimic.Tensor or a list of them (the components), got %s", what,
    type(f)), level + 1)
end

--- Radially averaged power spectrum of a periodic 1-, 2- or 3-D field (a
--- tensor, or a list of component tensors summed over): {k, power, count}.
--- Shell k (k = 0, 1, ...) holds the modes with k - 1/2 <= |k| < k + 1/2,
--- integer wavenumbers (cycles per domain); power[i] is for k[i] = i - 1.
--- sum(power) is the mean square of the field (Parseval); opts.energy = true
--- halves it (kinetic energy of a velocity field). count: modes per shell.
function validate.spectrum(field, opts)
  opts = opts or {}
  local p, c = call(mimic._spectra.spectrum, components(field, "field", 2))
  local k = {}
  for i = 1, #p do
    k[i] = i - 1
    if opts.energy then p[i] = p[i] / 2 end
  end
  return { k = k, power = p, count = c }
end

local function spectrum_of(x, what, level)
  if type(x) == "table" and x.power then return x.power end
  if mimic.is_tensor(x) or (type(x) == "table" and mimic.is_tensor(x[1])) then
    return validate.spectrum(x).power
  end
  return list(x, what, level + 1)
end

--- Error of a spectrum against a reference over a band of shells:
--- {shells, max_rel, mean_rel, rms_log10, band_rel}. pred and ref are
--- results of validate.spectrum, lists of shell powers, or fields (their
--- spectra are computed). opts.band = {kmin, kmax} (shell wavenumbers,
--- inclusive; default all). Shells without reference power are skipped.
function validate.spectrum_error(pred, ref, opts)
  opts = opts or {}
  local band = opts.band or {}
  return call(mimic._spectra.spectrum_error, spectrum_of(pred, "pred", 2), spectrum_of(ref, "ref", 2), band[1],
    band[2])
end

--- Divergence of a periodic vector field by second-order central
--- differences (what a finite-volume solver's continuity equation sees):
--- u is a list of ndim component tensors (component d along dim d).
--- opts.spacing: a number or one per dim (default 1). Returns the float64
--- divergence tensor and {max_abs, rms}.
function validate.divergence(u, opts)
  opts = opts or {}
  local comps = components(u, "u", 2)
  local h = opts.spacing
  if type(h) == "number" then
    local l = {}
    for d = 1, comps[1]:dim() do l[d] = h end
    h = l
  end
  local div = call(mimic._spectra.divergence, comps, h)
  local sq = (div * div):mean():item()
  return div, { max_abs = div:abs():max():item(), rms = math.sqrt(sq) }
end

-- --- generative models ------------------------------------------------------------------

-- Mean squared error per sample of f(x) against x ([N, ...] -> [N]).
local function per_sample_mse(f, x)
  local r = mimic.no_grad(f, x)
  if not mimic.is_tensor(r) or r:numel() ~= x:numel() then
    error("mimic.validate.reconstruction: reconstruct(x) must return a tensor shaped like x", 3)
  end
  local d = (r:reshape(x:size(1), -1):double() - x:reshape(x:size(1), -1):double()):square()
  return d:mean(2)
end

--- Did an autoencoder learn the data's structure, or just to copy any input?
--- Reconstruction error of real samples x ([N, ...]) against samples of
--- uniform noise over each feature's range in x (the same count, drawn from
--- opts.generator or Generator(opts.seed or 0)). Returns {real, noise, ratio,
--- real_p95, noise_p5}: mean errors, their ratio noise/real (well above 1 for
--- a model that learned structure), and the 95th percentile of the real and
--- the 5th of the noise errors (separated when real_p95 < noise_p5).
function validate.reconstruction(reconstruct, x, opts)
  opts = opts or {}
  x = tensor(x, "x", 2)
  if type(reconstruct) ~= "function" and not (getmetatable(reconstruct) or {}).__call then
    error("mimic.validate.reconstruction: reconstruct must be callable (a function or a module)", 2)
  end
  local n = x:size(1)
  local flat = x:reshape(n, -1)
  local lo, hi = flat:min(1), flat:max(1)
  local g = opts.generator or mimic.Generator(opts.seed or 0)
  local u = g:uniform({n, flat:size(2)}, 0, 1, {dtype = x:dtype()})
  local noise = (u * (hi - lo) + lo):reshape(x:size())
  local er, en = per_sample_mse(reconstruct, x), per_sample_mse(reconstruct, noise)
  local function pct(t, q) return t:sort()[math.max(1, math.ceil(q * t:numel()))] end
  local real, nz = er:mean():item(), en:mean():item()
  return { real = real, noise = nz, ratio = nz / real, real_p95 = pct(er, 0.95), noise_p5 = pct(en, 0.05) }
end

--- Conservation-law residuals of generated samples: residual(samples) must
--- return one residual per sample (a tensor [N] or [N, k]); the result holds
--- {n, mean_abs, rms, max_abs, p50, p95, p99} of |residual| over all values,
--- and `worst`, the 1-based index of the sample with the largest one.
function validate.residuals(samples, residual)
  if type(residual) ~= "function" then
    error("mimic.validate.residuals: residual must be a function(samples) -> tensor", 2)
  end
  local r = mimic.no_grad(residual, samples)
  if not mimic.is_tensor(r) then
    error("mimic.validate.residuals: residual(samples) must return a tensor, got " .. type(r), 2)
  end
  local a = r:double():abs()
  if a:ne(a):double():sum():item() > 0 then error("mimic.validate.residuals: a residual is NaN", 2) end
  local per = a:dim() >= 2 and a:reshape(a:size(1), -1):max(2) or a:reshape(-1)
  local s = a:reshape(-1):sort()
  local function pct(q) return s[math.max(1, math.ceil(q * s:numel()))] end
  local _, worst = per:max(1)
  return { n = per:numel(), mean_abs = a:mean():item(), rms = math.sqrt(a:square():mean():item()),
    max_abs = s[s:numel()], p50 = pct(0.5), p95 = pct(0.95), p99 = pct(0.99), worst = worst:item() }
end

return validate
