-- mimic.augment: data augmentation for spatial data (docs/mappings.md,
-- "Augmentation"). Grids rotate and flip, and so do the components of vector
-- and tensor fields: v' = R v, T' = R T R^T.
--
--   augment.rot90(x, {k =, axes =, vector =, tensor =, pseudovector =})
--   augment.flip(x, axis, {vector =, ...})
--   augment.apply(x, R, {vector =, ...})        R: a signed permutation matrix (Lua table)
--   augment.group(nsp, {axes =, reflections =})  the symmetry group of the square/cube as matrices
--   augment.random(batch, generator, opts)       one random group element per batch (-> batch, R)
--   augment.transform(opts)                      the same, as a data.loader transform hook
--   augment.crop(batch, size, generator, opts)   a random crop (views) -> batch, starts
--   augment.random_rotation(generator [, dtype]) uniform on SO(3) (unit quaternions)
--   augment.rotate_points(points, vectors, R [, center]), augment.rotate_tensor(T, R)
--
-- Fields are [N, C, s1, ..., sd] (d = 2 or 3). Spatial axes are numbered 1..d
-- in the order of the tensor's spatial dims (for [N, C, D, H, W]: 1 = D,
-- 2 = H, 3 = W), and so are vector and tensor components: vector = {c1, c2, c3}
-- lists the channels of the components ALONG spatial axes 1, 2, 3.
-- Grid index i along an axis of n cells has the centred coordinate i - (n+1)/2;
-- a matrix R maps coordinates x' = R x, so the new field is f'(x) = R f(R^-1 x).
local mimic = require "mimic"

local M = {}

local function shape_str(t) return "[" .. table.concat(t:size(), ",") .. "]" end

