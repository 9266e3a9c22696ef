-- The profiler in Lua (lua/lembed.c, lua/mimic/profile.lua): regions by name
-- and id, nesting (self = total - children), wrap/time ending their region
-- even on errors, reset, nesting errors, and the report's table, Amdahl bound
-- and break-even against hand-computed values.
local lu = require "luaunit"
local mimic = require "mimic"
local helpers = require "helpers"
local raises = helpers.raises

local function busy(seconds)
  local t = mimic.clock() + seconds
  while mimic.clock() < t do end
end

local function entry(p, name)
  for _, e in ipairs(p:entries()) do if e.name == name then return e end end
end

local SLACK = 0.25 -- a loaded machine only adds time; a gross bookkeeping error exceeds this

function test_nested_regions()
  local p = mimic.profiler()
  local step = p:region("step")
  lu.assertEquals(step, 1)
  lu.assertEquals(p:region("step"), 1)
  lu.assertEquals(p:region("kernel"), 2)
  local t0 = mimic.clock()
  p:begin(step)
  busy(0.004)
  for _ = 1, 3 do
    p:begin("kernel")
    busy(0.002)
    p:finish(2)
  end
  p:finish("step")
  local wall = mimic.clock() - t0
  local s, k = entry(p, "step"), entry(p, "kernel")
  lu.assertEquals(s.calls, 1)
  lu.assertEquals(k.calls, 3)
  lu.assertEquals(s.id, 1)
  lu.assertTrue(k.total >= 0.006 and k.total < 0.006 + SLACK, tostring(k.total))
  lu.assertAlmostEquals(k.self, k.total, 1e-9)
  lu.assertTrue(s.total >= 0.010 and s.total <= wall + 1e-6, tostring(s.total))
  lu.assertAlmostEquals(s.self, s.total - k.total, 3e-9)
  lu.assertTrue(s.self >= 0.004)
  lu.assertTrue(p:elapsed() >= s.total)
  lu.assertStrContains(tostring(p), "Profiler(2 regions")
end

function test_wrap_and_time()
  local p = mimic.profiler()
  local f = p:wrap("add", function(a, b)
    busy(0.001)
    return a + b, a * b
  end)
  local s, m = f(3, 4)
  lu.assertEquals({ s, m }, { 7, 12 })
  f(1, 1)
  lu.assertEquals(entry(p, "add").calls, 2)
  lu.assertTrue(entry(p, "add").total >= 0.002)
  lu.assertEquals({ p:time("mul", function(a, b) return a * b end, 6, 7) }, { 42 })
  lu.assertEquals(select("#", p:time("none", function() end)), 0)
  -- nested: time inside a wrapped function is a child
  local outer = p:wrap("outer", function() return p:time("inner", busy, 0.002) end)
  outer()
  lu.assertAlmostEquals(entry(p, "outer").self, entry(p, "outer").total - entry(p, "inner").total, 3e-9)
  -- an error inside ends the region and propagates unchanged
  local bad = p:wrap("bad", function() error({ code = 7 }) end)
  local ok, err = pcall(bad)
  lu.assertFalse(ok)
  lu.assertEquals(err.code, 7)
  lu.assertEquals(entry(p, "bad").calls, 1)
  raises("boom", p.time, p, "bad", function() error("boom") end)
  p:begin("after") -- nothing is left open
  p:finish("after")
  lu.assertEquals(entry(p, "bad").calls, 2)
end

function test_reset()
  local p = mimic.profiler()
  p:time("a", busy, 0.002)
  p:begin("open")
  p:reset()
  local a = entry(p, "a")
  lu.assertEquals({ a.calls, a.total, a.self }, { 0, 0, 0 })
  lu.assertTrue(p:elapsed() < SLACK)
  raises("no region is open", p.finish, p, "open")
  lu.assertEquals(p:region("a"), 1) -- ids survive a reset
  p:time("a", function() end)
  lu.assertEquals(entry(p, "a").calls, 1)
end

function test_errors()
  local p = mimic.profiler()
  p:begin("alpha")
  p:begin("beta")
  raises("region 'alpha' ends but the innermost open region is 'beta'", p.finish, p, "alpha")
  p:finish("beta")
  p:finish("alpha")
  raises("region id 5 does not exist", p.begin, p, 5)
  raises("region id 0 does not exist", p.finish, p, 0)
  raises("region name or id expected", p.begin, p, {})
  raises("region name is empty", p.begin, p, "")
  raises("function expected, got number", p.wrap, p, "x", 3)
  -- the region a wrapped function leaves open is reported
  local leaky = p:wrap("leaky", function() p:begin("inner") end)
  raises("region 'leaky' ends but the innermost open region is 'inner'", leaky)
