-- The compiled training step (mimic.trainstep, core/nn/trainstep.c) against
-- the autograd path it replaces: one step gives the same loss, gradients and
-- parameters (float32 to 1e-6, float64 to 1e-12 relative) for every
-- activation, with and without bias, 1-3 hidden layers, batches of 1, 7 and
-- 256, Adam, AdamW and SGD with momentum; 50-step trajectories and steps
-- that switch between the two paths; mimic.train with compiled = true and
-- false gives the same loss curve, and falls back to autograd for anything
-- the compiled step does not take.
local lu = require "luaunit"
local mimic = require "mimic"
local raises = require("helpers").raises
local nn, optim = mimic.nn, mimic.optim
local F = nn.functional

mimic.set_num_threads(2)

local ACTS = {
  { "ReLU", function() return nn.ReLU() end, "relu" },
  { "LeakyReLU", function() return nn.LeakyReLU(0.2) end, "leaky_relu", 0.2 },
  { "ELU", function() return nn.ELU(1.3) end, "elu", 1.3 },
  { "GELU", function() return nn.GELU() end, "gelu" },
  { "Tanh", function() return nn.Tanh() end, "tanh" },
  { "Sigmoid", function() return nn.Sigmoid() end, "sigmoid" },
  { "Softplus", function() return nn.Softplus(1.5, 2) end, "softplus", 1.5, 2 },
  { "Identity", function() return nn.Identity() end, "identity" },
}

