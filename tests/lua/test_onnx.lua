-- mimic.onnx (lua/lonnx.c, core/interop): PyTorch-exported ONNX files import
-- and reproduce PyTorch's outputs (tests/fixtures/gen_onnx.py); exported
-- files pass onnx.checker and a NumPy evaluation (tools/onnx_eval.py, Debian's
-- python3-onnx) that matches mimic; `mimic convert` verifies itself; errors
-- name the unsupported operators and nodes.
local lu = require "luaunit"
local mimic = require "mimic"
local nn, data = mimic.nn, mimic.data
local raises = require("helpers").raises

local FIX = "tests/fixtures/onnx/"
local ref = dofile(FIX .. "ref.lua")
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local function path(n) return dir .. "/" .. n end

local function rows(flat, n, w)
  local t = {}
  for i = 1, n do
    t[i] = {}
    for j = 1, w do t[i][j] = flat[(i - 1) * w + j] end
  end
  return mimic.tensor(t, "float64")
end

local function maxdiff(a, b) return (a - b):abs():max():item() end

function test_import_matches_pytorch()
  for _, name in ipairs { "mlp", "norm", "resnet", "matmul", "cnn1d", "cnn2d" } do
    local r = ref[name]
    local m = mimic.onnx.import(FIX .. name .. ".onnx")
    lu.assertEquals(m.nin, r.nin)
    lu.assertEquals(m.nout, r.nout)
    local d = maxdiff(m:forward(rows(r.x, r.n, r.nin)), rows(r.y, r.n, r.nout))
    lu.assertTrue(d <= 1e-5, name .. ": max |mimic - PyTorch| = " .. d)
  end
  -- names carry into the contract; the file keeps the ONNX provenance
  local hash = mimic.onnx.import(FIX .. "mlp.onnx", path("mlp.h5"))
  local m = mimic.load_model(path("mlp.h5"))
  lu.assertEquals(m.hash, hash)
  lu.assertEquals(m.contract.inputs[1].name, "state")
  lu.assertEquals(m.contract.outputs[1].name, "tendency")
  lu.assertEquals(m.meta.onnx_file, "mlp.onnx")
  lu.assertEquals(m.meta.onnx_opset, 17)
end

-- A model with encoders and a two-variable contract: the ONNX graph maps raw
-- inputs to raw outputs (Concat, encoder ops, layers, decoder ops, Split).
function test_export_checked_by_onnx()
  local g = mimic.Generator(5)
  local model = nn.Sequential(nn.Linear(3, 8, { generator = g }), nn.Tanh(),
    nn.Residual(nn.Sequential(nn.Linear(8, 8, { generator = g }), nn.ReLU())), nn.LayerNorm(8),
    nn.Linear(8, 8, { generator = g }), nn.GELU(), nn.Softplus(2), nn.Linear(8, 3, { generator = g }))
  model:evaluate()
  local x = g:rand({ 32, 3 }) * 40 + 260
  local xe = data.chain { data.encoder { kind = "signed_log", scale = 10 }, data.encoder { kind = "standard" } }:fit(x)
  local ye = data.encoder { kind = "minmax" }:fit(g:rand({ 32, 3 }) + 1)
  local opts = { inputs = { { name = "T", units = "K", size = 2 }, { name = "q", units = "kg/kg", size = 1 } },
    outputs = { { name = "a", units = "K/s", size = 2 }, { name = "b", units = "", size = 1 } },
    encoders = { input = xe, output = ye } }
  mimic.onnx.export(model, path("enc.onnx"), opts)
  model:save(path("enc.h5"), opts)
  local m = mimic.load_model(path("enc.h5"))
  local xd = x:double()
  local y, why = mimic.onnx.reference(path("enc.onnx"), xd)
  lu.assertNotNil(y, why)
  local ym = m:forward(xd)
  local d = maxdiff(y, ym) / ym:abs():max():item()
  lu.assertTrue(d <= 1e-5, "relative max |mimic - ONNX| = " .. d)
  -- a broken reference is caught (the check can fail)
  lu.assertTrue(maxdiff(y, ym * 1.001) > 1e-6)
end

function test_convert_command()
  local exe = os.getenv("MIMIC_EXE") or "build/bin/mimic"
  local p = io.popen(exe .. " convert " .. FIX .. "norm.onnx " .. path("norm.h5") .. " 2>&1; echo rc=$?")
  local out = p:read("a")
  p:close()
  lu.assertStrContains(out, "rc=0")
  local d = tonumber(out:match("max |mimic %- ONNX reference| = ([%d%.e%-]+)"))
  lu.assertNotNil(d, out)
  lu.assertTrue(d <= 1e-5, out)
  p = io.popen(exe .. " convert " .. path("norm.h5") .. " " .. path("norm2.onnx") .. " 2>&1; echo rc=$?")
  out = p:read("a")
  p:close()
  lu.assertStrContains(out, "rc=0")
  lu.assertStrContains(out, "max |mimic - ONNX reference|")
  -- ONNX -> mimic -> ONNX -> mimic gives the same model (same hash)
  local h1 = mimic.onnx.import(path("norm2.onnx"), path("norm3.h5"))
  lu.assertEquals(h1, mimic.load_model(path("norm.h5")).hash)
  p = io.popen(exe .. " convert " .. FIX .. "unsupported.onnx " .. path("u.h5") .. " 2>&1; echo rc=$?")
  out = p:read("a")
  p:close()
  lu.assertStrContains(out, "Cos (node 'my_cos'), Erf (node 'my_erf')")
  lu.assertStrContains(out, "rc=1")
end

-- A CNN both ways through `mimic convert`: export passes onnx.checker and the
-- NumPy evaluation of Conv/pools (tools/onnx_eval.py).
function test_convert_cnn()
  local exe = os.getenv("MIMIC_EXE") or "build/bin/mimic"
  for _, cmd in ipairs { FIX .. "cnn2d.onnx " .. path("cnn.h5"), path("cnn.h5") .. " " .. path("cnn.onnx") } do
    local p = io.popen(exe .. " convert " .. cmd .. " 2>&1; echo rc=$?")
    local out = p:read("a")
    p:close()
    lu.assertStrContains(out, "rc=0")
    local d = tonumber(out:match("max |mimic %- ONNX reference| = ([%d%.e%-]+)"))
    lu.assertNotNil(d, out)
    lu.assertTrue(d <= 1e-5, out)
  end
end

function test_errors()
  raises("Cos (node 'my_cos')", mimic.onnx.import, FIX .. "unsupported.onnx")
  local h = io.open(FIX .. "mlp.onnx", "rb")
  local s = h:read("a")
  h:close()
  h = io.open(path("trunc.onnx"), "wb")
  h:write(s:sub(1, #s // 2))
  h:close()
  raises("malformed or truncated", mimic.onnx.import, path("trunc.onnx"))
  raises("cannot open", mimic.onnx.import, path("missing.onnx"))
  raises("one side must be an .onnx file", mimic.onnx.convert, path("a.h5"), path("b.h5"), { quiet = true })
end

local rc = lu.LuaUnit.run()
os.execute("rm -rf " .. dir)
os.exit(rc)
