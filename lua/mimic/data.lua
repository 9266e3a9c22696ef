-- mimic.data: training data from HDF5 / netCDF-4 files (docs/data.md).
--
--   data.open(path) / data.create(path)      the H5File objects of lua/ldata.c
--   data.read(path, name [, opts])           one dataset as a tensor
--   data.loader{file=, fields=, ...}         seeded, resumable, shardable mini-batches
--                                            streamed under a memory budget
--   data.encoder{kind=, ...}, data.chain{...} invertible feature transforms
--
-- Samples are rows: dim 1 of every dataset a loader reads (all fields share it).
-- Row numbers stored in files (index datasets) are 0-based, as Python writes
-- them; row numbers in this API (`start=` of read) are 1-based like all of mimic.
local mimic = require "mimic"

local M = {}

M.open = mimic.h5open
M.create = mimic.h5create

-- Calls f(...) and re-raises its error at the caller of the caller (level 3
-- from here), so a missing file is reported at the user's line, not in here.
local function call(f, ...)
  local res = table.pack(pcall(f, ...))
  if not res[1] then error(res[2], 3) end
  return table.unpack(res, 2, res.n)
end

function M.read(path, name, opts)
  if type(path) ~= "string" then error("data.read: path must be a string", 2) end
  local f <close> = call(mimic.h5open, path)
  return call(f.read, f, name, opts)
end

-- --- helpers ------------------------------------------------------------------------
local check_opts = require("mimic.util").check_opts

local function row_elems(shape)
  local n = 1
  for d = 2, #shape do n = n * shape[d] end
  return n
end

local DSIZE = { float32 = 4, float64 = 8, int64 = 8 }

-- Frees a tensor the loader made and no one else sees, now: Lua's collector
-- sees only the small userdata box, not the C buffer behind it, so garbage
-- tensors would pile up far beyond the memory budget before a collection.
local function free(t)
  if t ~= nil then getmetatable(t).__close(t) end
end

-- A seed per (seed, epoch, stream): Generators are counter-based, so distinct
-- seeds give independent streams; the mixing keeps nearby epochs apart.
local function mix(a, b, c)
  local h = (a * 0x9E3779B97F4A7C15 + b) * 0xBF58476D1CE4E5B9 + (c or 0)
  return (h ~ (h >> 31)) & 0x7FFFFFFFFFFFFFFF
end

