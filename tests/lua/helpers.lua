-- Helpers shared by the luaunit suites (tests/run puts tests/lua on
-- LUA_PATH): local raises = require("helpers").raises
local lu = require "luaunit"
local mimic = require "mimic"

local M = {}

-- Checks the results of pcall(f, ...): f must have failed with a message
-- containing `plain` literally. Returns the message.
function M.check_error(plain, ok, msg)
  lu.assertFalse(ok, "expected an error containing: " .. plain)
  msg = tostring(msg)
  if not msg:find(plain, 1, true) then lu.fail(string.format("error message %q does not contain %q", msg, plain)) end
  return msg
end

-- The message of the error f(...) raises, which must contain `plain`. The
-- pcall runs here, so an error raised "at the caller's line" of an API called
-- directly as f (raises(msg, mimic.train, opts)) names this file: a suite
-- that asserts that position calls check_error(plain, pcall(f, ...)) itself.
function M.raises(plain, f, ...)
  return M.check_error(plain, pcall(f, ...))
end

-- "[2,3]": a tensor's shape, for messages and shape comparisons.
function M.shape(t) return "[" .. table.concat(t:size(), ",") .. "]" end

-- Every element of a within rtol/atol of the tensor b (defaults 1e-9, 1e-12).
function M.close(a, b, rtol, atol, what)
  lu.assertEquals(M.shape(a), M.shape(b), (what or "") .. ": shape")
  local x, y = a:detach():reshape(-1):totable(), b:detach():reshape(-1):totable()
  for i = 1, #y do
    local err = math.abs(x[i] - y[i])
    if not (err <= (atol or 1e-12) + (rtol or 1e-9) * math.abs(y[i])) then
      lu.fail(string.format("%s: element %d is %.17g, expected %.17g", what or "", i, x[i], y[i]))
    end
  end
end

-- A tensor of a fixture ({shape=, dtype=, data=}).
function M.fixture(spec) return mimic.tensor(spec.data, spec.dtype):view(spec.shape) end

-- A new empty directory for a suite's files (os.tmpname's name, made a directory).
function M.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -p " .. dir)
  return dir
end

-- max |a - b| / max |b| over the elements of two tensors of one shape (in float64).
function M.maxrel(a, b)
  lu.assertEquals(a:size(), b:size())
  local d = (a:detach():to("float64") - b:detach():to("float64")):abs():max():item()
  return d / math.max(b:detach():to("float64"):abs():max():item(), 1e-30)
end

-- A Sequential's forward done layer by layer in Lua (never the compiled plan).
function M.lua_forward(m, x)
  return mimic.no_grad(function()
    local y = x
    for _, c in ipairs(m:children()) do y = c(y) end
    return y
  end)
end

-- The product of a list of sizes: the features of a per-sample shape.
function M.numel(shape)
  local p = 1
  for _, v in ipairs(shape) do p = p * v end
  return p
end

-- Each case { name, per-sample input shape, builder(dtype, generator) } in
-- float32 and float64: the model compiled (chunk 3) gives, for batches of
-- 1, 2, 3, 4, 7 samples, the layer-by-layer forward's values from
-- plan:forward on rows, from model:forward (which runs the plan and keeps
-- the output shape) and in deterministic mode.
function M.check_compiled_cases(cases)
  for _, dt in ipairs({ "float32", "float64" }) do
    for _, c in ipairs(cases) do
      local g = mimic.Generator(11)
      local m = c[3](dt, g):evaluate()
      local nin = M.numel(c[2])
      local p = m:compile({ input_shape = c[2], chunk = 3, dtype = dt })
      lu.assertEquals(p:nin(), nin)
      for _, n in ipairs({ 1, 2, 3, 4, 7 }) do
        local shp = { n }
        for _, v in ipairs(c[2]) do shp[#shp + 1] = v end
        local x = g:rand(shp, { dtype = dt }) * 4 - 2
        local ref = M.lua_forward(m, x)
        local y = p:forward(x:reshape({ n, nin }))
        local tol = dt == "float32" and 1e-5 or 1e-12
        local e = M.maxrel(y, ref:reshape({ n, p:nout() }))
        lu.assertTrue(e <= tol, string.format("%s %s n=%d: rel err %g", c[1], dt, n, e))
        local y2 = mimic.no_grad(function() return m:forward(x) end)
        lu.assertEquals(y2:size(), ref:size())
        lu.assertTrue(M.maxrel(y2, ref) <= tol)
        p:set_deterministic(true)
        local yd = p:forward(x:reshape({ n, nin }))
        lu.assertTrue(M.maxrel(yd, ref:reshape({ n, p:nout() })) <= tol, c[1] .. " deterministic")
        p:set_deterministic(false)
      end
    end
  end
end

return M
