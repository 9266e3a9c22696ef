-- The Tensor userdata: creation, queries, views, conversions, 1-based indexing,
-- printing, random numbers, lifetime.
local lu = require "luaunit"
local mimic = require "mimic"

local function T(x, dt) return mimic.tensor(x, dt) end

-- Exact comparison of a tensor's values with a nested Lua table.
local function same(t, expected) lu.assertEquals(t:totable(), expected) end

-- --- module ------------------------------------------------------------------------
TestModule = {}
function TestModule.test_version() lu.assertStrMatches(mimic.version, "%d+%.%d+%.%d+") end
function TestModule.test_threads()
  local n = mimic.get_num_threads()
  lu.assertTrue(n >= 1)
  mimic.set_num_threads(1)
  lu.assertEquals(mimic.get_num_threads(), 1)
  mimic.set_num_threads(n)
  lu.assertEquals(mimic.get_num_threads(), n)
end
function TestModule.test_is_tensor()
  lu.assertTrue(mimic.is_tensor(mimic.zeros(1)))
  lu.assertFalse(mimic.is_tensor({}))
  lu.assertFalse(mimic.is_tensor(mimic.Generator(1)))
end

-- --- creation ---------------------------------------------------------------------------
TestCreate = {}
function TestCreate.test_nested()
  local t = T({ { 1, 2, 3 }, { 4, 5, 6 } })
  lu.assertEquals(t:size(), { 2, 3 })
  lu.assertEquals(t:dtype(), "float32")
  same(t, { { 1, 2, 3 }, { 4, 5, 6 } })
end
function TestCreate.test_dtypes()
  lu.assertEquals(T({ 1, 2 }, "float64"):dtype(), "float64")
  lu.assertEquals(T({ 1, 2 }, "double"):dtype(), "float64")
  lu.assertEquals(T({ 1, 2 }, "int64"):dtype(), "int64")
  lu.assertEquals(T({ 1, 2 }, "long"):dtype(), "int64")
  lu.assertEquals(T({ true, false }):dtype(), "bool")
  same(T({ true, false }), { true, false })
  same(T({ 1, 0, 2 }, "bool"), { true, false, true })
end
function TestCreate.test_int64_exact()
  local big = math.maxinteger - 5
  lu.assertEquals(T({ big }, "int64")[1], big)
  lu.assertEquals(math.type(T({ 3 }, "int64")[1]), "integer")
end
function TestCreate.test_scalar_and_empty()
  local s = T(2.5)
  lu.assertEquals(s:dim(), 0)
  lu.assertEquals(s:item(), 2.5)
  lu.assertEquals(mimic.scalar(7, "int64"):item(), 7)
  local e = T({})
  lu.assertEquals(e:size(), { 0 })
  lu.assertEquals(e:numel(), 0)
end
function TestCreate.test_from_tensor_copies()
  local a = T({ 1, 2 })
  local b = mimic.tensor(a, "float64")
  b[1] = 9
  lu.assertEquals(a[1], 1)
  lu.assertEquals(b:dtype(), "float64")
end
function TestCreate.test_zeros_ones_empty_full()
  same(mimic.zeros(2, 3), { { 0, 0, 0 }, { 0, 0, 0 } })
  same(mimic.ones({ 2 }, "int64"), { 1, 1 })
  lu.assertEquals(mimic.empty(4, 5):size(), { 4, 5 })
  lu.assertEquals(mimic.zeros():dim(), 0)
  lu.assertEquals(mimic.zeros({}):dim(), 0)
  same(mimic.full({ 2, 2 }, 7), { { 7, 7 }, { 7, 7 } })
  same(mimic.full(3, 1.5, "float64"), { 1.5, 1.5, 1.5 })
  lu.assertEquals(mimic.zeros(0, 3):size(), { 0, 3 })
end
function TestCreate.test_arange()
  same(mimic.arange(5), { 0, 1, 2, 3, 4 })
  same(mimic.arange(2, 5), { 2, 3, 4 })
  same(mimic.arange(0, 1, 0.25), { 0, 0.25, 0.5, 0.75 })
  same(mimic.arange(3, 0, -1), { 3, 2, 1 })
  lu.assertEquals(mimic.arange(5, "int64"):dtype(), "int64")
  lu.assertEquals(mimic.arange(0):numel(), 0)
end
function TestCreate.test_linspace_eye()
  same(mimic.linspace(0, 1, 5), { 0, 0.25, 0.5, 0.75, 1 })
  same(mimic.eye(2), { { 1, 0 }, { 0, 1 } })
  same(mimic.eye(2, 3), { { 1, 0, 0 }, { 0, 1, 0 } })
  lu.assertEquals(mimic.eye(3, "int64"):dtype(), "int64")