end

function test_formulas()
  local prof = mimic.profile
  lu.assertAlmostEquals(prof.amdahl(0.5, 0.1), 20 / 11, 1e-14)
  lu.assertAlmostEquals(prof.amdahl(0.9, 0), 10, 1e-12)
  lu.assertEquals(prof.amdahl(1, 0), math.huge)
  lu.assertAlmostEquals(prof.break_even(100, 2, 1000), 20, 1e-12)
  lu.assertEquals(prof.break_even(100, 1, 1000), math.huge)
  raises("fraction 1.5 must be in [0, 1]", prof.amdahl, 1.5, 0.1)
  raises("speed-up > 0", prof.break_even, 100, 0, 1000)
  raises("cost must be a number", prof.amdahl, 0.5, "x")
end

function test_report()
  local p = mimic.profiler()
  p:begin("step")
  p:time("kernel", busy, 0.003)
  busy(0.001)
  p:finish("step")
  p:time("io", busy, 0.001)
  local k = entry(p, "kernel")
  -- with the run's length given, f = 0.5 exactly: 1 / (0.5 + 0.5 * 0.1) = 20/11,
  -- saved = T (1 - 11/20) = 0.45 T, and 0.9 T of one-off cost pays off after 2 runs.
  local T = 2 * k.total
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  local file = dir .. "/profile.md"
  local md, info = p:report { replace = { region = "kernel", cost = 0.1 }, oneoff = 0.9 * T, elapsed = T, file = file,
    title = "Toy model" }
  lu.assertAlmostEquals(info.fraction, 0.5, 1e-12)
  lu.assertAlmostEquals(info.amdahl, 20 / 11, 1e-12)
  lu.assertAlmostEquals(info.saved_per_run, 0.45 * T, 1e-12)
  lu.assertAlmostEquals(info.break_even, 2, 1e-9)
  lu.assertEquals(#info.entries, 3)
  lu.assertStrContains(md, "# Toy model")
  lu.assertStrContains(md, "| region | calls | total s | self s | share % |")
  lu.assertStrContains(md, string.format("| kernel | 1 | %.4g | %.4g | 50 |", k.total, k.self))
  lu.assertStrContains(md, "**1.82x** (Amdahl's bound)")
  lu.assertStrContains(md, "pays off after **2 runs**")
  -- sorted by total: step (which contains kernel) first; io after kernel only
  -- if it measured less (a busy loop preempted on a loaded machine runs long)
  lu.assertTrue(md:find("| step |", 1, true) < md:find("| kernel |", 1, true))
  local io_first = entry(p, "io").total > k.total
  lu.assertEquals(md:find("| io |", 1, true) < md:find("| kernel |", 1, true), io_first)
  local f = assert(io.open(file))
  lu.assertEquals(f:read("a"), md)
  f:close()
  os.execute("rm -rf " .. dir)
  -- defaults: the profiler's own elapsed time; a region sharing nothing saves nothing
  local md2, info2 = p:report { replace = { region = "io", cost = 1 }, oneoff = 10 }
  lu.assertAlmostEquals(info2.amdahl, 1, 1e-12)
  lu.assertEquals(info2.break_even, math.huge)
  lu.assertStrContains(md2, "never (nothing is saved)")
  lu.assertNil(select(2, p:report()).amdahl)
  raises("replace.region 'nope' is not a region of this profiler (it has: step, kernel, io)", p.report, p,
    { replace = { region = "nope", cost = 0.1 } })
  raises("replace.cost must be a finite number >= 0", p.report, p, { replace = { region = "io", cost = -1 } })
  raises("unknown option 'replce'", p.report, p, { replce = {} })
  raises("oneoff needs replace", p.report, p, { oneoff = 3 })
end

function test_collected()
  -- many profilers, dropped: __gc frees them (ASan-built hosts check the C side)
  for i = 1, 200 do
    local p = mimic.profiler()
    p:time("r" .. i, function() end)
  end
  collectgarbage()
  collectgarbage()
  lu.assertTrue(true)
end

os.exit(lu.LuaUnit.run())
