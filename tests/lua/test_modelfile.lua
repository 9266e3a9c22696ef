-- Model files (lua/mimic/modelfile.lua, lua/lmodelfile.c): a trained model
-- with encoders saves, loads and gives the same raw outputs; the contract
-- binds by name; user modules and contract mismatches are errors.
local lu = require "luaunit"
local mimic = require "mimic"
local nn, optim, data = mimic.nn, mimic.optim, mimic.data
local raises = require("helpers").raises

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local function path(n) return dir .. "/" .. n end

local inputs = { { name = "temperature", units = "K", size = 2 }, { name = "humidity", units = "kg/kg", size = 1 } }
local outputs = { { name = "heating", units = "K/s", size = 1 } }

-- A tiny trained model on raw data, with fitted encoders on both sides.
local function trained(dt)
  local g = mimic.Generator(3)
  local x = g:rand({ 64, 3 }, { dtype = dt }) * 40 + 260
  local y = (x:narrow(2, 1, 1) - x:narrow(2, 2, 1)) * 0.01 + 1
  local xe = data.chain { data.encoder { kind = "signed_log", scale = 10 }, data.encoder { kind = "standard" } }:fit(x)
  local ye = data.encoder { kind = "minmax", per_feature = false }:fit(y)
  local model = nn.Sequential(nn.Linear(3, 8, { dtype = dt, generator = g }), nn.Tanh(),
    nn.Residual(nn.Sequential(nn.Linear(8, 8, { dtype = dt, generator = g }), nn.ReLU())),
    nn.LayerNorm(8, { dtype = dt }), nn.Linear(8, 1, { dtype = dt, generator = g }))
  local opt = optim.Adam(model:parameters(), { lr = 1e-2 })
  local loss = nn.MSELoss()
  local xs, ys = xe:encode(x), ye:encode(y)
  for _ = 1, 20 do
    opt:zero_grad()
    local l = loss(model(xs), ys)
    l:backward()
    opt:step()
  end
  model:evaluate()
  return model, xe, ye, x
end