end

-- --- queries -------------------------------------------------------------------------------
TestQuery = {}
function TestQuery.test_size_stride()
  local t = mimic.zeros(2, 3, 4)
  lu.assertEquals(t:size(), { 2, 3, 4 })
  lu.assertEquals(t:shape(), { 2, 3, 4 })
  lu.assertEquals(t:size(2), 3)
  lu.assertEquals(t:size(-1), 4)
  lu.assertEquals(t:stride(), { 12, 4, 1 })
  lu.assertEquals(t:stride(1), 12)
  lu.assertEquals(t:dim(), 3)
  lu.assertEquals(t:numel(), 24)
  lu.assertEquals(#t, 2)
  lu.assertTrue(t:is_contiguous())
  lu.assertFalse(t:transpose(1, 3):is_contiguous())
end

-- --- views -----------------------------------------------------------------------------------
TestViews = {}
function TestViews.test_view_shares_storage()
  local t = mimic.arange(6)
  local v = t:view(2, 3)
  v[{ 1, 2 }] = 100
  lu.assertEquals(t[2], 100)
  same(t:view({ 3, -1 }), { { 0, 100 }, { 2, 3 }, { 4, 5 } })
end
function TestViews.test_reshape_copies_when_needed()
  local t = mimic.arange(6):view(2, 3):t()
  lu.assertFalse(t:is_contiguous())
  same(t:reshape(6), { 0, 3, 1, 4, 2, 5 })
  lu.assertErrorMsgContains("without a copy", function() t:view(6) end)
end
function TestViews.test_transpose_permute()
  local t = mimic.arange(24):view(2, 3, 4)
  lu.assertEquals(t:transpose(1, 3):size(), { 4, 3, 2 })
  lu.assertEquals(t:permute(3, 1, 2):size(), { 4, 2, 3 })
  lu.assertEquals(t:permute({ 3, 1, 2 }):size(), { 4, 2, 3 })
  lu.assertEquals(t:permute(3, 1, 2)[{ 2, 1, 3 }], t[{ 1, 3, 2 }])
  lu.assertEquals(t:transpose(-1, 1):size(), { 4, 3, 2 })
  same(T({ { 1, 2 }, { 3, 4 } }):t(), { { 1, 3 }, { 2, 4 } })
end
function TestViews.test_narrow_select_slice()
  local t = mimic.arange(12):view(3, 4)
  same(t:narrow(2, 2, 2), { { 1, 2 }, { 5, 6 }, { 9, 10 } })
  same(t:select(1, 2), { 4, 5, 6, 7 })
  same(t:select(2, -1), { 3, 7, 11 })
  same(t:slice(2, 1, 4, 2), { { 0, 2 }, { 4, 6 }, { 8, 10 } })
  same(t:slice(1, 2, -1), { { 4, 5, 6, 7 }, { 8, 9, 10, 11 } })
  lu.assertEquals(t:slice(1, 2, 1):size(), { 0, 4 }) -- empty range
end
function TestViews.test_expand_squeeze_unsqueeze_flatten()
  local t = T({ 1, 2, 3 })
  same(t:view(1, 3):expand(2, 3), { { 1, 2, 3 }, { 1, 2, 3 } })
  same(t:view(3, 1):expand(-1, 2), { { 1, 1 }, { 2, 2 }, { 3, 3 } })
  lu.assertEquals(t:unsqueeze(1):size(), { 1, 3 })
  lu.assertEquals(t:unsqueeze(2):size(), { 3, 1 })
  lu.assertEquals(t:unsqueeze(-1):size(), { 3, 1 })
  lu.assertEquals(mimic.zeros(1, 3, 1):squeeze():size(), { 3 })
  lu.assertEquals(mimic.zeros(1, 3, 1):squeeze(3):size(), { 1, 3 })
  lu.assertEquals(mimic.zeros(2, 3, 4):flatten():size(), { 24 })
  lu.assertEquals(mimic.zeros(2, 3, 4):flatten(2):size(), { 2, 12 })
  lu.assertEquals(mimic.zeros(2, 3, 4):flatten(1, 2):size(), { 6, 4 })
end
function TestViews.test_contiguous_clone()
  local t = mimic.arange(6):view(2, 3)
  lu.assertTrue(rawequal(t:contiguous(), t))
  local c = t:t():contiguous()
  lu.assertTrue(c:is_contiguous())
  same(c, { { 0, 3 }, { 1, 4 }, { 2, 5 } })
  local k = t:clone()
  k[{ 1, 1 }] = 42
  lu.assertEquals(t[{ 1, 1 }], 0)
end
function TestViews.test_view_outlives_base()
  local v
  do
    local base <close> = mimic.arange(10)
    v = base:narrow(1, 3, 2)
  end
  collectgarbage()
  same(v, { 2, 3 })
end

-- --- conversions and copies ------------------------------------------------------------------------
TestConvert = {}
function TestConvert.test_dtype_conversions()
  local t = T({ 1.5, -2.5, 0 })
  lu.assertEquals(t:double():dtype(), "float64")
  same(t:long(), { 1, -2, 0 })
  same(t:bool(), { true, true, false })
  lu.assertEquals(t:to("int64"):dtype(), "int64")
  lu.assertTrue(rawequal(t:float(), t))
  lu.assertEquals(T({ true, false }):float():totable(), { 1, 0 })
end
function TestConvert.test_copy_fill()
  local t = mimic.zeros(2, 3)
  t:copy(T({ 1, 2, 3 }))
  same(t, { { 1, 2, 3 }, { 1, 2, 3 } })
  lu.assertTrue(rawequal(t:fill(5), t))
  same(t, { { 5, 5, 5 }, { 5, 5, 5 } })
  t:select(2, 2):fill(0)
  same(t, { { 5, 0, 5 }, { 5, 0, 5 } })
end
function TestConvert.test_fill_int64_exact()
  -- beyond 2^53, where a double in between would round the value
  local big = (1 << 62) + 1
  local t = mimic.zeros(2, 3, "int64")
  t:fill(big)
  lu.assertEquals(t[{ 2, 3 }], big)
  lu.assertEquals(math.type(t[{ 1, 1 }]), "integer")
  t:select(2, 2):fill(-big)
  lu.assertEquals(t:totable(), { { big, -big, big }, { big, -big, big } })
  t[{ {}, { 1, 2 } }] = big - 2
  lu.assertEquals(t[{ 1, 2 }], big - 2)
  lu.assertEquals(mimic.full({ 2 }, big, "int64"):totable(), { big, big })
  lu.assertEquals(mimic.scalar(big, "int64"):item(), big)
  lu.assertEquals(mimic.tensor(big, "int64"):item(), big)
  -- non-integer values into int64 still truncate, as before
  lu.assertEquals(mimic.zeros(1, "int64"):fill(2.75)[1], 2)
end
function TestConvert.test_totable_item()
  lu.assertEquals(T({ { 1, 2 } }):tolist(), { { 1, 2 } })
  lu.assertEquals(T({ 7 }):item(), 7)
  lu.assertEquals(T({ { 7 } }, "int64"):item(), 7)
  lu.assertEquals(T(true):item(), true)
  lu.assertEquals(mimic.scalar(3):totable(), 3)
end

-- --- indexing -------------------------------------------------------------------------------------
TestIndex = {}
function TestIndex.test_number_index()
  local v = T({ 10, 20, 30 })
  lu.assertEquals(v[1], 10)
  lu.assertEquals(v[3], 30)
  lu.assertEquals(v[-1], 30)
  lu.assertEquals(v[-3], 10)
  local m = T({ { 1, 2 }, { 3, 4 } })
  lu.assertTrue(mimic.is_tensor(m[2]))
  same(m[2], { 3, 4 })
  lu.assertEquals(m[2][1], 3)
  lu.assertEquals(m[-1][-1], 4)
end
function TestIndex.test_table_index()
  local t = mimic.arange(24):view(2, 3, 4)
  lu.assertEquals(t[{ 2, 3, 4 }], 23)
  lu.assertEquals(t[{ -1, -1, -1 }], 23)
  same(t[{ 1, 2 }], { 4, 5, 6, 7 })
  same(t[{ 1, {}, 2 }], { 1, 5, 9 })
  same(t[{ 2, { 2, 3 }, { 1, 4, 3 } }], { { 16, 19 }, { 20, 23 } })
  same(t[{ 1, { -2, -1 }, -1 }], { 7, 11 })
  lu.assertEquals(t[{ {}, { 2 } }]:size(), { 2, 1, 4 }) -- {i} keeps the dim
  lu.assertEquals(t[{}]:size(), { 2, 3, 4 })
end
function TestIndex.test_mask_and_index_tensor()
  local t = T({ { 1, -2 }, { -3, 4 } })
  same(t[t:gt(0)], { 1, 4 })
  same(T({ 10, 20, 30 })[T({ 3, 1, 3 }, "int64")], { 30, 10, 30 })
  same(t[T({ 2 }, "int64")], { { -3, 4 } })
end
function TestIndex.test_assign()
  local t = mimic.zeros(3, 4)
  t[{ 1, 1 }] = 5
  t[2] = 1
  t[{ 3, { 2, 3 } }] = T({ 7, 8 })
  t[{ {}, 4 }] = -1
  same(t, { { 5, 0, 0, -1 }, { 1, 1, 1, -1 }, { 0, 7, 8, -1 } })
  local v = T({ 1, 2, 3 })
  v[-1] = 9
  v[1] = T({ 4 })
  same(v, { 4, 2, 9 })
  t[{ { 1, 2 }, { 1, 2 } }] = T({ 9, 8 }) -- broadcasts over rows
  same(t[{ { 1, 2 }, { 1, 2 } }], { { 9, 8 }, { 9, 8 } })
  local i = T({ 1, 2 }, "int64")
  i[2] = math.maxinteger
  lu.assertEquals(i[2], math.maxinteger)
  local b = T({ true, false })
  b[2] = true
  same(b, { true, true })
end
function TestIndex.test_mask_assign()
  local t = T({ { 1, -2 }, { -3, 4 } })
  t[t:lt(0)] = 0
  same(t, { { 1, 0 }, { 0, 4 } })
  local u = T({ 1, 2, 3 })
  u[u:ge(2)] = T({ 10, 20, 30 })
  same(u, { 1, 20, 30 })
end
function TestIndex.test_index_views_write_through()
  local t = mimic.zeros(2, 2)
  local row = t[1]
  row:fill(3)
  same(t, { { 3, 3 }, { 0, 0 } })
end
function TestIndex.test_methods_still_reachable()
  local t = T({ 1, 2 })
  lu.assertEquals(type(t.size), "function")
  lu.assertNil(t.no_such_method)
end

-- --- printing ----------------------------------------------------------------------------------
TestPrint = {}
function TestPrint.test_matrix()
  lu.assertEquals(tostring(T({ { 1, 2, 3 }, { 4, 5, 6 } })),
    "[[1 2 3]\n [4 5 6]]\n[mimic.Tensor float32 [2,3]]")
end
function TestPrint.test_consistent_precision()
  lu.assertEquals(tostring(T({ 0.5, -1.25, 10 })), "[ 0.50 -1.25 10.00]\n[mimic.Tensor float32 [3]]")
  lu.assertEquals(tostring(T({ 1e-6, 1 }, "float64")), "[1e-06 1e+00]\n[mimic.Tensor float64 [2]]")
  lu.assertEquals(tostring(T({ 0 / 0, 1 / 0, -1.5 })), "[ nan  inf -1.5]\n[mimic.Tensor float32 [3]]")
end
function TestPrint.test_other_dtypes()
  lu.assertEquals(tostring(T({ true, false })), "[ true false]\n[mimic.Tensor bool [2]]")
  lu.assertEquals(tostring(T({ -3, 12 }, "int64")), "[-3 12]\n[mimic.Tensor int64 [2]]")
  lu.assertEquals(tostring(mimic.scalar(2.5)), "2.5\n[mimic.Tensor float32 []]")
  lu.assertEquals(tostring(mimic.zeros(0, 3)), "[]\n[mimic.Tensor float32 [0,3]]")
end
function TestPrint.test_3d()
  lu.assertEquals(tostring(mimic.arange(8):view(2, 2, 2)),
    "[[[0 1]\n  [2 3]]\n\n [[4 5]\n  [6 7]]]\n[mimic.Tensor float32 [2,2,2]]")
end
function TestPrint.test_truncation()
  local s = tostring(mimic.arange(2000):view(2, 1000))
  lu.assertEquals(s, "[[   0    1    2 ...  997  998  999]\n [1000 1001 1002 ... 1997 1998 1999]]\n"
    .. "[mimic.Tensor float32 [2,1000]]")
  local big = tostring(mimic.zeros(100, 100))
  lu.assertTrue(#big < 400)
  lu.assertStrContains(big, " ...\n")
end
function TestPrint.test_line_wrap()
  for line in tostring(mimic.arange(100)):gmatch("[^\n]+") do lu.assertTrue(#line <= 80, line) end
end

-- --- random ---------------------------------------------------------------------------------------
TestRandom = {}
function TestRandom.test_seed_reproducible()
  mimic.manual_seed(123)
  local a = mimic.rand(5):totable()
  mimic.manual_seed(123)
  lu.assertEquals(mimic.rand(5):totable(), a)
  local g1, g2 = mimic.Generator(7), mimic.Generator(7)
  lu.assertEquals(mimic.randn(3, { generator = g1 }):totable(), g2:randn(3):totable())
end
function TestRandom.test_ranges_and_dtypes()
  local g = mimic.Generator(1)
  local u = mimic.uniform({ 1000 }, -2, 3, { generator = g })
  for _, v in ipairs(u:totable()) do lu.assertTrue(v >= -2 and v < 3) end
  lu.assertEquals(mimic.rand(2, 3, { dtype = "float64" }):dtype(), "float64")
  lu.assertEquals(mimic.rand({ 2, 3 }, "float64"):dtype(), "float64")
  lu.assertEquals(mimic.rand({ 2, 3 }):size(), { 2, 3 })
  local n = mimic.normal(4000, 10, 0.5, g)
  local s = 0
  for _, v in ipairs(n:totable()) do s = s + v end
  lu.assertAlmostEquals(s / 4000, 10, 0.05)
end
function TestRandom.test_randperm_is_1_based()
  local p = mimic.randperm(10, { generator = mimic.Generator(3) })
  lu.assertEquals(p:dtype(), "int64")
  local seen = {}
  for _, v in ipairs(p:totable()) do seen[v] = true end
  for i = 1, 10 do lu.assertTrue(seen[i], "missing " .. i) end
  lu.assertNil(seen[0])
end
function TestRandom.test_state_checkpoint()
  local g = mimic.Generator(99)
  g:rand(7)
  local st = g:state()
  lu.assertEquals(st.seed, 99)
  local a = g:randn(5):totable()
  g:set_state(st)
  lu.assertEquals(g:randn(5):totable(), a)
  local f = g:clone()
  lu.assertEquals(f:rand(3):totable(), g:rand(3):totable())
  lu.assertEquals(g:seed(), 99)
  g:manual_seed(5)
  lu.assertEquals(g:state().counter, 0)
end
function TestRandom.test_default_generator()
  local d = mimic.default_generator()
  mimic.manual_seed(11)
  lu.assertEquals(d:seed(), 11)
  local st = d:state()
  local a = mimic.rand(4):totable()
  d:set_state(st)
  lu.assertEquals(mimic.rand(4):totable(), a)
end
function TestRandom.test_inplace_fill()
  local g = mimic.Generator(4)
  local w = mimic.empty(3, 3)
  lu.assertTrue(rawequal(w:uniform_(-1, 1, g), w))
  for _, v in ipairs(w:reshape(-1):totable()) do lu.assertTrue(v >= -1 and v < 1) end
  local x = mimic.zeros(2, 4):t() -- non-contiguous target
  x:normal_(0, 1, { generator = mimic.Generator(4) })
  -- elements are drawn in the view's own row-major order
  lu.assertEquals(x:reshape(-1):totable(), mimic.Generator(4):randn(8):totable())
end

-- --- lifetime -----------------------------------------------------------------------------------
TestLifetime = {}
function TestLifetime.test_close_then_use()
  local t = mimic.zeros(2)
  do
    local c <close> = t
  end
  lu.assertErrorMsgContains("closed tensor", function() return t:size() end)
  lu.assertStrContains(tostring(t), "closed")
  getmetatable(t).__gc(t) -- a second release is harmless
end
function TestLifetime.test_many_temporaries()
  local x = mimic.ones(100)
  for _ = 1, 2000 do x = (x * 1.0001):narrow(1, 1, 100) end
  collectgarbage()
  lu.assertAlmostEquals(x[1], 1.0001 ^ 2000, 1e-3)
end

function TestLifetime.test_clean_exit_after_parallel_work()
  -- lua_close() unloads the module; its OpenMP/BLAS threads must not crash the
  -- process afterwards. (This suite ends with os.exit, which does not close.)
  local lua = arg and arg[-1] or "lua5.4"
  local script = "local m = require 'mimic'; local x = m.ones(1000000) + 1; "
    .. "local y = m.matmul(m.ones(300, 300), m.ones(300, 300)); os.exit(0, true)"
  for _, n in ipairs({ 2, 3, 4 }) do -- whether it crashes depends on timing: try a few
    local ok, how, code = os.execute("OMP_NUM_THREADS=" .. n .. " " .. lua .. " -e \"" .. script .. "\"")
    lu.assertTrue(ok, string.format("child (%d threads) ended by %s %s", n, tostring(how), tostring(code)))
  end
end

os.exit(lu.LuaUnit.run())
