-- Autograd through the Lua API (lua/lautograd.c): gradient requirements, the
-- t.grad property, backward (accumulation, explicit gradients, create_graph),
-- detach, grad mode, error messages; and that Lua's collector keeps pace with
-- the C memory of tensors made from Lua. The maths of each op's gradient is
-- checked in C (tests/c/test_autograd.c).
local lu = require "luaunit"
local mimic = require "mimic"

local function T(x, dt) return mimic.tensor(x, dt or "float64") end
local function near(t, expected, tol)
  local got = t:reshape(-1):totable()
  if type(expected) ~= "table" then expected = { expected } end
  lu.assertEquals(#got, #expected)
  for i = 1, #expected do lu.assertAlmostEquals(got[i], expected[i], tol or 1e-12) end
end
local raises = require("helpers").raises

-- --- gradient requirements -------------------------------------------------------------
TestRequiresGrad = {}
function TestRequiresGrad.test_default_off_and_toggle()
  local x = T({ 1, 2 })
  lu.assertFalse(x:requires_grad())
  lu.assertTrue(rawequal(x:requires_grad_(), x))
  lu.assertTrue(x:requires_grad())
  x:requires_grad_(false)
  lu.assertFalse(x:requires_grad())
  x:requires_grad_(true)
  lu.assertTrue(x:requires_grad())
end
function TestRequiresGrad.test_results_follow_inputs()
  local x, c = T({ 1, 2 }):requires_grad_(), T({ 3, 4 })
  local y = x * c
  lu.assertTrue(y:requires_grad())
  lu.assertFalse(y:is_leaf())
  lu.assertEquals(y:grad_fn(), "mul")
  lu.assertTrue(x:is_leaf())
  lu.assertNil(x:grad_fn())
  lu.assertFalse((c * 2):requires_grad())
  lu.assertNil((c * 2):grad_fn())
end
function TestRequiresGrad.test_errors()
  raises("only float32/float64 tensors can have gradients (got int64)",
    function() return mimic.tensor({ 1 }, "int64"):requires_grad_() end)
  local y = T({ 1 }):requires_grad_() * 2
  raises("call detach() for a new leaf", function() return y:requires_grad_(false) end)
end

-- --- backward and t.grad -----------------------------------------------------------------
TestBackward = {}
function TestBackward.test_scalar_result()
  local x = T({ 3 }):requires_grad_()
  lu.assertNil(x.grad)
  local y = x * x + x * 2 -- dy/dx = 2x + 2 = 8
  y:backward()
  near(x.grad, 8)
  lu.assertEquals(x.grad:dtype(), "float64")
  lu.assertFalse(x.grad:requires_grad())
end
function TestBackward.test_zero_dim_result()
  local x = mimic.scalar(2, "float64"):requires_grad_()
  local y = x:exp()
  y:backward()
  near(x.grad, math.exp(2))
end
function TestBackward.test_explicit_gradient()
  local x = T({ 1, 2, 3 }):requires_grad_()
  local y = x:sin()
  y:backward(T({ 1, 10, 100 }))
  near(x.grad, { math.cos(1), 10 * math.cos(2), 100 * math.cos(3) })
  -- a float32 gradient for a float64 result is converted
  local z = x:square()
  x.grad = nil
  z:backward(mimic.tensor({ 1, 1, 1 }))
  near(x.grad, { 2, 4, 6 })
end
function TestBackward.test_accumulates_until_cleared()
  local x = T({ 1, 2 }):requires_grad_()
  local g0 = nil
  for i = 1, 3 do
    (x * x):backward(T({ 1, 1 }))
    if i == 1 then g0 = x.grad end
    near(x.grad, { 2 * i, 4 * i })
  end
  -- the gradient is accumulated in place: a tensor read earlier sees it (as in PyTorch)
  near(g0, { 6, 12 })
  x.grad = nil
  lu.assertNil(x.grad)
  near(g0, { 6, 12 }) -- an earlier reference keeps its values
  ;(x * 3):backward(T({ 1, 1 }))
  near(x.grad, { 3, 3 })
end
function TestBackward.test_set_grad()
  local x = T({ 1, 2 }):requires_grad_()
  x.grad = T({ 10, 20 })
  ;(x * x):backward(T({ 1, 1 }))
  near(x.grad, { 12, 24 })
  -- an expanded (stride-0) gradient is stored as a copy, so accumulation is correct
  x.grad = T({ 5 }):expand(2)
  ;(x * 1):backward(T({ 1, 2 }))
  near(x.grad, { 6, 7 })
  raises("grad: gradient of dtype float32 for a float64 tensor", function() x.grad = mimic.tensor({ 1, 2 }) end)
  raises("set_grad: gradient of shape [3] for a tensor of shape [2]", function() x.grad = T({ 1, 2, 3 }) end)
  raises("grad: assigned value is a number", function() x.grad = 1 end)
  raises("index: tensors have no settable field 'gard'", function() x.gard = nil end)
end
function TestBackward.test_shared_inputs_and_branches()
  local x = T({ 2 }):requires_grad_()
  local a = x * x
  local y = a * a + a -- x^4 + x^2: 4x^3 + 2x = 36
  y:backward()
  near(x.grad, 36)
end
function TestBackward.test_nonleaf_grad_is_nil()
  local x = T({ 2 }):requires_grad_()
  local y = x * 3
  ;(y * y):backward()
  lu.assertNil(y.grad)
  near(x.grad, 36)
end
function TestBackward.test_errors()
  local x = T({ 1, 2 }):requires_grad_()
  local y = x * x
  raises("backward: the result has shape [2]; without an explicit gradient it must have one element",
    function() y:backward() end)
  raises("backward: gradient of shape [3] for a result of shape [2]", function() y:backward(T({ 1, 2, 3 })) end)
  raises("backward: the tensor does not require grad", function() T({ 1 }):backward() end)
  raises("unknown option 'create_grap'", function() y:backward(T({ 1, 1 }), { create_grap = true }) end)
  raises("bad argument #1 to 'backward' (mimic.Tensor (the gradient of the result), options table or nil expected, got string)",
    function() y:backward("x") end)
  -- an input changed in place after the op
  local a = T({ 1, 2 }):requires_grad_()
  local c = T({ 3, 4 })
  local d = a * c
  c:add_(1)
  raises("was modified in place after the op", function() d:backward(T({ 1, 1 })) end)
  -- in-place changes of a tensor that requires grad are refused (with grad mode on)
  raises("add: writing into a given output is not recorded for autograd, but an input requires grad",
    function() a:add_(1) end)
end
function TestBackward.test_options_table_alone()
  local x = T({ 2 }):requires_grad_()
  local y = x * x * x
  y:backward({ create_graph = true, retain_graph = true })
  near(x.grad, 12)
  lu.assertTrue(x.grad:requires_grad())
end

-- --- create_graph: second derivatives ----------------------------------------------------------
TestCreateGraph = {}
function TestCreateGraph.test_second_derivative()
  local x = T({ 0.5, 2 }):requires_grad_()
  local y = x * x * x -- y' = 3x^2, y'' = 6x
  y:backward(T({ 1, 1 }), { create_graph = true })
  local g = x.grad
  near(g, { 0.75, 12 })
  lu.assertTrue(g:requires_grad())
  lu.assertNotNil(g:grad_fn())
  x.grad = nil
  g:backward(T({ 1, 1 }))
  near(x.grad, { 3, 12 })
end
function TestCreateGraph.test_gradient_penalty_style()
  -- d/dx (d/dx sin(x))^2 = 2 cos(x) (-sin(x))
  local x = T({ 0.3 }):requires_grad_()
  x:sin():backward(nil, { create_graph = true })
  local g = x.grad
  x.grad = nil
  ;(g * g):backward()
  near(x.grad, -2 * math.cos(0.3) * math.sin(0.3))
end
function TestCreateGraph.test_without_create_graph_grad_is_plain()
  local x = T({ 2 }):requires_grad_()
  ;(x * x):backward()
  lu.assertFalse(x.grad:requires_grad())
end

-- --- detach -----------------------------------------------------------------------------------
TestDetach = {}
function TestDetach.test_shares_data_without_history()
  local x = T({ 1, 2 }):requires_grad_()
  local y = x * 2
  local d = y:detach()
  lu.assertFalse(d:requires_grad())
  lu.assertTrue(d:is_leaf())
  lu.assertNil(d:grad_fn())
  near(d, { 2, 4 })
  local xd = x:detach()
  xd[1] = 5 -- same storage
  near(x:detach(), { 5, 2 })
  -- a detached result stops the gradient
  local z = x * y:detach()
  z:backward(T({ 1, 1 }))
  near(x.grad, { 2, 4 })
end

-- --- grad mode --------------------------------------------------------------------------------
TestGradMode = {}
function TestGradMode.setUp() mimic.set_grad_enabled(true) end
function TestGradMode.test_no_grad_records_nothing()
  local x = T({ 1 }):requires_grad_()
  local y = mimic.no_grad(function() return x * 2 end)
  lu.assertFalse(y:requires_grad())
  lu.assertTrue(mimic.is_grad_enabled())
end
function TestGradMode.test_no_grad_passes_arguments_and_results()
  local a, b, c = mimic.no_grad(function(p, q) return p + q, mimic.is_grad_enabled(), nil end, 1, 2)
  lu.assertEquals(a, 3)
  lu.assertFalse(b)
  lu.assertNil(c)
  lu.assertEquals(select("#", mimic.no_grad(function() return 1, nil, nil end)), 3)
  lu.assertEquals(select("#", mimic.no_grad(function() end)), 0)
end
function TestGradMode.test_no_grad_restores_after_error()
  lu.assertTrue(mimic.is_grad_enabled())
  local ok, msg = pcall(mimic.no_grad, function() error("boom") end)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "boom")
  lu.assertTrue(mimic.is_grad_enabled())
  -- the error value passes through unchanged
  local obj = {}
  local ok2, e = pcall(mimic.no_grad, function() error(obj) end)
  lu.assertFalse(ok2)
  lu.assertTrue(rawequal(e, obj))
  -- and the previous mode is restored, even when it was off
  mimic.set_grad_enabled(false)
  pcall(mimic.enable_grad, function() error("x") end)
  lu.assertFalse(mimic.is_grad_enabled())
  mimic.set_grad_enabled(true)
