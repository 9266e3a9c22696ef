-- mimic.aposteriori: a-posteriori validation of a hybrid simulation. The
-- reference simulation and the hybrid (a kernel replaced by a surrogate) run
-- side by side from the same initial state; diagnostics of both are compared
-- every few steps, the divergence is recorded over time, and a blow-up stops
-- the run cleanly with a report of which diagnostic failed at which step
-- (docs/embedding.md).
--
--   local r = mimic.aposteriori.run {
--     init = function() return state end,           -- the initial state
--     copy = function(state) return copy end,       -- optional: see below
--     step_reference = function(state, t) ... end,  -- advance one step (t = 1, 2, ...):
--     step_hybrid = function(state, t) ... end,     --   in place, or return the new state
--     steps = 1000, every = 10,                     -- compare every 10 steps (default 1)
--     diagnostics = { T = function(state) return tensor_or_number end, ... },
--     compare = "rmse" | "max_abs" | "rel" | function(hybrid, reference) -> number,
--     bound = { T = 400 },            -- |hybrid value| above this is a blow-up
--     max_divergence = { T = 5 },     -- divergence above this is a blow-up
--     max_growth = 1e3,               -- divergence / first nonzero divergence above this too
--     out = "validation/x",           -- optional: README.md + divergence plot (mimic.report)
--     title =, command =, provenance = {...},   -- for the report
--     quiet = false, output = io.stderr,        -- progress lines
--   }
--
-- The hybrid starts from copy(init()) (default: state:clone() for a tensor or
-- an object with a clone method, else a deep copy of a table, cloning its
-- tensors; other userdata are shared, so give `copy` if the state holds any).
-- Diagnostics are recorded at step 0, every `every` steps and at the last
-- step. For each: rmse, max_abs and bias (mimic.validate.regression on the
-- flattened values), rel = rmse / rms(reference), and the divergence chosen
-- by `compare`. A blow-up is detected at the first recorded step where a
-- hybrid diagnostic is NaN/Inf, exceeds its bound, or its divergence exceeds
-- max_divergence or max_growth; an error raised by step_hybrid also stops the
-- run as a blow-up of kind "error" (the reference's own errors propagate:
-- they are the caller's bug).
--
-- Returns {steps_run, blew_up, reason, blowup = {kind =, diagnostic =, step =,
-- value =} | nil, time_reference, time_hybrid, speedup, series = {name =
-- {step = {...}, rmse = {...}, max_abs = {...}, bias = {...}, rel = {...},
-- divergence = {...}}}, report = path | nil}. Times are the step functions'
-- wall time only (mimic.clock), diagnostics excluded.
local mimic = require "mimic"
local util = require "mimic.util"

local M = {}

local function fail(msg, level) error("mimic.aposteriori: " .. msg, (level or 1) + 1) end

local finite = util.finite

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

--- A deep copy: tensors and objects with a clone method are cloned, tables
--- copied recursively (shared sub-tables stay shared), the rest as is.
function M.copy(v, seen)
  if mimic.is_tensor(v) then return v:clone() end
  if type(v) ~= "table" then
    if type(v) == "userdata" then
      local ok, c = pcall(function() return v:clone() end)
      if ok and c ~= nil then return c end
    end
    return v
  end
  if type(v.clone) == "function" then return v:clone() end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do c[k] = M.copy(x, seen) end
  return setmetatable(c, getmetatable(v))
end

-- A diagnostic's value as a float64 column [N, 1], and whether it is all finite.
local function column(v, name, side, step)
  local t
  if type(v) == "number" then
    t = mimic.tensor({ { v } }, "float64")
  elseif mimic.is_tensor(v) then
    t = v:double():reshape({ -1, 1 })
  else
    fail(string.format("diagnostic '%s' returned %s for the %s at step %d; return a tensor or a number", name,
      type(v), side, step), 4)
  end
  return t
end

-- The first non-finite value of a column and its (1-based) position, or nil.
-- t - t is 0 for every finite value and NaN otherwise, so its sum is a cheap
-- test that cannot overflow; only a failing column is searched.
local function first_nonfinite(t)
  if finite((t - t):sum():item()) then return nil end
  for i, v in ipairs(t:reshape(-1):totable()) do
    if not finite(v) then return v, i end
  end
end

local COMPARE = { rmse = true, max_abs = true, rel = true }

local fmt_time = util.fmt_time

local function fmt_num(v)
  if v == nil then return "-" end
  if v ~= v then return "NaN" end
  return string.format("%.4e", v)
end

-- Progress, as mimic.train shows it: on a terminal one line rewritten in place
-- (at most 10 times a second); otherwise a plain line every tenth of the run
-- (at the first recorded step past each tenth) and at the end.
local function new_progress(o)
  local p = util.progress(o.output or io.stderr, not o.quiet)
  p.printed = 0
  return p
end

-- On a terminal, rewritten at most 10 times a second (the final line always).
local function progress_line(p, s, final)
  if not p.on then return end
  if p.tty then
    local now = mimic.clock()
    if not final and now - p.last < 0.1 then return end
    p.last = now
  end
  p:line(s)
end

local OPTS = {
  init = true, copy = true, step_reference = true, step_hybrid = true, steps = true, every = true,
  diagnostics = true, compare = true, bound = true, max_divergence = true, max_growth = true, out = true,
  title = true, command = true, provenance = true, quiet = true, output = true,
}

local function check_opts(o)
  if type(o) ~= "table" then fail("run{...}: expected a table of options", 3) end
  for k in pairs(o) do
    if not OPTS[k] then
      local names = {}
      for n in pairs(OPTS) do names[#names + 1] = n end
      table.sort(names)
      fail("unknown option '" .. tostring(k) .. "' (" .. table.concat(names, ", ") .. ")", 3)
    end
  end
  for _, k in ipairs({ "init", "step_reference", "step_hybrid" }) do
    if not is_callable(o[k]) then fail(k .. " must be a function", 3) end
  end
  if o.copy ~= nil and not is_callable(o.copy) then fail("copy must be a function(state) -> copy", 3) end
  if math.type(o.steps) ~= "integer" or o.steps < 0 then fail("steps must be an integer >= 0", 3) end
  local every = o.every or 1
  if math.type(every) ~= "integer" or every < 1 then fail("every must be an integer >= 1", 3) end
  if type(o.diagnostics) ~= "table" or next(o.diagnostics) == nil then
    fail("diagnostics = {name = function(state) return tensor_or_number end, ...} is required", 3)
  end
  local names = {}
  for k, f in pairs(o.diagnostics) do
    if type(k) ~= "string" then fail("diagnostics must be keyed by name", 3) end
    if not is_callable(f) then fail("diagnostic '" .. k .. "' must be a function(state)", 3) end
    names[#names + 1] = k
  end
  table.sort(names)
  local compare = o.compare or "rmse"
  if not (COMPARE[compare] or is_callable(compare)) then
    fail("compare must be 'rmse', 'max_abs', 'rel' or a function(hybrid, reference) -> number", 3)
  end
  for _, what in ipairs({ "bound", "max_divergence" }) do
    if o[what] ~= nil then
      if type(o[what]) ~= "table" then fail(what .. " must be a table {diagnostic = limit}", 3) end
      for k, v in pairs(o[what]) do
        if o.diagnostics[k] == nil then fail(what .. ": '" .. tostring(k) .. "' is not a diagnostic", 3) end
        if type(v) ~= "number" or not (v >= 0) then fail(what .. "." .. k .. " must be a number >= 0", 3) end
      end
    end
  end
  if o.max_growth ~= nil and (type(o.max_growth) ~= "number" or not (o.max_growth > 1)) then
    fail("max_growth must be a number > 1 (divergence over its first nonzero value)", 3)
  end
  if o.out ~= nil and type(o.out) ~= "string" then fail("out must be a folder path", 3) end
  return names, every, compare
end

-- Writes the report folder: summary, per-diagnostic table, divergence plot.
local function write_report(o, r, names, compare)
  local report = require "mimic.report"
  local rep = report.new { dir = o.out, title = o.title or "A-posteriori validation", command = o.command,
    provenance = o.provenance }
  local cname = type(compare) == "string" and compare or "custom (compare function)"
  local lines = {
    string.format("Reference and hybrid ran side by side from the same initial state for %d of %d steps; "
      .. "diagnostics compared every %d steps (divergence: %s).", r.steps_run, o.steps, o.every or 1, cname),
    "",
  }
  if r.blew_up then
    lines[#lines + 1] = "**The hybrid blew up**: " .. r.reason .. "."
  else
    lines[#lines + 1] = "The hybrid stayed stable over the whole run."
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = string.format("Time in the step functions: reference %.4g s, hybrid %.4g s (speed-up %s).",
    r.time_reference, r.time_hybrid, report.fmt(r.speedup, 3))
  rep:text(table.concat(lines, "\n"))
  local rows = {}
  for _, n in ipairs(names) do
    local s = r.series[n]
    local k = #s.step
    local maxdiv = 0
    for _, v in ipairs(s.divergence) do if v ~= v or v > maxdiv then maxdiv = v end end
    rows[#rows + 1] = { n, s.step[k] or "-", s.rmse[k], s.max_abs[k], s.rel[k], s.divergence[k], maxdiv }
  end
  rep:table { header = { "diagnostic", "last step", "rmse", "max abs", "rel", "divergence", "max divergence" },
    rows = rows, caption = "At the last recorded step (rel = rmse / rms of the reference):" }
  -- A log axis when every divergence after step 0 is positive (they grow by
  -- orders of magnitude when a hybrid drifts); step 0, where both runs start
  -- equal, is then left out. Otherwise a linear axis with every record.
  local x = r.series[names[1]].step
  local positive = #x > 1
  for _, n in ipairs(names) do
    for i = 2, #x do
      local v = r.series[n].divergence[i]
      if not (v > 0) or v == math.huge then positive = false end
    end
  end
  local first = positive and 2 or 1
  local xs, series = {}, {}
  for i = first, #x do xs[#xs + 1] = x[i] end
  for _, n in ipairs(names) do
    local y = {}
    for i = first, #x do y[#y + 1] = r.series[n].divergence[i] end
    series[#series + 1] = { label = n, y = y }
  end
  if #xs > 0 then
    rep:curves { name = "divergence", x = xs, series = series, xlabel = "step", ylabel = "divergence (" .. cname .. ")",
      logy = positive, caption = "Divergence of each diagnostic, hybrid vs reference, over the run." }
  end
  return (rep:write())
end

--- Runs the comparison; see the top of this file.
function M.run(o)
  local names, every, compare = check_opts(o)
  local prog = new_progress(o)
  local ref = o.init()
  if ref == nil then fail("init() returned nil; return the initial state", 2) end
  local hyb = (o.copy or M.copy)(ref)
  if rawequal(hyb, ref) and (type(ref) == "table" or type(ref) == "userdata") then
    fail("copy returned the state itself; the two runs need separate states", 2)
  end
  local r = { steps_run = 0, blew_up = false, time_reference = 0, time_hybrid = 0, series = {} }
  for _, n in ipairs(names) do
    r.series[n] = { step = {}, rmse = {}, max_abs = {}, bias = {}, rel = {}, divergence = {} }
  end
  local first_div = {}
  local t_start = mimic.clock()

  -- The first blow-up found (diagnostics are checked in name order) is the one reported.
  local function blowup(kind, name, step, value, why)
    if r.blew_up then return end
    r.blew_up = true
    r.blowup = { kind = kind, diagnostic = name, step = step, value = value }
    r.reason = why
  end

  -- Records every diagnostic at `step` (all of them, so the series stay
  -- aligned); false when the run must stop.
  local function record(step)
    local ok = true
    for _, n in ipairs(names) do
      local f = o.diagnostics[n]
      local a = column(f(hyb), n, "hybrid", step)
      local b = column(f(ref), n, "reference", step)
      local bad, at = first_nonfinite(b)
      if bad then
        fail(string.format("diagnostic '%s' of the reference is %s (element %d) at step %d: the reference itself is "
          .. "broken", n, bad ~= bad and "NaN" or "infinite", at, step), 3)
      end
      if a:numel() ~= b:numel() then
        fail(string.format("diagnostic '%s' has %d values in the hybrid, %d in the reference (step %d)", n,
          a:numel(), b:numel(), step), 3)
      end
      local s = r.series[n]
      local k = #s.step + 1
      s.step[k] = step
      bad, at = first_nonfinite(a)
      if bad then
        s.rmse[k], s.max_abs[k], s.bias[k], s.rel[k], s.divergence[k] = 0 / 0, 0 / 0, 0 / 0, 0 / 0, 0 / 0
        blowup("nonfinite", n, step, bad, string.format("diagnostic '%s' of the hybrid is %s (element %d) at step %d",
          n, bad ~= bad and "NaN" or "infinite", at, step))
        ok = false
        goto continue
      end
      do
        local m = a:numel() > 0 and mimic.validate.regression(a, b)[1] or { rmse = 0, max_abs = 0, bias = 0 }
        local rms_ref = b:numel() > 0 and math.sqrt((b * b):mean():item()) or 0
        local rel = rms_ref > 0 and m.rmse / rms_ref or (m.rmse == 0 and 0 or math.huge)
        local div
        if compare == "rmse" then div = m.rmse
        elseif compare == "max_abs" then div = m.max_abs
        elseif compare == "rel" then div = rel
        else
          div = compare(a, b)
          if type(div) ~= "number" then
            fail(string.format("compare returned %s for diagnostic '%s'; return a number", type(div), n), 3)
          end
        end
        s.rmse[k], s.max_abs[k], s.bias[k], s.rel[k], s.divergence[k] = m.rmse, m.max_abs, m.bias, rel, div
        local top = a:numel() > 0 and a:abs():max():item() or 0
        if o.bound and o.bound[n] and top > o.bound[n] then
          blowup("bound", n, step, top, string.format("diagnostic '%s' of the hybrid reached |value| = %.6g > bound "
            .. "%.6g at step %d", n, top, o.bound[n], step))
          ok = false
        elseif div ~= div then
          blowup("divergence", n, step, div, string.format("the divergence of diagnostic '%s' is NaN at step %d", n,
            step))
          ok = false
        elseif o.max_divergence and o.max_divergence[n] and div > o.max_divergence[n] then
          blowup("divergence", n, step, div, string.format("the divergence of diagnostic '%s' reached %.6g > %.6g at "
            .. "step %d", n, div, o.max_divergence[n], step))
          ok = false
        else
          if not first_div[n] and div > 0 then first_div[n] = { step = step, value = div } end
          if o.max_growth and first_div[n] and div > o.max_growth * first_div[n].value then
            blowup("growth", n, step, div, string.format("the divergence of diagnostic '%s' grew %.6g-fold (%.6g at "
              .. "step %d to %.6g at step %d) > max_growth %.6g", n, div / first_div[n].value, first_div[n].value,
              first_div[n].step, div, step, o.max_growth))
            ok = false
          end
        end
      end
      ::continue::
    end
    return ok
  end

  local function show(step, final)
    if not prog.on or (not prog.tty and step == prog.printed) then return end
    local interval = math.max(1, o.steps // 10)
    if not prog.tty and not final and step < interval * (prog.printed // interval + 1) then return end
    prog.printed = step
    local n = names[1]
    local s = r.series[n]
    local elapsed = mimic.clock() - t_start
    local eta = step > 0 and elapsed / step * (o.steps - step) or 0 / 0
    progress_line(prog, string.format("step %" .. #tostring(o.steps) .. "d/%d  %s(%s) %s  reference %.3f s  "
      .. "hybrid %.3f s  ETA %s", step, o.steps, type(compare) == "string" and compare or "divergence", n,
      fmt_num(s.divergence[#s.divergence]), r.time_reference, r.time_hybrid, fmt_time(eta)), final)
  end

  local ok = record(0)
  for t = 1, o.steps do
    if not ok then break end
    local t0 = mimic.clock()
    local nr = o.step_reference(ref, t)
    local t1 = mimic.clock()
    if nr ~= nil then ref = nr end
    local okh, nh = pcall(o.step_hybrid, hyb, t)
    local t2 = mimic.clock()
    r.time_reference = r.time_reference + (t1 - t0)
    r.time_hybrid = r.time_hybrid + (t2 - t1)
    r.steps_run = t
    if not okh then
      -- a failed hybrid is a failed run: blew_up must say so to a caller that checks only it
      r.blew_up = true
      r.blowup = { kind = "error", step = t, value = nh }
      r.reason = string.format("step_hybrid raised an error at step %d: %s", t, tostring(nh))
      r.error = nh
      ok = false
      break
    end
    if nh ~= nil then hyb = nh end
    if t % every == 0 or t == o.steps then
      ok = record(t)
      show(t, false)
    end
  end
  r.speedup = r.time_hybrid > 0 and r.time_reference / r.time_hybrid or 0 / 0
  show(r.steps_run, true)
  if r.reason then prog:note("aposteriori: stopped: " .. r.reason) end
  prog:finish()
  if o.out then r.report = write_report(o, r, names, compare) end
  return r
end

return M
