-- Shared plumbing of the Lua benches (tests/bench/bench_*.lua): rounds from
-- MIMIC_BENCH_REPEATS, medians, timing, the interleaved PyTorch baseline
-- (tests/bench/torch_*.py through /usr/bin/python3; MIMIC_TORCH=0 skips it)
-- and the cells of the markdown tables. Each bench keeps its own workload,
-- protocol and table; only this plumbing is common. A bench loads it with
--   package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
-- so that it is found from any working directory. Not a bench itself.
if select("#", ...) == 0 then return end -- run directly (tests/bench/run globs *.lua): nothing to time

local mimic = require "mimic"

local M = {}

-- The directory of the running bench script, where its torch_*.py lives.
M.here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

-- The protocol every bench shares: 2 threads (the PyTorch side sets the same).
-- Returns the rounds: MIMIC_BENCH_REPEATS, else the bench's own default.
function M.setup(default)
  mimic.set_num_threads(2)
  return tonumber(os.getenv("MIMIC_BENCH_REPEATS") or "") or default
end

-- Median of a list of numbers (nil for an empty list: no PyTorch timings).
function M.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Times one call of f and appends the seconds to list. Collects garbage first
-- so that the previous call's garbage is not this call's cost.
function M.time_into(list, f)
  collectgarbage()
  local t0 = mimic.clock()
  f()
  list[#list + 1] = mimic.clock() - t0
end

-- The machine's sgemm rate in this run, for scale: GFLOP/s of a 1024^3
-- product, median of `repeats` after one warm-up.
function M.sgemm_gflops(repeats)
  local A, B = mimic.randn({ 1024, 1024 }), mimic.randn({ 1024, 1024 })
  A:matmul(B)
  local tg = {}
  for _ = 1, repeats do
    local t0 = mimic.clock()
    A:matmul(B)
    tg[#tg + 1] = mimic.clock() - t0
  end
  return 2 * 1024 ^ 3 / M.median(tg) / 1e9
end

-- The PyTorch side of a bench: name is the bench's (for messages), script its
-- torch_*.py beside it, args the script's arguments (default "1": one timed
-- repeat per round, after the script's own warm-up).
local Torch = {}
Torch.__index = Torch

function M.torch(name, script, args)
  return setmetatable({ name = name, ok = os.getenv("MIMIC_TORCH") ~= "0",
    cmd = "/usr/bin/python3 " .. M.here .. "/" .. script .. " " .. (args or "1") .. " 2>/dev/null" }, Torch)
end

-- Runs the script once. Each output line matching pattern passes its
-- captures to keep, which stores a timing and returns true, or returns false.
-- With no timing at all, says so on stderr and skips PyTorch from then on.
function Torch:run(pattern, keep)
  if not self.ok then return end
  local p = io.popen(self.cmd)
  local got = 0
  for line in p:lines() do
    local caps = { line:match(pattern) }
    if caps[1] and keep(table.unpack(caps)) then got = got + 1 end
  end
  p:close()
  if got == 0 then
    io.stderr:write(self.name .. ": no PyTorch timings (is /usr/bin/python3 with torch installed?); mimic only\n")
    self.ok = false
  end
end

-- A keep for lines "<prefix> <mode> <seconds>": appends to times[mode].
function M.into(times)
  return function(mode, t)
    if not times[mode] then return false end
    times[mode][#times[mode] + 1] = tonumber(t)
    return true
  end
end

-- Markdown table: the header row and its rule, the first nleft columns
-- left-aligned (default 1), the others right-aligned.
function M.header(cols, nleft)
  nleft = nleft or 1
  local rule = {}
  for i = 1, #cols do rule[i] = i <= nleft and "---" or "---:" end
  print("| " .. table.concat(cols, " | ") .. " |")
  print("|" .. table.concat(rule, "|") .. "|")
end

function M.row(cells)
  print("| " .. table.concat(cells, " | ") .. " |")
end

-- A cell for a value that may be missing (no PyTorch): "-" when v is nil.
function M.cell(fmt, v)
  return v and string.format(fmt, v) or "-"
end

return M
