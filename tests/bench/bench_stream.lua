-- Streaming training under a memory budget (the data-files issue's benchmark):
-- one training epoch fed by a mimic.data.loader from a file at least 4x the
-- loader's budget, beside the same epoch on the same data held in memory.
-- Each run is its own process, so its peak resident memory (VmHWM) is its
-- own; an idle `mimic` gives the fixed overhead.
--   build/bin/mimic tests/bench/bench_stream.lua [rows]
local mimic = require "mimic"
local nn, optim = mimic.nn, mimic.optim

local BUDGET = 16 << 20
local FEATURES, BATCH = 64, 256

local function peak_kib()
  local f = io.open("/proc/self/status")
  if not f then return nil end
  for l in f:lines() do
    local v = l:match("^VmHWM:%s+(%d+)")
    if v then f:close(); return tonumber(v) end
  end
  f:close()
end

-- One epoch, in a child process: prints "seconds peak_kib".
local function child(mode, path)
  if mode ~= "idle" then
    mimic.manual_seed(1)
    local model = nn.Sequential(nn.Linear(FEATURES, 64), nn.Tanh(), nn.Linear(64, 1))
    local opt = optim.Adam(model, { lr = 1e-3 })
    local data
    if mode == "stream" then
      data = mimic.data.loader { file = path, batch = BATCH, seed = 1, memory = BUDGET }
    else -- the whole file in memory
      local f = mimic.h5open(path)
      data = { x = f:read("x"), y = f:read("y") }
      f:close()
    end
    local t0 = mimic.clock()
    mimic.train { model = model, loss = nn.MSELoss(), optimizer = opt, data = data, epochs = 1,
      batch = mode ~= "stream" and BATCH or nil, verbose = false }
    io.write(string.format("%.3f %d\n", mimic.clock() - t0, peak_kib()))
  else
    io.write(string.format("0 %d\n", peak_kib()))
  end
end

if arg[1] == "--child" then return child(arg[2], arg[3]) end

local rows = tonumber(arg[1]) or 262144
local bytes = rows * (FEATURES + 1) * 4
local dir = os.getenv("TMPDIR") or "/tmp"
local df = io.popen("df -Pk '" .. dir .. "' | tail -1"):read("*l") or ""
local free_kib = tonumber(df:match("^%S+%s+%d+%s+%d+%s+(%d+)")) or 0
if free_kib * 1024 < 2 * bytes then
  print(string.format("bench_stream: %s has %.0f MiB free; the benchmark needs %.0f MiB: skipped", dir,
    free_kib / 1024, 2 * bytes / 2 ^ 20))
  return
end

local path = os.tmpname() .. ".h5"
do -- y = a fixed linear map of x plus a sine: something to fit
  local g = mimic.Generator(7)
  local f = mimic.h5create(path)
  local step = 16384
  for s = 1, rows, step do
    local n = math.min(step, rows - s + 1)
    local x = g:uniform({ n, FEATURES }, -1, 1)
    local y = (x:narrow(2, 1, 8):sum(2, true) * 0.3):sin()
    if s == 1 then
      f:write("x", x, { chunk = { 4096, FEATURES }, extendable = true })
      f:write("y", y, { chunk = { 4096, 1 }, extendable = true })
    else
      f:append("x", x)
      f:append("y", y)
    end
  end
  f:close()
end

local exe = os.getenv("MIMIC_EXE") or "build/bin/mimic"
local function run(mode)
  local p = io.popen(string.format("'%s' '%s' --child %s '%s'", exe, arg[0], mode, path))
  local out = p:read("*a")
  p:close()
  local secs, kib = out:match("([%d%.]+) (%d+)")
  if not secs then error("bench_stream: child '" .. mode .. "' failed: " .. out) end
  return tonumber(secs), tonumber(kib)
end

local _, idle = run("idle")
local ts, ks = run("stream")
local tm, km = run("memory")
os.remove(path)

print(string.format("### bench_stream: one training epoch (MLP %d-64-1, Adam, batch %d) over %d rows, %.1f MiB file, " ..
  "loader budget %.0f MiB", FEATURES, BATCH, rows, bytes / 2 ^ 20, BUDGET / 2 ^ 20))
print()
print("| run | seconds | samples/s | peak RSS (MiB) | above an idle mimic (MiB) |")
print("|---|---:|---:|---:|---:|")
print(string.format("| idle `mimic` | - | - | %.1f | 0 |", idle / 1024))
print(string.format("| streamed from the file | %.2f | %.0f | %.1f | %.1f |", ts, rows / ts, ks / 1024, (ks - idle) / 1024))
print(string.format("| in memory | %.2f | %.0f | %.1f | %.1f |", tm, rows / tm, km / 1024, (km - idle) / 1024))
print()
print(string.format("file / budget = %.1f; streamed peak above idle = budget + %.1f MiB; streamed throughput = %.2f x " ..
  "in memory", bytes / BUDGET, (ks - idle) / 1024 - BUDGET / 2 ^ 20, tm / ts))
print("(the overhead beyond the budget: model, optimizer and autograd temporaries, and garbage tensors awaiting")
print("collection, which the Lua binding lets reach 32 MiB before it forces one: lua/ltensor.c, gc_account)")
