-- mimic.augment (lua/mimic/augment.lua): rot90 of vector fields against
-- hand-rotated fields (a hand-placed arrow, and an analytic field evaluated at
-- the rotated coordinates), every element of the cube's group against
-- v' = R v(R^-1 x) and T' = R T R^T point by point, composition rules, the
-- divergence's invariance, random draws (seeded, uniform over the group),
-- random rotations on SO(3), point sets, and crops.
local lu = require "luaunit"
local mimic = require "mimic"
local augment = require "mimic.augment"
local raises = require("helpers").raises

local function shape(t) return "[" .. table.concat(t:size(), ",") .. "]" end
local function close(a, b, tol, what)
  lu.assertEquals(shape(a), shape(b), (what or "") .. ": shape")
  local err = (a:detach():double() - b:detach():double()):abs():max():item()
  lu.assertTrue(err <= tol, string.format("%s: max error %g > %g", what or "", err, tol))
end

TestHandRotated = {}

-- One arrow on a 3x3 grid, 2-D: at row 1, column 1 (coordinates (-1, -1) about
-- the centre), pointing along +axis 1 (down the rows), in channels {1, 2}; a
-- scalar tag in channel 3. A quarter turn taking axis 1 to axis 2 moves the
-- point (x1, x2) to (-x2, x1) = (1, -1), i.e. row 3, column 1, and turns the
-- arrow to +axis 2 (along the row).
function TestHandRotated.test_single_arrow_2d()
  local x = mimic.zeros(1, 3, 3, 3)
  x[{ 1, 1, 1, 1 }] = 1
  x[{ 1, 3, 1, 1 }] = 7
  local y = augment.rot90(x, { k = 1, axes = { 1, 2 }, vector = { 1, 2 } })
  local want = mimic.zeros(1, 3, 3, 3)
  want[{ 1, 2, 3, 1 }] = 1
  want[{ 1, 3, 3, 1 }] = 7
  close(y, want, 0, "arrow")
  -- and back: the opposite turn, or three more quarter turns
  close(augment.rot90(y, { k = -1, axes = { 1, 2 }, vector = { 1, 2 } }), x, 0, "k = -1")
  close(augment.rot90(y, { k = 3, axes = { 1, 2 }, vector = { 1, 2 } }), x, 0, "k = 3")
  -- the channels may be listed in any position: the same arrow with the
  -- vector in channels {3, 1} and the tag in 2
  local x2 = mimic.zeros(1, 3, 3, 3)
  x2[{ 1, 3, 1, 1 }] = 1
  x2[{ 1, 2, 1, 1 }] = 7
  local want2 = mimic.zeros(1, 3, 3, 3)
  want2[{ 1, 1, 3, 1 }] = 1
  want2[{ 1, 2, 3, 1 }] = 7
  close(augment.rot90(x2, { axes = { 1, 2 }, vector = { 3, 1 } }), want2, 0, "channels {3, 1}")
end

-- A 3-D analytic velocity u(x) = (a1(x), a2(x), a3(x)) on a non-cubic grid,
-- rotated about axis 1 (axes {2, 3}): the expected field is built by hand at
-- each new grid point from the formula: x' -> x = R^-1 x', u' = R u(x), with
-- R e2 = e3, R e3 = -e2, so u'_1 = u_1, u'_2 = -u_3, u'_3 = u_2.
local function u_of(x1, x2, x3)
  return { 0.3 * x1 + x2 * x3, math.sin(x1) + 2 * x3, x1 * x2 - 0.5 * x3 ^ 2 }
end

