-- Physical-constraint layers (lua/mimic/constraints.lua): outputs satisfy
-- their constraint exactly, gradients match central finite differences in
-- float64, and the compiled plan and a saved model file give the forward's
-- values.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local C = mimic.constraints

local function maxdiff(a, b)
  return (a:detach():to("float64") - b:detach():to("float64")):abs():max():item()
end

-- d(sum(f(x) * r))/dx by autograd against central differences, float64.
local function gradcheck(f, x, tol)
  local g = mimic.Generator(11)
  x = x:detach():clone():requires_grad_()
  local y = f(x)
  local r = g:randn(y:size(), { dtype = "float64" })
  ;(y * r):sum():backward()
  local ga = x.grad:clone()
  local h = 1e-6
  local xd = x:detach():clone()
  local flat = xd:view({ -1 })
  local gflat = ga:view({ -1 })
  local worst = 0
  for i = 1, flat:numel() do
    local v = flat[i]
    flat[i] = v + h
    local fp = mimic.no_grad(function() return (f(xd) * r):sum():item() end)
    flat[i] = v - h
    local fm = mimic.no_grad(function() return (f(xd) * r):sum():item() end)
    flat[i] = v
    local fd = (fp - fm) / (2 * h)
    worst = math.max(worst, math.abs(fd - gflat[i]) / math.max(1, math.abs(fd)))
  end
  lu.assertTrue(worst < (tol or 1e-6), "gradient vs finite differences: " .. worst)
end

local function data(n, w, scale)
  return mimic.Generator(3):randn({ n, w }, { dtype = "float64" }) * (scale or 3)
end

function test_positive()
  local m = C.Positive(2)
  local x = data(50, 4, 10)
  local y = m(x)
  lu.assertTrue(y:min():item() > 0)
  -- values, not just the sign: PyTorch's softplus (x itself where beta x > threshold)
  local ref = mimic.where((x * 2):gt(20), x, ((x * 2):exp() + 1):log() / 2)
  lu.assertTrue(maxdiff(y, ref) < 1e-12)
  gradcheck(function(t) return m(t) end, data(5, 3))
end

function test_bounded()
  local m = C.Bounded(-2, 3, 4, { dtype = "float64" })
  local x = data(200, 4, 30)
  local y = m(x)
  lu.assertTrue(y:min():item() >= -2 and y:max():item() <= 3)
  lu.assertTrue(y:min():item() < -1.99 and y:max():item() > 2.99) -- the range is used, not shrunk
  lu.assertTrue(maxdiff(y, x:sigmoid() * 5 - 2) < 1e-14)
  gradcheck(function(t) return m(t) end, data(5, 4))
  local pf = C.Bounded({ 0, 1 }, { 1, 10 }, { dtype = "float64" })
  local z = pf(data(100, 2, 20))
  lu.assertTrue(z:select(2, 2):min():item() >= 1 and z:select(2, 2):max():item() <= 10)
  lu.assertTrue(z:select(2, 1):max():item() <= 1)
end

function test_symmetric_tensor()
  local m = C.SymmetricTensor({ dtype = "float64" })
  local x = data(20, 6)
  local y = m(x)
  lu.assertEquals(y:size(), { 20, 9 })
  local Y = y:reshape({ 20, 3, 3 })
  lu.assertEquals(maxdiff(Y, Y:transpose(2, 3)), 0)
  -- the documented order (xx, yy, zz, xy, xz, yz)
  local r = x[1]
  local t = Y[1]
  lu.assertEquals(t[{ 1, 1 }], r[1]); lu.assertEquals(t[{ 2, 2 }], r[2]); lu.assertEquals(t[{ 3, 3 }], r[3])
  lu.assertEquals(t[{ 1, 2 }], r[4]); lu.assertEquals(t[{ 1, 3 }], r[5]); lu.assertEquals(t[{ 2, 3 }], r[6])
  gradcheck(function(s) return m(s) end, data(3, 6))
end

function test_conservation_projection()
  local m = C.ConservationProjection(7, 2.5, { dtype = "float64" })
  local x = data(30, 7, 5)
  local y = m(x)
  local s = y:sum(2)
  lu.assertTrue((s - 2.5):abs():max():item() < 1e-12)
  -- the smallest correction: y - x is the same for every component of a row
  local d = y - x
  lu.assertTrue((d - d:mean(2, true)):abs():max():item() < 1e-12)
  gradcheck(function(t) return m(t) end, data(4, 7))
  -- the total from the last input column
  local mi = C.ConservationProjection(5, "input", { dtype = "float64" })
  local xi = data(30, 6, 5)
  local yi = mi(xi)
  lu.assertTrue((yi:sum(2) - xi:select(2, 6)):abs():max():item() < 1e-12)
  gradcheck(function(t) return mi(t) end, data(4, 6))
end

