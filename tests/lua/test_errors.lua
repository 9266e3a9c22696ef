-- Error messages: every failure is a Lua error naming the function and the
-- problem (argument errors in luaL_argerror style, core errors carrying the
-- core's message unchanged), raised at the caller's line. Nothing aborts.
local lu = require "luaunit"
local mimic = require "mimic"

local function T(x, dt) return mimic.tensor(x, dt) end

-- The message of the error f raises (fails if f succeeds).
local function err(f, ...)
  local ok, msg = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  return tostring(msg)
end
-- Asserts the error message contains `plain` literally.
local function raises(plain, f, ...)
  local msg = err(f, ...)
  if not msg:find(plain, 1, true) then lu.fail(string.format("error message %q does not contain %q", msg, plain)) end
  return msg
end

-- --- bad arguments ---------------------------------------------------------------------
TestArgs = {}
function TestArgs.test_operand_type()
  local t = mimic.zeros(2)
  raises("bad argument #2 to 'add' (mimic.Tensor or number expected, got table)",
    function() return mimic.add(t, {}) end)
  raises("bad argument #1 to 'mul' (mimic.Tensor or number expected, got string)",
    function() return mimic.mul("x", t) end)
  raises("bad argument #2 to 'add' (mimic.Tensor or number expected, got table)", function() return t + {} end)
  raises("bad argument #1 to 'add' (mimic.Tensor or number expected, got table)", function() return t:add({}) end)
  raises("bad argument #2 to 'add' (mimic.Tensor expected, got number)", function() return mimic.add(1, 2) end)
  raises("bad argument #1 to 'matmul' (mimic.Tensor expected, got no value)", function() return t:matmul() end)
end
function TestArgs.test_bad_self()
  local t = mimic.zeros(2)
  raises("bad argument #1 to 'size' (mimic.Tensor expected, got table)", function() return t.size({}) end)
  raises("calling 'numel' on bad self (mimic.Tensor expected, got table)", function()
    local o = { numel = t.numel }
    return o:numel()
  end)
end
function TestArgs.test_position_of_caller()
  local msg = err(function() return mimic.zeros(2):add({}) end)
  lu.assertStrMatches(msg, ".*test_errors%.lua:%d+: bad argument.*")
end
function TestArgs.test_dtype_names()
  raises("bad argument #2 to 'zeros' (unknown dtype 'float16' (use float32, float64, int64 or bool))",
    function() return mimic.zeros(2, "float16") end)
  raises("bad argument #1 to 'to' (unknown dtype 'int32'", function() return mimic.zeros(2):to("int32") end)
end
function TestArgs.test_shapes_as_arguments()
  raises("bad argument #1 to 'zeros' (size 2 of the shape is 1.5; sizes are integers >= 0)",
    function() return mimic.zeros({ 2, 1.5 }) end)
  raises("bad argument #2 to 'ones' (size is -3; sizes are integers >= 0)", function() return mimic.ones(2, -3) end)
  raises("shape has 9 dims; mimic supports at most 8", function() return mimic.zeros({ 1, 1, 1, 1, 1, 1, 1, 1, 1 }) end)
  raises("view: only one size may be -1", function() return mimic.zeros(4):view(-1, -1) end)
  raises("view: shape [3,2] has 6 elements but the tensor [4] has 4", function() return mimic.zeros(4):view(3, 2) end)
end
function TestArgs.test_values()
  raises("bad argument #1 to 'fill' (number expected, got string)", function() return mimic.zeros(2):fill("x") end)
  raises("bad argument #1 to 'Generator' (integer seed expected, got number)", function() return mimic.Generator(1.5) end)
  raises("bad argument #1 to 'set_state' (state table needs integer fields 'seed' and 'counter'",
    function() return mimic.Generator(1):set_state({ seed = 1 }) end)
  raises("index: assigned value is a string; assign a number or a tensor",
    function() local t = mimic.zeros(2); t[1] = "x" end)
end

-- --- dims and indices ----------------------------------------------------------------------
TestRange = {}
function TestRange.test_dims()
  local t = mimic.zeros(2, 3)
  raises("bad argument #1 to 'sum' (dim 3 out of range for a 2-dim tensor (valid 1..2 or -2..-1))",
    function() return t:sum(3) end)
  raises("bad argument #1 to 'size' (dim 0 out of range for a 2-dim tensor (valid 1..2 or -2..-1))",
    function() return t:size(0) end)
  raises("bad argument #2 to 'transpose' (dim -3 out of range", function() return t:transpose(1, -3) end)
  raises("bad argument #2 to 'cat' (dim 3 out of range", function() return mimic.cat({ t, t }, 3) end)
  raises("permute: 2 dims given for a 3-dim tensor", function() return mimic.zeros(1, 2, 3):permute(1, 2) end)
  raises("permute: dim 0 out of range for a 2-dim tensor", function() return t:permute({ 0, 1 }) end)
end
function TestRange.test_element_index()
  local t = T({ { 1, 2, 3 }, { 4, 5, 6 } })
  raises("index: index 3 is out of range for dim 1 of size 2 (indices are 1-based: valid 1..2 or -2..-1)",
    function() return t[3] end)
  raises("index: index 0 is out of range for dim 1 of size 2", function() return t[0] end)
  raises("index: index 4 is out of range for dim 2 of size 3", function() return t[{ 1, 4 }] end)
  raises("index: index -4 is out of range for dim 2 of size 3", function() return t[{ 1, -4 }] end)
  raises("index: index 9 is out of range for dim 2 of size 3", function() t[{ 2, 9 }] = 1 end)
  raises("index: index 1.5 is not an integer", function() return t[1.5] end)
  raises("index: 3 entries for a 2-dim tensor", function() return t[{ 1, 1, 1 }] end)
  raises("index: range 2..5 is out of range for dim 2 of size 3", function() return t[{ {}, { 2, 5 } }] end)
  raises("index: step 0 of entry 1 must be >= 1", function() return t[{ { 1, 2, 0 } }] end)
  raises("index: entry 1 is a string", function() return t[{ "a" }] end)
  raises("index: cannot index a 0-dim tensor; use item()", function() return mimic.scalar(1)[1] end)
  raises("index: a float32 tensor cannot index", function() return t[T({ 1 })] end)
  raises("index: a tensor is indexed by an integer, a table or a tensor, not a boolean",
    function() return t[true] end)
end
function TestRange.test_views()
  local t = mimic.zeros(3, 4)
  raises("select: index 5 is out of range for dim 2 of size 4", function() return t:select(2, 5) end)
  raises("narrow: start 3 with length 3 is out of range for dim 1 of size 3", function() return t:narrow(1, 3, 3) end)
  raises("slice: range 0..2 is out of range for dim 1 of size 3", function() return t:slice(1, 0, 2) end)
  raises("bad argument #4 to 'slice' (step must be >= 1)", function() return t:slice(1, 1, 2, 0) end)
  raises("t: expects a tensor of at most 2 dims, got 3", function() return mimic.zeros(1, 2, 3):t() end)
  raises("expand: cannot expand [3,4]", function() return t:expand(2, 4) end)
  raises("size: a 0-dim tensor has no dims", function() return mimic.scalar(1):size(1) end)
  raises("len: a 0-dim tensor has no length", function() return #mimic.scalar(1) end)
end
function TestRange.test_index_tensors()
  local t = T({ { 1, 2, 3 }, { 4, 5, 6 } })
  raises("gather: index 4 (entry 2 of the index) is out of range for dim 2 of size 3",
    function() return t:gather(2, T({ { 1, 4 }, { 1, 1 } }, "int64")) end)
  raises("index_select: index 0 (entry 1 of the index) is out of range for dim 1 of size 2",
    function() return t:index_select(1, T({ 0 }, "int64")) end)
  raises("bad argument #2 to 'index_select' (index must be an int64 tensor of 1-based indices, got float32; "
    .. "convert it with :long())", function() return t:index_select(1, T({ 1 })) end)
  raises("topk: k = 4 is out of range for dim 2 of size 3", function() return t:topk(4) end)
end

-- --- shapes and dtypes from the core ---------------------------------------------------------
TestCore = {}
function TestCore.test_shapes()
  raises("matmul: shapes [3,4] and [5,2] do not match (4 ~= 5)",
    function() return mimic.matmul(mimic.zeros(3, 4), mimic.zeros(5, 2)) end)
  raises("add: shapes [2,3] and [4] do not broadcast", function() return mimic.zeros(2, 3) + mimic.zeros(4) end)
  raises("copy: source of shape [3] does not broadcast to destination [2,2]",
    function() return mimic.zeros(2, 2):copy(mimic.zeros(3)) end)
  raises("cat: the 2nd tensor has shape [2,2] but the 1st has [1,3]",
    function() return mimic.cat({ mimic.zeros(1, 3), mimic.zeros(2, 2) }) end)
  raises("view: a tensor of shape [3,2] with these strides cannot be viewed as [6] without a copy",
    function() return mimic.zeros(2, 3):t():view(6) end)
end
function TestCore.test_dtypes()
  raises("add: int64 tensors are not supported; convert with :float() or :double()",
    function() return T({ 1 }, "int64") + 1 end)
  raises("exp: bool tensors are not supported", function() return T({ true }):exp() end)
  raises("uniform: needs a float32 or float64 tensor, got int64", function() return mimic.rand(2, "int64") end)
end
function TestCore.test_values()
  raises("uniform: upper bound 0 is below lower bound 1", function() return mimic.uniform(3, 1, 0) end)
  raises("normal: standard deviation -1 is negative", function() return mimic.normal(3, 0, -1) end)
  raises("arange: start, stop and step must be finite and step non-zero", function() return mimic.arange(0, 1, 0) end)
  raises("linspace: number of points -1 is negative", function() return mimic.linspace(0, 1, -1) end)
end

-- The core's messages reach Lua unchanged, so they must not number dims or
-- positions 0-based: dims count from the end, list positions are ordinals,
-- and index values are checked (1-based) by the binding before the core.
TestNumbering = {}
function TestNumbering.test_broadcast_names_dim_from_end()
  raises("add: shapes [2,3] and [2,4] do not broadcast (dim -1: 3 vs 4)",
    function() return mimic.zeros(2, 3) + mimic.zeros(2, 4) end)
  raises("mul: shapes [3,2,2] and [4,2] do not broadcast (dim -2: 2 vs 4)",
    function() return mimic.zeros(3, 2, 2):mul(mimic.zeros(4, 2)) end)
  raises("add: shapes [2,3] and [2,4] do not broadcast (dim -1: 3 vs 4)",
    function() return mimic.zeros(2, 3):add_(mimic.zeros(2, 4)) end)
  raises("add: the output is a broadcast view (stride 0 in dim -2)",
    function() return mimic.zeros(1, 3):expand(2, 3):add_(mimic.zeros(2, 3)) end)
end
function TestNumbering.test_cat_and_stack_name_tensors_by_ordinal()
  local a, b = mimic.zeros(1, 3), mimic.zeros(2, 2)
  raises("cat: the 2nd tensor has shape [2,2] but the 1st has [1,3] (all dims but the cat dim, dim -2, must match)",
    function() return mimic.cat({ a, b }) end)
  raises("cat: the 3rd tensor has shape [2,2] but the 1st has [1,3] (all dims but the cat dim, dim -1, must match)",
    function() return mimic.cat({ a, a, b }, 2) end)
  local many = {}
  for i = 1, 11 do many[i] = a end
  many[12] = b
  raises("cat: the 12th tensor has shape [2,2]", function() return mimic.cat(many) end)
  raises("stack: the 2nd tensor has shape [4] but the 1st has [3] (all must match)",
    function() return mimic.stack({ mimic.zeros(3), mimic.zeros(4) }) end)
  raises("stack: the 2nd tensor is int64 but the 1st is float32",
    function() return mimic.stack({ mimic.zeros(3), mimic.zeros(3, "int64") }) end)
end
function TestNumbering.test_index_values_are_one_based()
  local t = T({ { 1, 2, 3 }, { 4, 5, 6 } })
  raises("gather: index 3 (entry 1 of the index) is out of range for dim 1 of size 2 "
    .. "(indices are 1-based: valid 1..2 or -2..-1)",
    function() return t:gather(1, T({ { 3, 1, 1 } }, "int64")) end)
  raises("index_select: index 4 (entry 2 of the index) is out of range for dim 2 of size 3 "
    .. "(indices are 1-based: valid 1..3 or -3..-1)",
    function() return t:index_select(2, T({ 1, 4 }, "int64")) end)
  raises("index_select: index 3 (entry 1 of the index) is out of range for dim 1 of size 2",
    function() return t[T({ 3 }, "int64")] end)
  -- the largest valid 1-based index is accepted, so the check is not off by one
  lu.assertEquals(t:index_select(2, T({ 3, -3 }, "int64")):totable(), { { 3, 1 }, { 6, 4 } })
  lu.assertEquals(t:gather(1, T({ { 2, 1, 2 } }, "int64")):totable(), { { 4, 2, 6 } })
end
function TestNumbering.test_expand_names_dim_from_end()
  local t = mimic.zeros(3, 4)
  raises("expand: cannot expand [3,4] to [2,3,5] (dim -1: 4 to 5; only size-1 dims stretch)",
    function() return t:expand(2, 3, 5) end)
  raises("expand: cannot expand [3,4] to [2,4] (dim -2: 3 to 2", function() return t:expand(2, 4) end)
  raises("expand: -1 is not allowed for the new leading dim -3", function() return t:expand(-1, 3, 4) end)
end
function TestNumbering.test_empty_reduction_names_dim_from_end()
  raises("max: cannot reduce an empty dim (size 0); dim -2 of shape [0,3] has no elements",
    function() return mimic.zeros(0, 3):max(1) end)
  raises("argmin: cannot reduce an empty dim (size 0); dim -1 of shape [3,0] has no elements",
    function() return mimic.zeros(3, 0):argmin(2) end)
  raises("min: cannot reduce an empty dim (size 0); the tensor of shape [0] has no elements",
    function() return mimic.zeros(0):min() end)
end
function TestNumbering.test_permute_names_dim_from_end()
  raises("permute: dim -2 appears twice; give each of the 2 dims once",
    function() return mimic.zeros(2, 3):permute(1, 1) end)
end

-- --- creation from tables ----------------------------------------------------------------------
TestNested = {}
function TestNested.test_ragged()
  raises("tensor: row at [2] has 1 entries, expected 2 (rows must be rectangular)",
    function() return T({ { 1, 2 }, { 3 } }) end)
  raises("tensor: row at [1][2] has 3 entries, expected 2",
    function() return T({ { { 1, 2 }, { 3, 4, 5 } } }) end)
  raises("tensor: entry at [3] is a number, expected a table of 2 entries",
    function() return T({ { 1, 2 }, { 3, 4 }, 5 }) end)
end
function TestNested.test_non_numbers()
  raises("tensor: element at [2][2] is a string, expected a number", function() return T({ { 1, 2 }, { 3, "x" } }) end)
  raises("tensor: element at [2] is a table, expected a number (rows nest deeper than the first row)",
    function() return T({ 1, { 2 } }) end)
  raises("tensor: element at [2] is a nil", function() return T({ 1, nil, 3 }) end)
  raises("bad argument #1 to 'tensor' (table, number or mimic.Tensor expected, got string)",
    function() return T("1") end)
end

-- --- misc -------------------------------------------------------------------------------------------
TestMisc = {}
function TestMisc.test_item()
  raises("item: the tensor has 3 elements; item() needs exactly one", function() return mimic.zeros(3):item() end)
end
function TestMisc.test_closed()
  local t = mimic.zeros(2)
  do local c <close> = t end
  raises("bad argument #1 to 'numel' (attempt to use a closed tensor)", function() return t.numel(t) end)
  raises("calling 'numel' on bad self (attempt to use a closed tensor)", function() return t:numel() end)
end
function TestMisc.test_errors_do_not_leak_or_corrupt()
  -- Errors raised after result boxes exist must release them; run many and
  -- check the module still works.
  local a = mimic.ones(64, 64)
  for _ = 1, 500 do
    pcall(function() return a:gather(2, T({ { 0 } }, "int64")) end)
    pcall(function() return mimic.cat({ a, mimic.zeros(1) }) end)
    pcall(function() return a[{ 1, 99 }] end)
    pcall(function() return T({ { 1, 2 }, { 3 } }) end)
  end
  collectgarbage()
  lu.assertEquals((a + 1)[{ 64, 64 }], 2)
end

os.exit(lu.LuaUnit.run())