function TestHandRotated.test_analytic_velocity_3d()
  local n = { 3, 4, 5 }
  local function field(sizes, f)
    local t = {}
    for c = 1, 3 do
      t[c] = {}
      for i = 1, sizes[1] do
        t[c][i] = {}
        for j = 1, sizes[2] do
          t[c][i][j] = {}
          for k = 1, sizes[3] do
            local x = { i - (sizes[1] + 1) / 2, j - (sizes[2] + 1) / 2, k - (sizes[3] + 1) / 2 }
            t[c][i][j][k] = f(x)[c]
          end
        end
      end
    end
    return mimic.tensor({ t }, "float64")
  end
  local u = field(n, function(x) return u_of(x[1], x[2], x[3]) end)
  -- the rotated grid has sizes {3, 5, 4}; at its point x', the original point is
  -- x = R^-1 x' = (x'_1, x'_3, -x'_2)
  local want = field({ 3, 5, 4 }, function(xp)
    local v = u_of(xp[1], xp[3], -xp[2])
    return { v[1], -v[3], v[2] }
  end)
  close(augment.rot90(u, { axes = { 2, 3 }, vector = { 1, 2, 3 } }), want, 1e-12, "rot90 about axis 1")
  -- a flip of axis 3: x = (x1, x2, -x3), u'_3 = -u_3
  local wflip = field(n, function(xp)
    local v = u_of(xp[1], xp[2], -xp[3])
    return { v[1], v[2], -v[3] }
  end)
  close(augment.flip(u, 3, { vector = { 1, 2, 3 } }), wflip, 1e-12, "flip axis 3")
end

TestGroup = {}

local function matvec(R, v)
  local r = {}
  for i = 1, #R do
    r[i] = 0
    for j = 1, #v do r[i] = r[i] + R[i][j] * v[j] end
  end
  return r
end

local function det3(R)
  return R[1][1] * (R[2][2] * R[3][3] - R[2][3] * R[3][2]) - R[1][2] * (R[2][1] * R[3][3] - R[2][3] * R[3][1])
       + R[1][3] * (R[2][1] * R[3][2] - R[2][2] * R[3][1])
end

