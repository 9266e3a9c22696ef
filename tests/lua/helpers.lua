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

return M