end
function TestGradMode.test_nesting()
  local x = T({ 1 }):requires_grad_()
  local inner = mimic.no_grad(function()
    return mimic.enable_grad(function() return x * 2 end)
  end)
  lu.assertTrue(inner:requires_grad())
  mimic.no_grad(function()
    mimic.no_grad(function() end)
    lu.assertFalse(mimic.is_grad_enabled())
  end)
  lu.assertTrue(mimic.is_grad_enabled())
end
function TestGradMode.test_set_grad_enabled_returns_previous()
  lu.assertTrue(mimic.set_grad_enabled(false))
  lu.assertFalse(mimic.is_grad_enabled())
  lu.assertFalse(mimic.set_grad_enabled(true))
  lu.assertTrue(mimic.is_grad_enabled())
end
function TestGradMode.test_inplace_allowed_under_no_grad()
  local w = T({ 1, 2 }):requires_grad_()
  mimic.no_grad(function() w:sub_(1) end)
  near(w:detach(), { 0, 1 })
end
function TestGradMode.test_callable_and_errors()
  local callable = setmetatable({}, { __call = function(_, v) return v * 2 end })
  lu.assertEquals(mimic.no_grad(callable, 4), 8)
  raises("bad argument #1 to 'no_grad' (no_grad expects a function (or callable) to run, got number)",
    function() mimic.no_grad(1) end)
  raises("bad argument #1 to 'set_grad_enabled'", function() mimic.set_grad_enabled() end)
