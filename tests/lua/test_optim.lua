-- mimic.optim: the optimizers, schedules and clipping against PyTorch (the
-- fixtures of tests/fixtures/gen_torch_optim.py), the flat-buffer semantics,
-- checkpoints, errors, and an end-to-end training run.
local lu = require "luaunit"
local mimic = require "mimic"
local optim = mimic.optim

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fx = dofile(here .. "/../fixtures/torch_optim.lua")

local raises = require("helpers").raises

-- Asserts tensor t holds the values of list `want` (row-major) within
-- rtol * |want| + atol.
local function near(t, want, rtol, atol, what)
  local got = t:reshape(-1):totable()
  lu.assertEquals(#got, #want, what)
  for i = 1, #want do
    local tol = rtol * math.abs(want[i]) + atol
    if not (math.abs(got[i] - want[i]) <= tol) then
      lu.fail(string.format("%s: element %d is %.17g, expected %.17g (tol %g)", what, i, got[i], want[i], tol))
    end
  end
end

-- Fresh parameters with the fixture's initial values.
local function fixture_params(dt)
  local ps = {}
  for i, shape in ipairs(fx.shapes) do ps[i] = mimic.tensor(fx.init[i], dt):reshape(shape):requires_grad_() end
  return ps
end

-- Sets the gradients of step k: through each p.grad on odd steps, through the
-- optimizer's flat gradient buffer on even ones (both must work).
local function set_grads(opt, ps, k, dt)
  if k % 2 == 1 then
    for i, p in ipairs(ps) do p.grad:copy(mimic.tensor(fx.grads[k][i], dt):reshape(fx.shapes[i])) end
  else
    local all = {}
    for i = 1, #ps do
      for _, v in ipairs(fx.grads[k][i]) do all[#all + 1] = v end
    end
    opt.flat_grads:copy(mimic.tensor(all, dt))
  end
end

-- --- PyTorch fixtures: optimizers ---------------------------------------------------
TestTorchOptimizers = {}
local TOL = { float64 = { 1e-12, 1e-14 }, float32 = { 2e-5, 2e-6 } }
for c, case in ipairs(fx.optimizers) do
  for _, dt in ipairs({ "float64", "float32" }) do
    local keys = {}
    for k, v in pairs(case.opts) do
      keys[#keys + 1] = k .. "=" .. (type(v) == "table" and table.concat(v, "/") or tostring(v))
    end
    table.sort(keys)
    local name = string.format("test_%02d_%s_%s_%s", c, case.name, table.concat(keys, "_"):gsub("[^%w]+", "_"), dt)
    TestTorchOptimizers[name] = function()
      local ps = fixture_params(dt)
      local opt = optim[case.name](ps, case.opts)
      for k = 1, #fx.grads do
        set_grads(opt, ps, k, dt)
        opt:step()
        for i, p in ipairs(ps) do
          near(p, case.after[k][i], TOL[dt][1], TOL[dt][2], string.format("%s step %d param %d", name, k, i))
        end
      end
      lu.assertEquals(opt.state.step, #fx.grads)
    end
  end
end

-- --- PyTorch fixtures: schedules ------------------------------------------------------
TestTorchSchedulers = {}
for c, case in ipairs(fx.schedulers) do
  TestTorchSchedulers[string.format("test_%02d_%s", c, case.name)] = function()
    local opt = optim.SGD({ mimic.zeros(1):requires_grad_() }, { lr = case.lr })
    local sched = optim[case.name](opt, case.opts)
    lu.assertEquals(sched:get_last_lr(), case.lr)
    for k, want in ipairs(case.lrs) do
      opt:step()
      if case.metrics then sched:step(case.metrics[k]) else sched:step() end
      lu.assertAlmostEquals(opt.lr, want, 1e-14 * want + 1e-18, string.format("step %d", k))
      lu.assertEquals(sched:get_last_lr(), opt.lr)
    end
  end
end

-- --- PyTorch fixtures: clip_grad_norm -------------------------------------------------
TestTorchClip = {}
for c, case in ipairs(fx.clip) do
  for _, how in ipairs({ "optimizer", "list" }) do
    for _, dt in ipairs({ "float64", "float32" }) do
      TestTorchClip[string.format("test_%d_p%s_%s_%s", c, tostring(case.norm_type), how, dt)] = function()
        local ps = fixture_params(dt)
        local opt = optim.SGD(ps, { lr = 0.1 })
        for i, p in ipairs(ps) do p.grad:copy(mimic.tensor(case.grads[i], dt):reshape(fx.shapes[i])) end
        local target = how == "optimizer" and opt or ps
        local total = optim.clip_grad_norm(target, case.max_norm, case.norm_type)
        local rtol = dt == "float64" and 1e-12 or 2e-6
        lu.assertAlmostEquals(total, case.total, rtol * case.total)
        for i, p in ipairs(ps) do near(p.grad, case.clipped[i], rtol, rtol * 1e-2, "clipped grad " .. i) end
      end
    end
  end
end

TestClip = {}
function TestClip.test_forms_and_edge_cases()
  local a, b = mimic.tensor({ 3, 0 }):requires_grad_(), mimic.tensor({ -4 }):requires_grad_()
  lu.assertEquals(optim.clip_grad_norm({ a, b }, 1), 0) -- no gradients yet
  a.grad = mimic.tensor({ 3, 0 })
  lu.assertEquals(optim.clip_grad_norm({ a, b }, 10), 3) -- b has none: skipped
  b.grad = mimic.tensor({ -4 })
  lu.assertEquals(optim.clip_grad_norm(a, 10, "inf"), 3)
  lu.assertAlmostEquals(optim.clip_grad_norm({ a, b }, 10), 5, 1e-6)
  lu.assertEquals(a.grad:totable(), { 3, 0 }) -- under max_norm: unchanged
  lu.assertAlmostEquals(optim.clip_grad_norm({ a, b }, 1, math.huge), 4, 1e-6)
  lu.assertAlmostEquals(b.grad:item(), -1, 1e-5)
  b.grad:fill(1 / 0)
  raises("optim.clip_grad_norm: the total norm of order 2 of the gradients is not finite", optim.clip_grad_norm,
         { a, b }, 1, 2, true)
  raises("optim.clip_grad_norm: max_norm must be a number", optim.clip_grad_norm, { a }, nil)
end

TestSchedules = {}
function TestSchedules.test_plateau_takes_a_tensor_metric()
  local opt = optim.SGD({ mimic.zeros(1):requires_grad_() }, { lr = 1 })
  local sched = optim.ReduceLROnPlateau(opt, { patience = 0, factor = 0.5 })
  sched:step(mimic.tensor({ 2 }))
  lu.assertEquals(sched:step(mimic.scalar(3)), 0.5)
end

-- --- the flat buffers -----------------------------------------------------------------
TestFlat = {}
function TestFlat.test_parameters_view_the_flat_buffer()
  local w = mimic.tensor({ { 1, 2 }, { 3, 4 } }):requires_grad_()
  local b = mimic.tensor({ 5, 6, 7 }):requires_grad_()
  local opt = optim.SGD({ w, b }, { lr = 0.1 })
  lu.assertEquals(opt.flat_params:totable(), { 1, 2, 3, 4, 5, 6, 7 })
  lu.assertEquals(opt.flat_grads:totable(), { 0, 0, 0, 0, 0, 0, 0 })
  -- the same objects, still leaves requiring grad, with their shapes
  lu.assertTrue(w:requires_grad() and w:is_leaf() and b:requires_grad())
  lu.assertEquals(w:size(), { 2, 2 })
  mimic.no_grad(function()
    b:fill(-1)
    w[{ 2, 1 }] = 30
  end)
  lu.assertEquals(opt.flat_params:totable(), { 1, 2, 30, 4, -1, -1, -1 })
  opt.flat_params:fill(9)
  lu.assertEquals(w:totable(), { { 9, 9 }, { 9, 9 } })
  opt.flat_grads:copy(mimic.arange(7))
  lu.assertEquals(b.grad:totable(), { 4, 5, 6 })
end

function TestFlat.test_mimic_flatten_parameters()
  local a, c = mimic.ones(2, "float64"):requires_grad_(), mimic.zeros(1, 2, "float64"):requires_grad_()
  local fp, fg = mimic.flatten_parameters({ a, c })
  lu.assertEquals(fp:size(), { 4 })
  lu.assertEquals(fg:dtype(), "float64")
  -- the same list again: the same buffers
  local fp2 = mimic.flatten_parameters({ a, c })
  fp2:fill(3)
  lu.assertEquals(fp:totable(), { 3, 3, 3, 3 })
  raises("already belongs to the flat buffer of another optimizer", mimic.flatten_parameters, { c })
  raises("entry 2 of the parameter list is a string", mimic.flatten_parameters, { a, "x" })
end

-- A loss whose gradient with respect to w is x and to b is 1 (per element).
local function linear_loss(w, b, x)
  return (w * x):sum() + b:sum()
end

function TestFlat.test_backward_accumulates_into_flat_grads()
  local w, b = mimic.tensor({ 1, 2, 3 }):requires_grad_(), mimic.tensor({ 0.5 }):requires_grad_()
  local opt = optim.SGD({ w, b }, { lr = 1 })
  local x = mimic.tensor({ 10, 20, 30 })
  linear_loss(w, b, x):backward()
  lu.assertEquals(opt.flat_grads:totable(), { 10, 20, 30, 1 })
  linear_loss(w, b, x):backward() -- accumulates, in place
  lu.assertEquals(opt.flat_grads:totable(), { 20, 40, 60, 2 })
  opt:step()
  lu.assertEquals(w:totable(), { -19, -38, -57 })
  opt:zero_grad()
  lu.assertEquals(w.grad:totable(), { 0, 0, 0 })
  lu.assertEquals(opt.flat_grads:totable(), { 0, 0, 0, 0 })
end

function TestFlat.test_dropped_or_replaced_gradients_are_relinked()
  local w, b = mimic.tensor({ 1, 2, 3 }):requires_grad_(), mimic.tensor({ 0.5 }):requires_grad_()
  local opt = optim.SGD({ w, b }, { lr = 1 })
  opt.flat_grads:fill(7)
  w.grad = nil -- as nn's Module:zero_grad() does
  b.grad = mimic.tensor({ 2 })
  linear_loss(w, b, mimic.tensor({ 1, 1, 1 })):backward() -- w.grad is now a private tensor
  opt:step()
  lu.assertEquals(w:totable(), { 0, 1, 2 })
  lu.assertEquals(b:totable(), { 0.5 - 3 })
  lu.assertEquals(opt.flat_grads:totable(), { 1, 1, 1, 3 })
  w.grad:fill(5) -- linked again
  lu.assertEquals(opt.flat_grads:totable(), { 5, 5, 5, 3 })
  w.grad = nil
  opt:zero_grad()
  lu.assertEquals(w.grad:totable(), { 0, 0, 0 })
end

function TestFlat.test_optimizers_over_one_list_share_buffers()
  local ps = { mimic.ones(3):requires_grad_() }
  local o1, o2 = optim.SGD(ps, { lr = 1 }), optim.SGD(ps, { lr = 2 })
  ps[1].grad:fill(1)
  o1:step()
  o2:step()
  lu.assertEquals(ps[1]:totable(), { -2, -2, -2 })
end

function TestFlat.test_lr_is_a_settable_field()
  local p = mimic.ones(2):requires_grad_()
  local opt = optim.SGD({ p }, { lr = 0.5 })
  lu.assertEquals(opt.lr, 0.5)
  p.grad:fill(1)
  opt.lr = 0
  opt:step()
  lu.assertEquals(p:totable(), { 1, 1 })
  opt.lr = 0.25
  opt:step()
  lu.assertEquals(p:totable(), { 0.75, 0.75 })
end

function TestFlat.test_step_with_closure_and_grad_mode()
  local w = mimic.tensor({ 1, 2 }):requires_grad_()
  local opt = optim.SGD({ w }, { lr = 0.5 })
  local calls = 0
  local loss = mimic.no_grad(function()
    return opt:step(function()
      calls = calls + 1
      lu.assertTrue(mimic.is_grad_enabled()) -- the closure records, as in PyTorch
      opt:zero_grad()
      local l = (w * w):sum()
      l:backward()
      return l:item()
    end)
  end)
  lu.assertEquals(calls, 1)
  lu.assertEquals(loss, 5)
  lu.assertEquals(w:totable(), { 0, 0 })
  lu.assertTrue(mimic.is_grad_enabled())
end

-- --- errors -------------------------------------------------------------------------------
TestErrors = {}
function TestErrors.test_refused_parameter_lists()
  local a = mimic.zeros(4):requires_grad_()
  raises("optim.SGD: the 1st and 3rd parameters are the same tensor", optim.SGD,
         { a, mimic.zeros(1), a }, { lr = 1 })
  local base = mimic.zeros(4) -- views of a tensor without grad are leaves
  raises("optim.Adam: the 1st and 2nd parameters share memory (views of one tensor)", optim.Adam,
         { base:narrow(1, 1, 2):requires_grad_(), base:narrow(1, 3, 2):requires_grad_() })
  raises("optim.SGD: the 2nd parameter is the result of 'mul', not a leaf", optim.SGD,
         { mimic.zeros(1), a * 2 }, { lr = 1 })
  raises("optim.RMSprop: mixed dtypes: the 1st parameter is float32 but the 2nd is float64", optim.RMSprop,
         { a, mimic.zeros(1, "float64") })
  raises("optim.SGD: the 1st parameter is int64", optim.SGD, { mimic.zeros(2, "int64") }, { lr = 1 })
  raises("optim.AdamW: no parameters", optim.AdamW, {})
  -- a parameter of one optimizer cannot join another list
  local b = mimic.zeros(2):requires_grad_()
  optim.SGD({ a, b }, { lr = 1 })
  raises("optim.Adam: the 1st parameter already belongs to the flat buffer of another optimizer", optim.Adam,
         { b, mimic.zeros(1):requires_grad_() })
  -- nothing changed by a refusal
  local c = mimic.ones(2):requires_grad_()
  pcall(optim.SGD, { c, c }, { lr = 1 })
  lu.assertNil(c.grad)
end

function TestErrors.test_bad_options()
  local p = { mimic.zeros(2):requires_grad_() }
  raises("optim.SGD: option 'lr' is required", optim.SGD, p, {})
  raises("optim.SGD: unknown option 'learning_rate' (options: dampening, lr, momentum, nesterov, weight_decay)",
         optim.SGD, p, { learning_rate = 1 })
  raises("optim.SGD: nesterov momentum requires a momentum > 0 and zero dampening", optim.SGD, p,
         { lr = 1, nesterov = true })
  raises("optim.Adam: betas[2] must be in [0, 1), got 1", optim.Adam, p, { betas = { 0.9, 1 } })
  raises("optim.Adam: option 'eps' must be a number, got string", optim.Adam, p, { eps = "small" })
  raises("optim.RMSprop: lr must be >= 0, got -1", optim.RMSprop, p, { lr = -1 })
  raises("optim.SGD: params must be a list of tensors or a module, got number", optim.SGD, 3, { lr = 1 })
  raises("optim.StepLR: option 'step_size' is required", optim.StepLR, optim.SGD(p, { lr = 1 }), {})
  raises("optim.ReduceLROnPlateau: factor must be < 1, got 1", optim.ReduceLROnPlateau, { lr = 1 }, { factor = 1 })
  local opt = optim.Adam(p)
  opt.lr = nil
  raises("Adam:step: lr must be a number >= 0, got nil", opt.step, opt)
  raises("ReduceLROnPlateau:step: expects the metric", function() optim.ReduceLROnPlateau({ lr = 1 }):step() end)
end

function TestErrors.test_error_position_is_the_callers_line()
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, msg = pcall(function() optim.SGD({ mimic.zeros(1) }, { lr = 1, typo = 1 }) end)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "test_optim.lua:" .. line .. ":")
end

-- --- checkpoints ---------------------------------------------------------------------------
TestStateDict = {}
local ROUND_TRIP = {
  { "SGD", { lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01 } },
  { "Adam", { lr = 0.01, amsgrad = true, weight_decay = 0.1 } },
  { "AdamW", { lr = 0.01 } },
  { "RMSprop", { lr = 0.01, centered = true, momentum = 0.5 } },
}
for _, rt in ipairs(ROUND_TRIP) do
  TestStateDict["test_round_trip_" .. rt[1]] = function()
    local dt = "float32"
    local ps = fixture_params(dt)
    local opt = optim[rt[1]](ps, rt[2])
    for k = 1, 2 do
      set_grads(opt, ps, k, dt)
      opt:step()
    end
    local sd = opt:state_dict()
    lu.assertEquals(sd.step, 2)
    lu.assertEquals(sd.name, rt[1])
    local saved = {}
    for i, p in ipairs(ps) do saved[i] = p:detach():clone() end
    opt.lr = opt.lr * 2 -- not in the checkpoint
    opt.lr = sd.options.lr
    for k = 3, 5 do
      set_grads(opt, ps, k, dt)
      opt:step()
    end
    -- a new optimizer over new parameters, from the checkpoint
    local qs = {}
    for i, s in ipairs(saved) do qs[i] = s:clone():requires_grad_() end
    local opt2 = optim[rt[1]](qs, { lr = 123 })
    opt2:load_state_dict(sd)
    for _, v in pairs(sd.state) do v:fill(0 / 0) end -- the checkpoint's tensors are copies
    lu.assertEquals(opt2.lr, rt[2].lr)
    for k = 3, 5 do
      set_grads(opt2, qs, k, dt)
      opt2:step()
    end
    for i = 1, #ps do lu.assertEquals(qs[i]:totable(), ps[i]:totable()) end -- bit-identical
    lu.assertEquals(opt2.state.step, 5)
  end
end

function TestStateDict.test_load_errors()
  local p = { mimic.zeros(3):requires_grad_() }
  local adam = optim.Adam(p)
  local sgd = optim.SGD({ mimic.zeros(2):requires_grad_() }, { lr = 1, momentum = 0.9 })
  raises("Adam:load_state_dict: the state is of a SGD optimizer, not Adam", adam.load_state_dict, adam,
         sgd:state_dict())
  sgd.flat_grads:fill(1)
  sgd:step()
  local s = sgd:state_dict()
  local sgd3 = optim.SGD(p, { lr = 1 })
  raises("SGD:load_state_dict: state 'momentum_buffer' must be a tensor of 3 elements", sgd3.load_state_dict,
         sgd3, s)
  raises("expects a table made by state_dict()", sgd3.load_state_dict, sgd3, 5)
end

function TestStateDict.test_scheduler_round_trip()
  local function make()
    local opt = optim.SGD({ mimic.zeros(1):requires_grad_() }, { lr = 1 })
    return opt, optim.CosineAnnealingLR(opt, { T_max = 7, eta_min = 0.01 })
  end
  local opt, sched = make()
  for _ = 1, 4 do sched:step() end
  local sd, lr = sched:state_dict(), opt.lr
  local want = {}
  for k = 1, 6 do want[k] = sched:step() end
  local opt2, sched2 = make()
  sched2:load_state_dict(sd)
  opt2.lr = lr -- the optimizer's lr travels with the optimizer's checkpoint
  for k = 1, 6 do lu.assertEquals(sched2:step(), want[k]) end

  local p = optim.SGD({ mimic.zeros(1):requires_grad_() }, { lr = 1 })
  local plateau = optim.ReduceLROnPlateau(p, { patience = 0 })
  plateau:step(1)
  plateau:step(2)
  local s = plateau:state_dict()
  lu.assertEquals(s.best, 1)
  lu.assertNil(s.optimizer)
  raises("unexpected entry 'bogus'", plateau.load_state_dict, plateau, { bogus = 1 })
end

-- --- end to end ---------------------------------------------------------------------------
TestTraining = {}
-- A 1-16-1 tanh network from raw tensors fits y = sin(3x) on [-1, 1].
function TestTraining.test_mlp_with_adam_reduces_the_loss()
  mimic.manual_seed(7)
  local x = mimic.linspace(-1, 1, 64):view(64, 1)
  local y = (x * 3):sin()
  local W1 = (mimic.randn(1, 16) * 1.0):requires_grad_()
  local b1 = mimic.zeros(16):requires_grad_()
  local W2 = (mimic.randn(16, 1) * 0.25):requires_grad_()
  local b2 = mimic.zeros(1):requires_grad_()
  local opt = optim.Adam({ W1, b1, W2, b2 }, { lr = 0.02 })
  local sched = optim.StepLR(opt, { step_size = 150, gamma = 0.5 })
  local function loss_fn()
    local h = (x:matmul(W1) + b1):tanh()
    local d = h:matmul(W2) + b2 - y
    return (d * d):mean()
  end
  local first, last
  for it = 1, 300 do
    opt:zero_grad()
    local loss = loss_fn()
    loss:backward()
    local norm = optim.clip_grad_norm(opt, 10)
    lu.assertTrue(norm == norm)
    opt:step()
    sched:step()
    if it == 1 then first = loss:item() end
    last = loss:item()
  end
  lu.assertTrue(last < 0.05 * first, string.format("loss %g -> %g", first, last))
  lu.assertEquals(opt.lr, 0.02 * 0.25)
end

-- The same with mimic.nn modules, when they are there.
function TestTraining.test_with_nn_modules()
  local ok, nn = pcall(function() return mimic.nn end)
  if not ok or type(nn) ~= "table" or not nn.Linear or not nn.Sequential then lu.skip("mimic.nn not available") end
  mimic.manual_seed(3)
  local model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
  local opt = optim.SGD(model, { lr = 0.1, momentum = 0.9 })
  lu.assertEquals(#opt.params, #model:parameters())
  local x = mimic.randn(32, 2)
  local y = x:sum(2, true)
  local first, last
  for it = 1, 100 do
    model:zero_grad() -- drops the gradients; the optimizer links them again
    local d = model(x) - y
    local loss = (d * d):mean()
    loss:backward()
    opt:step()
    if it == 1 then first = loss:item() end
    last = loss:item()
  end
  lu.assertTrue(last < 0.1 * first, string.format("loss %g -> %g", first, last))
  lu.assertTrue(mimic.is_tensor(model:parameters()[1].grad))
end

-- The fused Adam step (mimic.adam_update) against the sequence of tensor ops
-- it replaced, for Adam, Adam with L2 decay, AdamW and amsgrad, both dtypes.
TestAdamFused = {}

local function adam_by_ops(p, g, st, o, decoupled, step)
  local lr, b1, b2, wd = o.lr, o.betas[1], o.betas[2], o.weight_decay
  if decoupled then
    p:mul_(1 - lr * wd)
  elseif wd ~= 0 then
    g = p:clone():mul_(wd):add_(g)
  end
  st.m:mul_(b1):add_(g:clone():mul_(1 - b1))
  st.v:mul_(b2):add_(g:clone():mul_(1 - b2):mul_(g))
  local step_size, bias2_sqrt = lr / (1 - b1 ^ step), math.sqrt(1 - b2 ^ step)
  local vhat = st.v
  if o.amsgrad then vhat = st.vmax:maximum_(st.v) end
  local denom = vhat:clone():sqrt_():div_(bias2_sqrt):add_(o.eps)
  p:add_(st.m:clone():mul_(-step_size):div_(denom))
end

function TestAdamFused.test_matches_op_sequence()
  local cases = {
    { cls = "Adam", opts = {} },
    { cls = "Adam", opts = { weight_decay = 0.1, lr = 0.01 } },
    { cls = "AdamW", opts = { weight_decay = 0.05, betas = { 0.8, 0.99 } } },
    { cls = "Adam", opts = { amsgrad = true, eps = 1e-6 } },
    { cls = "AdamW", opts = { amsgrad = true } },
  }
  for _, dt in ipairs({ "float32", "float64" }) do
    for ci, c in ipairs(cases) do
      local gen = mimic.Generator(100 + ci)
      local w = gen:randn(37, dt):requires_grad_()
      local opt = optim[c.cls]({ w }, c.opts)
      local ref = w:detach():clone()
      local n = ref:numel()
      local st = { m = mimic.zeros(n, dt), v = mimic.zeros(n, dt), vmax = mimic.zeros(n, dt) }
      for step = 1, 4 do
        local g = gen:randn(37, dt)
        opt:zero_grad()
        w.grad:copy(g)
        opt:step()
        mimic.no_grad(adam_by_ops, ref, g, st, opt, c.cls == "AdamW", step)
      end
      local tol = dt == "float32" and 1e-6 or 1e-14
      near(w:detach(), ref:totable(), tol, tol, string.format("%s %s case %d", c.cls, dt, ci))
      near(opt.state.exp_avg, st.m:totable(), tol, 0, "exp_avg")
      near(opt.state.exp_avg_sq, st.v:totable(), tol, 0, "exp_avg_sq")
    end
  end
end

function TestAdamFused.test_errors()
  local a, b = mimic.zeros(4), mimic.zeros(5)
  raises("element count", mimic.adam_update, a, b, a, a, nil, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1)
  raises("dtype", mimic.adam_update, a, mimic.zeros(4, "float64"), a, a, nil, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1)
  raises("contiguous", mimic.adam_update, mimic.zeros(8, 2):select(2, 1), mimic.zeros(8), mimic.zeros(8),
    mimic.zeros(8), nil, 1e-3, 0.9, 0.999, 1e-8, 0, false, 1)
  raises("step must be", mimic.adam_update, a, a, a, a, nil, 1e-3, 0.9, 0.999, 1e-8, 0, false, 0)
end

os.exit(lu.LuaUnit.run())
