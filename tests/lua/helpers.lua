-- Helpers shared by the luaunit suites (tests/run puts tests/lua on
-- LUA_PATH): local raises = require("helpers").raises
local lu = require "luaunit"

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

return M
