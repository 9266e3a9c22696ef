-- Recurrent layers from Lua (lua/lrnn.c, nn.RNN/LSTM/GRU/LastStep in
-- lua/mimic/nn.lua) and data.windows (lua/mimic/data.lua): PyTorch agreement
-- on tests/fixtures/gen_torch_rnn.py (outputs, final states, gradients of the
-- input, initial states and every parameter; float64; 1-2 layers, batch_first
-- both ways), PyTorch's init bounds and parameter layout, float32 against
-- float64, identical results on 1 and 2 threads, errors, windowing shapes and
-- values, and an LSTM that learns to predict a damped oscillator.
local lu = require "luaunit"
local mimic = require "mimic"
local nn = mimic.nn
local F = nn.functional
local data = require "mimic.data"
local raises = require("helpers").raises
local shape, close, fixture = require("helpers").shape, require("helpers").close, require("helpers").fixture

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fx = dofile(here .. "/../fixtures/torch_rnn.lua")


-- --- PyTorch fixtures -----------------------------------------------------------------------
TestTorchRNN = {}
for _, case in ipairs(fx) do
  TestTorchRNN["test_" .. case.name] = function()
    local opts = { dtype = "float64" }
    for k, v in pairs(case.opts) do opts[k] = v end
    local m = nn[case.layer](case.args[1], case.args[2], opts)
    local sd = {}
    for k, v in pairs(case.params) do sd[k] = fixture(v) end
    m:load_state_dict(sd)
    local x = fixture(case.input):requires_grad_()
    local h0 = case.h0 and fixture(case.h0):requires_grad_()
    local c0 = case.c0 and fixture(case.c0):requires_grad_()
    local y, hn, cn = m(x, h0, c0)
    close(y, fixture(case.output), 1e-11, 1e-12, case.name .. " output")
    close(hn, fixture(case.h_n), 1e-11, 1e-12, case.name .. " h_n")
    local loss = (y * fixture(case.gout)):sum() + (hn * fixture(case.gh)):sum()
    if case.c_n then
      close(cn, fixture(case.c_n), 1e-11, 1e-12, case.name .. " c_n")
      loss = loss + (cn * fixture(case.gc)):sum()
    end
    loss:backward()
    for name, g in pairs(case.grads) do
      local t = name == "input" and x or name == "h0" and h0 or name == "c0" and c0 or m[name]
      close(t.grad, fixture(g), 1e-10, 1e-11, case.name .. " " .. name .. " grad")
    end
  end
end

-- --- layers -----------------------------------------------------------------------------------
TestRNNLayers = {}

