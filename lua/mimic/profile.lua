-- mimic.profile: the report of a profiler (mimic.profiler(), lua/lembed.c):
-- where a run's time goes, and what replacing one region by a surrogate can
-- give at best (docs/embedding.md).
--
--   local prof = mimic.profiler()
--   prof:begin("step") ... prof:finish("step")      -- or prof:wrap / prof:time
--   local md, info = prof:report { replace = { region = "radiation", cost = 0.05 },
--                                  oneoff = 3 * 3600, file = "profile.md" }
--
-- The table lists every region: calls, total (inclusive) and self (exclusive)
-- seconds, and the share of the run (total / elapsed) in percent. With
-- `replace`, the region's share f and the surrogate's cost ratio c (its time
-- over the region's; 0.05 = 20x faster) give Amdahl's bound on the whole
-- run's speed-up, 1 / ((1 - f) + f c). With `oneoff` (seconds of data
-- generation and training), the number of runs until the surrogate has paid
-- for itself: oneoff / (T_run - T_run / speedup). Both are upper bounds: the
-- real surrogate also costs its guard, its fallbacks, and moving data.
local mimic = require "mimic"

local M = {}

local function fail(msg, level) error("mimic.profile: " .. msg, (level or 1) + 1) end

local function check_number(v, what, level)
  if type(v) ~= "number" or v ~= v then fail(what .. " must be a number, got " .. tostring(v), level + 1) end
  return v
end

--- Amdahl's bound on the whole run's speed-up: fraction f of the run replaced
--- by something costing c times as much (the C formula, mimic/profile.h).
function M.amdahl(fraction, cost)
  check_number(fraction, "amdahl: fraction", 2)
  check_number(cost, "amdahl: cost", 2)
  if fraction < 0 or fraction > 1 then fail("amdahl: fraction " .. fraction .. " must be in [0, 1]", 2) end
  if cost < 0 or cost == math.huge then fail("amdahl: cost " .. cost .. " must be finite and >= 0", 2) end
  return mimic._amdahl_bound(fraction, cost)
end

--- Runs until one-off costs are repaid (math.huge if nothing is saved).
function M.break_even(run_seconds, speedup, oneoff_seconds)
  check_number(run_seconds, "break_even: run_seconds", 2)
  check_number(speedup, "break_even: speedup", 2)
  check_number(oneoff_seconds, "break_even: oneoff_seconds", 2)
  if run_seconds < 0 or oneoff_seconds < 0 or speedup <= 0 then
    fail("break_even: run and one-off seconds must be >= 0 and the speed-up > 0", 2)
  end
  return mimic._break_even_runs(run_seconds, speedup, oneoff_seconds)
end

local function fmt(x, digits)
  if x ~= x then return "n/a" end
  if x == math.huge then return "inf" end
  return string.format("%." .. (digits or 4) .. "g", x)
end

local function fmt_seconds(s)
  if s ~= s then return "n/a" end
  if s == math.huge then return "never" end
  if s >= 86400 then return string.format("%.1f days", s / 86400) end
  if s >= 3600 then return string.format("%.1f h", s / 3600) end
  if s >= 60 then return string.format("%.1f min", s / 60) end
  return string.format("%.3g s", s)
end

local OPTS = { replace = true, oneoff = true, file = true, title = true, elapsed = true }

