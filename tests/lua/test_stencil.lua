-- mimic.stencil (lua/mimic/stencil.lua): neighbourhood samples against a
-- direct per-element reference (the documented ordering), chosen points
-- against the rows of "all", halo mode against a periodically padded field,
-- the gradient of the sampling, and to_conv(mlp)(field) equal to
-- mlp(samples(field)) in 1-D, 2-D and 3-D, periodic and halo.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local stencil = require "mimic.stencil"
local raises = require("helpers").raises

local function shape(t) return "[" .. table.concat(t:size(), ",") .. "]" end
local function close(a, b, tol, what)
  lu.assertEquals(shape(a), shape(b), (what or "") .. ": shape")
  local err = (a:detach():double() - b:detach():double()):abs():max():item()
  lu.assertTrue(err <= tol, string.format("%s: max error %g > %g", what or "", err, tol))
end

-- The value of a [C, n...] field (as nested tables) at channel c and 0-based
-- index i (a table), wrapped periodically.
local function at(tab, sizes, c, i)
  local v = tab[c]
  for d = 1, #i do v = v[(i[d] % sizes[d]) + 1] end
  return v
end

-- Samples by direct loops: rows over interior points in row-major order; a row
-- is channel-major, then offsets along dim 1..d, the last fastest.
local function reference(field, k, halo)
  local tab = field:totable()
  local C, nsp = field:size(1), field:dim() - 1
  local n, m, h = {}, {}, {}
  for d = 1, nsp do
    n[d] = field:size(d + 1)
    h[d] = k[d] // 2
    m[d] = halo and n[d] - 2 * h[d] or n[d]
  end
  local rows = {}
  local function points(d, p)
    if d > nsp then
      local row = {}
      for c = 1, C do
        local function offs(e, o)
          if e > nsp then
            local i = {}
            for f = 1, nsp do i[f] = halo and p[f] + o[f] or p[f] + o[f] - h[f] end
            row[#row + 1] = at(tab, n, c, i)
            return
          end
          for j = 0, k[e] - 1 do o[e] = j; offs(e + 1, o) end
        end
        offs(1, {})
      end
      rows[#rows + 1] = row
      return
    end
    for i = 0, m[d] - 1 do p[d] = i; points(d + 1, p) end
  end
  points(1, {})
  return mimic.tensor(rows, field:dtype())
end

TestSamples = {}

function TestSamples.test_periodic_matches_loops()
  local g = mimic.Generator(1)
  for _, case in ipairs({ { { 2, 7 }, { 3 } }, { { 2, 4, 5 }, { 3, 5 } }, { { 2, 3, 4, 5 }, { 3, 3, 5 } },
                          { { 1, 2, 3 }, { 5, 5 } } }) do -- the last: a stencil wider than the field
    local f = g:randn(case[1], "float64")
    local s, m = stencil.samples(f, { size = case[2] })
    close(s, reference(f, case[2], false), 0, "periodic " .. shape(f))
    lu.assertEquals(#m, f:dim() - 1)
  end
end

function TestSamples.test_halo_matches_loops()
  local g = mimic.Generator(2)
  for _, case in ipairs({ { { 2, 9 }, { 5 } }, { { 3, 6, 7 }, { 3, 5 } }, { { 2, 5, 6, 7 }, { 3, 3, 5 } } }) do
    local f = g:randn(case[1], "float64")
    local s, m = stencil.samples(f, { size = case[2], boundary = "halo" })
    close(s, reference(f, case[2], true), 0, "halo " .. shape(f))
    for d = 1, #m do lu.assertEquals(m[d], f:size(d + 1) - 2 * (case[2][d] // 2)) end
  end
end

-- A periodic box padded by hand with its own wrap-around as halo gives the
-- periodic samples in halo mode.
function TestSamples.test_halo_of_padded_field_equals_periodic()
  local f = mimic.Generator(3):randn({ 2, 4, 5, 6 }, "float64")
  local h = 1
  local p = f
  for d = 2, 4 do
    local n = f:size(d)
    p = mimic.cat({ p:narrow(d, n - h + 1, h), p, p:narrow(d, 1, h) }, d)
  end
  close(stencil.samples(p, { size = 3, boundary = "halo" }), stencil.samples(f, { size = 3 }), 0, "halo vs periodic")
  close(stencil.interior(p, 3), f, 0, "interior")
end

function TestSamples.test_chosen_points_are_rows_of_all()
  local f = mimic.Generator(4):randn({ 2, 5, 6, 7 }, "float64")
  for _, b in ipairs({ "periodic", "halo" }) do
    local all, m = stencil.samples(f, { size = 3, boundary = b })
    local flat = { 1, 7, m[1] * m[2] * m[3], 40 }
    local s = stencil.samples(f, { size = 3, boundary = b, points = mimic.tensor(flat, "int64") })
    close(s, all:index_select(1, mimic.tensor(flat, "int64")), 0, b .. " flat")
    -- the same points as 1-based coordinates
    local coords = {}
    for i, p in ipairs(flat) do
      local q = p - 1
      coords[i] = { q // (m[2] * m[3]) + 1, (q // m[3]) % m[2] + 1, q % m[3] + 1 }
    end
    close(stencil.samples(f, { size = 3, boundary = b, points = coords }), s, 0, b .. " coordinates")
  end
end

-- Each cell appears in K samples of each of its channels (periodic), so the
-- gradient of the sum of all samples is K everywhere.
function TestSamples.test_gradient()
  local f = mimic.Generator(5):randn({ 2, 4, 5 }, "float64"):requires_grad_()
  stencil.samples(f, { size = { 3, 5 } }):sum():backward()
  close(f.grad, mimic.full({ 2, 4, 5 }, 15, "float64"), 0, "grad all")
  local f2 = mimic.Generator(5):randn({ 1, 6 }, "float64"):requires_grad_()
  stencil.samples(f2, { size = 3, points = { 1 } }):sum():backward()
  close(f2.grad, mimic.tensor({ { 1, 1, 0, 0, 0, 1 } }, "float64"), 0, "grad of point 1 (wraps)")
end

function TestSamples.test_errors()
  local f = mimic.zeros(2, 4, 4)
  raises("odd integer", stencil.samples, f, { size = 4 })
  raises("halo cells", stencil.samples, f, { size = 5, boundary = "halo" })
  raises("boundary must be", stencil.samples, f, { boundary = "zeros" })
  raises("outside 1..16", stencil.samples, f, { size = 3, points = { 17 } })
  raises("outside 1..4", stencil.samples, f, { size = 3, points = { { 1, 5 } } })
  raises("channels first", stencil.samples, mimic.zeros(2, 2, 2, 2, 2), { size = 3 })
  raises("unknown option", stencil.samples, f, { sise = 3 })
  raises("rows", stencil.to_field, mimic.zeros(5, 2), { 2, 3 })
end

TestToConv = {}

local function mlp(cin, g)
  return nn.Sequential(nn.Linear(cin, 8, { generator = g, dtype = "float64" }), nn.Tanh(),
    nn.Sequential(nn.Linear(8, 6, { generator = g, dtype = "float64" }), nn.LeakyReLU(0.1)),
    nn.Linear(6, 3, { generator = g, dtype = "float64" }))
end

function TestToConv.test_equals_mlp_on_samples()
  local g = mimic.Generator(6)
  for _, case in ipairs({ { { 2, 11 }, 5 }, { { 2, 7, 8 }, { 3, 5 } }, { { 2, 6, 7, 8 }, 3 }, { { 1, 5, 6, 7 }, 5 } }) do
    local nsp = #case[1] - 1
    local f = g:randn(case[1], "float64")
    local K = 1
    for d = 1, nsp do K = K * (type(case[2]) == "table" and case[2][d] or case[2]) end
    local net = mlp(case[1][1] * K, g)
    for _, b in ipairs({ "periodic", "halo" }) do
      local conv = stencil.to_conv(net, { size = case[2], channels = case[1][1], dims = nsp, boundary = b })
      local s, m = stencil.samples(f, { size = case[2], boundary = b })
      local want = stencil.to_field(net(s), m)
      close(conv(f), want, 1e-12, b .. " " .. shape(f))
      close(conv(f:unsqueeze(1)), want:unsqueeze(1), 1e-12, b .. " batched " .. shape(f))
    end
  end
end

function TestToConv.test_structure_and_errors()
  local g = mimic.Generator(7)
  local net = nn.Sequential(nn.Linear(2 * 27, 4, { generator = g }), nn.ReLU(), nn.Linear(4, 1, { generator = g }))
  local conv = stencil.to_conv(net, { size = 3, channels = 2 })
  lu.assertEquals(conv[1].__typename, "Conv3d")
  lu.assertEquals(conv[1].padding_mode, "circular")
  lu.assertEquals(table.concat(conv[3].kernel_size, "x"), "1x1x1")
  lu.assertEquals(conv[1].weight:dtype(), "float32")
  -- the copy is independent of the MLP
  mimic.no_grad(function() net[1].weight:fill(0) end)
  lu.assertTrue(conv[1].weight:abs():sum():item() > 0)
  raises("first Linear takes 54 inputs", stencil.to_conv, net, { size = 5, channels = 2 })
  raises("no convolutional equivalent", stencil.to_conv,
    nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)), { size = 1, channels = 3 })
  raises("give channels", stencil.to_conv, net, { size = 3 })
end

-- The whitepaper's use: train on stencils at a few points, run on the whole field.
function TestToConv.test_trained_on_points_runs_on_field()
  local g = mimic.Generator(8)
  local f = g:randn({ 1, 12, 12 }, "float64")
  -- target: a 5-point Laplacian (periodic), learnt by a linear model on 3x3 stencils
  local function lap(x)
    local s = stencil.samples(x, { size = 3 })
    return s:select(2, 2) + s:select(2, 4) + s:select(2, 6) + s:select(2, 8) - 4 * s:select(2, 5)
  end
  local pts = g:randperm(144):narrow(1, 1, 60)
  local x = stencil.samples(f, { size = 3, points = pts })
  local y = lap(f):index_select(1, pts):view(-1, 1)
  local net = nn.Sequential(nn.Linear(9, 1, { dtype = "float64", generator = g }))
  local opt = mimic.optim.Adam(net:parameters(), { lr = 0.05 })
  for _ = 1, 400 do
    opt:zero_grad()
    local loss = ((net(x) - y) ^ 2):mean()
    loss:backward()
    opt:step()
  end
  local conv = stencil.to_conv(net, { size = 3, channels = 1, dims = 2 })
  local out = mimic.no_grad(function() return conv(f) end)
  close(out, lap(f):view(1, 12, 12), 1e-2, "learnt Laplacian over the field")
end

os.exit(lu.LuaUnit.run())