-- Sorted, merged {start0, count} ranges from a list of 0-based rows.
local function rows_to_ranges(rows)
  table.sort(rows)
  local out, i = {}, 1
  while i <= #rows do
    local s, j = rows[i], i
    while j < #rows and rows[j + 1] <= rows[j] + 1 do j = j + 1 end
    out[#out + 1] = { s, rows[j] - s + 1 }
    i = j + 1
  end
  return out
end

-- Cuts ranges at multiples of `chunk` (file rows), so a piece never straddles
-- two chunks of a chunked dataset: one piece, one chunk read and decompressed.
local function cut(ranges, chunk)
  local pieces = {}
  for _, r in ipairs(ranges) do
    local s, e = r[1], r[1] + r[2]
    while s < e do
      local stop = math.min(e, (s // chunk + 1) * chunk)
      pieces[#pieces + 1] = { s, stop - s }
      s = stop
    end
  end
  return pieces
end

-- --- the loader -----------------------------------------------------------------------
local Loader = {}
Loader.__index = Loader

local LOADER_OPTS = {
  file = true, fields = true, batch = true, seed = true, shuffle = true, chunk = true, buffer = true,
  memory = true, split = true, splits = true, split_shuffle = true, split_seed = true, rank = true,
  nranks = true, drop_last = true, weights = true, transform = true, encoders = true, dtype = true,
  finite = true,
}

-- Splits as lists of ranges. fractions: contiguous in file order (a time
-- series stays together), or whole chunks assigned at random with
-- split_shuffle; index datasets: 0-based rows read from the file.
local function make_splits(f, o, nrows, chunk)
  local spec = o.splits
  if spec == nil then return { all = { { 0, nrows } } } end
  if type(spec) ~= "table" then error("data.loader: splits must be a table {name = fraction | index dataset}", 3) end
  local out, fracs, total = {}, {}, 0
  for name, v in pairs(spec) do
    if type(v) == "number" then
      if v < 0 or v > 1 then error(string.format("data.loader: split '%s' has fraction %g outside [0, 1]", name, v), 3) end
      fracs[#fracs + 1] = name
      total = total + v
    elseif type(v) == "string" then
      local idx = f:read(v, { dtype = "int64", ndim = 1 })
      local rows = idx:totable()
      for i, r in ipairs(rows) do
        if r < 0 or r >= nrows then
          error(string.format("data.loader: index dataset '%s' holds row %d (entry %d), outside 0..%d (rows in index "
            .. "datasets are 0-based)", v, r, i, nrows - 1), 3)
        end
      end
      out[name] = rows_to_ranges(rows)
    else
      error(string.format("data.loader: split '%s' must be a fraction or the name of an index dataset", name), 3)
    end
  end
  if total > 1 + 1e-9 then error(string.format("data.loader: split fractions add up to %g > 1", total), 3) end
  if #fracs > 0 then
    -- A fixed order of the names (train, val, test first) so a split is
    -- reproducible whatever pairs() does.
    local rank = { train = 1, val = 2, validation = 2, test = 3 }
    table.sort(fracs, function(a, b)
      local ra, rb = rank[a] or 9, rank[b] or 9
      if ra ~= rb then return ra < rb end
      return a < b
    end)
    local units
    if o.split_shuffle then
      units = cut({ { 0, nrows } }, chunk)
      local perm = mimic.Generator(mix(o.split_seed or 0, 0x5E1)):randperm(#units):totable()
      local shuffled = {}
      for i, p in ipairs(perm) do shuffled[i] = units[p] end
      units = shuffled
    else
      units = { { 0, nrows } }
    end
    -- Walk the units, giving each split its share of rows.
    local ui, uoff = 1, 0
    local acc = 0
    for _, name in ipairs(fracs) do
      acc = acc + spec[name]
      local want = math.floor(acc * nrows + 0.5) - (math.floor((acc - spec[name]) * nrows + 0.5))
      local ranges = {}
      while want > 0 and ui <= #units do
        local u = units[ui]
        local take = math.min(want, u[2] - uoff)
        ranges[#ranges + 1] = { u[1] + uoff, take }
        want, uoff = want - take, uoff + take
        if uoff == u[2] then ui, uoff = ui + 1, 0 end
      end
      table.sort(ranges, function(a, b) return a[1] < b[1] end)
      out[name] = ranges
    end
  end
  return out
end

-- data.loader{...}: see docs/data.md for every option.
function M.loader(o)
  check_opts("data.loader", o, LOADER_OPTS)
  if type(o.file) ~= "string" then error("data.loader: file (a path) is required", 2) end
  local fields = o.fields or { x = "x", y = "y" }
  if type(fields) ~= "table" or next(fields) == nil then
    error("data.loader: fields must map batch keys to dataset names, e.g. {x = 'inputs', y = 'outputs'}", 2)
  end
  local self = setmetatable({}, Loader)
  self.file = call(mimic.h5open, o.file)
  self.path = o.file
  -- dtype: one name for every field, or per field ({x = "float32", y = "int64"}).
  local dt = o.dtype or "float32"
  self.dtypes = {}
  self.finite = o.finite and true or false
  self.fields, self.keys, self.shapes = {}, {}, {}
  local nrows, row_bytes, file_chunk
  for k, name in pairs(fields) do self.keys[#self.keys + 1] = k end
  table.sort(self.keys)
  for _, k in ipairs(self.keys) do
    local name = fields[k]
    local info = call(self.file.info, self.file, name)
    if #info.shape == 0 then error(string.format("data.loader: field '%s' ('%s') is a scalar; samples are rows", k, name), 2) end
    if nrows and info.shape[1] ~= nrows then
      error(string.format("data.loader: field '%s' ('%s') has %d rows, others %d; every field needs one row per sample",
        k, name, info.shape[1], nrows), 2)
    end
    nrows = info.shape[1]
    self.dtypes[k] = type(dt) == "table" and (dt[k] or "float32") or dt
    if not DSIZE[self.dtypes[k]] then
      error(string.format("data.loader: dtype of field '%s' must be float32, float64 or int64, got %s", k,
        tostring(self.dtypes[k])), 2)
    end
    self.fields[k] = name
    self.shapes[k] = info.shape
    row_bytes = (row_bytes or 0) + row_elems(info.shape) * DSIZE[self.dtypes[k]]
    if info.chunk and not file_chunk then file_chunk = info.chunk[1] end
  end
  self.nrows, self.row_bytes = nrows, row_bytes
  self.batch = o.batch or 32
  if math.type(self.batch) ~= "integer" or self.batch < 1 then error("data.loader: batch must be an integer >= 1", 2) end
  self.chunk = o.chunk or file_chunk or 256
  if math.type(self.chunk) ~= "integer" or self.chunk < 1 then error("data.loader: chunk must be an integer >= 1", 2) end
  self.seed = o.seed or 0
  self.shuffle = o.shuffle ~= false
  self.drop_last = o.drop_last and true or false
  self.rank, self.nranks = o.rank or 0, o.nranks or 1
  if math.type(self.nranks) ~= "integer" or self.nranks < 1 or math.type(self.rank) ~= "integer"
      or self.rank < 0 or self.rank >= self.nranks then
    error(string.format("data.loader: rank must be in 0..nranks-1 (MPI numbering), got rank %s of %s",
      tostring(o.rank), tostring(o.nranks)), 2)
  end
  self.transform = o.transform
  self.encoders = o.encoders
  if o.weights ~= nil and type(o.weights) ~= "string" and not mimic.is_tensor(o.weights) then
    error("data.loader: weights must be a dataset name or a tensor of one weight per row", 2)
  end
  self.weights = o.weights
  if mimic.is_tensor(o.weights) and (o.weights:dim() ~= 1 or o.weights:size(1) ~= nrows) then
    error(string.format("data.loader: the weights tensor must have one entry per row (%d)", nrows), 2)
  end
  local splits = make_splits(self.file, o, nrows, self.chunk)
  self.splits = splits
  local split = o.split or (splits.train and "train") or "all"
  if not splits[split] then
    local names = {}
    for k in pairs(splits) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("data.loader: no split '%s' (splits: %s)", split, table.concat(names, ", ")), 2)
  end
  self.split_name = split
  self.opts = o
  self.pieces = cut(splits[split], self.chunk)
  -- Memory: the buffer (rows of every field), one piece being read, and three
  -- batches: the one the caller still holds, the rows being gathered and their
  -- concatenation. `buffer` pieces fill the rest of the budget.
  local piece_bytes = self.chunk * row_bytes
  local fixed = 3 * self.batch * row_bytes + piece_bytes
  if o.memory then
    local nbuf = (o.memory - fixed) // piece_bytes
    if nbuf < 1 then
      error(string.format("data.loader: memory budget %d bytes is too small: one chunk of %d rows and three batches "
        .. "of %d rows need %d bytes (lower chunk or batch, or raise memory)", o.memory, self.chunk, self.batch,
        fixed + piece_bytes), 2)
    end
    self.nbuf = math.min(o.buffer or nbuf, nbuf)
  else
    self.nbuf = o.buffer or 8
  end
  self.budget = o.memory
  self.mem = { current = 0, peak = 0 }
  self.epoch_n, self.consumed = 1, 0
  return self
end

function Loader:_alloc(bytes)
  self.mem.current = self.mem.current + bytes
  if self.mem.current > self.mem.peak then self.mem.peak = self.mem.current end
end

function Loader:_release(bytes) self.mem.current = self.mem.current - bytes end

-- The loader's own accounting of the tensors it holds (bytes): budget, peak, current.
function Loader:memory() return { budget = self.budget, peak = self.mem.peak, current = self.mem.current } end

-- Rows this rank iterates per epoch (before weighting, which keeps the count).
function Loader:size()
  local n = 0
  for i, p in ipairs(self.pieces) do
    if (i - 1) % self.nranks == self.rank then n = n + p[2] end
  end
  return n
end

function Loader:nbatches()
  local n = self:size()
  return self.drop_last and n // self.batch or (n + self.batch - 1) // self.batch
end

-- The epoch's plan: this rank's pieces (shuffled, then dealt round-robin
-- over ranks: disjoint and covering), grouped into buffers.
function Loader:_plan(epoch)
  local order = {}
  if self.shuffle then
    local perm = mimic.Generator(mix(self.seed, epoch, 1)):randperm(#self.pieces):totable()
    for i, p in ipairs(perm) do order[i] = self.pieces[p] end
  else
    for i, p in ipairs(self.pieces) do order[i] = p end
  end
  local mine = {}
  for i, p in ipairs(order) do
    if (i - 1) % self.nranks == self.rank then mine[#mine + 1] = p end
  end
  local buffers = {}
  for i = 1, #mine, self.nbuf do
    local b, rows = {}, 0
    for j = i, math.min(#mine, i + self.nbuf - 1) do
      b[#b + 1] = mine[j]
      rows = rows + mine[j][2]
    end
    buffers[#buffers + 1] = { pieces = b, rows = rows }
  end
  return buffers
end

-- Reads buffer b's rows of every field into one tensor per field, a piece
-- (one hyperslab read) at a time, then draws its sample order.
function Loader:_load(epoch, bi, buf)
  local out = { rows = buf.rows, data = {} }
  for _, k in ipairs(self.keys) do
    local shape = { table.unpack(self.shapes[k]) }
    shape[1] = buf.rows
    local t = mimic.empty(shape, self.dtypes[k])
    local bytes = buf.rows * row_elems(self.shapes[k]) * DSIZE[self.dtypes[k]]
    self:_alloc(bytes)
    local at = 1
    for _, p in ipairs(buf.pieces) do
      local piece_bytes = p[2] * row_elems(self.shapes[k]) * DSIZE[self.dtypes[k]]
      self:_alloc(piece_bytes)
      local part = self.file:read(self.fields[k], { start = p[1] + 1, count = p[2], dtype = self.dtypes[k],
        finite = self.finite })
      local dst = t:narrow(1, at, p[2]) -- a view: it holds the buffer's storage until freed
      dst:copy(part)
      free(dst)
      free(part)
      self:_release(piece_bytes)
      at = at + p[2]
    end
    out.data[k] = t
    out.bytes = (out.bytes or 0) + bytes
  end
  local g = mimic.Generator(mix(self.seed, epoch, 2 + bi))
  if self.weights then
    out.order = self:_weighted_order(buf, g)
  elseif self.shuffle then
    out.order = g:randperm(buf.rows)
  else
    out.order = mimic.arange(1, buf.rows + 1, 1, "int64")
  end
  return out
end

-- Weighted resampling within the buffer: buf.rows draws with replacement,
-- row i with probability w_i / sum(w) (inverse-CDF on uniforms).
function Loader:_weighted_order(buf, g)
  local w = {}
  for _, p in ipairs(buf.pieces) do
    local part
    if type(self.weights) == "string" then
      part = self.file:read(self.weights, { start = p[1] + 1, count = p[2], dtype = "float64", finite = true })
    else
      part = self.weights:narrow(1, p[1] + 1, p[2])
    end
    for _, v in ipairs(part:totable()) do
      if v < 0 then error("data.loader: weights must be >= 0", 4) end
      w[#w + 1] = v
    end
    free(part)
  end
  local cum, s = {}, 0
  for i, v in ipairs(w) do s = s + v; cum[i] = s end
  if s <= 0 then error("data.loader: the weights of a buffer are all zero", 4) end
  local u = g:uniform({ #w }, 0, s, "float64"):totable()
  local idx = {}
  for i, x in ipairs(u) do
    local lo, hi = 1, #cum
    while lo < hi do
      local mid = (lo + hi) // 2
      if cum[mid] > x then hi = mid else lo = mid + 1 end
    end
    idx[i] = lo
  end
  return mimic.tensor(idx, "int64")
end

-- Resumable position: the epoch and the samples already handed out in it.
function Loader:state()
  return { epoch = self.epoch_n, consumed = self.consumed, seed = self.seed, rank = self.rank, nranks = self.nranks }
end

function Loader:set_state(s)
  if type(s) ~= "table" or math.type(s.epoch) ~= "integer" or math.type(s.consumed) ~= "integer" then
    error("loader:set_state: expected the table loader:state() returned", 2)
  end
  if s.seed ~= nil and s.seed ~= self.seed then
    error(string.format("loader:set_state: the state is for seed %s, this loader has seed %s", tostring(s.seed),
      tostring(self.seed)), 2)
  end
  if s.nranks ~= nil and (s.nranks ~= self.nranks or s.rank ~= self.rank) then
    error("loader:set_state: the state is for another rank/nranks", 2)
  end
  self:_drop_iter()
  self.epoch_n, self.consumed = s.epoch, s.consumed
end

-- Applies encoders and the augmentation hook to a batch table.
function Loader:_finish(b)
  if self.encoders then
    for k, enc in pairs(self.encoders) do
      if b[k] == nil then error(string.format("data.loader: encoder for unknown field '%s'", k), 3) end
      b[k] = enc:encode(b[k])
    end
  end
  if self.transform then b = self.transform(b, self) or b end
  return b
end

-- Ends the running iterator (a loop left with `break`, or one replaced by a
-- new batches() call or set_state): frees its buffer and drops it from the
-- accounting. Calling the old iterator afterwards is an error.
function Loader:_drop_iter()
  local it = self._it
  if not it then return end
  self._it = nil
  it.dead = true
  if it.handed > 0 then self:_release(it.handed) end
  if it.cur then
    self:_release(it.cur.bytes)
    for _, k in ipairs(self.keys) do free(it.cur.data[k]) end
    free(it.cur.order)
  end
  it.cur, it.handed = nil, 0
end

-- Iterator over the batches of the current epoch from the saved position;
-- at the end the state moves to the next epoch. `for b in loader:batches() do`.
-- Each batch is {x = Tensor, y = Tensor, ...} (the field keys). One iterator
-- runs at a time: a new batches() call (or set_state) ends the previous one.
function Loader:batches()
  self:_drop_iter()
  local epoch = self.epoch_n
  local plan = self:_plan(epoch)
  -- Find where `consumed` falls: buffer bi, offset off within its order.
  local bi, skip = 1, self.consumed
  while bi <= #plan and skip >= plan[bi].rows do
    skip = skip - plan[bi].rows
    bi = bi + 1
  end
  local off = skip
  local total = 0
  for _, b in ipairs(plan) do total = total + b.rows end
  local batch_bytes = self.batch * self.row_bytes
  -- cur: the loaded buffer; handed: bytes of the batch handed out last (its
  -- tensors are the caller's now, counted until the next batch replaces it).
  local it = { cur = nil, handed = 0, dead = false }
  self._it = it
  return function()
    if it.dead then
      error("loader:batches(): this iterator was ended by a newer batches() call or set_state", 2)
    end
    local remaining = total - self.consumed
    local want = math.min(self.batch, remaining)
    if want <= 0 or (self.drop_last and want < self.batch) then
      self:_drop_iter()
      if self.epoch_n == epoch then self.epoch_n, self.consumed = epoch + 1, 0 end
      return nil
    end
    local parts = {}
    for _, k in ipairs(self.keys) do parts[k] = {} end
    local got = 0
    self:_alloc(want * self.row_bytes) -- the rows being gathered
    while got < want do
      if not it.cur then
        it.cur = self:_load(epoch, bi, plan[bi])
      end
      local cur = it.cur
      local take = math.min(want - got, cur.rows - off)
      local idx = cur.order:narrow(1, off + 1, take)
      for _, k in ipairs(self.keys) do
        parts[k][#parts[k] + 1] = cur.data[k]:index_select(1, idx)
      end
      free(idx)
      got, off = got + take, off + take
      if off == cur.rows then
        self:_release(cur.bytes)
        for _, k in ipairs(self.keys) do free(cur.data[k]) end
        free(cur.order)
        it.cur, bi, off = nil, bi + 1, 0
      end
    end
    local b = {}
    self:_alloc(want * self.row_bytes) -- their concatenation (counted even when there is one part)
    for _, k in ipairs(self.keys) do
      if #parts[k] == 1 then
        b[k] = parts[k][1]
      else
        b[k] = mimic.cat(parts[k], 1)
        for _, t in ipairs(parts[k]) do free(t) end
      end
    end
    parts = nil
    -- The gathered parts are freed; the previous batch is the caller's until
    -- this one replaces it in the loop variable.
    self:_release(want * self.row_bytes + it.handed)
    self.consumed = self.consumed + want
    it.handed = want * self.row_bytes
    assert(it.handed <= batch_bytes)
    -- The batches handed out before this one are garbage once the caller's
    -- loop moves on, but Lua's collector cannot see their C buffers, so it
    -- would not hurry. Collect whenever a quarter of the budget (16 MiB
    -- without one) has gone by: a few collections an epoch, not one a batch.
    self.unseen = (self.unseen or 0) + it.handed
    if self.unseen > (self.budget or (64 << 20)) // 4 then
      self.unseen = 0
      collectgarbage("collect")
    end
    return self:_finish(b)
  end
end

-- The split as in-memory tensors {x = ..., y = ...} (rows in file order), for
-- mimic.train{data = loader:tensors()} when the data fit in memory.
function Loader:tensors()
  local out = {}
  for _, k in ipairs(self.keys) do
    local parts = {}
    for _, r in ipairs(self.splits[self.split_name]) do
      parts[#parts + 1] = self.file:read(self.fields[k], { start = r[1] + 1, count = r[2], dtype = self.dtypes[k],
        finite = self.finite })
    end
    out[k] = #parts == 1 and parts[1] or mimic.cat(parts, 1)
  end
  if self.encoders then
    for k, enc in pairs(self.encoders) do out[k] = enc:encode(out[k]) end
  end
  return out
end

-- Batches of one field over the split in file order, no shuffling, weights,
-- encoders or hook: what encoders fit on. Reads one chunk-piece at a time.
function Loader:each_raw(key)
  if not self.fields[key] then error(string.format("loader:each_raw: no field '%s'", tostring(key)), 2) end
  local pieces, i = cut(self.splits[self.split_name], self.chunk), 0
  return function()
    i = i + 1
    local p = pieces[i]
    if not p then return nil end
    return self.file:read(self.fields[key], { start = p[1] + 1, count = p[2], dtype = self.dtypes[key],
      finite = self.finite })
  end
end

-- Another loader over the same file and options for split `name` (e.g.
-- "val"), without `weights` and `transform`: resampling or augmenting
-- validation data would bias its metrics (give them in `extra` to keep them).
function Loader:split(name, extra)
  local o = {}
  for k, v in pairs(self.opts) do o[k] = v end
  o.weights, o.transform = nil, nil
  o.split = name
  for k, v in pairs(extra or {}) do o[k] = v end
  return M.loader(o)
end

function Loader:close()
  self:_drop_iter()
  if self.file then self.file:close() end
  self.file = nil
end
Loader.__close = Loader.close

-- --- encoders ------------------------------------------------------------------------
local Encoder = {}
Encoder.__index = Encoder

local KINDS = { standard = true, minmax = true, log = true, signed_log = true, identity = true }
local ENC_OPTS = { kind = true, per_feature = true, scale = true, eps = true, offset = true }

-- data.encoder{kind = "standard" | "minmax" | "log" | "signed_log" | "identity",
--   per_feature = true (statistics per feature: every dim but the first) or false (one
--   global value), scale = s (signed_log: sign(x) log(1 + |x|/s)), offset = c (log:
--   log(x + c)), eps = tiny (guards a zero std or range)}.
function M.encoder(o)
  o = o or {}
  check_opts("data.encoder", o, ENC_OPTS)
  local kind = o.kind or "standard"
  if not KINDS[kind] then error(string.format("data.encoder: unknown kind '%s' (standard, minmax, log, signed_log, identity)", tostring(kind)), 2) end
  local e = setmetatable({ kind = kind, per_feature = o.per_feature ~= false, scale = o.scale or 1,
    offset = o.offset or 0, eps = o.eps or 1e-12 }, Encoder)
  if kind == "log" or kind == "signed_log" or kind == "identity" then e.fitted = true end
  return e
end

-- Streams a tensor or a loader field ({loader, "x"} or loader, "x") as batches.
local function batches_of(src, key)
  if mimic.is_tensor(src) then
    local done = false
    return function()
      if done then return nil end
      done = true
      return src
    end
  end
  if getmetatable(src) == Loader then return src:each_raw(key) end
  error("encoder:fit: expected a tensor or a loader and a field name", 3)
end

-- Fits the statistics on data (a tensor, or a loader's split streamed a chunk at
-- a time: fit on the training loader only). pre: a function applied to each
-- batch first (used by chains). Returns self.
function Encoder:fit(src, key, pre)
  if self.kind ~= "standard" and self.kind ~= "minmax" then return self end
  local n, s, ss, lo, hi = 0, nil, nil, nil, nil
  for b in batches_of(src, key) do
    if pre then b = pre(b) end
    local x = b:double()
    if not self.per_feature then x = x:reshape({ x:numel(), 1 }) end
    n = n + x:size(1)
    if x:size(1) > 0 then
      local bs, bss, blo, bhi = x:sum(1), x:square():sum(1), x:min(1), x:max(1)
      s = s and s + bs or bs
      ss = ss and ss + bss or bss
      lo = lo and mimic.minimum(lo, blo) or blo
      hi = hi and mimic.maximum(hi, bhi) or bhi
    end
  end
  if n == 0 then error("encoder:fit: no data", 2) end
  if lo:ne(lo):double():sum():item() > 0 then
    error("encoder:fit: the data hold NaN (missing values?): drop or fill them first, or read with finite = true to find them", 2)
  end
  if self.kind == "standard" then
    self.mean = s / n
    local var = (ss / n - self.mean:square()):clamp(0, math.huge)
    self.std = var:sqrt():clamp(self.eps, math.huge)
  else
    self.min = lo
    self.range = (hi - lo):clamp(self.eps, math.huge)
  end
  if not self.per_feature then
    for _, k in ipairs({ "mean", "std", "min", "range" }) do
      if self[k] then self[k] = self[k]:reshape({}) end
    end
  end
  self.fitted = true
  return self
end

local function need_fit(e, fn)
  if not e.fitted then error(string.format("encoder:%s: fit the %s encoder first (on the training split)", fn, e.kind), 3) end
end

local function as_dtype(p, x) return p:to(x:dtype()) end

function Encoder:encode(x)
  need_fit(self, "encode")
  local k = self.kind
  if k == "standard" then return (x - as_dtype(self.mean, x)) / as_dtype(self.std, x) end
  if k == "minmax" then return (x - as_dtype(self.min, x)) / as_dtype(self.range, x) end
  if k == "log" then return (x + self.offset):log() end
  if k == "signed_log" then return x:sign() * (x:abs() / self.scale + 1):log() end
  return x
end

function Encoder:decode(z)
  need_fit(self, "decode")
  local k = self.kind
  if k == "standard" then return z * as_dtype(self.std, z) + as_dtype(self.mean, z) end
  if k == "minmax" then return z * as_dtype(self.range, z) + as_dtype(self.min, z) end
  if k == "log" then return z:exp() - self.offset end
  if k == "signed_log" then return z:sign() * (z:abs():exp() - 1) * self.scale end
  return z
end

-- A table of numbers, strings and tensors: mimic.save can store it next to a
-- model, and data.encoder_from rebuilds the encoder.
function Encoder:state()
  need_fit(self, "state")
  return { kind = self.kind, per_feature = self.per_feature, scale = self.scale, offset = self.offset, eps = self.eps,
    mean = self.mean, std = self.std, min = self.min, range = self.range }
end

local Chain = {}
Chain.__index = Chain

-- data.chain{e1, e2, ...}: encode applies e1 then e2; decode the reverse. Fitting
-- fits each stage on the data encoded by the stages before it.
function M.chain(list)
  if type(list) ~= "table" or #list == 0 then error("data.chain: expected a list of encoders", 2) end
  return setmetatable({ stages = list }, Chain)
end

function Chain:fit(src, key)
  for i, e in ipairs(self.stages) do
    local before = { table.unpack(self.stages, 1, i - 1) }
    e:fit(src, key, #before > 0 and function(b)
      for _, p in ipairs(before) do b = p:encode(b) end
      return b
    end or nil)
  end
  return self
end

function Chain:encode(x)
  for _, e in ipairs(self.stages) do x = e:encode(x) end
  return x
end

function Chain:decode(z)
  for i = #self.stages, 1, -1 do z = self.stages[i]:decode(z) end
  return z
end

function Chain:state()
  local s = { kind = "chain" }
  for i, e in ipairs(self.stages) do s[i] = e:state() end
  return s
end

function M.encoder_from(s)
  if type(s) ~= "table" or not s.kind then error("data.encoder_from: expected a table from encoder:state()", 2) end
  if s.kind == "chain" then
    local list = {}
    for i = 1, #s do list[i] = M.encoder_from(s[i]) end
    return M.chain(list)
  end
  local e = M.encoder{ kind = s.kind, per_feature = s.per_feature, scale = s.scale, offset = s.offset, eps = s.eps }
  e.mean, e.std, e.min, e.range = s.mean, s.std, s.min, s.range
  e.fitted = true
  return e
end

-- === Windows of a series for recurrent models (issue #7) =========================
-- data.windows(series, {history =, future = 1, stride = 1}) -> X, Y
-- series [N, f] (or [N], taken as [N, 1]), rows in time order. Window i
-- (1-based) starts at row s = 1 + (i - 1) stride: X[i] = rows s .. s+history-1,
-- Y[i] = the `future` rows right after. X is [n, history, f], Y [n, future, f],
-- n = floor((N - history - future) / stride) + 1: batch-first, for a recurrent
-- layer with batch_first = true. X is a view of the series when stride =
-- history, Y when stride = future (consecutive windows; the series must be
-- contiguous); otherwise each is one gather (the core has no "as_strided"
-- view for overlapping windows). Differentiable either way.
function M.windows(series, opts)
  if not mimic.is_tensor(series) then error("data.windows: series must be a tensor [N, features] or [N]", 2) end
  if type(opts) ~= "table" then error("data.windows: give the options, e.g. {history = 10, future = 1}", 2) end
  for k in pairs(opts) do
    if k ~= "history" and k ~= "future" and k ~= "stride" then
      error("data.windows: unknown option '" .. tostring(k) .. "' (known: history, future, stride)", 2)
    end
  end
  local h, fu, st = opts.history, opts.future or 1, opts.stride or 1
  for name, v in pairs({ history = h, future = fu, stride = st }) do
    if math.type(v) ~= "integer" or v < 1 then
      error("data.windows: " .. name .. " must be an integer >= 1, got " .. tostring(v), 2)
    end
  end
  if series:dim() == 1 then series = series:view(series:size(1), 1) end
  if series:dim() ~= 2 then
    error("data.windows: series of shape [" .. table.concat(series:size(), ", ") .. "] must be [N, features] or [N]", 2)
  end
  local N, f = series:size(1), series:size(2)
  if N < h + fu then
    error(string.format("data.windows: a series of %d rows is shorter than history + future = %d", N, h + fu), 2)
  end
  local n = (N - h - fu) // st + 1
  -- rows off+1 .. of each window, len of them: a view when the windows are
  -- consecutive (stride = len), else one gather
  local function take(off, len)
    if st == len then return series:narrow(1, off + 1, n * len):reshape(n, len, f) end
    local idx, k = {}, 0
    for i = 0, n - 1 do
      for j = 1, len do
        k = k + 1
        idx[k] = i * st + off + j
      end
    end
    return series:index_select(1, mimic.tensor(idx, "int64")):view(n, len, f)
  end
  return take(0, h), take(h, fu)
end

M.Loader, M.Encoder = Loader, Encoder
return M