function TestRNNLayers.test_parameter_layout_and_default_init_bounds()
  local m = nn.LSTM(3, 5, { num_layers = 2, generator = mimic.Generator(2) })
  lu.assertEquals(shape(m.weight_ih_l0), "[20,3]")
  lu.assertEquals(shape(m.weight_hh_l0), "[20,5]")
  lu.assertEquals(shape(m.weight_ih_l1), "[20,5]")
  lu.assertEquals(shape(m.bias_hh_l1), "[20]")
  local bound = 1 / math.sqrt(5)
  for _, p in ipairs(m:parameters()) do
    lu.assertTrue(p:abs():max():item() <= bound)
  end
  lu.assertTrue(m.weight_hh_l1:abs():max():item() > 0.8 * bound)
  lu.assertEquals(shape(nn.GRU(2, 4).weight_ih_l0), "[12,2]")
  lu.assertEquals(shape(nn.RNN(2, 4).weight_hh_l0), "[4,4]")
  lu.assertNil(nn.GRU(2, 4, { bias = false }).bias_ih_l0)
  lu.assertEquals(nn.LSTM(2, 3):type(), "float32")
  lu.assertEquals(#nn.RNN(2, 3, { num_layers = 3 }):parameters(), 12)
end

function TestRNNLayers.test_float32_agrees_with_float64_and_last_step()
  for _, name in ipairs({ "RNN", "LSTM", "GRU" }) do
    local m64 = nn[name](3, 6, { num_layers = 2, batch_first = true, dtype = "float64", generator = mimic.Generator(5) })
    local m32 = nn[name](3, 6, { num_layers = 2, batch_first = true })
    local sd = {}
    for k, v in pairs(m64:state_dict()) do sd[k] = v:float() end
    m32:load_state_dict(sd)
    local x = mimic.Generator(6):randn({ 4, 7, 3 }, { dtype = "float64" })
    local y64 = m64(x)
    local y32 = m32(x:float())
    close(y32:double(), y64, 1e-4, 1e-5, name)
    local last = nn.LastStep({ batch_first = true })(y64)
    lu.assertEquals(shape(last), "[4,6]")
    close(last, y64:select(2, 7), 0, 0, name .. " last step")
  end
end

-- The same bits on 1 and 2 threads (batch rows are split between threads).
function TestRNNLayers.test_one_and_two_threads_agree()
  local before = mimic.get_num_threads()
  for _, name in ipairs({ "RNN", "LSTM", "GRU" }) do
    local res = {}
    for _, nt in ipairs({ 1, 2 }) do
      mimic.set_num_threads(nt)
      local m = nn[name](3, 32, { generator = mimic.Generator(7) })
      local x = mimic.Generator(8):randn({ 20, 64, 3 })
      local y = m(x)
      y:square():sum():backward()
      res[nt] = { y, m.weight_hh_l0.grad, m.bias_ih_l0.grad }
    end
    for k = 1, 3 do close(res[1][k], res[2][k], 0, 0, name .. " result " .. k) end
  end
  mimic.set_num_threads(before)
end

function TestRNNLayers.test_errors()
  local m = nn.LSTM(3, 4)
  raises("with 3 features", m, mimic.zeros(5, 2, 2))
  raises("must be [num_layers = 1, batch = 2, hidden = 4]", m, mimic.zeros(5, 2, 3), mimic.zeros(2, 4))
  raises("cell state c0 is for LSTM only", nn.GRU(3, 4), mimic.zeros(5, 2, 3), mimic.zeros(1, 2, 4),
    mimic.zeros(1, 2, 4))
  raises("nonlinearity 'sigmoid' is not known", nn.RNN, 3, 4, { nonlinearity = "sigmoid" })
  raises("unknown option 'dropout'", nn.LSTM, 3, 4, { dropout = 0.1 })
  raises("w_hh of shape [8,3] must be [12, 3]", mimic.rnn_layer, "lstm", mimic.zeros(2, 1, 3), nil, nil,
    mimic.zeros(16, 3), mimic.zeros(8, 3))
  -- second derivatives are refused, not silently wrong
  local x = mimic.randn(3, 2, 3):requires_grad_()
  local y = m(x)
  raises("second derivatives through a recurrent layer are not supported", function()
    y:square():sum():backward(nil, { create_graph = true })
  end)
end

-- --- windows ---------------------------------------------------------------------------------
TestWindows = {}

function TestWindows.test_shapes_and_values()
  local s = mimic.arange(1, 21, 1, "float64"):view(10, 2) -- rows (1,2), (3,4), ...
  local X, Y = data.windows(s, { history = 3, future = 2, stride = 2 })
  -- n = floor((10 - 5) / 2) + 1 = 3
  lu.assertEquals(shape(X), "[3,3,2]")
  lu.assertEquals(shape(Y), "[3,2,2]")
  -- window 2 starts at row 3: X rows 3..5, Y rows 6..7
  close(X:select(1, 2), s:narrow(1, 3, 3), 0, 0, "X[2]")
  close(Y:select(1, 2), s:narrow(1, 6, 2), 0, 0, "Y[2]")
  close(Y:select(1, 3), s:narrow(1, 8, 2), 0, 0, "Y[3]")
  -- 1-D series, stride = future = 1 (Y a view), consecutive X windows of stride = history
  local X1, Y1 = data.windows(mimic.arange(1, 8, 1, "float64"), { history = 2 })
  lu.assertEquals(shape(X1), "[5,2,1]")
  lu.assertEquals(Y1:reshape(-1):totable(), { 3, 4, 5, 6, 7 })
  lu.assertEquals(X1:select(1, 5):reshape(-1):totable(), { 5, 6 })
  local X2, Y2 = data.windows(mimic.arange(1, 9, 1, "float64"), { history = 3, future = 2, stride = 3 })
  lu.assertEquals(shape(X2), "[2,3,1]")
  lu.assertEquals(X2:reshape(-1):totable(), { 1, 2, 3, 4, 5, 6 })
  lu.assertEquals(Y2:reshape(-1):totable(), { 4, 5, 7, 8 })
  raises("shorter than history + future", data.windows, mimic.zeros(3), { history = 3 })
  raises("unknown option 'horizon'", data.windows, mimic.zeros(9), { history = 3, horizon = 2 })
  raises("history must be an integer >= 1", data.windows, mimic.zeros(9), { history = 0 })
end

-- --- learning ---------------------------------------------------------------------------------
TestRNNLearns = {}

-- x(t) = exp(-t/tau) cos(w t + phi) sampled every dt, random phase and
-- amplitude per series; from 12 past values predict the next one. A constant
-- (last value) predictor has an RMS error of about 0.2 of the amplitude here.
function TestRNNLearns.test_lstm_predicts_damped_oscillator()
  local g = mimic.Generator(21)
  local function series(n)
    local Xs, Ys = {}, {}
    for k = 1, n do
      local a, phi = 0.5 + g:rand({ 1 }):item(), 2 * math.pi * g:rand({ 1 }):item()
      local v = {}
      for t = 0, 39 do v[t + 1] = a * math.exp(-t * 0.25 / 8) * math.cos(0.9 * t * 0.25 * 4 + phi) end
      local X, Y = data.windows(mimic.tensor(v), { history = 12, future = 1, stride = 4 })
      Xs[k], Ys[k] = X, Y
    end
    return mimic.cat(Xs, 1), mimic.cat(Ys, 1):view(-1, 1)
  end
  local xtr, ytr = series(48)
  local xte, yte = series(16)
  local model = nn.Sequential(nn.LSTM(1, 24, { batch_first = true, generator = g }),
    nn.LastStep({ batch_first = true }), nn.Linear(24, 1, { generator = g }))
  local opt = mimic.optim.Adam(model:parameters(), { lr = 0.01 })
  for _ = 1, 150 do
    opt:zero_grad()
    local loss = F.mse_loss(model(xtr), ytr)
    loss:backward()
    opt:step()
  end
  local pred = mimic.no_grad(function() return model(xte) end)
  local rmse = math.sqrt(F.mse_loss(pred, yte):item())
  local base = math.sqrt(F.mse_loss(xte:select(2, 12), yte):item()) -- repeat the last value
  lu.assertTrue(rmse < 0.05 and rmse < 0.3 * base, string.format("test RMSE %.4f (last-value baseline %.4f)", rmse, base))
end

os.exit(lu.LuaUnit.run())