-- A Sequential of Linear layers (sizes) with act() between them, its weights
-- drawn from a generator seeded with `seed`, and the records for mimic.trainstep.
local function build(sizes, act, bias, dtype, seed)
  local g = mimic.Generator(seed)
  local layers, records = {}, {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1], { bias = bias, dtype = dtype, generator = g })
    records[#records + 1] = { type = "dense", out = sizes[i + 1], bias = bias }
    if i < #sizes - 1 then
      layers[#layers + 1] = act[2]()
      records[#records + 1] = { type = act[3], p0 = act[4], p1 = act[5] }
    end
  end
  return nn.Sequential(table.unpack(layers)), records
end

local function make_opt(kind, model)
  if kind == "Adam" then return optim.Adam(model, { lr = 1e-2 }) end
  if kind == "AdamW" then return optim.AdamW(model, { lr = 1e-2, weight_decay = 0.1 }) end
  if kind == "SGD" then return optim.SGD(model, { lr = 0.05, momentum = 0.9, weight_decay = 0.01 }) end
  return optim.SGD(model, { lr = 0.05, momentum = 0.8, nesterov = true })
end

-- max |a - b| / max |b| over two tensors.
local function rel(a, b)
  local m = b:abs():max():item()
  local d = (a - b):abs():max():item()
  return m > 0 and d / m or d
end

local function tol_of(dtype) return dtype == "float64" and 1e-12 or 1e-6 end

local function autograd_step(model, opt, x, y, loss_fn)
  opt:zero_grad()
  local l = (loss_fn or F.mse_loss)(model(x), y)
  l:backward()
  opt:step()
  return l:item()
end

-- --- one step ---------------------------------------------------------------------
TestOneStep = {}

-- Runs one step both ways from equal models and compares everything.
local function compare_one(sizes, act, bias, dtype, batch, kind)
  local a = build(sizes, act, bias, dtype, 7)
  local b, records = build(sizes, act, bias, dtype, 7)
  local oa, ob = make_opt(kind, a), make_opt(kind, b)
  local g = mimic.Generator(batch)
  local x = g:uniform({ batch, sizes[1] }, -2, 2):to(dtype)
  local y = g:uniform({ batch, sizes[#sizes] }, -1, 1):to(dtype)
  local ts = mimic.trainstep(records, sizes[1], ob.flat_params, ob.flat_grads, 256)
  local tol = tol_of(dtype)
  local what = string.format("%s %s bias=%s %s batch %d %s", table.concat(sizes, "-"), act[1], tostring(bias), dtype,
    batch, kind)
  for step = 1, 2 do
    local la = autograd_step(a, oa, x, y)
    local lb = ts:step(x, y, ob)
    lu.assertTrue(math.abs(la - lb) <= tol * math.abs(la), what .. ": loss " .. la .. " vs " .. lb)
    local eg, ep = rel(ob.flat_grads, oa.flat_grads), rel(ob.flat_params, oa.flat_params)
    lu.assertTrue(eg <= tol, string.format("%s step %d: gradients differ by %g", what, step, eg))
    lu.assertTrue(ep <= tol, string.format("%s step %d: parameters differ by %g", what, step, ep))
    lu.assertEquals(ob.state.step, oa.state.step)
    -- The compiled step writes the optimizer's state tensors, in place.
    local sa = oa:state_dict().state
    for k, v in pairs(ob:state_dict().state) do
      lu.assertTrue(rel(v, sa[k]) <= tol, what .. ": state " .. k)
    end
    -- The model's own tensors see the update: its forward agrees.
    lu.assertTrue(rel(b(x), a(x)) <= 10 * tol, what .. ": forward after the step")
  end
end

function TestOneStep:test_every_activation()
  for _, act in ipairs(ACTS) do
    for _, bias in ipairs({ true, false }) do
      for _, dtype in ipairs({ "float32", "float64" }) do
        compare_one({ 5, 12, 9, 3 }, act, bias, dtype, 7, "Adam")
      end
    end
  end
end

function TestOneStep:test_depths_batches_optimizers()
  local nets = { { 4, 16, 2 }, { 6, 32, 24, 5 }, { 3, 20, 20, 20, 4 } }
  for _, sizes in ipairs(nets) do
    for _, batch in ipairs({ 1, 7, 256 }) do
      for _, kind in ipairs({ "Adam", "AdamW", "SGD", "Nesterov" }) do
        for _, dtype in ipairs({ "float32", "float64" }) do
          compare_one(sizes, ACTS[2], true, dtype, batch, kind)
        end
      end
    end
  end
end

-- Losses: MSE, L1, Huber, the sum reduction, against the autograd losses.
function TestOneStep:test_losses()
  local cases = {
    { "mse", 1, false, F.mse_loss },
    { "l1", 1, false, F.l1_loss },
    { "huber", 0.3, false, function(p, t) return F.huber_loss(p, t, { delta = 0.3 }) end },
    { "mse", 1, true, function(p, t) return F.mse_loss(p, t, { reduction = "sum" }) end },
  }
  for _, dtype in ipairs({ "float32", "float64" }) do
    for _, c in ipairs(cases) do
      local a = build({ 3, 10, 2 }, ACTS[5], true, dtype, 3)
      local b, records = build({ 3, 10, 2 }, ACTS[5], true, dtype, 3)
      local oa, ob = optim.Adam(a, { lr = 1e-2 }), optim.Adam(b, { lr = 1e-2 })
      local g = mimic.Generator(1)
      local x, y = g:uniform({ 70, 3 }, -2, 2):to(dtype), g:uniform({ 70, 2 }, -1, 1):to(dtype)
      local ts = mimic.trainstep(records, 3, ob.flat_params, ob.flat_grads, 70)
      ts:set_loss(c[1], c[2], c[3])
      local la, lb = autograd_step(a, oa, x, y, c[4]), ts:step(x, y, ob)
      local tol = tol_of(dtype)
      lu.assertTrue(math.abs(la - lb) <= tol * math.abs(la), c[1] .. " loss")
      lu.assertTrue(rel(ob.flat_grads, oa.flat_grads) <= tol, c[1] .. " gradients")
      lu.assertTrue(rel(ob.flat_params, oa.flat_params) <= tol, c[1] .. " parameters")
    end
  end
end

-- The C API's errors reach Lua clearly (mimic.train falls back silently instead).
function TestOneStep:test_errors()
  local m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
  local o = optim.Adam(m)
  raises("'layernorm'", mimic.trainstep, { { type = "dense", out = 4, bias = true }, { type = "layernorm" } }, 3,
    o.flat_params, o.flat_grads, 8)
  raises("follows another activation", mimic.trainstep, { { type = "dense", out = 4, bias = true }, { type = "relu" },
    { type = "tanh" }, { type = "dense", out = 2, bias = true } }, 3, o.flat_params, o.flat_grads, 8)
  raises("of 30 elements", mimic.trainstep, { { type = "dense", out = 4, bias = true }, { type = "relu" },
    { type = "dense", out = 2, bias = true } }, 4, o.flat_params, o.flat_grads, 8)
  local ts = mimic.trainstep({ { type = "dense", out = 4, bias = true }, { type = "relu" },
    { type = "dense", out = 2, bias = true } }, 3, o.flat_params, o.flat_grads, 8)
  raises("this step takes 1..8", ts.step, ts, mimic.zeros(9, 3), mimic.zeros(9, 2), o)
  raises("expected [n, 2] of float32", ts.step, ts, mimic.zeros(5, 3), mimic.zeros(5, 3), o)
  raises("the compiled step runs mimic.optim Adam, AdamW and SGD", ts.step, ts, mimic.zeros(5, 3),
    mimic.zeros(5, 2), optim.RMSprop(nn.Linear(2, 2)))
end

-- --- trajectories -----------------------------------------------------------------
TestTrajectory = {}

local function data(n, nin, nout, dtype, seed)
  local g = mimic.Generator(seed)
  local x = g:uniform({ n, nin }, -1, 1):to(dtype)
  local y = (x:narrow(2, 1, 1) * 2):sin():expand({ n, nout }):contiguous() + g:uniform({ n, nout }, -0.1, 0.1):to(dtype)
  return x, y
end

-- 50 steps over batches of 32 (the last one partial: 1590 samples).
function TestTrajectory:test_fifty_steps()
  for _, dtype in ipairs({ "float32", "float64" }) do
    local sizes = { 4, 32, 32, 3 }
    local a = build(sizes, ACTS[5], true, dtype, 11)
    local b, records = build(sizes, ACTS[5], true, dtype, 11)
    local oa, ob = optim.Adam(a, { lr = 3e-3 }), optim.Adam(b, { lr = 3e-3 })
    local ts = mimic.trainstep(records, 4, ob.flat_params, ob.flat_grads, 32)
    local x, y = data(1590, 4, 3, dtype, 2)
    local worst = 0
    for s = 1, 1590, 32 do
      local len = math.min(32, 1590 - s + 1)
      local xb, yb = x:narrow(1, s, len), y:narrow(1, s, len)
      local la, lb = autograd_step(a, oa, xb, yb), ts:step(xb, yb, ob)
      worst = math.max(worst, math.abs(la - lb) / la)
    end
    local tol = dtype == "float64" and 1e-10 or 1e-4
    lu.assertTrue(worst <= tol, dtype .. ": losses drift by " .. worst)
    lu.assertTrue(rel(ob.flat_params, oa.flat_params) <= tol, dtype .. ": parameters drift")
    lu.assertEquals(ob.state.step, 50)
  end
end

-- Switching between compiled and autograd steps mid-training follows the
-- autograd-only trajectory (the parameters and the optimizer state are shared).
function TestTrajectory:test_switching()
  local sizes = { 3, 24, 24, 2 }
  for _, kind in ipairs({ "Adam", "SGD" }) do
    local a = build(sizes, ACTS[1], true, "float64", 5)
    local b, records = build(sizes, ACTS[1], true, "float64", 5)
    local oa, ob = make_opt(kind, a), make_opt(kind, b)
    local ts = mimic.trainstep(records, 3, ob.flat_params, ob.flat_grads, 40)
    local x, y = data(800, 3, 2, "float64", 4)
    for i = 0, 19 do
      local xb, yb = x:narrow(1, i * 40 + 1, 40), y:narrow(1, i * 40 + 1, 40)
      autograd_step(a, oa, xb, yb)
      if i % 3 == 1 then autograd_step(b, ob, xb, yb) else ts:step(xb, yb, ob) end
    end
    lu.assertTrue(rel(ob.flat_params, oa.flat_params) <= 1e-10, kind)
  end
end

-- --- mimic.train ------------------------------------------------------------------
TestTrain = {}

local function run(opts, compiled)
  local sizes = opts.sizes or { 2, 24, 24, 1 }
  local dtype = opts.dtype or "float32"
  local model = opts.model or build(sizes, opts.act or ACTS[5], true, dtype, 9)
  local opt = (opts.make_opt or function(m) return optim.Adam(m, { lr = 5e-3 }) end)(model)
  local x, y = data(opts.n or 300, sizes[1], sizes[#sizes], dtype, 8)
  local o = { model = model, loss = opts.loss or nn.MSELoss(), optimizer = opt, data = { x = x, y = y },
              val_fraction = 0.2, epochs = opts.epochs or 4, batch = 64, seed = 3, verbose = false,
              compiled = compiled }
  for k, v in pairs(opts.train or {}) do o[k] = v end
  local h = mimic.train(o)
  return h, model, opt
end

function TestTrain:test_same_curve()
  for _, dtype in ipairs({ "float32", "float64" }) do
    local hc, mc, oc = run({ dtype = dtype }, true)
    local ha, ma = run({ dtype = dtype }, false)
    lu.assertTrue(hc.compiled)
    lu.assertFalse(ha.compiled)
    local tol = dtype == "float64" and 1e-10 or 1e-5
    for e = 1, 4 do
      lu.assertTrue(math.abs(hc[e].loss - ha[e].loss) <= tol * ha[e].loss, dtype .. " epoch " .. e .. " loss")
      lu.assertTrue(math.abs(hc[e].val_loss - ha[e].val_loss) <= tol * ha[e].val_loss, dtype .. " val " .. e)
    end
    lu.assertTrue(hc[4].loss < hc[1].loss) -- it learns
    local sa = ma:state_dict()
    for k, v in pairs(mc:state_dict()) do lu.assertTrue(rel(v, sa[k]) <= 100 * tol, k) end
    lu.assertEquals(oc.state.step, 4 * 4) -- 240 training samples in batches of 64: 4 steps an epoch
  end
end

function TestTrain:test_losses_and_optimizers()
  local cases = {
    { loss = nn.L1Loss() }, { loss = nn.HuberLoss(0.2) }, { loss = nn.MSELoss({ reduction = "sum" }) },
    { loss = F.mse_loss }, { make_opt = function(m) return optim.AdamW(m, { lr = 5e-3, amsgrad = true }) end },
    { make_opt = function(m) return optim.SGD(m, { lr = 0.02, momentum = 0.9, dampening = 0.1 }) end },
    { act = ACTS[4] }, { act = ACTS[7] },
  }
  for i, c in ipairs(cases) do
    c.dtype, c.epochs = "float64", 2
    local hc = run(c, true)
    local ha = run(c, false)
    lu.assertTrue(hc.compiled, "case " .. i)
    for e = 1, 2 do
      lu.assertTrue(math.abs(hc[e].loss - ha[e].loss) <= 1e-10 * ha[e].loss, "case " .. i .. " epoch " .. e)
    end
  end
end

-- Anything the compiled step does not take trains with autograd, silently.
function TestTrain:test_fallbacks()
  local Custom = nn.Module:extend("Custom")
  function Custom:init() self.lin = nn.Linear(2, 1) end
  function Custom:forward(x) return self.lin(x) end
  local cases = {
    { model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Dropout(0.1), nn.Linear(8, 1)) },
    { model = nn.Sequential(nn.Linear(2, 8), nn.LayerNorm(8), nn.Linear(8, 1)) },
    { model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Tanh(), nn.Linear(8, 1)) },
    { model = Custom() },
    { train = { clip_grad_norm = 1.0 } },
    { loss = nn.MSELoss({ weights = { 2 } }) },
    { loss = function(p, t) return F.mse_loss(p, t) end },
    { loss = nn.CrossEntropyLoss() and nn.HuberLoss({ reduction = "none" }) },
    { make_opt = function(m) return optim.RMSprop(m, { lr = 1e-3 }) end },
    { make_opt = function(m) return optim.Adam(m:parameters()[1], { lr = 1e-3 }) end },
  }
  for i, c in ipairs(cases) do
    c.epochs = 1
    local ok, h = pcall(run, c, true)
    if c.loss and tostring(c.loss):find("none") then
      lu.assertFalse(ok, "case " .. i) -- the autograd path's own error (a non-scalar loss)
    else
      lu.assertTrue(ok, "case " .. i .. ": " .. tostring(h))
      lu.assertFalse(h.compiled, "case " .. i)
    end
  end
  -- A model with a frozen parameter: autograd leaves it alone.
  local m = build({ 2, 8, 1 }, ACTS[5], true, "float32", 1)
  m:get(1).weight:requires_grad_(false)
  local before = m:get(1).weight:clone()
  local h = run({ model = m, epochs = 1, make_opt = function(mm) return optim.SGD(mm, { lr = 0.1 }) end }, true)
  lu.assertFalse(h.compiled)
  lu.assertEquals(rel(m:get(1).weight, before), 0)
end

-- Checkpoints written after compiled steps resume to the same bits as an
-- uninterrupted compiled run; model:save works on the trained model.
function TestTrain:test_checkpoint_resume()
  local dir = os.tmpname()
  os.remove(dir)
  local ck = dir .. "_ck.h5"
  local _, m1 = run({ epochs = 4 }, true)
  local h2 = run({ epochs = 2, train = { checkpoint = ck } }, true)
  lu.assertTrue(h2.compiled)
  local h3, m3, o3 = run({ epochs = 4, train = { checkpoint = ck, resume = true } }, true)
  lu.assertEquals(#h3, 4)
  lu.assertEquals(o3.state.step, 16)
  local s1 = m1:state_dict()
  for k, v in pairs(m3:state_dict()) do lu.assertEquals(rel(v, s1[k]), 0, k) end
  local path = dir .. "_model.h5"
  m3:save(path, { inputs = { { name = "x", units = "1", size = 2 } }, outputs = { { name = "y", units = "1", size = 1 } } })
  local back = mimic.load_model(path)
  local x = mimic.rand(5, 2)
  lu.assertTrue(rel(back:forward(x), mimic.no_grad(function() return m3(x) end)) <= 1e-6)
  os.remove(ck)
  os.remove(path)
end

os.exit(lu.LuaUnit.run())
