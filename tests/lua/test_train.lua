-- mimic.train: the loop learns, early stopping restores the best weights,
-- NaN losses stop with the epoch and batch, checkpoints are atomic and
-- loadable, a killed run resumes bit for bit, history and log output.
--
-- The kill-and-resume and log tests run training in child processes: this
-- file, started as `lua5.4 test_train.lua --child <mode> <dir>`, is the child.
local mimic = require "mimic"
local nn, optim = mimic.nn, mimic.optim

-- --- the experiment every test (and the child) trains -----------------------------
-- y = 0.8 sin(2 x1) - 0.5 x2^2 + 0.3 x1 x2 on [-1, 1]^2, a 2-16-16-1 tanh MLP.
local function target(x)
  local a, b = x:select(2, 1), x:select(2, 2)
  return ((a * 2):sin() * 0.8 - b:square() * 0.5 + a * b * 0.3):unsqueeze(2)
end

local function make_data(n, seed)
  local g = mimic.Generator(seed)
  local x = g:uniform({ n, 2 }, -1, 1)
  return x, target(x)
end

local function make_model(seed, dropout)
  local g = mimic.Generator(seed)
  local layers = { nn.Linear(2, 16, { generator = g }), nn.Tanh() }
  if dropout then layers[#layers + 1] = nn.Dropout(dropout) end -- draws from the default generator
  layers[#layers + 1] = nn.Linear(16, 16, { generator = g })
  layers[#layers + 1] = nn.Tanh()
  layers[#layers + 1] = nn.Linear(16, 1, { generator = g })
  return nn.Sequential(table.unpack(layers))
end

-- The run the kill-and-resume test interrupts: dropout (default generator),
-- a schedule, early-stopping state, checkpoints every 2 epochs.
local function resumable_run(dir, extra)
  local x, y = make_data(384, 11)
  local model = make_model(5, 0.1)
  local opt = optim.Adam(model:parameters(), { lr = 5e-3 })
  local o = {
    model = model, loss = nn.MSELoss(), optimizer = opt, data = { x = x, y = y }, val_fraction = 0.25,
    epochs = 7, batch = 24, seed = 42, scheduler = optim.StepLR(opt, { step_size = 3, gamma = 0.5 }),
    early_stopping = { patience = 50 }, clip_grad_norm = 5.0,
    checkpoint = dir .. "/run.h5", checkpoint_every = 2, verbose = false,
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  mimic.manual_seed(7) -- the default generator, which dropout uses
  local h = mimic.train(o)
  return model, h
end

-- --- child mode ------------------------------------------------------------------------
if arg and arg[1] == "--child" then
  local mode, dir = arg[2], arg[3]
  if mode == "full" or mode == "resume" then
    local model, h = resumable_run(dir, { resume = mode == "resume" })
    local losses, vals = {}, {}
    for i, e in ipairs(h) do losses[i], vals[i] = e.loss, e.val_loss end
    mimic.save(dir .. "/" .. mode .. ".h5", { weights = model:state_dict(), loss = losses, val_loss = vals })
  elseif mode == "kill" then
    -- Dies abruptly after epoch 3 (the last checkpoint is epoch 2's): no
    -- cleanup, no final checkpoint, as a killed job.
    resumable_run(dir, { on_epoch = function(info) if info.epoch == 3 then os.exit(3, false) end end })
  elseif mode == "log" then
    local x, y = make_data(128, 1)
    local model = make_model(2)
    mimic.train { model = model, loss = nn.MSELoss(), optimizer = optim.SGD(model:parameters(), { lr = 0.05 }),
                  data = { x = x, y = y }, val_fraction = 0.25, epochs = 3, batch = 32,
                  verbose = arg[4] ~= "quiet" }
    print("done")
  end
  os.exit(0)
end

-- --- helpers ---------------------------------------------------------------------------
local lu = require "luaunit"

-- The pcall runs in this file: errors raised at the caller's line of
-- mimic.train name test_train.lua, as test_option_errors asserts.
local check_error = require("helpers").check_error
local function raises(plain, f, ...) return check_error(plain, pcall(f, ...)) end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

local function rmdir(d) os.execute("rm -rf '" .. d .. "'") end

local function ls(d)
  local names, p = {}, io.popen("ls -A '" .. d .. "'")
  for l in p:lines() do names[#names + 1] = l end
  p:close()
  return names
end

-- Bitwise equality of two state_dicts (every element ==, so -0 == 0 would
-- pass, but float32 training does not make signed zeros differ by chance).
local function same_weights(a, b)
  for k, t in pairs(a) do
    local u = b[k]
    if not mimic.is_tensor(u) then return false, k .. " missing" end
    local x, y = t:reshape(-1):totable(), u:reshape(-1):totable()
    if #x ~= #y then return false, k .. " size" end
    for i = 1, #x do
      if x[i] ~= y[i] then return false, string.format("%s[%d]: %.9g vs %.9g", k, i, x[i], y[i]) end
    end
  end
  for k in pairs(b) do if a[k] == nil then return false, k .. " extra" end end
  return true
end

local function mse(model, x, y)
  model:evaluate()
  local v = mimic.no_grad(function() return nn.MSELoss()(model(x), y):item() end)
  model:train()
  return v
end

-- The interpreter running this file, and the environment a child needs.
local LUA = arg and arg[-1] or "lua5.4"
local SELF = arg and arg[0]
local function child(args, redirect)
  local cmd = string.format("%s '%s' --child %s %s", LUA, SELF, args, redirect or "")
  local ok, how, code = os.execute(cmd)
  return ok, how, code
end

-- --- tests -----------------------------------------------------------------------------
TestTrain = {}

function TestTrain.test_learns_a_regression()
  -- The MLP fits the function to a validation RMSE below 0.03 (the target's
  -- standard deviation is about 0.55, so that is R^2 > 0.997).
  local x, y = make_data(1024, 1)
  local xv, yv = make_data(256, 2)
  local model = make_model(3)
  local h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = optim.Adam(model:parameters(), { lr = 1e-2 }),
                          data = { x = x, y = y }, val = { x = xv, y = yv }, epochs = 40, batch = 32, seed = 1,
                          verbose = false }
  local rmse = math.sqrt(mse(model, xv, yv))
  lu.assertTrue(rmse < 0.03, "validation RMSE " .. rmse)
  lu.assertEquals(h[#h].val_loss, mse(model, xv, yv)) -- the history's number is the model's
  lu.assertTrue(h[#h].loss < h[1].loss / 20, string.format("loss %g -> %g", h[1].loss, h[#h].loss))
end

function TestTrain.test_history_contents()
  local x, y = make_data(200, 3)
  local model = make_model(4)
  local opt = optim.SGD(model:parameters(), { lr = 0.1 })
  local sched = optim.StepLR(opt, { step_size = 2, gamma = 0.5 })
  local t0 = mimic.clock()
  local h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = opt, data = { x = x, y = y },
                          val_fraction = 0.2, epochs = 5, batch = 16, scheduler = sched, verbose = false }
  local elapsed = mimic.clock() - t0
  lu.assertEquals(#h, 5)
  local lrs, total = { 0.1, 0.1, 0.05, 0.05, 0.025 }, 0
  for i, e in ipairs(h) do
    lu.assertEquals(e.epoch, i)
    lu.assertEquals(math.type(e.epoch), "integer")
    lu.assertTrue(e.loss > 0 and e.loss < 10)
    lu.assertTrue(e.val_loss > 0 and e.val_loss < 10)
    lu.assertAlmostEquals(e.lr, lrs[i], 1e-15) -- the rate the epoch used, before the schedule's step
    lu.assertTrue(e.seconds > 0)
    lu.assertAlmostEquals(e.samples_per_s, 160 / e.seconds, 1e-6 * e.samples_per_s) -- 200 - 20 % validation
    total = total + e.seconds
  end
  lu.assertTrue(total <= elapsed)
  lu.assertNil(h.stopped_early)
  -- Without validation data there is no val_loss.
  h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = opt, data = { x = x, y = y }, epochs = 1,
                    verbose = false }
  lu.assertNil(h[1].val_loss)
end

function TestTrain.test_same_seed_same_run()
  local function run(o)
    local x, y = make_data(160, 3)
    local model = make_model(4)
    o.model, o.loss, o.data, o.verbose = model, nn.MSELoss(), { x = x, y = y }, false
    o.optimizer, o.epochs, o.batch = optim.Adam(model:parameters(), { lr = 1e-2 }), 3, 16
    local h = mimic.train(o)
    return h[3].loss, model:state_dict()
  end
  local l1, w1 = run { seed = 9 }
  local l2, w2 = run { seed = 9 }
  local l3 = run { generator = mimic.Generator(9) }
  local l4 = run { seed = 10 }
  lu.assertEquals(l1, l2)
  lu.assertTrue(same_weights(w1, w2))
  lu.assertEquals(l1, l3)
  lu.assertNotEquals(l1, l4) -- another shuffle
end

function TestTrain.test_early_stopping_restores_best_weights()
  -- Validation targets of the opposite sign: the better the fit to the
  -- training data, the worse the validation loss, so epoch 1 is the best.
  local x, y = make_data(256, 5)
  local xv, yv = make_data(128, 6)
  yv = -yv
  local model = make_model(7)
  local seen = {}
  local h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = optim.Adam(model:parameters(), { lr = 1e-2 }),
                          data = { x = x, y = y }, val = { x = xv, y = yv }, epochs = 50, batch = 32,
                          early_stopping = { patience = 3 }, verbose = false,
                          on_epoch = function(info) seen[#seen + 1] = info.epoch end }
  local best = 1
  for i, e in ipairs(h) do if e.val_loss < h[best].val_loss then best = i end end
  lu.assertEquals(h.best_epoch, best)
  lu.assertEquals(#h, best + 3) -- stopped after `patience` epochs without improvement
  lu.assertTrue(h.stopped_early)
  lu.assertEquals(#seen, #h)
  lu.assertEquals(h.best, h[best].val_loss)
  lu.assertEquals(mse(model, xv, yv), h[best].val_loss) -- bit for bit: the best weights are back
  lu.assertTrue(mse(model, xv, yv) < h[#h].val_loss)

  -- min_delta: an improvement smaller than it does not count.
  model = make_model(7)
  h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = optim.Adam(model:parameters(), { lr = 1e-3 }),
                    data = { x = x, y = y }, epochs = 50, batch = 32, verbose = false,
                    early_stopping = { patience = 1, min_delta = 1e9, monitor = "loss" } }
  lu.assertEquals(#h, 2)
  lu.assertEquals(h.best_epoch, 1)
end

function TestTrain.test_nan_loss_names_epoch_and_batch()
  local x, y = make_data(100, 1)
  -- A NaN in sample 70 without shuffling: batch 3 of 4 (32 samples each) of epoch 1.
  local bad = x:clone()
  bad[70][1] = 0 / 0
  local model = make_model(1)
  local opt = optim.SGD(model:parameters(), { lr = 0.01 })
  local before = model:state_dict()["1.weight"]:clone()
  local msg = raises("mimic.train: loss is NaN at epoch 1, batch 3 of 4 (samples 65-96 of the epoch)", mimic.train,
    { model = model, loss = nn.MSELoss(), optimizer = opt, data = { x = bad, y = y }, batch = 32, shuffle = false,
      verbose = false })
  lu.assertStrContains(msg, "clip_grad_norm")
  lu.assertNotEquals(model:state_dict()["1.weight"]:totable()[1][1], before:totable()[1][1]) -- batches 1-2 trained

  -- Later, and infinite: a loss that blows up on its 7th call (epoch 2, batch 3).
  local calls, mse_loss = 0, nn.MSELoss()
  local function blowup(p, t)
    calls = calls + 1
    local l = mse_loss(p, t)
    return calls == 7 and l * math.huge or l
  end
  msg = raises("loss is +Inf at epoch 2, batch 3 of 4", function()
    mimic.train { model = model, loss = blowup, optimizer = opt, data = { x = x, y = y }, batch = 32, verbose = false }
  end)
  lu.assertStrMatches(msg, ".*test_train%.lua:%d+: mimic%.train: .*") -- raised at the caller's line
end

function TestTrain.test_checkpoints_are_atomic_and_loadable()
  local dir = tmpdir()
  local path = dir .. "/ck.h5"
  local x, y = make_data(200, 3)
  local model = make_model(4)
  local opt = optim.Adam(model:parameters(), { lr = 1e-2 })
  local at_epoch = {}
  local h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = opt, data = { x = x, y = y },
    val_fraction = 0.2, epochs = 5, batch = 16, checkpoint = path, checkpoint_every = 2, verbose = false,
    on_epoch = function(info)
      -- only the checkpoint, never a temporary file, between epochs
      lu.assertEquals(#ls(dir), info.epoch >= 2 and 1 or 0)
      at_epoch[info.epoch] = info.epoch >= 2 and mimic.load(path, "epoch") or false
    end }
  lu.assertEquals(at_epoch, { false, 2, 2, 4, 4 })
  lu.assertEquals(ls(dir), { "ck.h5" })
  local ck = mimic.load(path)
  lu.assertEquals(ck.format, "mimic.train")
  lu.assertEquals(ck.version, 1)
  lu.assertEquals(ck.epoch, 5)
  lu.assertTrue(ck.finished)
  lu.assertEquals(ck.stop_reason, "epochs")
  lu.assertEquals(#ck.history, 5)
  lu.assertEquals(ck.history[5].loss, h[5].loss)
  lu.assertEquals(ck.sampler, { next_epoch = 6, next_batch = 1, samples = 160, batch = 16, shuffle = true })
  lu.assertEquals(ck.rng.generator.seed, 0)
  lu.assertEquals(ck.optimizer.name, "Adam")
  lu.assertEquals(ck.optimizer.step, 50)
  lu.assertTrue(same_weights(ck.model, model:state_dict()))
  -- The weights load into a fresh model, which then predicts the same.
  local fresh = make_model(99)
  fresh:load_state_dict(ck.model)
  lu.assertEquals(mse(fresh, x, y), mse(model, x, y))

  -- A checkpoint that fails half-way (here: an entry that cannot be saved)
  -- raises, and leaves the previous checkpoint whole and no temporary file.
  local wrapper = setmetatable({
    state_dict = function(self)
      local sd = model:state_dict()
      if self.broken then sd.oops = print end
      return sd
    end,
    load_state_dict = function(_, sd) return model:load_state_dict(sd) end,
  }, { __call = function(_, xx) return model(xx) end })
  local before = io.open(path, "rb"):read("a")
  raises("save: 'model/oops' is a function", function()
    mimic.train { model = wrapper, loss = nn.MSELoss(), optimizer = opt, data = { x = x, y = y }, epochs = 4,
      batch = 16, checkpoint = path, verbose = false,
      on_epoch = function(info) if info.epoch == 2 then wrapper.broken = true end end }
  end)
  lu.assertEquals(ls(dir), { "ck.h5" })
  local after = io.open(path, "rb"):read("a")
  lu.assertNotEquals(after, before) -- epochs 1 and 2 were checkpointed ...
  lu.assertEquals(mimic.load(path, "epoch"), 2) -- ... epoch 3's was not: the file is epoch 2's, intact
  rmdir(dir)
end

function TestTrain.test_kill_and_resume_is_bit_for_bit()
  local dir = tmpdir()
  lu.assertTrue(child("full " .. dir))
  lu.assertEquals(ls(dir), { "full.h5", "run.h5" })
  os.remove(dir .. "/run.h5")
  local ok, how, code = child("kill " .. dir)
  lu.assertNil(ok) -- os.execute's result for a non-zero exit
  lu.assertEquals(how, "exit")
  lu.assertEquals(code, 3)
  lu.assertEquals(mimic.load(dir .. "/run.h5", "epoch"), 2) -- epoch 3 was lost with the process
  lu.assertTrue(child("resume " .. dir))
  local full, resumed = mimic.load(dir .. "/full.h5"), mimic.load(dir .. "/resume.h5")
  local same, why = same_weights(full.weights, resumed.weights)
  lu.assertTrue(same, why)
  lu.assertEquals(resumed.loss, full.loss) -- every epoch's loss, bit for bit
  lu.assertEquals(resumed.val_loss, full.val_loss)
  lu.assertEquals(#full.loss, 7)

  -- Resuming a run that has ended does nothing and returns its history.
  local model, h = resumable_run(dir, { resume = true })
  lu.assertEquals(#h, 7)
  lu.assertTrue(same_weights(model:state_dict(), full.weights))
  rmdir(dir)
end

function TestTrain.test_plain_log_when_not_a_tty()
  local dir = tmpdir()
  -- TERM says terminal, but stdout is a file: plain lines.
  lu.assertTrue(child("log " .. dir, "> '" .. dir .. "/out.txt'"))
  local out = io.open(dir .. "/out.txt"):read("a")
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 4, out)
  for i = 1, 3 do
    lu.assertStrMatches(lines[i], "epoch " .. i .. "/3  loss %d%.%d+e[-+]%d+  val %d%.%d+e[-+]%d+  lr 0%.05  "
      .. "%d+%.%d%d%d s  %d+ samples/s  ETA %S+")
  end
  lu.assertEquals(lines[4], "done")
  lu.assertNil(out:find("\r", 1, true))
  lu.assertNil(out:find("\27", 1, true))
  -- verbose = false: nothing.
  lu.assertTrue(child("log " .. dir .. " quiet", "> '" .. dir .. "/quiet.txt'"))
  lu.assertEquals(io.open(dir .. "/quiet.txt"):read("a"), "done\n")
  rmdir(dir)
end

function TestTrain.test_progress_line_on_a_terminal()
  -- script(1) runs the child on a pseudo-terminal.
  if not os.execute("command -v script >/dev/null 2>&1") then lu.skip("script(1) is not installed") end
  local dir = tmpdir()
  local cmd = string.format("%s '%s' --child log %s", LUA, SELF, dir)
  lu.assertTrue(os.execute(string.format("TERM=xterm script -qec %q /dev/null > '%s/tty.txt' 2>&1", cmd, dir)))
  local out = io.open(dir .. "/tty.txt"):read("a")
  lu.assertStrContains(out, "\r\27[Kepoch 1/3  batch 1/3  loss ")
  lu.assertStrContains(out, "\r\27[Kepoch 3/3  loss ")
  lu.assertStrContains(out, " samples/s  ETA ")
  local _, newlines = out:gsub("\n", "")
  lu.assertEquals(newlines, 2) -- the progress line's end, and "done"
  rmdir(dir)
end

function TestTrain.test_option_errors()
  local x, y = make_data(20, 1)
  local model = make_model(1)
  local opt = optim.SGD(model:parameters(), { lr = 0.1 })
  local function t(o)
    o.model = o.model or model
    o.loss = o.loss or nn.MSELoss()
    o.optimizer = o.optimizer or opt
    if o.data == nil then o.data = { x = x, y = y } end
    o.verbose = false
    return mimic.train(o)
  end
  raises("mimic.train: unknown option 'epoch' (options: batch, checkpoint,", t, { epoch = 3 })
  raises("data must be a table {x = tensor, y = tensor} or a loader (mimic.data.loader), got boolean", t, { data = false })
  raises("data.x has 20 samples but data.y has 19", t, { data = { x = x, y = y:narrow(1, 1, 19) } })
  raises("give either val or val_fraction, not both", t, { val = { x = x, y = y }, val_fraction = 0.1 })
  raises("val_fraction must be in (0, 1), got 1", t, { val_fraction = 1 })
  raises("resume = true needs checkpoint = <file>", t, { resume = true })
  raises("early_stopping monitors \"val\" but there is no validation data", t,
    { early_stopping = { patience = 2, monitor = "val" } })
  raises("unknown early_stopping option 'patients'", t, { early_stopping = { patients = 2 } })
  raises("generator must be a mimic.Generator, got number", t, { generator = 3 })
  raises("optimizer must have step() and zero_grad() methods", t, { optimizer = {} })
  raises("epochs must be an integer >= 0, got 2.5", t, { epochs = 2.5 })
  local msg = raises("mimic.train: ", t, { batch = 0 })
  lu.assertStrMatches(msg, ".*test_train%.lua:%d+: mimic%.train: batch must be an integer >= 1, got 0")
  -- A checkpoint of another run is refused, not half-loaded.
  local dir = tmpdir()
  t { epochs = 1, checkpoint = dir .. "/c.h5" }
  raises("resuming needs the same data and batch", t,
    { epochs = 2, batch = 5, checkpoint = dir .. "/c.h5", resume = true })
  mimic.save(dir .. "/other.h5", { something = 1 })
  raises("checkpoint '" .. dir .. "/other.h5' is not a mimic.train checkpoint", t,
    { checkpoint = dir .. "/other.h5", resume = true })
  rmdir(dir)
end

function TestTrain.test_duck_typed_model_and_optimizer()
  -- Only the contract is used: a function model, a table loss result with
  -- item/backward, an optimizer with step/zero_grad/lr. Least squares for
  -- y = 3 x by hand-written gradient descent.
  local x = mimic.linspace(-1, 1, 64):unsqueeze(2)
  local y = x * 3
  local w, grad, steps, last_x = 0, 0, 0, nil
  local function model(xb) -- keeps the batch: the loss's gradient needs it
    last_x = xb
    return xb * w
  end
  local function loss(pred, yb)
    local d = pred - yb
    return { item = function() return d:square():mean():item() end,
             backward = function() grad = grad + (d * last_x):mean():item() * 2 end }
  end
  local opt = { lr = 0.5, zero_grad = function() grad = 0 end,
                step = function(self) w = w - self.lr * grad; steps = steps + 1 end }
  local h = mimic.train { model = model, loss = loss, optimizer = opt, data = { x = x, y = y }, epochs = 20,
                          batch = 16, verbose = false }
  lu.assertEquals(steps, 80)
  lu.assertAlmostEquals(w, 3, 1e-4)
  lu.assertEquals(h[1].lr, 0.5)
end

-- --- mimic.save / mimic.load: the container checkpoints are written in ----------------
TestSaveLoad = {}

function TestSaveLoad.test_round_trip_of_nested_tables()
  local dir = tmpdir()
  local p = dir .. "/t.h5"
  local w = mimic.randn(3, 4)
  local v = {
    model = { ["1.weight"] = w, ["1.bias"] = mimic.zeros(4, "float64") },
    ids = mimic.tensor({ 1, -2, 3 }, "int64"), mask = mimic.tensor({ true, false }), scalar = mimic.scalar(2.5),
    none = mimic.zeros(0, 3), strided = w:t(),
    lr = 1e-3, epoch = 7, big = math.mininteger, name = "run", bytes = "a\0b\0", empty_s = "", yes = true, no = false,
    list = { 10, 20.5, "x", { k = 1 } }, empty = {}, neg = { [-3] = "minus three" },
    keys = { ["01"] = "string key", ["-0"] = "string key too" },
  }
  mimic.save(p, v)
  lu.assertEquals(ls(dir), { "t.h5" })
  local r = mimic.load(p)
  lu.assertTrue(same_weights(r.model, v.model))
  lu.assertEquals(r.model["1.bias"]:dtype(), "float64")
  lu.assertEquals(r.ids:totable(), { 1, -2, 3 })
  lu.assertEquals(r.ids:dtype(), "int64")
  lu.assertEquals(r.mask:totable(), { true, false })
  lu.assertEquals(r.scalar:dim(), 0)
  lu.assertEquals(r.scalar:item(), 2.5)
  lu.assertEquals(r.none:size(), { 0, 3 })
  lu.assertEquals(r.strided:totable(), w:t():totable())
  lu.assertEquals(math.type(r.epoch), "integer")
  lu.assertEquals(math.type(r.lr), "float")
  for _, k in ipairs({ "lr", "epoch", "big", "name", "bytes", "empty_s", "yes", "no", "list", "empty", "neg", "keys" }) do
    lu.assertEquals(r[k], v[k], k)
  end
  lu.assertEquals(math.type(r.list[2]), "float")
  -- One entry, or one subtree.
  lu.assertEquals(mimic.load(p, "list/4/k"), 1)
  lu.assertEquals(mimic.load(p, "list"), v.list)
  lu.assertEquals(mimic.load(p, "ids"):totable(), { 1, -2, 3 })
  rmdir(dir)
end

function TestSaveLoad.test_errors()
  local dir = tmpdir()
  local p = dir .. "/t.h5"
  mimic.save(p, { a = 1, b = { c = mimic.zeros(2) } })
  local before = io.open(p, "rb"):read("a")
  raises("cannot open '" .. dir .. "/nope.h5': no such file", mimic.load, dir .. "/nope.h5")
  raises("'" .. p .. "' has no entry 'b/d'; it has: a, b/c", mimic.load, p, "b/d")
  local f = io.open(dir .. "/text.h5", "w")
  f:write("not hdf5\n")
  f:close()
  raises("not an HDF5 file (9 bytes without an HDF5 signature)", mimic.load, dir .. "/text.h5")
  f = io.open(dir .. "/cut.h5", "wb")
  f:write(before:sub(1, #before - 100))
  f:close()
  raises("the file is truncated", mimic.load, dir .. "/cut.h5")
  -- Bad contents fail before the file is replaced, and leave no temporary file.
  local cyc = {}
  cyc.self = cyc
  raises("save: the table at 'x/self' contains itself", mimic.save, p, { x = cyc })
  raises("save: 'f' is a function (values are tensors, numbers, strings, booleans or tables)", mimic.save, p,
    { a = 1, f = print })
  raises("save: a key in 'x' is a non-integer number", mimic.save, p, { x = { [0.5] = 1 } })
  raises("save: key 'a/b' in the top table is not allowed", mimic.save, p, { ["a/b"] = 1 })
  raises("save: '1' is written twice", mimic.save, p, { [1] = 1, ["1"] = 2 })
  local closed = mimic.zeros(2)
  closed:__close()
  raises("save: 'c' is a closed tensor", mimic.save, p, { c = closed })
  raises("cannot write '" .. dir .. "/no/such/dir.h5'", mimic.save, dir .. "/no/such/dir.h5", {})
  lu.assertEquals(io.open(p, "rb"):read("a"), before)
  lu.assertEquals(ls(dir), { "cut.h5", "t.h5", "text.h5" })
  rmdir(dir)
end

function TestSaveLoad.test_isatty()
  lu.assertIsBoolean(mimic.isatty(io.stdout))
  lu.assertIsBoolean(mimic.isatty(1))
  local f = io.tmpfile()
  lu.assertFalse(mimic.isatty(f))
  f:close()
  raises("file is closed", mimic.isatty, f)
end

-- Streaming: data = a mimic.data.loader over an HDF5 file. Two runs give the
-- same weights, and a run resumed from its checkpoint ends where an
-- uninterrupted one does, bit for bit (the loaders' positions are saved).
function TestTrain:test_loader_data_and_resume()
  local path = os.tmpname() .. ".h5"
  local g = mimic.Generator(5)
  local x = g:uniform({ 512, 2 }, -1, 1)
  local y = (x:select(2, 1):sin() * x:select(2, 2)):unsqueeze(2)
  local f = mimic.h5create(path)
  f:write("x", x)
  f:write("y", y)
  f:close()
  local function run(epochs, ckpt, resume)
    local mk = function(split) return mimic.data.loader { file = path, batch = 32, seed = 3,
      splits = { train = 0.75, val = 0.25 }, split = split } end
    mimic.manual_seed(11)
    local model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    local opt = mimic.optim.Adam(model, { lr = 1e-2 })
    local h = mimic.train { model = model, loss = nn.MSELoss(), optimizer = opt, data = mk("train"),
      val = mk("val"), epochs = epochs, verbose = false, checkpoint = ckpt, resume = resume }
    return model:parameters()[1]:clone(), h
  end
  local w1, h1 = run(4)
  local w2 = run(4)
  lu.assertTrue(w1:eq(w2):double():mean():item() == 1)
  lu.assertEquals(#h1, 4)
  lu.assertTrue(h1[4].loss < h1[1].loss and h1[4].val_loss ~= nil)
  local ck = os.tmpname() .. ".ckpt"
  run(2, ck)
  local w3, h3 = run(4, ck, true)
  lu.assertTrue(w1:eq(w3):double():mean():item() == 1)
  lu.assertEquals(h3[4].loss, h1[4].loss)
  raises("batch belongs to the loader", mimic.train, { model = nn.Linear(2, 1), loss = nn.MSELoss(),
    optimizer = mimic.optim.SGD(nn.Linear(2, 1), { lr = 0.1 }), data = mimic.data.loader { file = path }, batch = 8 })
  os.remove(path)
  os.remove(ck)
end

os.exit(lu.LuaUnit.run())