-- For every element of the cube's group, on a non-cubic grid: at each new
-- point x', the old point x = R^T x'; vector v' = R v(x), pseudovector
-- w' = det(R) R w(x), general tensor T' = R T(x) R^T, symmetric S' = R S R^T.
function TestGroup.test_every_element_pointwise()
  local n = { 2, 3, 4 }
  -- channels: 1 scalar, 2-4 vector, 5-13 general tensor, 14-19 symmetric, 20-22 pseudovector
  local x = mimic.Generator(1):randn({ 1, 22, n[1], n[2], n[3] }, "float64")
  local xt = x:totable()[1]
  local opts = { vector = { 2, 3, 4 }, tensor = { { 5, 6, 7, 8, 9, 10, 11, 12, 13 }, { 14, 15, 16, 17, 18, 19 } },
                 pseudovector = { 20, 21, 22 } }
  local sym = { { 1, 1 }, { 2, 2 }, { 3, 3 }, { 1, 2 }, { 1, 3 }, { 2, 3 } }
  local elems = augment.group(3)
  lu.assertEquals(#elems, 48)
  for e, R in ipairs(elems) do
    local y = augment.apply(x, R, opts)
    local np = {}
    for i = 1, 3 do
      for j = 1, 3 do if R[i][j] ~= 0 then np[i] = n[j] end end
    end
    lu.assertEquals(shape(y), string.format("[1,22,%d,%d,%d]", np[1], np[2], np[3]), "element " .. e)
    local yt = y:totable()[1]
    local det = det3(R)
    for i1 = 1, np[1] do
      for i2 = 1, np[2] do
        for i3 = 1, np[3] do
          local xp = { i1 - (np[1] + 1) / 2, i2 - (np[2] + 1) / 2, i3 - (np[3] + 1) / 2 }
          local xo = {} -- x = R^T x'
          for j = 1, 3 do xo[j] = R[1][j] * xp[1] + R[2][j] * xp[2] + R[3][j] * xp[3] end
          local o = { xo[1] + (n[1] + 1) / 2, xo[2] + (n[2] + 1) / 2, xo[3] + (n[3] + 1) / 2 }
          local function old(c) return xt[c][o[1]][o[2]][o[3]] end
          local function new(c) return yt[c][i1][i2][i3] end
          local where = string.format("element %d at (%d,%d,%d)", e, i1, i2, i3)
          lu.assertEquals(new(1), old(1), where .. " scalar")
          local v = matvec(R, { old(2), old(3), old(4) })
          local w = matvec(R, { old(20), old(21), old(22) })
          for i = 1, 3 do
            lu.assertAlmostEquals(new(1 + i), v[i], 1e-14, where .. " vector")
            lu.assertAlmostEquals(new(19 + i), det * w[i], 1e-14, where .. " pseudovector")
          end
          local T, S = {}, {}
          for i = 1, 3 do
            T[i], S[i] = {}, {}
            for j = 1, 3 do T[i][j] = old(4 + (i - 1) * 3 + j) end
          end
          for p, ij in ipairs(sym) do S[ij[1]][ij[2]], S[ij[2]][ij[1]] = old(13 + p), old(13 + p) end
          for i = 1, 3 do
            for j = 1, 3 do
              local t, s = 0, 0
              for a = 1, 3 do
                for b = 1, 3 do
                  t = t + R[i][a] * T[a][b] * R[j][b]
                  s = s + R[i][a] * S[a][b] * R[j][b]
                end
              end
              lu.assertAlmostEquals(new(4 + (i - 1) * 3 + j), t, 1e-14, where .. " tensor")
              for p, ij in ipairs(sym) do
                if ij[1] == i and ij[2] == j then lu.assertAlmostEquals(new(13 + p), s, 1e-14, where .. " symmetric") end
              end
            end
          end
        end
      end
    end
  end
end

function TestGroup.test_group_sizes_and_determinants()
  lu.assertEquals(#augment.group(3), 48)
  lu.assertEquals(#augment.group(2), 8)
  lu.assertEquals(#augment.group(2, { reflections = false }), 4)
  local rot = augment.group(3, { reflections = false })
  lu.assertEquals(#rot, 24)
  for _, R in ipairs(rot) do lu.assertEquals(det3(R), 1) end
  local horiz = augment.group(3, { axes = { 2, 3 } })
  lu.assertEquals(#horiz, 8)
  for _, R in ipairs(horiz) do lu.assertEquals(R[1][1], 1) end -- axis 1 stays
  local seen = {}
  for _, R in ipairs(augment.group(3)) do
    local key = table.concat(R[1], ",") .. ";" .. table.concat(R[2], ",") .. ";" .. table.concat(R[3], ",")
    lu.assertNil(seen[key])
    seen[key] = true
  end
end

function TestGroup.test_composition_rules()
  local g = mimic.Generator(2)
  local x = g:randn({ 2, 5, 3, 4, 5 }, "float64") -- channels 1-3 a vector, 4 a scalar, 5 a scalar
  local o = { vector = { 1, 2, 3 } }
  for _, axes in ipairs({ { 1, 2 }, { 2, 3 }, { 3, 1 } }) do
    local y = x
    for _ = 1, 4 do y = augment.rot90(y, { axes = axes, vector = o.vector }) end
    close(y, x, 0, "four quarter turns")
    close(augment.rot90(augment.rot90(x, { axes = axes, k = 3, vector = o.vector }), { axes = axes, vector = o.vector }),
      x, 0, "k = 3 then 1")
    -- a half turn is the flip of both axes of its plane
    close(augment.rot90(x, { axes = axes, k = 2, vector = o.vector }), augment.flip(x, axes, o), 0, "half turn")
    -- turning a towards b is turning b towards a backwards
    close(augment.rot90(x, { axes = axes, vector = o.vector }),
      augment.rot90(x, { axes = { axes[2], axes[1] }, k = -1, vector = o.vector }), 0, "reversed axes")
  end
  for a = 1, 3 do close(augment.flip(augment.flip(x, a, o), a, o), x, 0, "flip twice") end
  -- apply(apply(x, A), B) = apply(x, B A)
  local elems = augment.group(3)
  for t = 1, 5 do
    local A, B = elems[t * 7], elems[t * 9 - 1]
    local BA = {}
    for i = 1, 3 do
      BA[i] = {}
      for j = 1, 3 do BA[i][j] = B[i][1] * A[1][j] + B[i][2] * A[2][j] + B[i][3] * A[3][j] end
    end
    close(augment.apply(augment.apply(x, A, o), B, o), augment.apply(x, BA, o), 0, "composition " .. t)
  end
end

-- Central differences on a periodic grid of unit spacing.
local function divergence(v, comps)
  local nsp = v:dim() - 2
  local div
  for a = 1, nsp do
    local n = v:size(a + 2)
    local up, dn = {}, {}
    for i = 1, n do up[i], dn[i] = i % n + 1, (i - 2) % n + 1 end
    local c = v:select(2, comps[a]):unsqueeze(2)
    local d = (c:index_select(a + 2, mimic.tensor(up, "int64")) - c:index_select(a + 2, mimic.tensor(dn, "int64"))) / 2
    div = div and div + d or d
  end
  return div
end

-- The divergence of a rotated/reflected velocity is the rotated divergence:
-- a wrong sign or swapped component breaks it.
function TestGroup.test_divergence_is_invariant()
  local g = mimic.Generator(3)
  local v3 = g:randn({ 2, 4, 6, 6, 6 }, "float64") -- a velocity in channels {4, 1, 3} (in axis order), 2 a scalar
  local comps = { 4, 1, 3 }
  local d = divergence(v3, comps)
  for _, R in ipairs(augment.group(3)) do
    close(divergence(augment.apply(v3, R, { vector = comps }), comps), augment.apply(d, R), 1e-13, "3-D divergence")
  end
  local v2 = g:randn({ 3, 2, 8, 8 }, "float64")
  local d2 = divergence(v2, { 1, 2 })
  for _, R in ipairs(augment.group(2)) do
    close(divergence(augment.apply(v2, R, { vector = { 1, 2 } }), { 1, 2 }), augment.apply(d2, R), 1e-13, "2-D")
  end
  -- without rotating the components the check fails (the test can fail)
  local bad = divergence(augment.rot90(v3, { axes = { 1, 2 } }), comps)
  lu.assertTrue((bad - augment.rot90(d, { axes = { 1, 2 } })):abs():max():item() > 0.1)
end

TestRandom = {}

function TestRandom.test_seeded_and_uniform_over_group()
  local x = mimic.Generator(4):randn({ 2, 3, 4, 4, 4 })
  local o = { vector = { 1, 2, 3 } }
  local a, Ra = augment.random(x, mimic.Generator(9), o)
  local b, Rb = augment.random(x, mimic.Generator(9), o)
  close(a, b, 0, "same seed")
  lu.assertEquals(Ra, Rb)
  close(a, augment.apply(x, Ra, o), 0, "the returned element")
  -- draws cover the 48 elements about evenly
  local g = mimic.Generator(10)
  local count, elems = {}, augment.group(3)
  local key = function(R) return table.concat(R[1], ",") .. table.concat(R[2], ",") .. table.concat(R[3], ",") end
  local small = mimic.zeros(1, 1, 1, 1, 1)
  for _ = 1, 4800 do
    local _, R = augment.random(small, g)
    count[key(R)] = (count[key(R)] or 0) + 1
  end
  for _, R in ipairs(elems) do
    local c = count[key(R)] or 0
    lu.assertTrue(c > 60 and c < 140, string.format("element drawn %d times of 4800 (expected 100)", c))
  end
  -- rotations only
  for _ = 1, 50 do
    local _, R = augment.random(small, g, { reflections = false })
    lu.assertEquals(det3(R), 1)
  end
end

function TestRandom.test_batch_tables_and_per_sample()
  local g = mimic.Generator(5)
  local batch = { x = g:randn({ 3, 3, 4, 4, 4 }, "float64"), y = g:randn({ 3, 1, 4, 4, 4 }, "float64"),
                  label = mimic.tensor({ 1, 2, 3 }) }
  local out, R = augment.random(batch, mimic.Generator(1),
    { fields = { x = { vector = { 1, 2, 3 } }, y = {} }, reflections = false })
  close(out.x, augment.apply(batch.x, R, { vector = { 1, 2, 3 } }), 0, "x")
  close(out.y, augment.apply(batch.y, R), 0, "y")
  lu.assertTrue(out.label == batch.label)
  -- one element per sample
  local ps, Rs = augment.random(batch.x, mimic.Generator(2), { per_sample = true, vector = { 1, 2, 3 } })
  lu.assertEquals(#Rs, 3)
  for i = 1, 3 do
    close(ps:narrow(1, i, 1), augment.apply(batch.x:narrow(1, i, 1), Rs[i], { vector = { 1, 2, 3 } }), 0, "sample " .. i)
  end
  -- the loader hook
  local hook = augment.transform({ generator = mimic.Generator(1), reflections = false, crop = 3,
                                   fields = { x = { vector = { 1, 2, 3 } }, y = {} } })
  local h = hook(batch)
  lu.assertEquals(shape(h.x), "[3,3,3,3,3]")
  lu.assertEquals(shape(h.y), "[3,1,3,3,3]")
end

function TestRandom.test_errors()
  local x = mimic.zeros(1, 3, 4, 4)
  raises("listed twice", augment.rot90, x, { vector = { 1, 1 } })
  raises("needs 2 channels", augment.rot90, x, { vector = { 1, 2, 3 } })
  raises("not in 1..3", augment.rot90, x, { vector = { 1, 4 } })
  raises("spatial axis 3 is not in 1..2", augment.flip, x, 3)
  raises("needs 4 channels (general) or 3", augment.rot90, mimic.zeros(1, 2, 4, 4), { tensor = { 1, 2 } })
  raises("[N, C, H, W]", augment.rot90, mimic.zeros(3, 4, 4))
  raises("signed permutation", augment.apply, x, { { 1, 1 }, { 0, 1 } })
  raises("unknown option", augment.rot90, x, { vectors = { 1, 2 } })
end

TestRotation = {}

function TestRotation.test_random_rotation_on_so3()
  local g = mimic.Generator(6)
  local n = 4000
  local sum, sq = mimic.zeros({ 3, 3 }, "float64"), mimic.zeros({ 3, 3 }, "float64")
  for t = 1, n do
    local R = augment.random_rotation(g, "float64")
    if t <= 200 then
      close(R:matmul(R:t()), mimic.eye(3, "float64"), 1e-12, "orthogonal")
      local Rt = R:totable()
      lu.assertAlmostEquals(det3(Rt), 1, 1e-12)
    end
    sum = sum + R
    sq = sq + R * R
  end
  -- uniform on SO(3): E[R] = 0, E[R_ij^2] = 1/3 (std of the means ~0.009 and ~0.005)
  lu.assertTrue((sum / n):abs():max():item() < 0.05, "mean of R")
  lu.assertTrue(((sq / n) - 1 / 3):abs():max():item() < 0.03, "mean of R^2")
  -- seeded
  close(augment.random_rotation(mimic.Generator(3)), augment.random_rotation(mimic.Generator(3)), 0, "seed")
  lu.assertEquals(augment.random_rotation(mimic.Generator(3)):dtype(), "float32")
end

function TestRotation.test_rotate_points_and_tensors()
  local g = mimic.Generator(7)
  local p = g:randn({ 50, 3 }, "float64")
  local v = g:randn({ 50, 3 }, "float64")
  local R = augment.random_rotation(g, "float64")
  local c = { 0.5, -1, 2 }
  local q, w = augment.rotate_points(p, v, R, c)
  -- distances to the centre, pair distances, and v . (p - c) are preserved
  local ct = mimic.tensor({ c }, "float64")
  close((q - ct):norm(2, 2), (p - ct):norm(2, 2), 1e-12, "distance to centre")
  close((q[1] - q[2]):norm(), (p[1] - p[2]):norm(), 1e-12, "pair distance")
  close((w * (q - ct)):sum(2), (v * (p - ct)):sum(2), 1e-12, "v . r")
  -- against the explicit product, point by point
  local Rt, pt, qt = R:totable(), p:totable(), q:totable()
  for i = 1, 50 do
    local r = matvec(Rt, { pt[i][1] - c[1], pt[i][2] - c[2], pt[i][3] - c[3] })
    for j = 1, 3 do lu.assertAlmostEquals(qt[i][j], r[j] + c[j], 1e-12) end
  end
  -- a list of vector attributes, R as a Lua table, no centre
  local q2, ws = augment.rotate_points(p, { v, v * 2 }, Rt)
  close(q2, p:matmul(R:t()), 1e-12, "no centre")
  close(ws[2], w * 2, 1e-12, "second attribute")
  -- tensors: R T R^T, and the trace and the Frobenius norm are invariant
  local T = g:randn({ 10, 3, 3 }, "float64")
  local T2 = augment.rotate_tensor(T, R)
  local tr = function(A) return A:select(2, 1):select(2, 1) + A:select(2, 2):select(2, 2) + A:select(2, 3):select(2, 3) end
  close(tr(T2), tr(T), 1e-12, "trace")
  close(T2:norm(2, 3):norm(2, 2), T:norm(2, 3):norm(2, 2), 1e-12, "norm")
  close(T2[4], R:matmul(T[4]):matmul(R:t()), 1e-12, "R T R^T")
  -- a point set rotated by a cube symmetry then gridded equals the gridded set rotated
  local R90 = augment.rot90_matrix(3, 1, { 2, 3 })
  local pts = mimic.tensor({ { -1, -1, 1 }, { 0, 1, -1 } }, "float64")
  local grid = mimic.zeros(1, 1, 3, 3, 3, "float64")
  local grid2 = mimic.zeros(1, 1, 3, 3, 3, "float64")
  local rp = augment.rotate_points(pts, nil, R90):totable()
  for i, pt in ipairs(pts:totable()) do
    grid[{ 1, 1, pt[1] + 2, pt[2] + 2, pt[3] + 2 }] = i
    grid2[{ 1, 1, math.floor(rp[i][1] + 2.5), math.floor(rp[i][2] + 2.5), math.floor(rp[i][3] + 2.5) }] = i
  end
  close(augment.apply(grid, R90), grid2, 0, "points then grid = grid then rot90")
end

TestCrop = {}

function TestCrop.test_crops()
  local x = mimic.arange(2 * 1 * 6 * 7 * 8):view(2, 1, 6, 7, 8)
  for seed = 1, 20 do
    local y, s = augment.crop(x, { 3, 4, 5 }, mimic.Generator(seed))
    lu.assertEquals(shape(y), "[2,1,3,4,5]")
    lu.assertTrue(s[1] >= 1 and s[1] <= 4 and s[2] >= 1 and s[2] <= 4 and s[3] >= 1 and s[3] <= 4)
    close(y, x:narrow(3, s[1], 3):narrow(4, s[2], 4):narrow(5, s[3], 5), 0, "view")
    local y2, s2 = augment.crop(x, { 3, 4, 5 }, mimic.Generator(seed))
    lu.assertEquals(s2, s)
    close(y2, y, 0, "same seed")
  end
  -- every start is reached over many draws
  local g, seen = mimic.Generator(3), {}
  for _ = 1, 200 do
    local _, s = augment.crop(x, 5, g)
    seen[s[1]] = true
  end
  lu.assertEquals(seen, { true, true })
  -- table batches: the same window for every listed field
  local b = { x = x, y = x * 2, meta = 1 }
  local out, s = augment.crop(b, 2, mimic.Generator(1), { fields = { x = true, y = true } })
  close(out.y, out.x * 2, 0, "same window")
  lu.assertEquals(out.meta, 1)
  lu.assertEquals(#s, 3)
  raises("must be an integer in 1..6", augment.crop, x, 7)
end

os.exit(lu.LuaUnit.run())
