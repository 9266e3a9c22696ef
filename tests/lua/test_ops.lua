-- Tensor operations through the Lua API: the calling conventions (method and
-- module forms, numbers on either side, in-place variants, 1-based dims and
-- indices in and out). Numerical agreement with NumPy is test_numpy.lua's job.
local lu = require "luaunit"
local mimic = require "mimic"

local function T(x, dt) return mimic.tensor(x, dt) end
local function same(t, expected) lu.assertEquals(t:totable(), expected) end
local function near(t, expected, tol)
  local got = t:reshape(-1):totable()
  local exp = expected
  if type(exp) ~= "table" then exp = { exp } end
  lu.assertEquals(#got, #exp)
  for i = 1, #exp do lu.assertAlmostEquals(got[i], exp[i], tol or 1e-6) end
end

-- --- element-wise ---------------------------------------------------------------------
TestElementwise = {}
function TestElementwise.test_method_and_module_forms()
  local a, b = T({ 1, 2 }), T({ 10, 20 })
  same(a:add(b), { 11, 22 })
  same(mimic.add(a, b), { 11, 22 })
  same(mimic.sub(a, 1), { 0, 1 })
  same(mimic.sub(1, a), { 0, -1 })
end
function TestElementwise.test_operators_with_numbers()
  local a = T({ 1, 2, 4 })
  same(a + 1, { 2, 3, 5 })
  same(1 + a, { 2, 3, 5 })
  same(a - 1, { 0, 1, 3 })
  same(10 - a, { 9, 8, 6 })
  same(a * 2, { 2, 4, 8 })
  same(2 * a, { 2, 4, 8 })
  same(a / 2, { 0.5, 1, 2 })
  same(4 / a, { 4, 2, 1 })
  same(a ^ 2, { 1, 4, 16 })
  same(2 ^ a, { 2, 4, 16 })
  same(-a, { -1, -2, -4 })
  same(a + a * a, { 2, 6, 20 })
end
function TestElementwise.test_broadcasting()
  same(T({ { 1 }, { 2 } }) + T({ 10, 20, 30 }), { { 11, 21, 31 }, { 12, 22, 32 } })
  lu.assertEquals((mimic.zeros(0, 3) + T({ 1, 2, 3 })):size(), { 0, 3 })
end
function TestElementwise.test_dtype_promotion()
  lu.assertEquals((T({ 1 }) + T({ 1 }, "float64")):dtype(), "float64")
  lu.assertEquals((T({ 1 }, "float64") * 2):dtype(), "float64")
end
function TestElementwise.test_unary()
  near(T({ 0 }):exp(), 1)
  near(mimic.sqrt(T({ 4, 9 })), { 2, 3 })
  same(T({ -1, 0, 2 }):relu(), { 0, 0, 2 })
  same(T({ -3, 0, 2 }):sign(), { -1, 0, 1 })
  near(T({ 0 }):sigmoid(), 0.5)
  same(T({ -2, 3 }):abs(), { 2, 3 })
  same(T({ 3 }):square(), { 9 })
end
function TestElementwise.test_inplace_returns_self()
  local a = T({ 1, 2 })
  lu.assertTrue(rawequal(a:add_(1), a))
  same(a, { 2, 3 })
  a:mul_(T({ 2, 3 })):sub_(1)
  same(a, { 3, 8 })
  lu.assertTrue(rawequal(a:neg_(), a))
  same(a, { -3, -8 })
  a:abs_():sqrt_()
  near(a, { math.sqrt(3), math.sqrt(8) })
  local b = T({ -5, 0, 5 })
  lu.assertTrue(rawequal(b:clamp_(-1, 1), b))
  same(b, { -1, 0, 1 })
end
function TestElementwise.test_inplace_on_view()
  local m = mimic.zeros(2, 3)
  m:select(2, 2):add_(5)
  same(m, { { 0, 5, 0 }, { 0, 5, 0 } })
  m:t():mul_(T({ 1, 2 }))
  same(m, { { 0, 5, 0 }, { 0, 10, 0 } })
end
function TestElementwise.test_clamp_unbounded()
  local a = T({ -5, 0, 5 })
  same(a:clamp(nil, 1), { -5, 0, 1 })
  same(a:clamp(-1), { -1, 0, 5 })
  same(mimic.clamp(a, -1, nil), { -1, 0, 5 })
end
function TestElementwise.test_comparisons()
  local a = T({ 1, 2, 3 })
  same(a:gt(2), { false, false, true })
  same(a:le(2), { true, true, false })
  same(mimic.eq(a, T({ 1, 0, 3 })), { true, false, true })
  same(a:ne(2), { true, false, true })
  lu.assertEquals(a:ge(1):dtype(), "bool")
  local i = T({ 1, 2, 3 }, "int64")
  same(i:lt(2.5), { true, true, false }) -- a fractional bound is not truncated
  same(i:eq(2), { false, true, false })
end
function TestElementwise.test_where()
  local c = T({ true, false, true })
  same(mimic.where(c, T({ 1, 2, 3 }), T({ -1, -2, -3 })), { 1, -2, 3 })
  same(mimic.where(c, 0, T({ 7, 8, 9 })), { 0, 8, 0 })
  same(mimic.where(c, T({ 7, 8, 9 }), 0), { 7, 0, 9 })
  same(c:where(1, 2), { 1, 2, 1 })
end
function TestElementwise.test_maximum_minimum()
  same(mimic.maximum(T({ 1, 5 }), T({ 3, 2 })), { 3, 5 })
  same(T({ 1, 5 }):minimum(2), { 1, 2 })
  same(mimic.max(T({ 1, 5 }), T({ 3, 2 })), { 3, 5 }) -- a tensor argument: element-wise
end

-- --- reductions -------------------------------------------------------------------------
TestReduce = {}
function TestReduce.test_full_reduction_is_0dim()
  local s = T({ { 1, 2 }, { 3, 4 } }):sum()
  lu.assertEquals(s:dim(), 0)
  lu.assertEquals(s:item(), 10)
  lu.assertEquals(mimic.mean(T({ 1, 2, 3, 6 })):item(), 3)
end
function TestReduce.test_dims_are_1_based()
  local t = T({ { 1, 2, 3 }, { 4, 5, 6 } })
  same(t:sum(1), { 5, 7, 9 })
  same(t:sum(2), { 6, 15 })
  same(t:sum(-1), { 6, 15 })
  same(t:sum(2, true), { { 6 }, { 15 } })
  lu.assertEquals(t:sum(nil, true):size(), { 1, 1 })
  same(t:prod(2), { 6, 120 })
  same(t:mean(1), { 2.5, 3.5, 4.5 })
end
function TestReduce.test_var_std_ddof()
  local t = T({ 1, 2, 3, 4 })
  near(t:var(), 1.25) -- NumPy's default: ddof = 0
  near(t:var(nil, false, 1), 5 / 3)
  near(t:var({ ddof = 1 }), 5 / 3)
  near(t:std(1, false, 1), math.sqrt(5 / 3))
  near(mimic.std(T({ { 1, 3 }, { 5, 9 } }), { dim = 2, keepdim = true }), { 1, 2 })
end
function TestReduce.test_norm()
  local t = T({ { 3, -4 }, { 0, 0 } })
  near(t:norm(), 5)
  near(t:norm(1), 7)
  near(t:norm(math.huge), 4)
  near(t:norm(2, 2), { 5, 0 })
  near(t:norm(nil, 1), { 3, 4 })
  near(t:norm({ p = 1, dim = 2 }), { 7, 0 })
end
function TestReduce.test_max_min_with_indices()
  local t = T({ { 1, 9, 3 }, { 7, 2, 7 } })
  lu.assertEquals(t:max():item(), 9)
  local v, i = t:max(2)
  same(v, { 9, 7 })
  same(i, { 2, 1 }) -- 1-based, first of ties
  lu.assertEquals(i:dtype(), "int64")
  v, i = mimic.min(t, 1, true)
  same(v, { { 1, 2, 3 } })
  same(i, { { 1, 2, 1 } })
end
function TestReduce.test_argmax_argmin()
  local t = T({ { 1, 9, 3 }, { 7, 2, 8 } })
  lu.assertEquals(t:argmax():item(), 2)
  lu.assertEquals(t:argmin():item(), 1)
  same(t:argmax(1), { 2, 1, 2 })
  same(t:argmin(2, true), { { 1 }, { 2 } })
end
function TestReduce.test_cumsum()
  local t = T({ { 1, 2 }, { 3, 4 } })
  same(t:cumsum(1), { { 1, 2 }, { 4, 6 } })
  same(t:cumsum(2), { { 1, 3 }, { 3, 7 } })
  same(t:cumsum(), { 1, 3, 6, 10 })
  same(t:t():cumsum(), { 1, 4, 6, 10 })
end
function TestReduce.test_loss_style_chain()
  local pred, target = T({ 1, 2, 3 }), T({ 1, 1, 1 })
  lu.assertAlmostEquals(((pred - target) ^ 2):mean():item(), 5 / 3, 1e-6)
end

-- --- linear algebra ----------------------------------------------------------------------
TestLinalg = {}
function TestLinalg.test_matmul_forms()
  local a = T({ { 1, 2 }, { 3, 4 } })
  same(a:matmul(T({ { 1 }, { 1 } })), { { 3 }, { 7 } })
  same(mimic.matmul(a, T({ 1, 1 })), { 3, 7 })
  same(a:mm(a), { { 7, 10 }, { 15, 22 } })
  same(a:t():matmul(a), { { 10, 14 }, { 14, 20 } })
  lu.assertEquals(mimic.matmul(mimic.ones(4, 2, 3), mimic.ones(3, 5)):size(), { 4, 2, 5 })
end
function TestLinalg.test_bmm_dot_outer()
  lu.assertEquals(mimic.bmm(mimic.ones(2, 3, 4), mimic.ones(2, 4, 5)):size(), { 2, 3, 5 })
  local d = T({ 1, 2, 3 }):dot(T({ 4, 5, 6 }))
  lu.assertEquals(d:dim(), 0)
  lu.assertEquals(d:item(), 32)
  same(mimic.outer(T({ 1, 2 }), T({ 1, 10, 100 })), { { 1, 10, 100 }, { 2, 20, 200 } })
end

-- --- joining, splitting, indexing ---------------------------------------------------------
TestJoin = {}
function TestJoin.test_cat_stack()
  local a, b = T({ { 1, 2 } }), T({ { 3, 4 } })
  same(mimic.cat({ a, b }), { { 1, 2 }, { 3, 4 } })
  same(mimic.cat({ a, b }, 2), { { 1, 2, 3, 4 } })
  same(mimic.cat({ a, b }, -1), { { 1, 2, 3, 4 } })
  same(mimic.stack({ T({ 1, 2 }), T({ 3, 4 }) }), { { 1, 2 }, { 3, 4 } })
  same(mimic.stack({ T({ 1, 2 }), T({ 3, 4 }) }, 2), { { 1, 3 }, { 2, 4 } })
  same(mimic.stack({ T({ 1, 2 }), T({ 3, 4 }) }, -1), { { 1, 3 }, { 2, 4 } })
end
function TestJoin.test_split_chunk_are_views()
  local t = mimic.arange(7)
  local parts = t:split(3)
  lu.assertEquals(#parts, 3)
  same(parts[3], { 6 })
  parts[1][1] = 100
  lu.assertEquals(t[1], 100)
  local c = mimic.chunk(mimic.arange(6):view(2, 3), 3, 2)
  lu.assertEquals(#c, 3)
  same(c[2], { { 1 }, { 4 } })
  lu.assertEquals(#mimic.split(mimic.zeros(0), 2), 1)
end
function TestJoin.test_gather_index_select_1_based()
  local t = T({ { 1, 2, 3 }, { 4, 5, 6 } })
  same(t:gather(2, T({ { 3, 1 }, { 2, 2 } }, "int64")), { { 3, 1 }, { 5, 5 } })
  same(t:gather(1, T({ { 2, 1, 2 } }, "int64")), { { 4, 2, 6 } })
  same(t:index_select(2, T({ 3, 1 }, "int64")), { { 3, 1 }, { 6, 4 } })
  same(t:index_select(1, T({ -1 }, "int64")), { { 4, 5, 6 } }) -- negative: from the end
  same(t:masked_select(t:gt(3)), { 4, 5, 6 })
  local idx = T({ 2, 1 }, "int64")
  t:index_select(2, idx)
  same(idx, { 2, 1 }) -- the caller's index tensor is not modified
end

-- --- sorting ------------------------------------------------------------------------------
TestSort = {}
function TestSort.test_sort_1_based_stable()
  local v, i = T({ 3, 1, 2, 1 }):sort()
  same(v, { 1, 1, 2, 3 })
  same(i, { 2, 4, 3, 1 })
  v, i = T({ 3, 1, 2, 1 }):sort(1, true)
  same(v, { 3, 2, 1, 1 })
  same(i, { 1, 3, 2, 4 })
  same(T({ { 2, 1 }, { 0, 5 } }):argsort(1), { { 2, 1 }, { 1, 2 } })
  same(mimic.argsort(T({ { 2, 1 }, { 0, 5 } })), { { 2, 1 }, { 1, 2 } }) -- last dim by default
end
function TestSort.test_topk()
  local v, i = T({ 5, 1, 9, 3 }):topk(2)
  same(v, { 9, 5 })
  same(i, { 3, 1 })
  v, i = mimic.topk(T({ 5, 1, 9, 3 }), 2, 1, false)
  same(v, { 1, 3 })
  same(i, { 2, 4 })
  lu.assertEquals(T({ { 1, 2 }, { 3, 4 } }):topk(1, 1):size(), { 1, 2 })
end

os.exit(lu.LuaUnit.run())