--- The markdown report of profiler `prof` (see the top of this file). opts:
--- replace = {region =, cost =}, oneoff = seconds, file = path (written
--- atomically), title = heading, elapsed = seconds (the run's length; default
--- prof:elapsed()). Returns the markdown and a table of the numbers:
--- {elapsed, entries, fraction, amdahl, saved_per_run, break_even}.
function M.report(prof, opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("report: options must be a table", 2) end
  for k in pairs(opts) do
    if not OPTS[k] then fail("report: unknown option '" .. tostring(k) .. "' (replace, oneoff, file, title, elapsed)", 2) end
  end
  local elapsed = opts.elapsed or prof:elapsed()
  check_number(elapsed, "report: elapsed", 2)
  local entries = prof:entries()
  local sorted = {}
  for i, e in ipairs(entries) do sorted[i] = e end
  table.sort(sorted, function(a, b)
    if a.total ~= b.total then return a.total > b.total end
    return a.name < b.name
  end)
  local info = { elapsed = elapsed, entries = entries }
  local md = { "# " .. (opts.title or "Profile"), "",
    string.format("Run: %s s wall time; regions sorted by total time. Total includes nested regions, self does not; "
      .. "share = total / run.", fmt(elapsed)), "",
    "| region | calls | total s | self s | share % |", "|---|---|---|---|---|" }
  for _, e in ipairs(sorted) do
    local share = elapsed > 0 and 100 * e.total / elapsed or 0 / 0
    md[#md + 1] = string.format("| %s | %d | %s | %s | %s |", e.name:gsub("|", "\\|"), e.calls, fmt(e.total), fmt(e.self),
      fmt(share, 3))
  end
  md[#md + 1] = ""

  local r = opts.replace
  if r ~= nil then
    if type(r) ~= "table" or type(r.region) ~= "string" then
      fail("report: replace must be {region = name, cost = ratio}", 2)
    end
    local cost = r.cost
    if type(cost) ~= "number" or cost ~= cost or cost < 0 or cost == math.huge then
      fail("report: replace.cost must be a finite number >= 0 (the surrogate's time over the region's: 0.05 is 20x faster)", 2)
    end
    local entry
    for _, e in ipairs(entries) do if e.name == r.region then entry = e end end
    if not entry then
      local names = {}
      for i, e in ipairs(entries) do names[i] = e.name end
      fail(string.format("report: replace.region '%s' is not a region of this profiler (it has: %s)", r.region,
        #names > 0 and table.concat(names, ", ") or "none"), 2)
    end
    if not (elapsed > 0) then fail("report: the run's elapsed time is 0; profile something first", 2) end
    local f = math.min(entry.total / elapsed, 1)
    local speedup = M.amdahl(f, cost)
    info.fraction, info.amdahl = f, speedup
    info.saved_per_run = elapsed - elapsed / speedup
    md[#md + 1] = "## Replacing `" .. r.region .. "`"
    md[#md + 1] = ""
    md[#md + 1] = string.format("`%s` takes %s%% of the run (f = %s). A surrogate costing %s of its time gives the "
      .. "whole run a speed-up of at most 1 / ((1 - f) + f c) = **%sx** (Amdahl's bound), saving up to %s per run.",
      r.region, fmt(100 * f, 3), fmt(f), fmt(cost), fmt(speedup, 3), fmt_seconds(info.saved_per_run))
    md[#md + 1] = ""
    if opts.oneoff ~= nil then
      local oneoff = opts.oneoff
      if type(oneoff) ~= "number" or oneoff ~= oneoff or oneoff < 0 or oneoff == math.huge then
        fail("report: oneoff must be seconds >= 0 (data generation + training)", 2)
      end
      info.break_even = M.break_even(elapsed, speedup, oneoff)
      md[#md + 1] = string.format("With one-off costs of %s (data generation and training), the surrogate pays off "
        .. "after **%s runs** like this one, at best.", fmt_seconds(oneoff),
        info.break_even == math.huge and "never (nothing is saved)" or fmt(info.break_even, 3))
      md[#md + 1] = ""
    end
    md[#md + 1] = "Both figures are bounds: the guard, fallbacks and moving data to and from the surrogate "
      .. "cost time too; measure the hybrid run to know."
    md[#md + 1] = ""
  elseif opts.oneoff ~= nil then
    fail("report: oneoff needs replace = {region =, cost =}", 2)
  end
  local text = table.concat(md, "\n")
  if opts.file ~= nil then
    if type(opts.file) ~= "string" then fail("report: file must be a path", 2) end
    require("mimic.report").write_file(opts.file, text)
  end
  return text, info
end

return M
