-- mimic.nn (lua/mimic/nn.lua): the module system, every layer's forward values
-- on hand-checked inputs, gradients against finite differences (float64,
-- through the Lua API), train/evaluate behaviour, state_dict, user-defined
-- modules, initialisers, losses, PyTorch agreement on the fixtures of
-- tests/fixtures/gen_torch_nn.py, and a small regression problem trained to
-- a stated accuracy.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local F = nn.functional

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fx = dofile(here .. "/../fixtures/torch_nn.lua")

local function T(x, dt) return mimic.tensor(x, dt or "float64") end
local function near(t, expected, tol)
  local got = t:detach():reshape(-1):totable()
  if type(expected) ~= "table" then expected = { expected } end
  lu.assertEquals(#got, #expected)
  for i = 1, #expected do lu.assertAlmostEquals(got[i], expected[i], tol or 1e-6) end
end
local raises = require("helpers").raises
local shape, close, fixture = require("helpers").shape, require("helpers").close, require("helpers").fixture

-- Checks the gradients of loss_fn() (a scalar) w.r.t. `tensors` (float64)
-- against central finite differences.
local function gradcheck(loss_fn, tensors, eps, tol)
  eps, tol = eps or 1e-6, tol or 1e-6
  for _, t in ipairs(tensors) do t.grad = nil end
  loss_fn():backward()
  for n, t in ipairs(tensors) do
    lu.assertNotNil(t.grad, "no gradient for tensor " .. n)
    local g = t.grad:reshape(-1):totable()
    local flat = t:detach():view(-1)
    for k = 1, flat:numel() do
      local v = flat[k]
      flat[k] = v + eps
      local lp = mimic.no_grad(loss_fn):item()
      flat[k] = v - eps
      local lm = mimic.no_grad(loss_fn):item()
      flat[k] = v
      local num = (lp - lm) / (2 * eps)
      if math.abs(g[k] - num) > tol * (1 + math.abs(num)) then
        lu.fail(string.format("tensor %d element %d: gradient %.10g, finite difference %.10g", n, k, g[k], num))
      end
    end
  end
end
-- sum(y * R) for a fixed R: a scalar that sends a generic gradient into y.
local function weighted_sum(y, seed)
  local r = mimic.Generator(seed or 7):randn(y:size(), { dtype = y:dtype() })
  return (y * r):sum()
end

-- --- the module system ----------------------------------------------------------------------
TestModule = {}
function TestModule.test_sequential_names_and_order()
  local m = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
  local names = {}
  for i, p in ipairs(m:named_parameters()) do names[i] = p[1] .. shape(p[2]) end
  lu.assertEquals(names, { "1.weight[3,2]", "1.bias[3]", "3.weight[1,3]", "3.bias[1]" })
  lu.assertEquals(#m:parameters(), 4)
  lu.assertTrue(rawequal(m:parameters()[1], m[1].weight))
  lu.assertEquals(#m, 3)
  lu.assertTrue(rawequal(m:get(2), m[2]))
  lu.assertEquals(#m:children(), 3)
  lu.assertEquals(m:num_parameters(), 6 + 3 + 3 + 1)
  lu.assertEquals(m[1].__typename, "Linear")
  for _, p in ipairs(m:parameters()) do lu.assertTrue(p:requires_grad()) end
  m:add(nn.Sigmoid())
  lu.assertEquals(#m, 4)
  lu.assertEquals(m:named_children()[4][1], "4")
end
function TestModule.test_forward_and_call_agree()
  local m = nn.Linear(2, 2, { generator = mimic.Generator(1) })
  local x = mimic.randn(3, 2)
  close(m(x), m:forward(x), 0, 0, "call")
end
function TestModule.test_train_evaluate_recursive()
  local m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
  lu.assertTrue(m.training)
  lu.assertTrue(rawequal(m:evaluate(), m))
  lu.assertFalse(m.training)
  lu.assertFalse(m[2][1].training)
  m:train()
  lu.assertTrue(m[2][1].training)
  m:eval()
  lu.assertFalse(m[1].training)
  m:train(true)
  lu.assertTrue(m[1].training)
end
function TestModule.test_zero_grad()
  local m = nn.Linear(2, 1, { dtype = "float64" })
  m(T({ { 1, 2 } })):sum():backward()
  lu.assertNotNil(m.weight.grad)
  m:zero_grad()
  lu.assertNil(m.weight.grad)
  lu.assertNil(m.bias.grad)
end
function TestModule.test_buffers()
  local bn = nn.BatchNorm1d(3)
  local names = {}
  for i, b in ipairs(bn:named_buffers()) do names[i] = b[1] end
  lu.assertEquals(names, { "running_mean", "running_var", "num_batches_tracked" })
  lu.assertEquals(#bn:buffers(), 3)
  lu.assertEquals(#bn:parameters(), 2)
  lu.assertFalse(bn.running_mean:requires_grad())
  local m = nn.Sequential(nn.Linear(3, 3), bn)
  lu.assertEquals(m:named_buffers()[1][1], "2.running_mean")
end
function TestModule.test_type_conversion()
  local m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
  lu.assertEquals(m:type(), "float32")
  local w = m[1].weight
  lu.assertTrue(rawequal(m:double(), m))
  lu.assertEquals(m:type(), "float64")
  lu.assertEquals(m[1].weight:dtype(), "float64")
  lu.assertTrue(m[1].weight:requires_grad())
  lu.assertTrue(nn.is_parameter(m[1].weight))
  close(m[1].weight, w:double(), 1e-7, 0, "values kept")
  lu.assertEquals(m[2].running_var:dtype(), "float64")
  lu.assertEquals(m[2].num_batches_tracked:dtype(), "int64")
  lu.assertEquals(m(T({ { 1, 2 }, { 3, 4 } })):dtype(), "float64")
  m:float()
  lu.assertEquals(m[2].running_mean:dtype(), "float32")
  lu.assertEquals(m:type(), "float32")
  raises("dtype must be float32 or float64, got int64", function() m:type("int64") end)
  lu.assertNil(nn.ReLU():type())
end
function TestModule.test_tostring_tree()
  local m = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Residual(nn.Sequential(nn.Linear(32, 32), nn.ReLU())),
    nn.Linear(32, 1, { bias = false }))
  lu.assertEquals(tostring(m), table.concat({
    "nn.Sequential {",
    "  (1): nn.Linear(2 -> 32)",
    "  (2): nn.Tanh",
    "  (3): nn.Residual {",
    "    (1): nn.Sequential {",
    "      (1): nn.Linear(32 -> 32)",
    "      (2): nn.ReLU",
    "    }",
    "  }",
    "  (4): nn.Linear(32 -> 1, bias=false)",
    "}",
  }, "\n"))
  lu.assertEquals(tostring(nn.LeakyReLU(0.2)), "nn.LeakyReLU(negative_slope=0.2)")
  lu.assertEquals(tostring(nn.Linear), "nn.Linear (class)")
end
function TestModule.test_registration_rules()
  local m = nn.Module()
  m.w = nn.Parameter(mimic.zeros(2))
  m.plain = mimic.zeros(3) -- a plain tensor is a plain field
  m:add_buffer("stat", mimic.zeros(1))
  m.child = nn.ReLU()
  m:add_parameter("v", mimic.ones(1))
  lu.assertEquals(#m:parameters(), 2)
  lu.assertEquals(m:named_parameters()[2][1], "v")
  lu.assertTrue(m.v:requires_grad())
  lu.assertEquals(#m:buffers(), 1)
  lu.assertEquals(#m:children(), 1)
  -- replacing keeps the position; nil removes
  m.w = nn.Parameter(mimic.ones(2))
  lu.assertEquals(m:named_parameters()[1][1], "w")
  m.w = nil
  lu.assertNil(m.w)
  lu.assertEquals(#m:parameters(), 1)
  m.stat = mimic.ones(1) -- a tensor assigned to a buffer name replaces the buffer
  near(m:buffers()[1], 1)
  raises("cannot assign a plain tensor to parameter 'v' (assign nn.Parameter(t), or nil to remove it)",
    function() m.v = mimic.zeros(1) end)
  raises("cannot assign a number to child module 'child'", function() m.child = 1 end)
  raises("assigned the class nn.Tanh to child 'child'; create an instance, e.g. nn.Tanh()",
    function() m.child = nn.Tanh end)
  raises("assigned the class nn.ReLU to field 'act'; create an instance, e.g. nn.ReLU()",
    function() m.act = nn.ReLU end)
  raises("parameter name must be a non-empty string without '.'",
    function() m:add_parameter("a.b", mimic.zeros(1)) end)
  raises("cannot register parameter 'forward': the name is a method of Module",
    function() m.forward = nn.Parameter(mimic.zeros(1)) end)
  raises("nn.Parameter: parameters must be float32 or float64 tensors, got int64",
    function() nn.Parameter(mimic.zeros(1, "int64")) end)
  raises("Sequential: argument 2 is the class nn.Tanh; create an instance, e.g. nn.Tanh()",
    function() nn.Sequential(nn.ReLU(), nn.Tanh) end)
  raises("Sequential: argument 1 is a number, expected a module", function() nn.Sequential(3) end)
end
function TestModule.test_shared_parameters_once()
  local a, b = nn.Linear(2, 2), nn.Linear(2, 2)
  b.weight = a.weight
  local m = nn.Sequential(a, b)
  lu.assertEquals(#m:parameters(), 3)
  lu.assertEquals(m:num_parameters(), 4 + 2 + 2)
  lu.assertNotNil(m:state_dict()["2.weight"]) -- state_dict keeps both names
  m:double()
  lu.assertTrue(rawequal(a.weight, b.weight)) -- still shared after a conversion
  lu.assertEquals(b.weight:dtype(), "float64")
end
function TestModule.test_named_modules_and_apply()
  local m = nn.Sequential(nn.Linear(1, 1), nn.Sequential(nn.ReLU()))
  local names = {}
  for i, e in ipairs(m:named_modules()) do names[i] = e[1] .. "=" .. e[2].__typename end
  lu.assertEquals(names, { "=Sequential", "1=Linear", "2=Sequential", "2.1=ReLU" })
  local seen = {}
  m:apply(function(mod) seen[#seen + 1] = mod.__typename end)
  lu.assertEquals(seen, { "Linear", "ReLU", "Sequential", "Sequential" })
end
function TestModule.test_option_typos_are_errors()
  raises("Linear: unknown option 'baias' (options: bias, dtype, generator, init)",
    function() nn.Linear(2, 2, { baias = false }) end)
  raises("Linear: in_features must be an integer >= 1, got 2.5", function() nn.Linear(2.5, 2) end)
  raises("BatchNorm1d: unknown option 'moment'", function() nn.BatchNorm1d(2, { moment = 0.1 }) end)
  raises("MSELoss: unknown option 'reduce'", function() nn.MSELoss({ reduce = "sum" }) end)
end

-- --- user-defined modules ------------------------------------------------------------------------
local MyBlock = nn.Module:extend("MyBlock")
function MyBlock:init(n, opts)
  self.lin = nn.Linear(n, n, opts)
  self.gate = nn.Parameter(mimic.ones(n, opts and opts.dtype or "float32"))
  self:add_buffer("calls", mimic.zeros(1))
end
function MyBlock:forward(x)
  mimic.no_grad(function() self.calls:add_(1) end)
  return self.lin(x):tanh() * self.gate + x
end

TestUserModule = {}
function TestUserModule.test_registration_and_marking()
  local b = MyBlock(3)
  local names = {}
  for i, p in ipairs(b:named_parameters()) do names[i] = p[1] end
  lu.assertEquals(names, { "gate", "lin.weight", "lin.bias" }) -- own first, then children (as PyTorch)
  lu.assertEquals(b.__typename, "MyBlock")
  lu.assertFalse(b:is_builtin())
  lu.assertTrue(b.lin:is_builtin())
  lu.assertEquals(tostring(b), "MyBlock {\n  (lin): nn.Linear(3 -> 3)\n}")
  lu.assertEquals(tostring(MyBlock), "MyBlock (class)")
  local m = nn.Sequential(nn.Linear(3, 3), MyBlock(3))
  raises("cannot save user-defined module 'MyBlock' (at '2') into a C-runnable model file",
    function() m:check_builtin() end)
  nn.Sequential(nn.Linear(3, 3)):check_builtin()
  -- a bare Module, or a forward defined on an instance, is user code too
  lu.assertFalse(nn.Module():is_builtin())
  local patched = nn.Linear(2, 2)
  patched.forward = function(self, x) return x end
  lu.assertFalse(patched:is_builtin())
end
function TestUserModule.test_subclass_of_builtin()
  local Scaled = nn.Linear:extend("ScaledLinear")
  function Scaled:forward(x) return nn.Linear.forward(self, x) * 2 end
  local s = Scaled(2, 2, { generator = mimic.Generator(3) })
  local l = nn.Linear(2, 2, { generator = mimic.Generator(3) })
  local x = mimic.randn(4, 2)
  close(s(x), l(x) * 2, 1e-6, 0, "subclass")
  lu.assertFalse(s:is_builtin())
  lu.assertEquals(#s:parameters(), 2)
end
function TestUserModule.test_forward_missing()
  local Empty = nn.Module:extend("Empty")
  raises("Empty: forward is not implemented", function() Empty()(mimic.zeros(1)) end)
  raises("extend: give the new class a name", function() nn.Module:extend() end)
end
function TestUserModule.test_gradients_and_training()
  local g = mimic.Generator(11)
  local b = MyBlock(3, { generator = g, dtype = "float64" })
  local x = g:randn(5, 3, { dtype = "float64" })
  gradcheck(function() return weighted_sum(b(x)) end, b:parameters())
  lu.assertEquals(b.calls:item() > 0, true)
  -- a few steps of plain gradient descent reduce a loss, like any built-in
  local y = g:randn(5, 3, { dtype = "float64" })
  local first, last
  for i = 1, 50 do
    b:zero_grad()
    local loss = nn.MSELoss()(b(x), y)
    loss:backward()
    mimic.no_grad(function()
      for _, p in ipairs(b:parameters()) do p:sub_(p.grad * 0.1) end
    end)
    if i == 1 then first = loss:item() end
    last = loss:item()
  end
  lu.assertTrue(last < 0.7 * first, string.format("loss %g -> %g", first, last))
end

-- --- layers: forward values on hand-checked inputs ----------------------------------------------
TestLayers = {}
function TestLayers.test_linear()
  local m = nn.Linear(2, 2, { dtype = "float64" })
  m:load_state_dict({ weight = T({ { 1, 2 }, { 3, 4 } }), bias = T({ 0.5, -1 }) })
  near(m(T({ { 1, 1 }, { 0, 1 } })), { 3.5, 6, 2.5, 3 })
  near(m(T({ 1, -1 })), { -0.5, -2 }) -- 1-D input
  lu.assertEquals(shape(m(mimic.zeros(2, 3, 2, "float64"))), "[2,3,2]")
  local nb = nn.Linear(2, 1, { bias = false })
  lu.assertNil(nb.bias)
  lu.assertEquals(#nb:parameters(), 1)
  raises("nn.Linear(2 -> 2): input of shape [4,3]; its last dim must be 2", function() m(mimic.zeros(4, 3)) end)
  raises("nn.Linear(2 -> 2): input must be a mimic.Tensor, got table", function() m({ 1, 2 }) end)
end
function TestLayers.test_activations()
  local x = T({ -2, -0.5, 0, 1.5 })
  near(nn.ReLU()(x), { 0, 0, 0, 1.5 })
  near(nn.LeakyReLU()(x), { -0.02, -0.005, 0, 1.5 })
  near(nn.LeakyReLU(0.1)(x), { -0.2, -0.05, 0, 1.5 })
  near(nn.ELU()(x), { math.exp(-2) - 1, math.exp(-0.5) - 1, 0, 1.5 })
  near(nn.ELU(2)(x), { 2 * (math.exp(-2) - 1), 2 * (math.exp(-0.5) - 1), 0, 1.5 })
  near(nn.Tanh()(x), { math.tanh(-2), math.tanh(-0.5), 0, math.tanh(1.5) })
  near(nn.Sigmoid()(x), { 1 / (1 + math.exp(2)), 1 / (1 + math.exp(0.5)), 0.5, 1 / (1 + math.exp(-1.5)) })
  local function gelu(v) return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ^ 3))) end
  near(nn.GELU()(x), { gelu(-2), gelu(-0.5), 0, gelu(1.5) })
  near(nn.GELU()(T({ 1 })), 0.8411919906082768, 1e-12) -- PyTorch's GELU(approximate='tanh')(1)
  near(nn.Softplus()(x), { math.log(1 + math.exp(-2)), math.log(1 + math.exp(-0.5)), math.log(2),
    math.log(1 + math.exp(1.5)) }, 1e-12)
  near(nn.Softplus(2)(x), { math.log(1 + math.exp(-4)) / 2, math.log(1 + math.exp(-1)) / 2, math.log(2) / 2,
    math.log(1 + math.exp(3)) / 2 }, 1e-12)
  near(nn.Softplus(1, 1)(T({ 1.5 })), 1.5) -- above the threshold: x itself
  near(nn.Identity()(x), { -2, -0.5, 0, 1.5 })
  raises("LeakyReLU: negative_slope must be a number, got x", function() nn.LeakyReLU("x") end)
  raises("Softplus: beta must be > 0, got 0", function() nn.Softplus(0) end)
end
function TestLayers.test_activations_are_stable()
  local x = T({ -1000, -50, 0, 50, 1000 }):requires_grad_()
  local sp = nn.Softplus()(x)
  near(sp, { 0, math.exp(-50), math.log(2), 50, 1000 }, 1e-12)
  sp:sum():backward()
  near(x.grad, { 0, math.exp(-50), 0.5, 1, 1 }, 1e-12)
  x.grad = nil
  local e = nn.ELU()(x)
  near(e, { -1, math.exp(-50) - 1, 0, 50, 1000 }, 1e-12)
  e:sum():backward()
  near(x.grad, { 0, math.exp(-50), 1, 1, 1 }, 1e-12) -- at 0: alpha, as PyTorch
  x.grad = nil
  local f32 = nn.Softplus()(T({ -200, 200 }, "float32"))
  near(f32, { 0, 200 })
end
function TestLayers.test_dropout_eval_is_identity()
  local d = nn.Dropout(0.5)
  d:evaluate()
  local x = mimic.randn(10)
  lu.assertTrue(rawequal(d(x), x))
  lu.assertTrue(rawequal(nn.Dropout(0)(x), x))
  near(nn.Dropout(1)(mimic.ones(3)), { 0, 0, 0 })
  lu.assertEquals(tostring(d), "nn.Dropout(p=0.5)")
  raises("Dropout: p must be a number in [0, 1], got 1.5", function() nn.Dropout(1.5) end)
end
function TestLayers.test_dropout_train()
  local d = nn.Dropout(0.3, { generator = mimic.Generator(5) })
  local x = mimic.ones(200, 100, "float64"):requires_grad_()
  local y = d(x)
  local zeros = y:eq(0):to("float64"):sum():item() / 20000
  lu.assertTrue(math.abs(zeros - 0.3) < 0.02, "fraction dropped " .. zeros)
  local kept = y:masked_select(y:ne(0))
  near(kept:min(), 1 / 0.7, 1e-12)
  near(kept:max(), 1 / 0.7, 1e-12)
  y:sum():backward()
  close(x.grad, y:detach(), 0, 0, "gradient is the scaled mask")
  -- the same seed gives the same mask, another seed another one
  local y2 = nn.Dropout(0.3, { generator = mimic.Generator(5) })(x)
  close(y2, y, 0, 0, "same seed")
  local y3 = nn.Dropout(0.3, { generator = mimic.Generator(6) })(x)
  lu.assertTrue(y3:ne(y):to("float64"):sum():item() > 0)
  -- successive calls draw new masks
  lu.assertTrue(d(x):ne(y):to("float64"):sum():item() > 0)
end
function TestLayers.test_layernorm()
  local ln = nn.LayerNorm(3, { eps = 0, dtype = "float64" })
  -- rows: mean 2, variance 2/3; mean 3, variance 2 (biased)
  near(ln(T({ { 1, 2, 3 }, { 2, 2, 5 } })), { -1 / math.sqrt(2 / 3), 0, 1 / math.sqrt(2 / 3),
    -1 / math.sqrt(2), -1 / math.sqrt(2), 2 / math.sqrt(2) }, 1e-12)
  local ln2 = nn.LayerNorm({ 2, 2 }, { elementwise_affine = false, eps = 0 })
  lu.assertEquals(#ln2:parameters(), 0)
  near(ln2(T({ { 1, 3 }, { 1, 3 } })), { -1, 1, -1, 1 }, 1e-6)
  raises("does not end with the normalized shape [2,2]", function() ln2(mimic.zeros(2, 3)) end)
  lu.assertEquals(#ln:parameters(), 2)
  lu.assertEquals(tostring(ln), "nn.LayerNorm([3], eps=0)")
end
function TestLayers.test_containers()
  local x = T({ { 1, -2 } })
  local relu_tanh = nn.Sequential(nn.ReLU(), nn.Tanh())
  near(relu_tanh(x), { math.tanh(1), 0 })
  near(nn.Residual(nn.ReLU())(x), { 2, -2 })
  local c = nn.Concat(2, nn.ReLU(), nn.Identity(), nn.Tanh())
  lu.assertEquals(shape(c(x)), "[1,6]")
  near(c(x), { 1, 0, 1, -2, math.tanh(1), math.tanh(-2) })
  near(nn.Concat(1, nn.Identity(), nn.Identity())(x), { 1, -2, 1, -2 })
  lu.assertTrue(nn.Parallel == nn.Concat)
  lu.assertEquals(#c, 3)
  raises("Residual: the inner module maps shape [1,2] to [1,3]",
    function() nn.Residual(nn.Linear(2, 3, { dtype = "float64" }))(x) end)
  raises("Concat: the first argument is the (1-based) dim", function() nn.Concat(nn.ReLU()) end)
  near(nn.Sequential()(x), { 1, -2 }) -- empty: identity
end

-- --- BatchNorm1d: train vs evaluate ---------------------------------------------------------------
TestBatchNorm = {}
function TestBatchNorm.test_train_uses_batch_stats_and_updates_running()
  local bn = nn.BatchNorm1d(2, { dtype = "float64" })
  local x = T({ { 1, 10 }, { 3, 20 }, { 5, 60 } })
  local y = bn(x)
  -- per feature: zero mean, unit (biased) variance
  near(y:mean(1), { 0, 0 }, 1e-12)
  near((y * y):mean(1), { 1 / (1 + 1e-5 / (8 / 3)), 1 / (1 + 1e-5 / (1400 / 3)) }, 1e-9)
  -- running stats: momentum 0.1, unbiased variance (4 and 700)
  near(bn.running_mean, { 0.3, 3 }, 1e-12)
  near(bn.running_var, { 0.9 + 0.1 * 4, 0.9 + 0.1 * 700 }, 1e-12)
  lu.assertEquals(bn.num_batches_tracked:item(), 1)
  bn(x)
  lu.assertEquals(bn.num_batches_tracked:item(), 2)
  near(bn.running_mean, { 0.3 * 0.9 + 0.3, 3 * 0.9 + 3 }, 1e-12)
end
function TestBatchNorm.test_eval_uses_running_stats()
  local bn = nn.BatchNorm1d(2, { dtype = "float64", eps = 0 })
  bn:load_state_dict({ weight = T({ 2, 1 }), bias = T({ 0, 1 }), running_mean = T({ 1, 2 }),
    running_var = T({ 4, 1 }), num_batches_tracked = mimic.scalar(3, "int64") })
  bn:evaluate()
  local y = bn(T({ { 3, 2 }, { 1, 5 } }))
  near(y, { 2 * (3 - 1) / 2, 1, 0, 4 }, 1e-12)
  near(bn.running_mean, { 1, 2 }) -- unchanged
  lu.assertEquals(bn.num_batches_tracked:item(), 3)
  near(bn(T({ { 1, 2 } })), { 0, 1 }) -- one sample is fine in evaluation
end
function TestBatchNorm.test_errors_and_options()
  local bn = nn.BatchNorm1d(3)
  raises("expected more than 1 value per feature when training, got input of shape [1,3]",
    function() bn(mimic.zeros(1, 3)) end)
  raises("input of shape [4,2]; expected [N, 3] or [N, 3, L]", function() bn(mimic.zeros(4, 2)) end)
  local plain = nn.BatchNorm1d(3, { affine = false, track_running_stats = false })
  lu.assertEquals(#plain:parameters(), 0)
  lu.assertEquals(#plain:buffers(), 0)
  plain:evaluate()
  near(plain(T({ { 1, 2, 3 }, { 3, 4, 5 } })), { -1, -1, -1, 1, 1, 1 }, 1e-4) -- batch stats even in evaluation
  local cumulative = nn.BatchNorm1d(1, { momentum = false, dtype = "float64" })
  cumulative(T({ { 1 }, { 3 } }))
  cumulative(T({ { 5 }, { 7 } }))
  near(cumulative.running_mean, 4, 1e-12) -- the average of the batch means
end

-- --- gradients vs finite differences (float64) ----------------------------------------------------
TestGradients = {}
local g64 = { generator = mimic.Generator(21), dtype = "float64" }
local function randn(...) return mimic.Generator(select("#", ...) * 13):randn({ ... }, { dtype = "float64" }) end
function TestGradients.test_linear()
  local m = nn.Linear(3, 2, g64)
  local x = randn(4, 3):requires_grad_()
  gradcheck(function() return weighted_sum(m(x)) end, { m.weight, m.bias, x })
end
function TestGradients.test_activations()
  -- inputs away from the kinks (0 for relu-like, the softplus threshold)
  local x = T({ -3, -1.1, -0.4, 0.3, 0.9, 2.5 }):requires_grad_()
  for _, m in ipairs({ nn.ReLU(), nn.LeakyReLU(0.1), nn.ELU(0.7), nn.GELU(), nn.Tanh(), nn.Sigmoid(),
    nn.Softplus(), nn.Softplus(2, 3) }) do
    gradcheck(function() return weighted_sum(m(x)) end, { x })
  end
end
function TestGradients.test_layernorm()
  local m = nn.LayerNorm(4, { dtype = "float64" })
  mimic.no_grad(function()
    m.weight:copy(randn(4))
    m.bias:copy(randn(4) * 0.1)
  end)
  local x = randn(3, 4):requires_grad_()
  gradcheck(function() return weighted_sum(m(x)) end, { m.weight, m.bias, x })
  local m2 = nn.LayerNorm({ 2, 3 }, { dtype = "float64" })
  local x2 = randn(2, 2, 3):requires_grad_()
  gradcheck(function() return weighted_sum(m2(x2)) end, { m2.weight, m2.bias, x2 })
end
function TestGradients.test_batchnorm()
  for _, x in ipairs({ randn(5, 3), randn(4, 3, 2) }) do
    local m = nn.BatchNorm1d(3, { dtype = "float64" })
    x:requires_grad_()
    gradcheck(function() return weighted_sum(m(x)) end, { m.weight, m.bias, x })
    m:evaluate()
    gradcheck(function() return weighted_sum(m(x)) end, { m.weight, m.bias, x })
  end
end
function TestGradients.test_mlp_and_containers()
  local m = nn.Sequential(nn.Linear(2, 4, g64), nn.Tanh(),
    nn.Concat(2, nn.Linear(4, 2, g64), nn.Residual(nn.Sequential(nn.Linear(4, 4, g64), nn.GELU()))),
    nn.Linear(6, 1, g64))
  local x = randn(3, 2)
  gradcheck(function() return weighted_sum(m(x)) end, m:parameters())
end
function TestGradients.test_losses()
  local x, y = randn(4, 3):requires_grad_(), randn(4, 3) * 0.5
  local w = T({ 0.5, 2, 1 })
  gradcheck(function() return F.mse_loss(x, y, { weights = w }) end, { x })
  gradcheck(function() return F.huber_loss(x, y, { delta = 0.7 }) end, { x })
  gradcheck(function() return F.l1_loss(x, y) end, { x })
  gradcheck(function() return F.binary_cross_entropy_with_logits(x, y:sigmoid(), { pos_weight = w }) end, { x })
  gradcheck(function() return F.cross_entropy(x, mimic.tensor({ 1, 3, 2, 3 }, "int64"), { weights = w }) end, { x })
  gradcheck(function() return F.cross_entropy(x, F.softmax(y, -1)) end, { x })
  local mu, lv = randn(4, 3):requires_grad_(), (randn(3, 4):t() * 0.5):contiguous():requires_grad_()
  gradcheck(function() return F.gaussian_kl(mu, lv, { reduction = "batchmean" }) end, { mu, lv })
  gradcheck(function() return F.gaussian_kl(mu, lv, y, y * 0.3) end, { mu, lv })
end

-- --- state_dict ----------------------------------------------------------------------------------
TestStateDict = {}
local function model(seed)
  local g = mimic.Generator(seed)
  return nn.Sequential(nn.Linear(3, 4, { generator = g }), nn.BatchNorm1d(4), nn.Tanh(),
    nn.Linear(4, 2, { generator = g }))
end
function TestStateDict.test_round_trip()
  local a, b = model(1), model(2)
  a(mimic.randn(8, 3)) -- running stats move away from their start
  local sd = a:state_dict()
  local keys = {}
  for k in pairs(sd) do keys[#keys + 1] = k end
  table.sort(keys)
  lu.assertEquals(keys, { "1.bias", "1.weight", "2.bias", "2.num_batches_tracked", "2.running_mean",
    "2.running_var", "2.weight", "4.bias", "4.weight" })
  lu.assertFalse(sd["1.weight"]:requires_grad())
  b:load_state_dict(sd)
  a:evaluate()
  b:evaluate()
  local x = mimic.randn(5, 3)
  close(b(x), a(x), 0, 0, "same outputs")
  lu.assertEquals(b[2].num_batches_tracked:item(), 1)
  -- the module's own tensors were filled (an optimizer holding them sees the values)
  lu.assertTrue(rawequal(b:parameters()[1], b[1].weight))
  -- float64 values load into a float32 model
  local c = model(3)
  local sd64 = {}
  for k, v in pairs(sd) do sd64[k] = v:dtype() == "float32" and v:double() or v end
  c:load_state_dict(sd64)
  c:evaluate()
  close(c(x), a(x), 1e-6, 1e-7, "converted")
end
function TestStateDict.test_errors_name_every_problem()
  local m = model(1)
  local sd = m:state_dict()
  sd["1.bias"] = nil
  sd["4.weight"] = mimic.zeros(4, 2)
  sd["extra"] = mimic.zeros(1)
  sd["2.running_var"] = "x"
  local msg = raises("Sequential:load_state_dict: missing 1.bias; unexpected extra; mismatched 2.running_var "
    .. "(a string, expected a tensor), 4.weight (model [2,4], given [4,2])", function() m:load_state_dict(sd) end)
  lu.assertStrContains(msg, "test_nn.lua") -- raised at the caller's line
  raises("expects a table name -> tensor, got number", function() m:load_state_dict(3) end)
  -- strict = false: loads what matches, returns what did not
  local partial = m:state_dict()
  partial["1.bias"] = nil
  partial["other"] = mimic.zeros(1)
  partial["1.weight"] = mimic.zeros(4, 3)
  local missing, unexpected = m:load_state_dict(partial, { strict = false })
  lu.assertEquals(missing, { "1.bias" })
  lu.assertEquals(unexpected, { "other" })
  near(m[1].weight:abs():sum(), 0)
  raises("mismatched 1.weight (model [4,3], given [3])",
    function() m:load_state_dict({ ["1.weight"] = mimic.zeros(3) }, { strict = false }) end)
end

-- --- initialisers ----------------------------------------------------------------------------------
TestInit = {}
local function absmax(t) return t:detach():abs():max():item() end
function TestInit.test_linear_default_is_pytorchs()
  local m = nn.Linear(16, 2000, { generator = mimic.Generator(1) })
  local bound = 1 / 4
  lu.assertTrue(absmax(m.weight) <= bound)
  lu.assertTrue(absmax(m.weight) > 0.99 * bound)
  lu.assertTrue(absmax(m.bias) <= bound)
  lu.assertTrue(absmax(m.bias) > 0.99 * bound)
  near(m.weight:mean(), 0, 0.01)
  near(m.weight:var(), bound * bound / 3, 0.001) -- U(-b, b)
end
function TestInit.test_seeded_and_reproducible()
  local a = nn.Linear(3, 3, { generator = mimic.Generator(42) })
  local b = nn.Linear(3, 3, { generator = mimic.Generator(42) })
  local c = nn.Linear(3, 3, { generator = mimic.Generator(43) })
  close(a.weight, b.weight, 0, 0, "same seed")
  close(a.bias, b.bias, 0, 0, "same seed")
  lu.assertTrue(a.weight:ne(c.weight):to("float32"):sum():item() > 0)
  -- without a generator: the default generator (mimic.manual_seed)
  mimic.manual_seed(7)
  local d = nn.Linear(3, 3)
  mimic.manual_seed(7)
  local e = nn.Linear(3, 3)
  close(d.weight, e.weight, 0, 0, "default generator")
end
function TestInit.test_initialisers()
  local g = mimic.Generator(3)
  local w = mimic.zeros(300, 200, "float64")
  local init = nn.init
  lu.assertTrue(rawequal(init.xavier_uniform_(w, { generator = g }), w))
  local b = math.sqrt(6 / 500)
  lu.assertTrue(absmax(w) <= b and absmax(w) > 0.99 * b)
  init.xavier_uniform_(w, { gain = 2, generator = g })
  lu.assertTrue(absmax(w) <= 2 * b and absmax(w) > 1.98 * b)
  init.xavier_normal_(w, { generator = g })
  near(w:std(), math.sqrt(2 / 500), 0.002)
  init.kaiming_uniform_(w, { generator = g }) -- gain sqrt(2): bound sqrt(6 / fan_in)
  lu.assertTrue(absmax(w) <= math.sqrt(6 / 200) and absmax(w) > 0.99 * math.sqrt(6 / 200))
  init.kaiming_uniform_(w, { mode = "fan_out", generator = g })
  lu.assertTrue(absmax(w) <= math.sqrt(6 / 300) and absmax(w) > 0.99 * math.sqrt(6 / 300))
  init.kaiming_normal_(w, { generator = g })
  near(w:std(), math.sqrt(2 / 200), 0.002)
  init.kaiming_normal_(w, { nonlinearity = "tanh", generator = g })
  near(w:std(), 5 / 3 / math.sqrt(200), 0.003)
  init.normal_(w, 1, 0.5, { generator = g })
  near(w:mean(), 1, 0.01)
  near(w:std(), 0.5, 0.01)
  init.uniform_(w, 2, 3, g) -- a generator directly works too
  lu.assertTrue(w:min():item() >= 2 and w:max():item() < 3)
  init.zeros_(w)
  near(w:abs():sum(), 0)
  init.constant_(w, 0.25)
  near(w:mean(), 0.25)
  init.ones_(w)
  near(w:mean(), 1)
  -- on a parameter (requires grad): filled in place, still a leaf
  local p = nn.Parameter(mimic.zeros(2, 2))
  init.kaiming_uniform_(p)
  lu.assertTrue(p:is_leaf() and p:requires_grad())
  lu.assertAlmostEquals(init.calculate_gain("leaky_relu", 0.2), math.sqrt(2 / 1.04), 1e-12)
  lu.assertAlmostEquals(init.calculate_gain("relu"), math.sqrt(2), 1e-12)
  raises("xavier_uniform_: fan in and fan out need a tensor of at least 2 dims, got shape [3]",
    function() init.xavier_uniform_(mimic.zeros(3)) end)
  raises("kaiming_normal_: mode must be 'fan_in' or 'fan_out', got fan", function()
    init.kaiming_normal_(w, { mode = "fan" })
  end)
  raises("calculate_gain: unknown nonlinearity 'swish'", function() init.calculate_gain("swish") end)
end
function TestInit.test_layer_init_option()
  local g = mimic.Generator(9)
  local m = nn.Linear(50, 40, { init = "xavier_normal", generator = g })
  near(m.bias:abs():sum(), 0)
  near(m.weight:std(), math.sqrt(2 / 90), 0.02)
  local called
  local m2 = nn.Linear(2, 2, { init = function(layer, gen)
    called = gen
    nn.init.constant_(layer.weight, 0.5)
  end, generator = g })
  lu.assertTrue(rawequal(called, g))
  near(m2.weight:mean(), 0.5)
  nn.Linear(2, 2, { init = "kaiming_uniform_" })
  raises("Linear: unknown init 'magic'", function() nn.Linear(2, 2, { init = "magic" }) end)
end

-- --- losses ----------------------------------------------------------------------------------
TestLosses = {}
function TestLosses.test_values()
  local x, y = T({ { 1, 2 } }), T({ { 0, 0 } })
  near(nn.MSELoss()(x, y), 2.5)
  near(nn.MSELoss({ reduction = "sum" })(x, y), 5)
  near(nn.MSELoss({ reduction = "none" })(x, y), { 1, 4 })
  near(nn.MSELoss({ weights = { 2, 0.5 } })(x, y), (2 + 2) / 2)
  near(nn.L1Loss()(x, y), 1.5)
  lu.assertTrue(nn.MAELoss == nn.L1Loss)
  near(nn.HuberLoss()(T({ 0.5, 2 }), T({ 0, 0 })), (0.125 + 1.5) / 2)
  near(nn.HuberLoss(0.5)(T({ 0.5, 2 }), T({ 0, 0 })), (0.125 + 0.875) / 2)
  near(nn.HuberLoss(0.5, { reduction = "sum" })(T({ 0.5, 2 }), T({ 0, 0 })), 1)
  near(nn.BCEWithLogitsLoss()(T({ 0, 0 }), T({ 0, 1 })), math.log(2), 1e-12)
  near(nn.CrossEntropyLoss()(T({ { 1, 1, 1 } }), mimic.tensor({ 2 }, "int64")), math.log(3), 1e-12)
  near(nn.CrossEntropyLoss()(T({ 1, 1, 1, 1 }), mimic.tensor(3, "int64")), math.log(4), 1e-12) -- unbatched
  near(nn.GaussianKLLoss()(T({ 0, 0 }), T({ 0, 0 })), 0)
  near(nn.GaussianKLLoss({ reduction = "sum" })(T({ 1, 0 }), T({ 0, math.log(2) })),
    0.5 + 0.5 * (2 - 1 - math.log(2)), 1e-12)
  near(nn.GaussianKLLoss()(T({ 1 }), T({ 0.3 }), T({ 1 }), T({ 0.3 })), 0, 1e-12) -- KL(p || p)
end
function TestLosses.test_stable_at_extremes()
  local z = T({ -1000, 1000, 0 }):requires_grad_()
  local l = F.binary_cross_entropy_with_logits(z, T({ 1, 0, 0.5 }), { reduction = "none" })
  near(l, { 1000, 1000, math.log(2) }, 1e-9)
  l:sum():backward()
  near(z.grad, { -1, 1, 0 }, 1e-12)
  local ce = F.cross_entropy(T({ { 1000, 0, -1000 } }), mimic.tensor({ 2 }, "int64"))
  near(ce, 1000, 1e-9)
end
function TestLosses.test_errors()
  raises("mse_loss: input of shape [4,1] and target of shape [4] differ",
    function() nn.MSELoss()(mimic.zeros(4, 1), mimic.zeros(4)) end)
  raises("mse_loss: reduction must be 'mean', 'sum' or 'none', got avg",
    function() F.mse_loss(mimic.zeros(2), mimic.zeros(2), { reduction = "avg" }) end)
  raises("l1_loss: weights of shape [2]; expected one weight per output: shape [3]",
    function() F.l1_loss(mimic.zeros(4, 3), mimic.zeros(4, 3), { weights = { 1, 2 } }) end)
  raises("cross_entropy: target class 0 is out of range 1..3 (class indices are 1-based)",
    function() F.cross_entropy(mimic.zeros(2, 3), mimic.tensor({ 0, 1 }, "int64")) end)
  raises("cross_entropy: target class 4 is out of range 1..3",
    function() F.cross_entropy(mimic.zeros(2, 3), mimic.tensor({ 4, 1 }, "int64")) end)
  raises("cross_entropy: class-index target of shape [3] for logits of shape [2,3]",
    function() F.cross_entropy(mimic.zeros(2, 3), mimic.tensor({ 1, 1, 1 }, "int64")) end)
  raises("cross_entropy: target must be int64 class indices or float probabilities, got bool",
    function() F.cross_entropy(mimic.zeros(2, 3), mimic.zeros(2, "bool")) end)
  raises("gaussian_kl: reduction must be 'mean', 'sum' or 'none' or 'batchmean'",
    function() F.gaussian_kl(mimic.zeros(2), mimic.zeros(2), { reduction = "max" }) end)
  raises("huber_loss: delta must be a number >= 0", function()
    nn.HuberLoss({ delta = -1 })(mimic.zeros(1), mimic.zeros(1))
  end)
end

-- --- PyTorch fixtures -------------------------------------------------------------------------
TestTorch = {}
local RTOL, ATOL = 1e-9, 1e-12

local function with_dtype(opts)
  local o = { dtype = "float64" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return o
end

-- Loads a case's parameters (and start buffers) through load_state_dict.
local function load_case(m, case)
  local sd = {}
  for k, v in pairs(case.params or {}) do sd[k] = fixture(v) end
  for k, v in pairs(case.start_buffers or {}) do sd[k] = fixture(v) end
  m:load_state_dict(sd)
end

local function check_layer_case(m, case)
  load_case(m, case)
  if case.train == false then m:evaluate() end
  for _ = 1, (case.passes or 1) - 1 do m(fixture(case.input)) end
  local x = fixture(case.input):requires_grad_()
  local y = m(x)
  close(y, fixture(case.output), RTOL, ATOL, case.name .. " output")
  y:backward(fixture(case.gout))
  close(x.grad, fixture(case.grads.input), RTOL, ATOL, case.name .. " input grad")
  for name, g in pairs(case.grads) do
    if name ~= "input" then close(m[name].grad, fixture(g), RTOL, ATOL, case.name .. " " .. name .. " grad") end
  end
  for name, b in pairs(case.buffers or {}) do
    close(m[name], fixture(b), RTOL, ATOL, case.name .. " buffer " .. name)
  end
end

for _, case in ipairs(fx.linear) do
  TestTorch["test_" .. case.name] = function()
    check_layer_case(nn.Linear(case.args[1], case.args[2], with_dtype(case.opts)), case)
  end
end
for _, case in ipairs(fx.activations) do
  TestTorch["test_" .. case.name] = function()
    check_layer_case(nn[case.layer](table.unpack(case.args)), case)
  end
end
for _, case in ipairs(fx.layernorm) do
  TestTorch["test_" .. case.name] = function()
    check_layer_case(nn.LayerNorm(case.args[1], with_dtype(case.opts)), case)
  end
end
for _, case in ipairs(fx.batchnorm) do
  TestTorch["test_" .. case.name] = function()
    check_layer_case(nn.BatchNorm1d(case.args[1], with_dtype(case.opts)), case)
  end
end

local LOSS_CLASS = { mse_loss = "MSELoss", l1_loss = "L1Loss", huber_loss = "HuberLoss",
  binary_cross_entropy_with_logits = "BCEWithLogitsLoss", cross_entropy = "CrossEntropyLoss",
  gaussian_kl = "GaussianKLLoss" }
for i, case in ipairs(fx.losses) do
  TestTorch[string.format("test_loss_%02d_%s", i, case.name)] = function()
    local opts = {}
    for k, v in pairs(case.opts) do opts[k] = type(v) == "table" and fixture(v) or v end
    local inputs = {}
    for j, spec in ipairs(case.inputs) do
      inputs[j] = fixture(spec)
      if j <= case.ngrad then inputs[j]:requires_grad_() end
    end
    local args = { table.unpack(inputs) }
    if #inputs == 2 and case.fn == "gaussian_kl" then args[3], args[4] = nil, nil end
    args[5 - (case.fn == "gaussian_kl" and 0 or 2)] = opts
    local out = F[case.fn](table.unpack(args, 1, case.fn == "gaussian_kl" and 5 or 3))
    close(out, fixture(case.output), RTOL, ATOL, case.name .. " output")
    out:backward(case.gout and fixture(case.gout) or nil)
    for j, g in ipairs(case.grads) do close(inputs[j].grad, fixture(g), RTOL, ATOL, case.name .. " grad " .. j) end
    -- the loss object gives the same value
    local crit = nn[LOSS_CLASS[case.fn]](opts)
    close(crit(table.unpack(inputs)), out, 0, 0, case.name .. " loss object")
  end
end

-- --- a small regression problem -------------------------------------------------------------------
TestRegression = {}
-- y = sin(x1) x2 on 512 points, a 2-32-32-1 tanh MLP, full-batch Adam written
-- out here (mimic.optim is tested on its own): MSE < 1e-3 in a few seconds.
function TestRegression.test_mlp_fits_sin_x1_times_x2()
  local g = mimic.Generator(2024)
  local x1 = g:uniform({ 512, 1 }, -math.pi, math.pi)
  local x2 = g:uniform({ 512, 1 }, -1, 1)
  local X, Y = mimic.cat({ x1, x2 }, 2), x1:sin() * x2
  local model = nn.Sequential(nn.Linear(2, 32, { generator = g }), nn.Tanh(),
    nn.Linear(32, 32, { generator = g }), nn.Tanh(), nn.Linear(32, 1, { generator = g }))
  local crit = nn.MSELoss()
  local params = model:parameters()
  local m, v = {}, {}
  for i, p in ipairs(params) do m[i], v[i] = mimic.zeros(p:size()), mimic.zeros(p:size()) end
  local lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
  local t0 = mimic.clock()
  local steps = 0
  for step = 1, 2000 do
    steps = step
    model:zero_grad()
    local loss = crit(model(X), Y)
    loss:backward()
    mimic.no_grad(function()
      for i, p in ipairs(params) do
        local gr = p.grad
        m[i]:mul_(b1):add_(gr * (1 - b1))
        v[i]:mul_(b2):add_(gr * gr * (1 - b2))
        local mhat, vhat = m[i] / (1 - b1 ^ step), v[i] / (1 - b2 ^ step)
        p:sub_(mhat / (vhat:sqrt() + eps) * lr)
      end
    end)
    if loss:item() < 4e-4 then break end
  end
  local elapsed = mimic.clock() - t0
  model:evaluate()
  local mse = mimic.no_grad(function() return crit(model(X), Y) end):item()
  lu.assertTrue(mse < 1e-3, string.format("MSE %.3g after %d steps", mse, steps))
  lu.assertTrue(elapsed < 30, string.format("training took %.1f s", elapsed))
end

-- F.leaky_relu is one fused op now: its values and gradients must be those of
-- the composition it replaced, bit for bit (plain backward and create_graph).
TestLeakyReLU = {}
function TestLeakyReLU.test_matches_composition()
  for _, dt in ipairs({ "float32", "float64" }) do
    for _, slope in ipairs({ 0.2, 0.01, -0.5 }) do
      local x0 = mimic.randn(5, 7, dt)
      x0:narrow(1, 1, 1):narrow(2, 1, 1):fill(0) -- the kink: gradient `slope`, as PyTorch
      local w = mimic.randn(5, 7, dt)
      local x1, x2 = x0:clone():requires_grad_(), x0:clone():requires_grad_()
      local y1 = F.leaky_relu(x1, slope)
      local y2 = mimic.where(x2:gt(0), x2, x2 * slope)
      lu.assertEquals(y1:totable(), y2:totable())
      lu.assertEquals(y1:dtype(), dt)
      ;(y1 * w):sum():backward()
      ;(y2 * w):sum():backward()
      lu.assertEquals(x1.grad:totable(), x2.grad:totable())
      lu.assertEquals(x1.grad:reshape(-1):totable()[1], (w:reshape(-1):narrow(1, 1, 1) * slope):item())
      -- create_graph: the gradient is itself differentiable (w.r.t. w here)
      local wg = w:clone():requires_grad_()
      local x3 = x0:clone():requires_grad_()
      ;(F.leaky_relu(x3, slope) * wg):sum():backward({ create_graph = true })
      lu.assertEquals(x3.grad:totable(), x2.grad:totable())
      lu.assertTrue(x3.grad:requires_grad())
      wg.grad = nil -- keep only the second backward's gradient
      x3.grad:sum():backward()
      local want = mimic.where(x0:gt(0), 1, slope):to(dt)
      close(wg.grad, want, 1e-6, 0, "d/dw of sum(grad)")
    end
  end
  -- the default slope and NaN propagation
  local y = F.leaky_relu(T({ -1, 0 / 0, 2 })):totable()
  lu.assertEquals(y[1], -0.01)
  lu.assertTrue(y[2] ~= y[2])
  lu.assertEquals(y[3], 2)
  lu.assertEquals(nn.LeakyReLU(0.2)(T({ -1, 1 })):totable(), { -0.2, 1 })
  raises("leaky_relu", function() F.leaky_relu(mimic.tensor({ 1, 2 }, "int64")) end)
end

os.exit(lu.LuaUnit.run())
