-- ONNX import of recurrent models (core/interop/onnx_import.c): PyTorch
-- exports of LSTM / GRU / RNN (batch first, dynamic batch; their zero initial
-- states computed from the batch size) import as lstm/gru/rnn_relu and
-- last_step records and reproduce PyTorch's outputs
-- (tests/fixtures/gen_onnx_rnn.py); the imported model saves to a model file
-- and runs through mimic.embed; what mimic cannot run is an error naming it.
local lu = require "luaunit"
local mimic = require "mimic"
local raises = require("helpers").raises

local FIX = "tests/fixtures/onnx/"
local ref = dofile(FIX .. "rnn_ref.lua")
local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local function rows(flat, n, w) return mimic.tensor(flat, "float64"):reshape({ n, w }) end
local function maxdiff(a, b) return (a - b):abs():max():item() end

function test_import_matches_pytorch()
  for _, name in ipairs { "lstm", "gru", "rnn" } do
    local r = ref[name]
    local m = mimic.onnx.import(FIX .. name .. ".onnx")
    lu.assertEquals(m.nin, r.nin)
    lu.assertEquals(m.nout, r.nout)
    local d = maxdiff(m:forward(rows(r.x, r.n, r.nin)), rows(r.y, r.n, r.nout))
    lu.assertTrue(d <= 1e-5, name .. ": max |mimic - PyTorch| = " .. d)
  end
end

function test_imported_model_file_and_embed()
  local r = ref.lstm
  local path = dir .. "/lstm.h5"
  local hash = mimic.onnx.import(FIX .. "lstm.onnx", path)
  local m = mimic.load_model(path)
  lu.assertEquals(m.hash, hash)
  lu.assertEquals(m.meta.onnx_file, "lstm.onnx")
  local want = rows(r.y, r.n, r.nout)
  lu.assertTrue(maxdiff(m:forward(rows(r.x, r.n, r.nin)), want) <= 1e-5)
  local h = mimic.embed.open(path)
  local y = h:run { x = rows(r.x, r.n, r.nin):float() }
  lu.assertTrue(maxdiff(y.y:double(), want) <= 1e-5)
  h:close()
end

function test_unsupported_recurrent_graphs_are_named()
  raises("node '/rnn/LSTM': only direction 'forward' is supported", mimic.onnx.import, FIX .. "lstm_bidir.onnx")
  raises("it looks time first ([T, batch, F]): export the recurrent model with batch_first = True",
    mimic.onnx.import, FIX .. "lstm_timefirst.onnx")
  raises("node 'lstm_h0': the initial state must be zeros", mimic.onnx.import, FIX .. "lstm_h0.onnx")
end

os.exit(lu.LuaUnit.run())