local function check_opts(fn, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or mimic.is_tensor(opts) then error(fn .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not known[k] and math.type(k) ~= "integer" then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (options: %s)", fn, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

local FIELD_OPTS = { vector = true, tensor = true, pseudovector = true }

local function nsp_of(fn, x)
  if not mimic.is_tensor(x) then error(fn .. ": expected a tensor [N, C, ...]", 3) end
  local nsp = x:dim() - 2
  if nsp ~= 2 and nsp ~= 3 then
    error(string.format("%s: field of shape %s must be [N, C, H, W] or [N, C, D, H, W] (batch and channels "
      .. "first; add a batch dim with :unsqueeze(1))", fn, shape_str(x)), 3)
  end
  return nsp
end

-- --- signed permutation matrices ---------------------------------------------------
local function identity(n)
  local r = {}
  for i = 1, n do
    r[i] = {}
    for j = 1, n do r[i][j] = i == j and 1 or 0 end
  end
  return r
end

local function matmul(a, b)
  local n, r = #a, {}
  for i = 1, n do
    r[i] = {}
    for j = 1, n do
      local s = 0
      for l = 1, n do s = s + a[i][l] * b[l][j] end
      r[i][j] = s
    end
  end
  return r
end

-- perm[i], sign[i] with R[i][perm[i]] = sign[i], the only non-zero of row i.
local function decompose(fn, R, nsp)
  if type(R) ~= "table" or #R ~= nsp then
    error(string.format("%s: R must be a %dx%d signed permutation matrix (Lua table of rows)", fn, nsp, nsp), 3)
  end
  local perm, sign, used = {}, {}, {}
  for i = 1, nsp do
    if type(R[i]) ~= "table" or #R[i] ~= nsp then error(string.format("%s: row %d of R must have %d entries", fn, i, nsp), 3) end
    for j = 1, nsp do
      local v = R[i][j]
      if v == 1 or v == -1 then
        if perm[i] or used[j] then error(fn .. ": R is not a signed permutation matrix", 3) end
        perm[i], sign[i], used[j] = j, v, true
      elseif v ~= 0 then
        error(fn .. ": R is not a signed permutation matrix (entries 0, 1, -1)", 3)
      end
    end
    if not perm[i] then error(fn .. ": R is not a signed permutation matrix (a zero row)", 3) end
  end
  return perm, sign
end

local function det_of(perm, sign)
  local d, n, seen = 1, #perm, {}
  for i = 1, n do d = d * sign[i] end
  for i = 1, n do -- the permutation's parity from its cycles
    if not seen[i] then
      local len, j = 0, i
      while not seen[j] do seen[j], j, len = true, perm[j], len + 1 end
      if len % 2 == 0 then d = -d end
    end
  end
  return d
end

-- The rotation by 90 degrees taking spatial axis a to axis b.
local function rot_matrix(nsp, a, b)
  local r = identity(nsp)
  r[a][a], r[b][b] = 0, 0
  r[b][a], r[a][b] = 1, -1
  return r
end

-- --- channel maps -------------------------------------------------------------------------
-- A list of channel groups: {1, 2, 3} is one group, {{1, 2, 3}, {4, 5, 6}} two.
local function groups_of(v)
  if v == nil then return {} end
  if type(v) ~= "table" then error("augment: vector/tensor/pseudovector must be tables of channel numbers", 4) end
  if type(v[1]) == "table" then return v end
  return { v }
end

local function sym_pairs(nsp)
  if nsp == 3 then return { { 1, 1 }, { 2, 2 }, { 3, 3 }, { 1, 2 }, { 1, 3 }, { 2, 3 } } end
  return { { 1, 1 }, { 2, 2 }, { 1, 2 } }
end

-- src[c], sgn[c]: output channel c is sgn[c] * input channel src[c].
local function channel_map(fn, C, nsp, perm, sign, opts)
  local src, sgn, owner = {}, {}, {}
  for c = 1, C do src[c], sgn[c] = c, 1 end
  local function claim(c)
    if math.type(c) ~= "integer" or c < 1 or c > C then
      error(string.format("%s: channel %s is not in 1..%d", fn, tostring(c), C), 4)
    end
    if owner[c] then error(string.format("%s: channel %d is listed twice among vector/tensor components", fn, c), 4) end
    owner[c] = true
  end
  local det = det_of(perm, sign)
  for kind, pseudo in pairs({ vector = false, pseudovector = true }) do
    for _, g in ipairs(groups_of(opts[kind])) do
      if #g ~= nsp then
        error(string.format("%s: a %s needs %d channels (one per spatial axis), got %d", fn, kind, nsp, #g), 4)
      end
      for i = 1, nsp do claim(g[i]) end
      for i = 1, nsp do -- v'_i = s_i v_perm(i) (times det R for a pseudovector)
        src[g[i]], sgn[g[i]] = g[perm[i]], sign[i] * (pseudo and det or 1)
      end
    end
  end
  for _, g in ipairs(groups_of(opts.tensor)) do
    for _, c in ipairs(g) do claim(c) end
    if #g == nsp * nsp then -- general, row-major T11 T12 .. Tdd
      for i = 1, nsp do
        for j = 1, nsp do
          src[g[(i - 1) * nsp + j]] = g[(perm[i] - 1) * nsp + perm[j]]
          sgn[g[(i - 1) * nsp + j]] = sign[i] * sign[j]
        end
      end
    elseif #g == nsp * (nsp + 1) // 2 then -- symmetric, the order of sym_pairs
      local pairs_ = sym_pairs(nsp)
      local pos = {}
      for p, ij in ipairs(pairs_) do pos[ij[1] * 10 + ij[2]], pos[ij[2] * 10 + ij[1]] = p, p end
      for p, ij in ipairs(pairs_) do
        local i, j = ij[1], ij[2]
        src[g[p]] = g[pos[perm[i] * 10 + perm[j]]]
        sgn[g[p]] = sign[i] * sign[j]
      end
    else
      error(string.format("%s: a tensor needs %d channels (general) or %d (symmetric), got %d", fn, nsp * nsp,
        nsp * (nsp + 1) // 2, #g), 4)
    end
  end
  return src, sgn
end

local function reversed_index(n)
  local idx = {}
  for i = 1, n do idx[i] = n + 1 - i end
  return mimic.tensor(idx, "int64")
end

-- The grid part alone: new spatial axis i is old axis perm[i], reversed when
-- sign[i] = -1 (a permuted view, then one index_select per reversed axis).
local function move_grid(x, perm, sign)
  local nsp = #perm
  local order, moved = { 1, 2 }, false
  for i = 1, nsp do
    order[i + 2] = perm[i] + 2
    if perm[i] ~= i then moved = true end
  end
  local y = moved and x:permute(order) or x
  for i = 1, nsp do
    if sign[i] < 0 then y = y:index_select(i + 2, reversed_index(y:size(i + 2))) end
  end
  return y, moved
end

-- The core: x [N, C, s...] under the signed permutation (perm, sign). The
-- whole move (grid and channels) is one index_select of x viewed [N, C*S] at
-- an index built from the positions 0..S-1 moved like a one-channel field
-- (float64: exact), then one multiplication by the signs if any is negative.
local function transform(fn, x, perm, sign, opts)
  local nsp = #perm
  local C = x:size(2)
  local src, sgn = channel_map(fn, C, nsp, perm, sign, opts)
  local permuted, negated, flipped = false, false, false
  for c = 1, C do
    if src[c] ~= c then permuted = true end
    if sgn[c] < 0 then negated = true end
  end
  for i = 1, nsp do
    if perm[i] ~= i or sign[i] < 0 then flipped = true end
  end
  local y = x
  if permuted or flipped then
    local sizes, S = { 1, 1 }, 1
    for d = 1, nsp do sizes[d + 2] = x:size(d + 2); S = S * sizes[d + 2] end
    local pos = move_grid(mimic.arange(S, "float64"):view(sizes), perm, sign)
    local newshape = pos:size()
    newshape[1], newshape[2] = x:size(1), C
    local idx = (mimic.tensor(src, "float64"):view(C, 1) - 1) * S + pos:reshape({ 1, S }) + 1
    y = x:reshape({ x:size(1), C * S }):index_select(2, idx:long():view(-1)):view(newshape)
  end
  if negated then
    local shape = { 1, C }
    for _ = 1, nsp do shape[#shape + 1] = 1 end
    y = y * mimic.tensor(sgn, y:dtype()):view(shape)
  end
  return y:contiguous()
end

-- apply(x, R [, opts]): x [N, C, ...] under the signed permutation matrix R (a
-- Lua table of rows; R[i][j] ~= 0 maps old axis j to new axis i).
function M.apply(x, R, opts)
  local fn = "augment.apply"
  local nsp = nsp_of(fn, x)
  opts = check_opts(fn, opts, FIELD_OPTS)
  local perm, sign = decompose(fn, R, nsp)
  return transform(fn, x, perm, sign, opts)
end

local function check_axis(fn, a, nsp)
  if math.type(a) ~= "integer" or a < 1 or a > nsp then
    error(string.format("%s: spatial axis %s is not in 1..%d (axes count the spatial dims only)", fn, tostring(a),
      nsp), 3)
  end
end

-- The matrix of rot90 with k quarter turns from axis a towards axis b.
function M.rot90_matrix(nsp, k, axes)
  axes = axes or { nsp - 1, nsp }
  local r = identity(nsp)
  local q = rot_matrix(nsp, axes[1], axes[2])
  for _ = 1, (k or 1) % 4 do r = matmul(q, r) end
  return r
end

-- rot90(x, {k = 1, axes = {d-1, d}, vector =, tensor =, pseudovector =}): k
-- quarter turns in the plane of spatial axes a, b, taking axis a towards b
-- (as numpy.rot90 with axes = (a, b) on the spatial dims).
function M.rot90(x, opts)
  local fn = "augment.rot90"
  local nsp = nsp_of(fn, x)
  opts = check_opts(fn, opts, { k = true, axes = true, vector = true, tensor = true, pseudovector = true })
  local k = opts.k or 1
  if math.type(k) ~= "integer" then error(fn .. ": k must be an integer", 2) end
  local axes = opts.axes or { nsp - 1, nsp }
  if type(axes) ~= "table" or #axes ~= 2 then error(fn .. ": axes must be two spatial axes {a, b}", 2) end
  check_axis(fn, axes[1], nsp)
  check_axis(fn, axes[2], nsp)
  if axes[1] == axes[2] then error(fn .. ": the two axes must differ", 2) end
  local perm, sign = decompose(fn, M.rot90_matrix(nsp, k, axes), nsp)
  return transform(fn, x, perm, sign, opts)
end

-- flip(x, axis | {axes...} [, opts]): mirror along spatial axes; the components
-- along them change sign.
function M.flip(x, axis, opts)
  local fn = "augment.flip"
  local nsp = nsp_of(fn, x)
  opts = check_opts(fn, opts, FIELD_OPTS)
  local axes = type(axis) == "table" and axis or { axis }
  local r = identity(nsp)
  for _, a in ipairs(axes) do
    check_axis(fn, a, nsp)
    r[a][a] = -r[a][a]
  end
  local perm, sign = decompose(fn, r, nsp)
  return transform(fn, x, perm, sign, opts)
end

-- group(nsp, {axes = all, reflections = true}): the signed permutations acting
-- on the given spatial axes (others fixed): 48 (cube), 24 without reflections;
-- 8 / 4 for the square (or two axes of a cube). A fixed order: the identity first.
function M.group(nsp, opts)
  opts = check_opts("augment.group", opts, { axes = true, reflections = true })
  local axes = opts.axes
  if axes == nil then
    axes = {}
    for i = 1, nsp do axes[i] = i end
  end
  for _, a in ipairs(axes) do check_axis("augment.group", a, nsp) end
  local out = {}
  local n = #axes
  local function permute(list, i)
    if i > n then
      for mask = 0, (1 << n) - 1 do
        local r = identity(nsp)
        for p = 1, n do r[axes[p]][axes[p]] = 0 end
        for p = 1, n do r[axes[p]][axes[list[p]]] = (mask >> (p - 1)) & 1 == 1 and -1 or 1 end
        local perm, sign = decompose("augment.group", r, nsp)
        if opts.reflections ~= false or det_of(perm, sign) == 1 then out[#out + 1] = r end
      end
      return
    end
    for j = i, n do
      list[i], list[j] = list[j], list[i]
      permute(list, i + 1)
      list[i], list[j] = list[j], list[i]
    end
  end
  local list = {}
  for p = 1, n do list[p] = p end
  permute(list, 1)
  return out
end

local function generator_of(g)
  if g == nil then return mimic.default_generator() end
  return g
end

-- A uniform integer in 1..n from g.
local function draw(g, n)
  local i = math.floor(g:rand({ 1 }, "float64"):item() * n) + 1
  return math.min(i, n)
end

-- Calls f(tensor, field_opts) on each field of a batch: a tensor (opts itself
-- holds vector/tensor/...), or a table whose entries named in opts.fields
-- (key -> field options) are transformed, by default every tensor entry.
local function each_field(batch, opts, f)
  if mimic.is_tensor(batch) then return f(batch, opts) end
  if type(batch) ~= "table" then error("augment: batch must be a tensor or a table of tensors", 3) end
  local out = {}
  for k, v in pairs(batch) do out[k] = v end
  if opts.fields then
    for k, fo in pairs(opts.fields) do
      if batch[k] == nil then error(string.format("augment: the batch has no field '%s'", tostring(k)), 3) end
      out[k] = f(batch[k], fo)
    end
  else
    for k, v in pairs(batch) do
      if mimic.is_tensor(v) then out[k] = f(v, {}) end
    end
  end
  return out
end

-- random(batch, generator, {axes =, reflections = true, per_sample = false,
-- vector =, tensor =, pseudovector = | fields = {key = {vector =, ...}}}) ->
-- the batch under one random element of the square's/cube's symmetry group
-- (drawn uniformly from g), and that element (a matrix, for augment.apply).
-- per_sample = true draws one element per sample instead (the fields must
-- then be square/cubic in the moved axes); the second result is then a list.
function M.random(batch, generator, opts)
  local fn = "augment.random"
  opts = check_opts(fn, opts, { axes = true, reflections = true, per_sample = true, vector = true, tensor = true,
                                pseudovector = true, fields = true, generator = true })
  local g = generator_of(generator or opts.generator)
  local first = batch
  if not mimic.is_tensor(batch) then
    first = nil
    for k, v in pairs(batch) do
      if mimic.is_tensor(v) and (opts.fields == nil or opts.fields[k]) then first = v break end
    end
    if first == nil then error(fn .. ": the batch holds no tensor to augment", 2) end
  end
  local nsp = nsp_of(fn, first)
  local elems = M.group(nsp, { axes = opts.axes, reflections = opts.reflections })
  if not opts.per_sample then
    local R = elems[draw(g, #elems)]
    local perm, sign = decompose(fn, R, nsp)
    return each_field(batch, opts, function(x, fo) return transform(fn, x, perm, sign, fo) end), R
  end
  local n = first:size(1)
  local Rs = {}
  for i = 1, n do Rs[i] = elems[draw(g, #elems)] end
  local res = each_field(batch, opts, function(x, fo)
    local parts = {}
    for i = 1, n do
      local perm, sign = decompose(fn, Rs[i], nsp)
      parts[i] = transform(fn, x:narrow(1, i, 1), perm, sign, fo)
      if i > 1 and shape_str(parts[i]) ~= shape_str(parts[1]) then
        error(string.format("%s: per_sample needs fields with equal sizes along the rotated axes, got %s", fn,
          shape_str(x)), 4)
      end
    end
    return mimic.cat(parts, 1)
  end)
  return res, Rs
end

-- transform(opts): function(batch) for data.loader{transform = ...}, drawing
-- from opts.generator (or the default generator); opts as augment.random's,
-- plus crop = size for a random crop after the symmetry.
function M.transform(opts)
  opts = opts or {}
  local crop = opts.crop
  local ro = {}
  for k, v in pairs(opts) do if k ~= "crop" then ro[k] = v end end
  return function(b)
    local g = generator_of(opts.generator)
    local out = M.random(b, g, ro)
    if crop then out = M.crop(out, crop, g, { fields = opts.fields }) end
    return out
  end
end

-- crop(batch, size, generator [, {fields =}]) -> the batch cut to `size` cells
-- along each spatial dim (a number or one per dim) at a random start (the same
-- for every field and sample: views, no copy), and the 1-based starts.
function M.crop(batch, size, generator, opts)
  local fn = "augment.crop"
  opts = check_opts(fn, opts, { fields = true })
  local g = generator_of(generator)
  local starts
  local function cut(x)
    local nsp = x:dim() - 2
    if nsp < 1 then error(string.format("%s: field of shape %s has no spatial dims ([N, C, ...])", fn, shape_str(x)), 4) end
    local s = {}
    for d = 1, nsp do
      s[d] = type(size) == "table" and size[d] or size
      if math.type(s[d]) ~= "integer" or s[d] < 1 or s[d] > x:size(d + 2) then
        error(string.format("%s: crop size %s along spatial dim %d must be an integer in 1..%d", fn, tostring(s[d]),
          d, x:size(d + 2)), 4)
      end
    end
    if not starts then
      starts = {}
      for d = 1, nsp do starts[d] = draw(g, x:size(d + 2) - s[d] + 1) end
    end
    local y = x
    for d = 1, nsp do y = y:narrow(d + 2, starts[d], s[d]) end
    return y
  end
  return each_field(batch, opts, function(x) return cut(x) end), starts
end

-- --- arbitrary rotations of point sets ---------------------------------------------------
-- random_rotation(generator [, dtype = "float32"]): a 3x3 rotation uniform on
-- SO(3): a unit quaternion from 4 normal draws (uniform on the 3-sphere).
function M.random_rotation(generator, dtype)
  local g = generator_of(generator)
  local q = g:randn({ 4 }, "float64"):totable()
  local n = math.sqrt(q[1] ^ 2 + q[2] ^ 2 + q[3] ^ 2 + q[4] ^ 2)
  local w, x, y, z = q[1] / n, q[2] / n, q[3] / n, q[4] / n
  return mimic.tensor({
    { 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y) },
    { 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x) },
    { 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y) },
  }, dtype or "float32")
end

local function rotation_of(fn, R, like)
  if type(R) == "table" then R = mimic.tensor(R, "float64") end
  if not mimic.is_tensor(R) or R:dim() ~= 2 or R:size(1) ~= R:size(2) then
    error(fn .. ": R must be a square matrix (tensor or Lua table of rows)", 3)
  end
  return R:to(like:dtype())
end

-- rotate_points(points [n, 3], vectors, R [, center]): points' = R (p - c) + c,
-- vectors' = R v; vectors is nil, a [n, 3] tensor or a list of them (returned
-- in the same form).
function M.rotate_points(points, vectors, R, center)
  local fn = "augment.rotate_points"
  if not mimic.is_tensor(points) or points:dim() < 1 then error(fn .. ": points must be a [n, 3] tensor", 2) end
  local Rt = rotation_of(fn, R, points):t()
  if points:size(-1) ~= Rt:size(1) then
    error(string.format("%s: points %s do not match a %dx%d rotation", fn, shape_str(points), Rt:size(1), Rt:size(1)), 2)
  end
  local p
  if center then
    local c = mimic.is_tensor(center) and center:to(points:dtype()) or mimic.tensor(center, points:dtype())
    p = (points - c):matmul(Rt) + c
  else
    p = points:matmul(Rt)
  end
  local function rot(v)
    if v:size(-1) ~= Rt:size(1) then error(string.format("%s: vectors %s do not match R", fn, shape_str(v)), 3) end
    return v:matmul(Rt:to(v:dtype()))
  end
  if vectors == nil then return p end
  if mimic.is_tensor(vectors) then return p, rot(vectors) end
  local out = {}
  for i, v in ipairs(vectors) do out[i] = rot(v) end
  return p, out
end

-- rotate_tensor(T [..., 3, 3], R) = R T R^T for each matrix.
function M.rotate_tensor(T, R)
  if not mimic.is_tensor(T) or T:dim() < 2 then error("augment.rotate_tensor: T must be a [..., 3, 3] tensor", 2) end
  local Rm = rotation_of("augment.rotate_tensor", R, T)
  return Rm:matmul(T):matmul(Rm:t())
end

return M