end

-- --- memory: the collector sees the C memory of tensors -------------------------------------
TestMemory = {}
local function rss_mb()
  local f = io.open("/proc/self/statm")
  if not f then return nil end
  local _, resident = f:read("n", "n")
  f:close()
  return resident * 4096 / 2 ^ 20
end
function TestMemory.test_temporaries_do_not_balloon()
  if not rss_mb() then lu.skip("no /proc/self/statm") end
  collectgarbage()
  local base, peak = rss_mb(), 0
  for i = 1, 10000 do
    local t = mimic.zeros(262144) -- 1 MB
    t = nil
    if i % 250 == 0 then peak = math.max(peak, rss_mb()) end
  end
  -- 10 GB were allocated in all; without GC accounting RSS reaches gigabytes.
  lu.assertTrue(peak - base < 300, string.format("RSS grew by %.0f MB", peak - base))
end
function TestMemory.test_training_like_loop_stays_bounded()
  if not rss_mb() then lu.skip("no /proc/self/statm") end
  collectgarbage()
  local base, peak = rss_mb(), 0
  local w = mimic.randn(256, 256, { dtype = "float64" }):requires_grad_()
  for i = 1, 400 do
    local h = (w * 1.5):tanh() * w -- graph of 512 KB temporaries per step
    h:backward(mimic.ones(256, 256, "float64"))
    w.grad = nil
    if i % 20 == 0 then peak = math.max(peak, rss_mb()) end
  end
  lu.assertTrue(peak - base < 300, string.format("RSS grew by %.0f MB", peak - base))
end

os.exit(lu.LuaUnit.run())
