-- mimic.data: HDF5/netCDF-4 datasets from Lua, the loader (coverage, seeds,
-- resume, shards, splits, weights, hooks, memory budget) and the encoders.
-- Fixtures: tests/fixtures/data/ (made by tests/fixtures/gen_h5py.py with h5py).
local lu = require "luaunit"
local mimic = require "mimic"
local data = mimic.data

local FIX = "tests/fixtures/data/"
local LOADER = FIX .. "loader.h5"

local raises = require("helpers").raises

local function tmpname(tag)
  local p = os.tmpname()
  os.remove(p)
  return p .. "_" .. tag .. ".h5"
end

-- Row ids (x[:, 1] == file row) of every batch of one epoch, in order.
local function epoch_ids(loader)
  local ids = {}
  for b in loader:batches() do
    for _, v in ipairs(b.x:select(2, 1):totable()) do ids[#ids + 1] = math.tointeger(v) end
  end
  return ids
end

local function as_set(list)
  local s, n = {}, 0
  for _, v in ipairs(list) do
    lu.assertNil(s[v], "row " .. v .. " twice")
    s[v] = true
    n = n + 1
  end
  return s, n
end

-- --- files -------------------------------------------------------------------------------
TestFiles = {}

function TestFiles.test_read_and_info()
  local f <close> = data.open(FIX .. "basic.h5")
  local names = f:list()
  lu.assertTrue(#names >= 14)
  local x = f:read("x")
  lu.assertEquals(x:size(), { 4, 3 })
  lu.assertEquals(x[3][2], 7)
  lu.assertEquals(f:read("be", { dtype = "float64" }):dtype(), "float64")
  local rows = f:read("gz", { start = 38, count = 5 })  -- 1-based rows 38..42 = file rows 37..41
  lu.assertEquals(rows:size(), { 5, 4 })
  lu.assertEquals(rows[1][1], 148)
  local info = f:info("gz")
  lu.assertEquals(info.chunk, { 10, 4 })
  lu.assertStrContains(info.filters, "deflate(6)")
  lu.assertEquals(f:attr("gz", "units"), "K")
  lu.assertEquals(f:attr("gz", "scale"), 2.5)
  lu.assertEquals(f:attr("", "title"), "mimic data fixtures")
  lu.assertNil(f:attr("gz", "nope"))
  lu.assertEquals(data.read(FIX .. "basic.h5", "u8", { dtype = "int64" })[6], 255)
end

function TestFiles.test_netcdf()
  local f <close> = data.open(FIX .. "nc4.nc")
  local info = f:info("temp")
  lu.assertEquals(info.dims, { "col", "lev" })
  lu.assertEquals(info.scale, 0.5)
  local t = f:read("temp")
  lu.assertEquals(t[1][2], 205)
  lu.assertTrue(t[2][3] ~= t[2][3]) -- _FillValue -> NaN
  lu.assertEquals(f:read("temp", { raw = true })[2][3], -32767)
  local v, miss = f:read("temp", { dtype = "float64", mask = true, start = 2, count = 1 })
  lu.assertEquals(miss:dtype(), "bool")
  lu.assertEquals(miss:totable(), { { false, false, true, false } })
  lu.assertTrue(v[1][3] ~= v[1][3])
  local r <close> = data.open(FIX .. "rfmip.nc")
  lu.assertEquals(r:info("temp_layer").dims, { "expt", "site", "layer" })
  lu.assertEquals(r:read("temp_layer", { finite = true, ndim = 3 }):size(), { 2, 10, 60 })
end

function TestFiles.test_errors()
  raises("no such file", data.open, FIX .. "missing.h5")
  raises("nccopy -k nc4", data.open, FIX .. "classic.nc")
  raises("not an HDF5", data.open, "tests/lua/test_data.lua")
  local src <close> = io.open(FIX .. "basic.h5", "rb")
  local cut = tmpname("cut")
  local out <close> = io.open(cut, "wb")
  out:write(src:read(2000))
  out:close()
  raises("truncated", data.open, cut)
  os.remove(cut)
  local f <close> = data.open(FIX .. "basic.h5")
  raises("it has: be, bei32", f.read, f, "nope")
  raises("'lzf'", f.read, f, "lzf")
  raises("NaN at index [2,1]", f.read, f, "nan", { finite = true })
  raises("expected 3", f.read, f, "x", { ndim = 3 })
  raises("unknown option 'rows'", f.read, f, "x", { rows = 3 })
  raises("out of range", f.read, f, "x", { start = 4, count = 2 })
  raises("read-only", f.write, f, "new", mimic.zeros(2))
  raises("string", f.read, f, "str")
end

function TestFiles.test_write_roundtrip()
  local p = tmpname("w")
  do
    local f <close> = data.create(p)
    local x = mimic.arange(0, 30):view(10, 3)
    f:write("sim/x", x, { gzip = 5, shuffle = true, chunk = { 4, 3 }, extendable = true })
    f:append("sim/x", x)
    f:write("sim/y", x:t()) -- a non-contiguous view: its values are written
    f:set_attr("sim/x", "units", "m")
    f:set_attr("", "runs", 2)
    raises("exists already", f.write, f, "sim/y", x)
    raises("unknown option 'level'", f.write, f, "z", x, { level = 3 })
  end
  local f <close> = data.open(p)
  lu.assertEquals(f:info("sim/x").shape, { 20, 3 })
  lu.assertTrue(f:info("sim/x").unlimited)
  lu.assertEquals(f:read("sim/x")[11][1], 0)
  lu.assertEquals(f:read("sim/y")[3][10], 29)
  lu.assertEquals(f:attr("sim/x", "units"), "m")
  lu.assertEquals(f:attr("/", "runs"), 2)
  lu.assertEquals(f:attrs("sim/x"), { "units" })
  os.remove(p)
end

-- --- the loader ----------------------------------------------------------------------------
TestLoader = {}

function TestLoader.test_covers_the_split_once_per_epoch()
  local L = data.loader{ file = LOADER, batch = 64, seed = 1, splits = { train = 0.8, val = 0.1, test = 0.1 } }
  lu.assertEquals(L:size(), 480)
  lu.assertEquals(L:nbatches(), 8)
  for epoch = 1, 2 do
    local ids = epoch_ids(L)
    local set, n = as_set(ids)
    lu.assertEquals(n, 480)
    for r = 0, 479 do lu.assertTrue(set[r], "row " .. r .. " missing in epoch " .. epoch) end
  end
  lu.assertEquals(L:state().epoch, 3)
  -- batches pair x and y rows: y[:, 1] = 2 x[:, 1]
  for b in L:batches() do
    lu.assertEquals((b.y:select(2, 1) - b.x:select(2, 1):double() * 2):abs():max():item(), 0)
  end
end

function TestLoader.test_seeded_and_shuffled()
  local a = epoch_ids(data.loader{ file = LOADER, seed = 7, batch = 50 })
  local b = epoch_ids(data.loader{ file = LOADER, seed = 7, batch = 50 })
  local c = epoch_ids(data.loader{ file = LOADER, seed = 8, batch = 50 })
  lu.assertEquals(a, b)
  lu.assertNotEquals(a, c)
  local inorder = epoch_ids(data.loader{ file = LOADER, shuffle = false, batch = 50 })
  for i = 1, 600 do lu.assertEquals(inorder[i], i - 1) end
  local L = data.loader{ file = LOADER, seed = 7, batch = 50 }
  lu.assertNotEquals(epoch_ids(L), epoch_ids(L)) -- each epoch draws anew
end

function TestLoader.test_resume_mid_epoch()
  local opts = { file = LOADER, seed = 5, batch = 48, buffer = 2 }
  local full = data.loader(opts)
  epoch_ids(full) -- epoch 1
  local want = epoch_ids(full) -- epoch 2, uninterrupted
  local L = data.loader(opts)
  epoch_ids(L)
  local got, k = {}, 0
  for b in L:batches() do
    for _, v in ipairs(b.x:select(2, 1):totable()) do got[#got + 1] = math.tointeger(v) end
    k = k + 1
    if k == 5 then break end -- crosses buffer boundaries: 5 * 48 > 2 chunks of 50
  end
  local state = L:state()
  lu.assertEquals(state.epoch, 2)
  lu.assertEquals(state.consumed, 240)
  lu.assertTrue(L:memory().current > 0) -- the loop left with break still holds its buffer
  local stale = L:batches()              -- a new iterator ends the old one ...
  lu.assertEquals(L:memory().current, 0)
  stale = nil
  local it = L:batches()
  L:set_state(state)                     -- ... and so does set_state
  raises("ended by a newer batches() call", it)
  local R = data.loader(opts) -- a new process
  R:set_state(state)
  for b in R:batches() do
    for _, v in ipairs(b.x:select(2, 1):totable()) do got[#got + 1] = math.tointeger(v) end
  end
  lu.assertEquals(got, want)
  raises("seed", R.set_state, R, { epoch = 1, consumed = 0, seed = 99 })
end

function TestLoader.test_shards_are_disjoint_and_cover()
  local all = {}
  for rank = 0, 2 do
    local L = data.loader{ file = LOADER, seed = 3, batch = 32, rank = rank, nranks = 3, splits = { train = 0.8, val = 0.2 } }
    for _, v in ipairs(epoch_ids(L)) do all[#all + 1] = v end
  end
  local set, n = as_set(all)
  lu.assertEquals(n, 480)
  for r = 0, 479 do lu.assertTrue(set[r]) end
  raises("rank must be in 0..nranks-1", data.loader, { file = LOADER, rank = 3, nranks = 3 })
end

function TestLoader.test_dtype_per_field()
  local L = data.loader{ file = LOADER, batch = 100, dtype = { x = "float64" }, shuffle = false }
  local b = L:batches()()
  lu.assertEquals(b.x:dtype(), "float64")
  lu.assertEquals(b.y:dtype(), "float32") -- the default for fields not named
  lu.assertEquals(b.y[100][1], 198)
  -- integer class labels as int64 (here: the index datasets of the file)
  local I = data.loader{ file = LOADER, fields = { x = "split/val" }, dtype = { x = "int64" }, batch = 50, shuffle = false }
  local c = I:batches()()
  lu.assertEquals(c.x:dtype(), "int64")
  lu.assertEquals(c.x[1], 500)
  raises("dtype of field 'x' must be", data.loader, { file = LOADER, dtype = "bool" })
end

function TestLoader.test_splits()
  local L = data.loader{ file = LOADER, splits = { train = "split/train", val = "split/val", test = "split/test" } }
  local v = L:split("val"):tensors()
  lu.assertEquals(v.x:size(1), 50)
  lu.assertEquals(v.x[1][1], 500)
  lu.assertEquals(L:size(), 500)
  -- fractions with whole chunks at random: disjoint, covering, reproducible
  local o = { file = LOADER, shuffle = false, splits = { train = 0.6, val = 0.2, test = 0.2 }, split_shuffle = true, split_seed = 4 }
  local ids = {}
  for _, s in ipairs({ "train", "val", "test" }) do
    o.split = s
    for _, r in ipairs(epoch_ids(data.loader(o))) do ids[#ids + 1] = r end
  end
  local _, n = as_set(ids)
  lu.assertEquals(n, 600)
  raises("no split 'dev'", data.loader, { file = LOADER, splits = { train = 0.5 }, split = "dev" })
  raises("add up to", data.loader, { file = LOADER, splits = { train = 0.8, val = 0.3 } })
end

function TestLoader.test_weighted_resampling()
  local w = mimic.zeros(600, "float64")
  w:narrow(1, 301, 300):fill(1)     -- only rows 300..599 may be drawn
  w:narrow(1, 591, 10):fill(100)     -- and rows 590..599 far more often
  local L = data.loader{ file = LOADER, seed = 2, batch = 100, weights = w, buffer = 12 }
  local ids = epoch_ids(L)
  lu.assertEquals(#ids, 600)
  local heavy = 0
  for _, r in ipairs(ids) do
    lu.assertTrue(r >= 300, "row " .. r .. " has weight 0")
    if r >= 590 then heavy = heavy + 1 end
  end
  lu.assertTrue(heavy > 300, "heavy rows drawn " .. heavy .. " times")
  -- weights from a dataset of the file: the same draws as from the tensor
  local p = tmpname("wds")
  do
    local f <close> = data.create(p)
    f:write("x", data.read(LOADER, "x"), { chunk = { 50, 3 } })
    f:write("y", data.read(LOADER, "y", { dtype = "float64" }))
    f:write("w", w)
  end
  lu.assertEquals(epoch_ids(data.loader{ file = p, seed = 2, batch = 100, weights = "w", buffer = 12 }), ids)
  os.remove(p)
end

function TestLoader.test_hooks_encoders_drop_last()
  local calls = 0
  local enc = data.encoder{ kind = "minmax" }
  local L = data.loader{ file = LOADER, batch = 128, drop_last = true, encoders = { x = enc },
    transform = function(b) calls = calls + 1; b.extra = b.x:size(1); return b end }
  enc:fit(L, "x")
  local n = 0
  for b in L:batches() do
    lu.assertEquals(b.extra, 128)
    lu.assertTrue(b.x:min():item() >= 0 and b.x:max():item() <= 1)
    n = n + 1
  end
  lu.assertEquals(n, 4)
  lu.assertEquals(calls, 4)
end

-- A file >= 4x the budget streams through with the loader's own accounting
-- never above the budget, and every row comes exactly once.
function TestLoader.test_memory_budget()
  local p = tmpname("big")
  local rows, feat = 4096, 16
  do
    local f <close> = data.create(p)
    local x = mimic.zeros(rows, feat)
    x:select(2, 1):copy(mimic.arange(0, rows))
    f:write("x", x, { chunk = { 64, feat }, gzip = 1 })
    f:write("y", mimic.ones(rows, 1), { chunk = { 64, 1 } })
  end
  local budget = 64 * 1024
  local file_bytes = rows * (feat + 1) * 4
  lu.assertTrue(file_bytes >= 4 * budget)
  local L = data.loader{ file = p, batch = 100, memory = budget, seed = 1 }
  lu.assertTrue(L.nbuf >= 1)
  local ids = epoch_ids(L)
  local set, n = as_set(ids)
  lu.assertEquals(n, rows)
  lu.assertTrue(set[0] and set[rows - 1])
  local m = L:memory()
  lu.assertTrue(m.peak <= budget, string.format("peak %d > budget %d", m.peak, budget))
  lu.assertTrue(m.peak > 0)
  lu.assertEquals(m.current, 0)
  raises("memory budget 4096 bytes is too small", data.loader, { file = p, batch = 100, memory = 4096 })
  L:close()
  os.remove(p)
end

function TestLoader.test_feeds_train()
  local L = data.loader{ file = LOADER, splits = { train = 0.8, val = 0.2 } }
  local d = L:tensors()
  lu.assertEquals(d.x:size(), { 480, 3 })
  local xe = data.encoder{ kind = "standard" }:fit(d.x)
  local ye = data.encoder{ kind = "standard" }:fit(d.y)
  local nn = mimic.nn
  local model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
  local hist = mimic.train{ model = model, loss = nn.MSELoss(), optimizer = mimic.optim.Adam(model:parameters(), { lr = 1e-2 }),
    data = { x = xe:encode(d.x), y = ye:encode(d.y):float() }, epochs = 2, batch = 64, seed = 1, verbose = false }
  lu.assertNotNil(hist)
end

-- --- encoders ---------------------------------------------------------------------------------
TestEncoders = {}

function TestEncoders.test_roundtrip_every_kind()
  local x = mimic.tensor({ { 1, -200, 0.001 }, { 5, 30, 2 }, { 9, 7000, 0.5 } }, "float64")
  for _, o in ipairs({ { kind = "standard" }, { kind = "minmax" }, { kind = "standard", per_feature = false },
    { kind = "signed_log", scale = 10 }, { kind = "identity" }, { kind = "minmax", per_feature = false } }) do
    local e = data.encoder(o):fit(x)
    lu.assertTrue((e:decode(e:encode(x)) - x):abs():max():item() < 1e-9 * 7000, o.kind)
  end
  local pos = x:abs()
  local e = data.encoder{ kind = "log", offset = 1 }
  lu.assertTrue((e:decode(e:encode(pos)) - pos):abs():max():item() < 1e-9 * 7000)
  local s = data.encoder{ kind = "standard" }:fit(x)
  lu.assertEquals(s.mean:size(), { 3 })
  local z = s:encode(x)
  lu.assertAlmostEquals(z:mean(1):abs():max():item(), 0, 1e-12)
  lu.assertAlmostEquals(z:square():mean(1)[2], 1, 1e-9)
  lu.assertEquals(data.encoder{ kind = "standard", per_feature = false }:fit(x).mean:dim(), 0)
end

function TestEncoders.test_fit_on_train_split_only()
  local L = data.loader{ file = LOADER, splits = { train = 0.5, val = 0.5 } }
  local e = data.encoder{ kind = "standard" }:fit(L, "x") -- streams the train split
  lu.assertAlmostEquals(e.mean[1], 149.5, 1e-9)          -- rows 0..299 only
  local c = data.chain{ data.encoder{ kind = "signed_log" }, data.encoder{ kind = "standard" } }:fit(L, "x")
  local t = L:tensors().x
  lu.assertAlmostEquals(c:encode(t):mean(1):abs():max():item(), 0, 1e-4)
end

function TestEncoders.test_state_survives_save_and_load()
  local x = mimic.tensor({ { 1, 2 }, { 3, 8 }, { -4, 0 } })
  local c = data.chain{ data.encoder{ kind = "signed_log", scale = 2 }, data.encoder{ kind = "minmax" } }:fit(x)
  local p = tmpname("enc")
  mimic.save(p, { encoder = c:state() })
  local back = data.encoder_from(mimic.load(p).encoder)
  lu.assertEquals((back:encode(x) - c:encode(x)):abs():max():item(), 0)
  os.remove(p)
end

function TestEncoders.test_errors()
  raises("fit the standard encoder first", function() data.encoder{ kind = "standard" }:encode(mimic.zeros(2)) end)
  raises("unknown kind 'zscore'", data.encoder, { kind = "zscore" })
  raises("unknown option 'axis'", data.encoder, { axis = 1 })
  raises("NaN", function() data.encoder{}:fit(mimic.tensor({ 0 / 0, 1 })) end)
end

os.exit(lu.LuaUnit.run())
