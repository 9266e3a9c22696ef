-- Compares the Lua tensor API against NumPy on the fixtures written by
-- tests/fixtures/gen_numpy.py (tests/fixtures/numpy_ops.lua; see its docstring
-- for the format). One luaunit test per fixture case.
local lu = require "luaunit"
local mimic = require "mimic"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fixtures = dofile(here .. "/../fixtures/numpy_ops.lua")
local unpack = table.unpack

-- The input tensor a fixture describes, built as the view it asks for.
local function build(spec)
  local data = spec.data
  if spec.gen then
    data = {}
    for i = 0, spec.gen.n - 1 do data[i + 1] = (i * spec.gen.a % spec.gen.m) / spec.gen.m end
  end
  local t = mimic.tensor(data, spec.dtype):view(spec.shape)
  local l = spec.layout
  if l and l.kind == "transpose" then
    t = t:transpose(l.d1, l.d2)
  elseif l and l.kind == "slice" then
    t = t:slice(l.dim, l.start, l.stop, l.step)
  end
  if l then assert(not t:is_contiguous() or t:numel() <= 1, "fixture view should be non-contiguous") end
  return t
end

local function shape_str(s) return "[" .. table.concat(s, ",") .. "]" end

local function check(actual, exp, rtol, atol, what)
  lu.assertTrue(mimic.is_tensor(actual), what .. ": result is not a tensor")
  lu.assertEquals(shape_str(actual:size()), shape_str(exp.shape), what .. ": shape")
  lu.assertEquals(actual:dtype(), exp.dtype, what .. ": dtype")
  local got = actual:reshape(-1):totable()
  lu.assertEquals(#got, #exp.data, what .. ": element count")
  for i, e in ipairs(exp.data) do
    local g = got[i]
    local ok
    if exp.dtype == "bool" or exp.dtype == "int64" then
      ok = g == e
    elseif e ~= e then
      ok = g ~= g
    elseif e == math.huge or e == -math.huge then
      ok = g == e
    else
      ok = math.abs(g - e) <= atol + rtol * math.abs(e)
    end
    if not ok then
      lu.fail(string.format("%s: element %d is %s, NumPy gives %s (rtol %g, atol %g)", what, i, tostring(g),
        tostring(e), rtol, atol))
    end
  end
end

local BINARY = { add = true, sub = true, mul = true, div = true, pow = true, maximum = true, minimum = true }
local META = { add = "__add", sub = "__sub", mul = "__mul", div = "__div", pow = "__pow" }
local UNARY = { neg = true, abs = true, exp = true, log = true, sqrt = true, tanh = true, sigmoid = true,
  relu = true, sin = true, cos = true, square = true, sign = true }
local COMPARE = { eq = true, ne = true, lt = true, le = true, gt = true, ge = true }

-- Runs a case; returns the list of results, plus extra {label, results} checks
-- of equivalent spellings (method, operator, in-place).
local function run(c, x)
  local args, op = c.args, c.op
  local a = function() return unpack(args, 1, args.n) end
  local base = op:gsub("_rev$", "")
  local extra = {}
  if op:match("_rev$") then
    local r = mimic[base](args[1], x[1])
    if META[base] then extra[#extra + 1] = { "operator", { getmetatable(x[1])[META[base]](args[1], x[1]) } } end
    return { r }, extra
  elseif BINARY[op] then
    local rhs = x[2] or args[1]
    local r = mimic[op](x[1], rhs)
    extra[#extra + 1] = { "method", { x[1][op](x[1], rhs) } }
    if META[op] then extra[#extra + 1] = { "operator", { getmetatable(x[1])[META[op]](x[1], rhs) } } end
    if x[1]:dtype() == "float32" and r:dtype() == "float32" and shape_str(r:size()) == shape_str(x[1]:size()) then
      extra[#extra + 1] = { "in-place", { x[1]:clone()[op .. "_"](x[1]:clone(), rhs) } }
    end
    return { r }, extra
  elseif UNARY[op] then
    extra[#extra + 1] = { "in-place", { x[1]:clone()[op .. "_"](x[1]:clone()) } }
    extra[#extra + 1] = { "method", { x[1][op](x[1]) } }
    return { mimic[op](x[1]) }, extra
  elseif COMPARE[op] then
    return { mimic[op](x[1], x[2] or args[1]) }, extra
  elseif op == "clamp" then
    local y = x[1]:clone()
    extra[#extra + 1] = { "in-place", { y:clamp_(a()) } }
    return { mimic.clamp(x[1], a()) }, extra
  elseif op == "where" then
    return { mimic.where(x[1], x[2], x[3] or args[1]) }, extra
  elseif op == "max2" or op == "min2" then
    return { mimic[op:sub(1, 3)](x[1], a()) }, extra
  elseif op == "cat" or op == "stack" then
    return { mimic[op](x, a()) }, extra
  elseif op == "split" then
    return mimic.split(x[1], a()), extra
  elseif op == "take" then
    return { x[1]:reshape(-1):index_select(1, x[2]) }, extra
  elseif op == "gather" or op == "index_select" then
    return { mimic[op](x[1], args[1], x[2]) }, extra
  elseif op == "index" then
    return { x[1][x[2]] }, extra
  elseif op == "sort" or op == "topk" then
    return { mimic[op](x[1], a()) }, extra
  elseif op == "arange" or op == "linspace" or op == "eye" then
    return { mimic[op](a()) }, extra
  else -- everything else: mimic.op(inputs..., args...)
    local all = {}
    for i = 1, #x do all[i] = x[i] end
    for i = 1, args.n do all[#x + i] = args[i] end
    local r = { mimic[op](unpack(all, 1, #x + args.n)) }
    extra[#extra + 1] = { "method", { x[1][op](unpack(all, 1, #x + args.n)) } }
    if op == "min" or op == "max" then r[2] = nil end -- the indices: checked by the max2/min2 cases
    return r, extra
  end
end

TestNumpy = {}

for i, c in ipairs(fixtures.cases) do
  local tname = string.format("test_%03d_%s", i, c.name:gsub("[^%w]+", "_"))
  TestNumpy[tname] = function()
    local x = {}
    for k, spec in ipairs(c.inputs) do x[k] = build(spec) end
    local results, extra = run(c, x)
    lu.assertEquals(#results, #c.expected, c.name .. ": number of results")
    for k, e in ipairs(c.expected) do check(results[k], e, c.rtol, c.atol, c.name .. " result " .. k) end
    for _, ex in ipairs(extra) do
      for k, e in ipairs(c.expected) do
        if ex[2][k] then check(ex[2][k], e, c.rtol, c.atol, c.name .. " (" .. ex[1] .. ") result " .. k) end
      end
    end
  end
end

os.exit(lu.LuaUnit.run())
