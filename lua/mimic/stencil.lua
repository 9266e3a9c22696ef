-- mimic.stencil: per-point neighbourhood samples of a field for subgrid-style
-- models, and the fully convolutional form of an MLP trained on them
-- (docs/mappings.md, "Stencils").
--
--   stencil.samples(field, {size =, points =, boundary =})  -> [npoints, C*K], interior shape
--   stencil.to_field(y, shape)                               [npoints, Cout] -> [Cout, shape...]
--   stencil.interior(field, size)                            the interior view of a field with halos
--   stencil.to_conv(mlp, {size =, channels =, boundary =})   the equivalent nn.Sequential of ConvNd
--
-- A field is [C, n1, ..., nd] (d = 1, 2, 3 spatial dims, channels first). A
-- sample row is ordered channel-major, then the offsets along dim 1, ..., d with
-- the last fastest: exactly the flattening of a ConvNd weight [out, C, k1, ..., kd],
-- so the first Linear's weight IS the convolution's weight, viewed.
local mimic = require "mimic"

local M = {}

local function shape_str(t) return "[" .. table.concat(t:size(), ",") .. "]" end

local function check_opts(fn, opts, known)
  if opts == nil then return {} end
  if type(opts) ~= "table" or mimic.is_tensor(opts) then error(fn .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not known[k] then
      local names = {}
      for n in pairs(known) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (options: %s)", fn, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

-- Kernel sizes as a table of nsp odd integers (a number repeats).
local function sizes_of(fn, size, nsp)
  local k = {}
  if type(size) == "table" then
    if #size ~= nsp then error(string.format("%s: size has %d entries for %d spatial dims", fn, #size, nsp), 3) end
    for i = 1, nsp do k[i] = size[i] end
  else
    for i = 1, nsp do k[i] = size or 5 end
  end
  for i = 1, nsp do
    if math.type(k[i]) ~= "integer" or k[i] < 1 or k[i] % 2 == 0 then
      error(string.format("%s: stencil size must be an odd integer >= 1 (centred on the point), got %s", fn,
        tostring(k[i])), 3)
    end
  end
  return k
end

local function check_field(fn, field)
  if not mimic.is_tensor(field) then error(fn .. ": field must be a tensor [C, n1, ..., nd]", 3) end
  local nsp = field:dim() - 1
  if nsp < 1 or nsp > 3 then
    error(string.format("%s: field of shape %s must be [C, L], [C, H, W] or [C, D, H, W] (channels first; "
      .. "add a channel dim with :unsqueeze(1) for one variable)", fn, shape_str(field)), 3)
  end
  return nsp
end

-- The field with h_d cells of periodic wrap-around added on both sides of each
-- spatial dim (any h: the indices are taken modulo the size).
local function pad_periodic(field, h)
  local p = field
  for d, hd in ipairs(h) do
    if hd > 0 then
      local n = field:size(d + 1)
      local idx = {}
      for i = 0, n + 2 * hd - 1 do idx[#idx + 1] = (i - hd) % n + 1 end
      p = p:index_select(d + 1, mimic.tensor(idx, "int64"))
    end
  end
  return p
end

-- The field with the halo cells h removed (a view).
function M.interior(field, size)
  local nsp = check_field("stencil.interior", field)
  local k = sizes_of("stencil.interior", size, nsp)
  local v = field
  for d = 1, nsp do
    local h = k[d] // 2
    local m = field:size(d + 1) - 2 * h
    if m < 1 then
      error(string.format("stencil.interior: field %s has %d cells along dim %d, no interior left after %d halo "
        .. "cells on each side", shape_str(field), field:size(d + 1), d + 1, h), 2)
    end
    v = v:narrow(d + 1, h + 1, m)
  end
  return v
end

-- 0-based interior coordinates of the requested points as a float64 [npoints]
-- flat index into the interior grid (row-major).
local function point_index(fn, points, m)
  local nsp, ntot = #m, 1
  for d = 1, nsp do ntot = ntot * m[d] end
  local p = points
  if type(p) == "table" then p = mimic.tensor(p, "float64") end
  if not mimic.is_tensor(p) then error(fn .. ": points must be \"all\", a table or a tensor of 1-based indices", 3) end
  p = p:double()
  local flat
  if p:dim() == 1 then
    flat = p - 1
    if p:numel() > 0 and (p:min():item() < 1 or p:max():item() > ntot) then
      error(string.format("%s: a point index is outside 1..%d (the interior has %d points)", fn, ntot, ntot), 3)
    end
  elseif p:dim() == 2 and p:size(2) == nsp then
    local strides, s = {}, 1
    for d = nsp, 1, -1 do strides[d] = s; s = s * m[d] end
    for d = 1, nsp do
      local c = p:select(2, d)
      if p:size(1) > 0 and (c:min():item() < 1 or c:max():item() > m[d]) then
        error(string.format("%s: a point coordinate along spatial dim %d is outside 1..%d", fn, d, m[d]), 3)
      end
    end
    flat = (p - 1):matmul(mimic.tensor(strides, "float64"))
  else
    error(string.format("%s: points of shape %s must be [npoints] flat indices or [npoints, %d] coordinates "
      .. "(1-based, in the interior grid)", fn, shape_str(p), nsp), 3)
  end
  return flat
end

-- samples(field, {size = 5 | {k1,..}, points = "all" | idx, boundary = "periodic" | "halo"})
-- -> samples [npoints, C * k1 * ... * kd], interior shape {m1, ..., md}.
function M.samples(field, opts)
  local fn = "stencil.samples"
  local nsp = check_field(fn, field)
  opts = check_opts(fn, opts, { size = true, points = true, boundary = true })
  local k = sizes_of(fn, opts.size, nsp)
  local boundary = opts.boundary or "periodic"
  local C = field:size(1)
  local h, m, P = {}, {}, nil
  for d = 1, nsp do h[d] = k[d] // 2 end
  if boundary == "periodic" then
    for d = 1, nsp do m[d] = field:size(d + 1) end
    P = pad_periodic(field, h)
  elseif boundary == "halo" then
    for d = 1, nsp do
      m[d] = field:size(d + 1) - 2 * h[d]
      if m[d] < 1 then
        error(string.format("%s: field %s has %d cells along dim %d: with a stencil of %d it needs %d halo cells "
          .. "on each side and at least one interior cell", fn, shape_str(field), field:size(d + 1), d + 1, k[d],
          h[d]), 2)
      end
    end
    P = field
  else
    error(string.format("%s: boundary must be 'periodic' or 'halo', got %s", fn, tostring(boundary)), 2)
  end
  local K = 1
  for d = 1, nsp do K = K * k[d] end
  local points = opts.points or "all"
  if points == "all" then
    -- One view of P per offset (the last dim fastest), stacked: [C, K, m...].
    local views = {}
    local off = {}
    for d = 1, nsp do off[d] = 0 end
    for _ = 1, K do
      local v = P
      for d = 1, nsp do v = v:narrow(d + 1, off[d] + 1, m[d]) end
      views[#views + 1] = v
      for d = nsp, 1, -1 do
        off[d] = off[d] + 1
        if off[d] < k[d] then break end
        off[d] = 0
      end
    end
    local s = mimic.stack(views, 2)
    return s:reshape({ C * K, -1 }):t():contiguous(), m
  end
  -- Chosen points: one index_select of the flattened padded field at the
  -- positions base(point) + offset(j), both in padded strides.
  local ok, flat = pcall(point_index, fn, points, m)
  if not ok then error(flat, 2) end
  local pstride, s = {}, 1
  for d = nsp, 1, -1 do pstride[d] = s; s = s * P:size(d + 1) end
  -- interior coordinate c_d of each point, then base = sum c_d * pstride_d
  local base = flat:clone():fill(0)
  local rem = flat
  for d = 1, nsp do
    local inner = 1
    for e = d + 1, nsp do inner = inner * m[e] end
    local c = (rem / inner):long():double() -- truncation: exact for these non-negative integers
    rem = rem - c * inner
    base = base + c * pstride[d]
  end
  local offs = {}
  local off = {}
  for d = 1, nsp do off[d] = 0 end
  for _ = 1, K do
    local o = 0
    for d = 1, nsp do o = o + off[d] * pstride[d] end
    offs[#offs + 1] = o
    for d = nsp, 1, -1 do
      off[d] = off[d] + 1
      if off[d] < k[d] then break end
      off[d] = 0
    end
  end
  local np = base:numel()
  local idx = (base:view(np, 1) + mimic.tensor(offs, "float64"):view(1, K) + 1):long():view(-1)
  local g = P:contiguous():view(C, -1):index_select(2, idx)
  return g:view(C, np, K):permute(2, 1, 3):reshape({ np, C * K }), m
end

-- [npoints, Cout] outputs at all interior points (row-major) -> [Cout, m1, ..., md].
function M.to_field(y, shape)
  if not mimic.is_tensor(y) or y:dim() ~= 2 then error("stencil.to_field: y must be a [npoints, Cout] tensor", 2) end
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  if n ~= y:size(1) then
    error(string.format("stencil.to_field: y has %d rows but the shape %s has %d points", y:size(1),
      table.concat(shape, "x"), n), 2)
  end
  local out = { y:size(2) }
  for i, s in ipairs(shape) do out[i + 1] = s end
  return y:t():reshape(out)
end

-- Point-wise modules: they commute with the sampling and act on channels, so
-- they stay as they are in the convolutional form.
local POINTWISE = { ReLU = true, Tanh = true, Sigmoid = true, GELU = true, LeakyReLU = true, ELU = true,
                    Softplus = true, Identity = true, Dropout = true }

local function flatten_modules(m, out)
  if m.__typename == "Sequential" then
    for _, c in ipairs(m:children()) do flatten_modules(c, out) end
  else
    out[#out + 1] = m
  end
  return out
end

-- A new instance of a parameterless point-wise module with the same settings.
local function copy_pointwise(m)
  local c = {}
  for key, v in next, m do c[key] = v end
  c._parameters, c._parameter_names, c._buffers, c._buffer_names, c._modules, c._module_names =
    {}, {}, {}, {}, {}, {}
  return setmetatable(c, getmetatable(m))
end

-- to_conv(mlp, {size = 5 | {k...}, channels = C, dims = 3, boundary = "periodic" | "halo"}):
-- an nn.Sequential of ConvNd layers computing mlp(samples(field)) at every point
-- of a field (weights copied). Periodic: circular padding, output on the whole
-- field; halo: no padding, output on the interior.
function M.to_conv(mlp, opts)
  local fn = "stencil.to_conv"
  local nn = mimic.nn
  if not nn.is_module(mlp) then error(fn .. ": mlp must be an nn module (an nn.Sequential of Linear and activations)", 2) end
  opts = check_opts(fn, opts, { size = true, channels = true, dims = true, boundary = true })
  local nsp = type(opts.size) == "table" and #opts.size or (opts.dims or 3)
  if nsp < 1 or nsp > 3 then error(fn .. ": dims must be 1, 2 or 3", 2) end
  local k = sizes_of(fn, opts.size, nsp)
  local C = opts.channels
  if math.type(C) ~= "integer" or C < 1 then error(fn .. ": give channels = the number of field channels C", 2) end
  local boundary = opts.boundary or "periodic"
  if boundary ~= "periodic" and boundary ~= "halo" then
    error(string.format("%s: boundary must be 'periodic' or 'halo', got %s", fn, tostring(boundary)), 2)
  end
  local K, h = 1, {}
  for d = 1, nsp do K = K * k[d]; h[d] = k[d] // 2 end
  local Conv = nn["Conv" .. nsp .. "d"]
  local out = nn.Sequential()
  local first = true
  for i, m in ipairs(flatten_modules(mlp, {})) do
    local t = m.__typename
    if t == "Linear" then
      local cin, cout = m.in_features, m.out_features
      local ksize = 1
      local copts = { bias = m.bias ~= nil, dtype = m.weight:dtype() }
      local wshape = { cout, cin }
      if first then
        if cin ~= C * K then
          error(string.format("%s: the first Linear takes %d inputs, but %d channels x a %s stencil give %d", fn,
            cin, C, table.concat(k, "x"), C * K), 2)
        end
        ksize = k
        wshape = { cout, C }
        for d = 1, nsp do wshape[#wshape + 1] = k[d] end
        cin = C
        if boundary == "periodic" then copts.padding, copts.padding_mode = h, "circular" end
      else
        for _ = 1, nsp do wshape[#wshape + 1] = 1 end
      end
      local conv = Conv(cin, cout, ksize, copts)
      mimic.no_grad(function()
        conv.weight:copy(m.weight:reshape(wshape))
        if m.bias then conv.bias:copy(m.bias) end
      end)
      out:add(conv)
      first = false
    elseif POINTWISE[t] and m:is_builtin() and #m:parameters() == 0 then
      out:add(copy_pointwise(m))
    else
      error(string.format("%s: module %d (%s) has no convolutional equivalent; the MLP may hold only Linear "
        .. "layers and point-wise activations (nested Sequentials are fine)", fn, i, tostring(t)), 2)
    end
  end
  if first then error(fn .. ": the MLP has no Linear layer", 2) end
  out:train(mlp.training)
  return out
end

return M