function test_dissipation_penalty_and_limiter()
  local g = mimic.Generator(5)
  local tau = g:randn({ 64, 6 }, { dtype = "float64" })
  local S = g:randn({ 64, 6 }, { dtype = "float64" })
  -- 6-component form equals the full 3x3 contraction
  local sym = C.SymmetricTensor({ dtype = "float64" })
  local d6 = C.dissipation(tau, S)
  local d9 = C.dissipation(sym(tau), sym(S))
  lu.assertTrue(maxdiff(d6, d9) < 1e-12)
  lu.assertTrue(d6:min():item() < 0) -- some samples violate it
  local pen = C.dissipation_penalty(tau, S)
  lu.assertAlmostEquals(pen:item(), (-d6):clamp(0, nil):mean():item(), 1e-14)
  gradcheck(function(t) return C.dissipation_penalty(t, S:narrow(1, 1, 6), { reduction = "none" }) end,
    tau:narrow(1, 1, 6))
  for _, mode in ipairs({ "project", "zero" }) do
    local lim = C.DissipationLimiter({ mode = mode })
    local t2 = lim(tau, S)
    local d = C.dissipation(t2, S)
    lu.assertTrue(d:min():item() >= -1e-12, mode)
    -- samples that already dissipate are untouched
    local keep = d6:ge(0)
    lu.assertTrue(maxdiff(mimic.where(keep:unsqueeze(2), t2, tau), tau) == 0, mode)
    if mode == "project" then -- projected samples dissipate exactly 0
      lu.assertTrue(mimic.where(keep, d * 0, d):abs():max():item() < 1e-12)
    end
  end
  local lim = C.DissipationLimiter()
  gradcheck(function(t) return lim(t, S:narrow(1, 1, 6)) end, tau:narrow(1, 1, 6))
  lu.assertFalse(pcall(C.records, lim))
end

-- A model with every constraint layer that has a C form: compiled plan and
-- model file equal the autograd forward.
function test_compiled_and_saved_forms()
  for _, dt in ipairs({ "float64", "float32" }) do
    local tol = dt == "float64" and 1e-12 or 2e-6
    local g = mimic.Generator(9)
    local function trunk(nout)
      return nn.Sequential(nn.Linear(3, 16, { dtype = dt, generator = g }), nn.Tanh(),
        nn.Linear(16, nout, { dtype = dt, generator = g }))
    end
    local models = {
      { trunk(4):add(C.Positive(1.5)), "positive" },
      { trunk(4):add(C.Bounded(-1, 2, 4, { dtype = dt })), "bounded" },
      { trunk(6):add(C.SymmetricTensor({ dtype = dt })), "sym" },
      { trunk(5):add(C.ConservationProjection(5, 1.25, { dtype = dt })), "cons" },
    }
    local x = g:randn({ 40, 3 }, { dtype = dt }) * 2
    for _, e in ipairs(models) do
      local m = e[1]:evaluate()
      local ref = mimic.no_grad(function() return m(x) end)
      local p = C.compile(m)
      lu.assertTrue(maxdiff(p:forward(x), ref) < tol, e[2] .. " " .. dt)
      -- model:forward now runs the plan
      lu.assertTrue(maxdiff(mimic.no_grad(function() return m(x) end), ref) < tol)
      local path = os.tmpname()
      C.save(m, path, { inputs = { { name = "x", units = "1", size = 3 } },
        outputs = { { name = "y", units = "1", size = ref:size(2) } } })
      local L = mimic.load_model(path)
      os.remove(path)
      lu.assertTrue(maxdiff(L:forward(x:double()), ref) < tol, e[2] .. " saved " .. dt)
      if e[2] == "cons" then lu.assertTrue((L:forward(x:double()):sum(2) - 1.25):abs():max():item() < 10 * tol) end
      -- model:compile() and model:save() lower constraint layers themselves
      local m2 = e[1]:evaluate()
      lu.assertTrue(maxdiff(m2:compile():forward(x), ref) < tol, e[2] .. " model:compile " .. dt)
      local path2 = os.tmpname()
      m2:save(path2, { inputs = { { name = "x", units = "1", size = 3 } },
        outputs = { { name = "y", units = "1", size = ref:size(2) } } })
      local L2 = mimic.load_model(path2)
      os.remove(path2)
      lu.assertTrue(maxdiff(L2:forward(x:double()), ref) < tol, e[2] .. " model:save " .. dt)
    end
    -- per-layer records use existing record types only
    local kinds = {}
    for _, r in ipairs(C.records(models[2][1])) do kinds[#kinds + 1] = r.type end
    lu.assertEquals(kinds, { "dense", "tanh", "dense", "sigmoid", "batchnorm1d" })
  end
end

function test_errors()
  lu.assertFalse(pcall(C.Bounded, 1, 1))
  lu.assertFalse(pcall(C.ConservationProjection, 3, "x"))
  lu.assertFalse(pcall(C.records, nn.Sequential(C.Bounded(0, 1)))) -- no width: no C form
  lu.assertFalse(pcall(function() C.SymmetricTensor()(mimic.zeros(2, 5)) end))
end

os.exit(lu.LuaUnit.run())