function test_save_load_same_outputs()
  for _, dt in ipairs({ "float32", "float64" }) do
    local model, xe, ye, x = trained(dt)
    local p = path("m_" .. dt .. ".h5")
    local hash = model:save(p, { inputs = inputs, outputs = outputs, encoders = { input = xe, output = ye },
      meta = { data_file = "train.h5", data_hash = "sha256:abc", val_rmse = 0.5, epochs = 20 } })
    lu.assertStrMatches(hash, "sha256:%x+")
    lu.assertEquals(#hash, 71)
    local m = mimic.load_model(p)
    lu.assertEquals(m.hash, hash)
    lu.assertEquals(m.dtype, dt)
    lu.assertEquals(m.nin, 3)
    lu.assertEquals(m.nout, 1)
    lu.assertEquals(m.contract.inputs[2].name, "humidity")
    lu.assertEquals(m.contract.inputs[1].units, "K")
    lu.assertEquals(m.contract.outputs[1].size, 1)
    lu.assertEquals(m.contract.batch_axis, 1)
    lu.assertEquals(m.meta.data_file, "train.h5")
    lu.assertEquals(m.meta.epochs, 20)
    lu.assertEquals(math.type(m.meta.epochs), "integer")
    lu.assertEquals(m.meta.val_rmse, 0.5)
    lu.assertEquals(m.meta.mimic_version, mimic.version)
    lu.assertStrMatches(m.meta.created, "%d%d%d%d%-%d%d%-%d%dT.*Z")
    -- the loaded encoders rebuild as data encoders
    local xe2 = data.encoder_from(m.contract.encoders.input)
    lu.assertTrue((xe2:encode(x:double()) - xe:encode(x):double()):abs():max():item() < 1e-5)
    -- raw in -> raw out, equal to the in-memory pipeline
    local want = mimic.no_grad(function() return ye:decode(model(xe:encode(x))) end):double()
    local got = m:forward(x)
    lu.assertEquals(got:size(), { 64, 1 })
    lu.assertEquals(got:dtype(), "float64")
    local tol = dt == "float32" and 1e-4 or 1e-10
    lu.assertTrue((got - want):abs():max():item() < tol * (1 + want:abs():max():item()))
    -- one row, and named inputs
    lu.assertTrue((m:forward(x:select(1, 1)) - want:narrow(1, 1, 1)):abs():max():item() < tol * 10)
    local named = m:forward { temperature = x:narrow(2, 1, 2), humidity = x:select(2, 3) }
    lu.assertTrue((named.heating - want):abs():max():item() < tol * 10)
    -- saving again gives the same hash (metadata and dates are not hashed)
    lu.assertEquals(model:save(path("again.h5"), { inputs = inputs, outputs = outputs,
      encoders = { input = xe, output = ye } }), hash)
  end
end

function test_contract_errors()
  local model, xe, ye, x = trained("float32")
  local p = path("c.h5")
  model:save(p, { inputs = inputs, outputs = outputs, encoders = { input = xe, output = ye } })
  local m = mimic.load_model(p)
  lu.assertTrue(m:bind({ "temperature", "humidity" }))
  lu.assertTrue(m:bind({ "heating" }, "outputs"))
  -- no encoders: identity both ways, and the state rebuilds
  model:save(path("plain.h5"), { inputs = inputs, outputs = outputs })
  local plain = mimic.load_model(path("plain.h5"))
  lu.assertEquals(plain.contract.encoders.input.kind, "identity")
  lu.assertEquals(data.encoder_from(plain.contract.encoders.output).kind, "identity")
  local want = mimic.no_grad(function() return model(x) end):double()
  lu.assertTrue((plain:forward(x) - want):abs():max():item() < 1e-5)
  raises("'humidity' is at position 1, the model has it at 2", function() m:bind({ "humidity", "temperature" }) end)
  raises("'pressure' (position 2) is not one of the model's; it expects: temperature [K] (2), humidity [kg/kg] (1)",
    function() m:bind({ "temperature", "pressure" }) end)
  raises("'humidity' (position 2) is not bound", function() m:bind({ "temperature" }) end)
  raises("input 'humidity' [kg/kg] (1 features) is missing", function() m:forward { temperature = x:narrow(2, 1, 2) } end)
  raises("'pressure' is not an input of this model",
    function() m:forward { temperature = x:narrow(2, 1, 2), humidity = x:select(2, 3), pressure = x } end)
  raises("input 'temperature' must be [n, 2]", function() m:forward { temperature = x, humidity = x:select(2, 3) } end)
  raises("the model takes [n, 3] raw inputs", function() m:forward(x:narrow(2, 1, 2)) end)
  -- saving: the contract must match the model
  raises("inputs' sizes add up to 2, the model has 3", function()
    model:save(p, { inputs = { { name = "t", units = "K", size = 2 } }, outputs = outputs })
  end)
  raises("the contract is required", function() model:save(p, { outputs = outputs }) end)
  raises("unknown option 'input'", function() model:save(p, { input = inputs, outputs = outputs }) end)
  raises("parameters have 3 elements, expected 1 or 1 (the width)", function()
    model:save(p, { inputs = inputs, outputs = outputs, encoders = { output = xe } })
  end)
end

function test_data_file_provenance()
  local model = trained("float32")
  local dataf = path("train_data.bin")
  local f = io.open(dataf, "wb"); f:write("abc"); f:close()
  local p = path("prov.h5")
  model:save(p, { inputs = inputs, outputs = outputs, data_file = dataf })
  local m = mimic.load_model(p)
  lu.assertEquals(m.meta.data_file, dataf)
  -- SHA-256("abc"), the FIPS 180-2 test vector
  lu.assertEquals(m.meta.data_sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  raises("data_file: sha256_file: cannot open", function()
    model:save(p, { inputs = inputs, outputs = outputs, data_file = path("missing.bin") })
  end)
end

function test_user_module_and_bad_files()
  local MyLayer = nn.Module:extend("MyLayer")
  function MyLayer:forward(x) return x * 2 end
  local m = nn.Sequential(nn.Linear(3, 4), MyLayer())
  local msg = raises("cannot save user-defined module 'MyLayer'", function()
    m:save(path("u.h5"), { inputs = inputs, outputs = { { name = "y", size = 4 } } })
  end)
  lu.assertStrContains(msg, "'2'")
  raises("no such file", function() mimic.load_model(path("missing.h5")) end)
  mimic.save(path("dict.h5"), { x = mimic.zeros({ 2 }) })
  raises("not a mimic model file", function() mimic.load_model(path("dict.h5")) end)
  local f = io.open(path("junk.h5"), "wb")
  f:write(string.rep("junk", 100))
  f:close()
  raises("junk.h5", function() mimic.load_model(path("junk.h5")) end)
end

local rc = lu.LuaUnit.run()
os.execute("rm -rf " .. dir)
os.exit(rc)
