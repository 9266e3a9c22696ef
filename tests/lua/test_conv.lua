-- Convolution and pooling from Lua (lua/lconv.c, the layers in lua/mimic/nn.lua):
-- PyTorch agreement on tests/fixtures/gen_torch_conv.py (outputs, input and
-- parameter gradients, float64), PyTorch's default initialisation bounds,
-- float32 against float64, unbatched inputs, option and shape errors, and a
-- small CNN that learns to tell two patterns apart.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local F = nn.functional
local raises = require("helpers").raises
local shape, close, fixture = require("helpers").shape, require("helpers").close, require("helpers").fixture
local check_error = require("helpers").check_error

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fx = dofile(here .. "/../fixtures/torch_conv.lua")


-- --- PyTorch fixtures -----------------------------------------------------------------------
TestTorchConv = {}
for _, case in ipairs(fx) do
  TestTorchConv["test_" .. case.name] = function()
    local args = {}
    for i, a in ipairs(case.args) do args[i] = a end
    local opts = { dtype = "float64" }
    local plain = case.layer:find("Pool") ~= nil or case.layer == "Upsample" -- no parameters, no dtype option
    for k, v in pairs(case.opts) do opts[k] = v end
    if plain then opts.dtype = nil end
    args[#args + 1] = opts
    local m = nn[case.layer](table.unpack(args))
    local sd = {}
    for k, v in pairs(case.params) do sd[k] = fixture(v) end
    m:load_state_dict(sd)
    local x = fixture(case.input):requires_grad_()
    local y = m(x)
    close(y, fixture(case.output), 1e-11, 1e-12, case.name .. " output")
    y:backward(fixture(case.gout))
    close(x.grad, fixture(case.grads.input), 1e-11, 1e-12, case.name .. " input grad")
    for name, g in pairs(case.grads) do
      if name ~= "input" then close(m[name].grad, fixture(g), 1e-11, 1e-12, case.name .. " " .. name .. " grad") end
    end
  end
end

-- --- layers -----------------------------------------------------------------------------------
TestConvLayers = {}

function TestConvLayers.test_weight_layout_and_default_init_bounds()
  local g = mimic.Generator(3)
  local c = nn.Conv2d(6, 8, { 3, 5 }, { groups = 2, generator = g })
  lu.assertEquals(shape(c.weight), "[8,3,3,5]")
  lu.assertEquals(shape(c.bias), "[8]")
  -- PyTorch: kaiming_uniform_(a = sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 3*3*5
  local bound = 1 / math.sqrt(45)
  lu.assertTrue(c.weight:abs():max():item() <= bound)
  lu.assertTrue(c.weight:abs():max():item() > 0.9 * bound)
  lu.assertTrue(c.bias:abs():max():item() <= bound)
  local t = nn.ConvTranspose1d(4, 6, 3, { groups = 2 })
  lu.assertEquals(shape(t.weight), "[4,3,3]") -- [in, out/groups, k], as PyTorch
  lu.assertNil(nn.Conv3d(2, 2, 1, { bias = false }).bias)
  lu.assertEquals(nn.Conv1d(2, 3, 3):type(), "float32")
end

function TestConvLayers.test_float32_agrees_with_float64()
  local c = nn.Conv2d(3, 4, 3, { padding = 1, padding_mode = "circular", dtype = "float64" })
  local x = mimic.randn({ 2, 3, 6, 7 }, { dtype = "float64" })
  local y64 = c(x)
  c:float()
  local y32 = c(x:float())
  lu.assertEquals(y32:dtype(), "float32")
  close(y32:double(), y64, 1e-5, 1e-5, "float32")
  local p = nn.MaxPool2d(2)(x:float())
  lu.assertEquals(p:dtype(), "float32")
end

function TestConvLayers.test_unbatched_input()
  local c = nn.Conv1d(2, 3, 3, { padding = "same" })
  local x = mimic.randn({ 2, 9 })
  local y = c(x)
  lu.assertEquals(shape(y), "[3,9]")
  close(y, c(x:unsqueeze(1)):squeeze(1), 0, 0, "unbatched")
  lu.assertEquals(shape(nn.AvgPool2d(2)(mimic.randn({ 3, 4, 4 }))), "[3,2,2]")
end

function TestConvLayers.test_functional_forms_and_indices()
  local x = mimic.tensor({ { { 1, 5, 2, 8, 3, 0 } } })
  local y, idx = F.max_pool1d(x, 2, { return_indices = true })
  lu.assertEquals(y:reshape(-1):totable(), { 5, 8, 3 })
  lu.assertEquals(idx:reshape(-1):totable(), { 2, 4, 5 }) -- 1-based positions in the plane
  -- the positions handed out are a copy: the gradient still goes to the maxima
  local xg = x:double():requires_grad_()
  local yg = F.max_pool1d(xg, 2, { return_indices = true })
  yg:backward(mimic.tensor({ { { 10, 20, 30 } } }, "float64"))
  lu.assertEquals(xg.grad:reshape(-1):totable(), { 0, 10, 0, 20, 30, 0 })
  local w = mimic.tensor({ { { 1, 0, -1 } } })
  lu.assertEquals(F.conv1d(x, w, nil, { padding = 1, padding_mode = "circular" }):reshape(-1):totable(),
    { 0 - 5, 1 - 2, 5 - 8, 2 - 3, 8 - 0, 3 - 1 })
  lu.assertEquals(F.avg_pool1d(x:double(), 3, { stride = 3 }):reshape(-1):totable(), { 8 / 3, 11 / 3 })
end

function TestConvLayers.test_upsample_small_examples()
  local x = mimic.tensor({ { { 1, 2, 4 } } }, "float64")
  lu.assertEquals(mimic.upsample(x, { scale_factor = 2 }):reshape(-1):totable(), { 1, 1, 2, 2, 4, 4 })
  -- half-pixel centres: 1, 1.25, 1.75, 2.5, 3.5, 4
  lu.assertEquals(mimic.upsample(x, { scale_factor = 2, mode = "linear" }):reshape(-1):totable(),
    { 1, 1.25, 1.75, 2.5, 3.5, 4 })
  lu.assertEquals(mimic.upsample(x, { size = 5, mode = "linear", align_corners = true }):reshape(-1):totable(),
    { 1, 1.5, 2, 3, 4 })
  lu.assertEquals(tostring(nn.Upsample({ scale_factor = 2, mode = "bilinear" })), "nn.Upsample(scale_factor=2, mode=bilinear)")
end

function TestConvLayers.test_conv_transpose_is_the_adjoint()
  -- <conv(x), u> == <x, conv_transpose(u)> with the same weight
  local w = mimic.randn({ 4, 3, 3, 2 }, { dtype = "float64" })
  local x = mimic.randn({ 2, 6, 7, 6 }, { dtype = "float64" })
  local o = { stride = { 2, 1 }, padding = { 1, 1 }, groups = 2 }
  local y = mimic.conv2d(x, w, nil, o)
  local u = mimic.randn(y:size(), { dtype = "float64" })
  local ot = { stride = { 2, 1 }, padding = { 1, 1 }, groups = 2, output_padding = { 0, 0 } }
  local z = mimic.conv_transpose2d(u, w, nil, ot)
  lu.assertEquals(shape(z), shape(x))
  lu.assertAlmostEquals((y * u):sum():item(), (x * z):sum():item(), 1e-10)
end

function TestConvLayers.test_errors()
  -- a core error inside a layer points at the caller's line
  local c = nn.Conv2d(1, 1, 5)
  local msg = check_error("larger than the padded input", pcall(function() return c(mimic.zeros(1, 1, 3, 3)) end))
  lu.assertStrContains(msg, "test_conv.lua:")
  raises("must have 4 dims (batch, channels, 2 spatial) or 3 (unbatched)", function() nn.Conv2d(1, 1, 3)(mimic.zeros(5, 5)) end)
  raises("has 2 channels (dim 2), expected 3", function() nn.Conv2d(3, 1, 3)(mimic.zeros(1, 2, 5, 5)) end)
  raises("larger than the padded input", function() nn.Conv2d(1, 1, 5)(mimic.zeros(1, 1, 3, 3)) end)
  raises("padding must be an integer >= 0", function() nn.Conv1d(1, 1, 3, { padding = -1 }) end)
  raises("padding -1 along L", function() mimic.conv1d(mimic.zeros(1, 1, 5), mimic.zeros(1, 1, 3), nil, { padding = -1 }) end)
  raises("divisible by groups", function() nn.Conv2d(3, 4, 3, { groups = 2 }) end)
  raises("unknown option 'strides'", function() nn.Conv2d(1, 1, 3, { strides = 2 }) end)
  raises("unknown option 'paddin'", function() mimic.conv1d(mimic.zeros(1, 1, 5), mimic.zeros(1, 1, 3), { paddin = 1 }) end)
  raises("padding_mode must be 'zeros' or 'circular'", function() nn.Conv2d(1, 1, 3, { padding_mode = "reflect" }) end)
  raises("padding='same' needs stride 1", function() mimic.conv1d(mimic.zeros(1, 1, 5), mimic.zeros(1, 1, 2), { padding = "same" }) end)
  raises("half the kernel size", function() nn.MaxPool2d(2, { padding = 2 })(mimic.zeros(1, 1, 6, 6)) end)
  raises("kernel_size must have 3 entries", function() nn.MaxPool3d({ 2, 2 }) end)
  raises("give exactly one of size and scale_factor", function() nn.Upsample({ size = 4, scale_factor = 2 }) end)
  raises("mode 'bilinear' does not fit a 3-dim input", function() mimic.upsample(mimic.zeros(1, 1, 4), { size = 8, mode = "bilinear" }) end)
  raises("align_corners applies to the linear modes only", function() mimic.upsample(mimic.zeros(1, 1, 4), { size = 8, align_corners = true }) end)
  raises("int64 tensors are not supported", function() mimic.conv1d(mimic.zeros(1, 1, 5, "int64"), mimic.zeros(1, 1, 3)) end)
end

-- --- a small CNN learns ---------------------------------------------------------------------------
TestConvLearns = {}

-- Two classes of 1-channel 12x12 images: a horizontal or a vertical bar at a
-- random position (periodic), plus noise. A circular-padded CNN with pooling
-- must tell them apart from unseen samples.
local function bars(n, g)
  local x = g:randn({ n, 1, 12, 12 }) * 0.3
  local labels = {}
  for i = 1, n do
    local c = (i % 2) + 1
    local p = math.floor(g:rand({ 1 }):item() * 12) + 1
    if c == 1 then x[{ i, 1, p }] = x[{ i, 1, p }] + 1 else x[{ i, 1, {}, p }] = x[{ i, 1, {}, p }] + 1 end
    labels[i] = c
  end
  return x, mimic.tensor(labels, "int64")
end

function TestConvLearns.test_bars_are_told_apart()
  local g = mimic.Generator(11)
  local model = nn.Sequential(
    nn.Conv2d(1, 8, 3, { padding = 1, padding_mode = "circular", generator = g }), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 8, 3, { padding = 1, generator = g }), nn.ReLU(), nn.AvgPool2d(6), nn.Flatten(),
    nn.Linear(8, 2, { generator = g }))
  local opt = mimic.optim.Adam(model:parameters(), { lr = 0.01 })
  local xtr, ytr = bars(128, g)
  for _ = 1, 60 do
    opt:zero_grad()
    local loss = F.cross_entropy(model(xtr), ytr)
    loss:backward()
    opt:step()
  end
  local xte, yte = bars(64, g)
  local pred = mimic.no_grad(function() return model(xte) end):argmax(2)
  local correct = pred:eq(yte):float():sum():item()
  lu.assertTrue(correct >= 60, string.format("%d of 64 correct", correct))
end

os.exit(lu.LuaUnit.run())
