-- Helpers shared by the pure-Lua modules built on mimic.train (train.lua,
-- search.lua): errors raised at the user's line, option checking, small
-- predicates. Internal: not a documented part of the API, and not one of
-- mimic's lazily loaded submodules (require "mimic.util").
local mimic = require "mimic"
local M = {}

local THIS = debug.getinfo(1, "S").source

-- M.raiser(source, fn) -> raise(fmt, ...): raises "fn: <message>" (fmt is
-- formatted only when arguments follow) at the first caller outside the file
-- `source` (the module's own debug.getinfo(1, "S").source) and this file,
-- however deep inside them the problem is found: as error(msg, 2) would from
-- the API function the user called. C frames (mimic.no_grad, pcall) between
-- the module and its caller are passed over too. A module that calls another
-- (search calls mimic.train) gets that module's errors at its own line.
function M.raiser(source, fn)
  return function(fmt, ...)
    local msg = fn .. ": " .. (select("#", ...) > 0 and string.format(fmt, ...) or fmt)
    local level = 2 -- the caller of raise; levels count as error()'s do
    while true do
      local info = debug.getinfo(level, "S")
      if not info or (info.source ~= source and info.source ~= THIS and info.what ~= "C") then break end
      level = level + 1
    end
    error(msg, level)
  end
end

-- A function or a table/userdata with a __call metamethod.
function M.callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

-- v, when it is an integer >= min; otherwise an error through raise.
function M.check_int(raise, name, v, min)
  if math.type(v) ~= "integer" or v < min then raise("%s must be an integer >= %d, got %s", name, min, tostring(v)) end
  return v
end

-- The keys of t, sorted (for messages that list the valid names).
function M.sorted_keys(t)
  local names = {}
  for n in pairs(t) do names[#names + 1] = n end
  table.sort(names)
  return names
end

-- Checks the options table o of an API function against the set `known`
-- (name -> true): a typo is an error naming every option, not a silently
-- ignored one.
function M.check_options(raise, o, known)
  if type(o) ~= "table" then raise("expects a table of options, got %s", type(o)) end
  for k in pairs(o) do
    if not known[k] then
      raise("unknown option '%s' (options: %s)", tostring(k), table.concat(M.sorted_keys(known), ", "))
    end
  end
end

-- The same check for a public function `fn` called straight from the user's
-- code: errors name fn and point at the user's line (level 3), e.g.
-- "rfmip.load: unknown option 'expt' (options: dir, experiment, fluxes)".
function M.check_opts(fn, o, known)
  if type(o) ~= "table" then error(string.format("%s: options must be a table, got %s", fn, type(o)), 3) end
  for k in pairs(o) do
    if not known[k] then
      error(string.format("%s: unknown option '%s' (options: %s)", fn, tostring(k),
        table.concat(M.sorted_keys(known), ", ")), 3)
    end
  end
end

-- The validation pair the options o of mimic.train or mimic.search give:
-- o.val or o.data.val (not both), never together with o.val_fraction; nil
-- when neither is given. o.data must be a table.
function M.val_option(raise, o)
  local val = o.val
  if o.data.val ~= nil then
    if val ~= nil then raise("give the validation data once: val or data.val") end
    val = o.data.val
  end
  if val ~= nil and o.val_fraction ~= nil then raise("give either val or val_fraction, not both") end
  return val
end

-- Whether path names a file this process can open for reading.
function M.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- True for a number that is neither NaN nor infinite.
function M.finite(v) return v == v and v ~= math.huge and v ~= -math.huge end

-- A duration in seconds as m:ss or h:mm:ss ("?" when unknown or negative).
function M.fmt_time(s)
  if not M.finite(s) or s < 0 then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%d:%02d", s // 60, s % 60)
end

-- Progress output shared by mimic.train and mimic.aposteriori. On a terminal:
-- one line rewritten in place; otherwise (a log file, a batch job's output)
-- plain lines. M.progress(out, on) -> p with p:line(s), p:note(s), p:finish();
-- p.tty and p.last (the clock of the last rewrite) let callers rate-limit.
local Progress = {}
Progress.__index = Progress

function M.progress(out, on)
  local term = os.getenv("TERM")
  local tty = on and term ~= nil and term ~= "" and term ~= "dumb" and mimic.isatty(out)
  return setmetatable({ out = out, on = on, tty = tty, last = -math.huge, shown = false }, Progress)
end

function Progress:line(s)
  if not self.on then return end
  if self.tty then
    self.out:write("\r\27[K", s)
    self.shown = true
  else
    self.out:write(s, "\n")
  end
  self.out:flush()
end

-- A message of its own (resume, early stop, a blow-up): on a terminal, below the progress line.
function Progress:note(s)
  if not self.on then return end
  if self.tty and self.shown then self.out:write("\n") end
  self.shown = false
  self.out:write(s, "\n")
  self.out:flush()
end

-- Ends a rewritten line so what follows starts on a new one.
function Progress:finish()
  if self.on and self.tty and self.shown then
    self.out:write("\n")
    self.out:flush()
    self.shown = false
  end
end

return M
