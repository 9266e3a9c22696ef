-- mimic.search: the grid is the full product in a stable order, a seeded
-- random search is reproducible, the best trial is the minimum, an
-- interrupted search resumes without retraining and ends with the same
-- results, the markdown table, encoders, and errors.
local mimic = require "mimic"
local nn = mimic.nn
local lu = require "luaunit"

-- y = sin(3 x) on 256 points of [-1, 1] (the last 20 % validate).
local function make_data()
  local g = mimic.Generator(3)
  local x = g:uniform({ 256, 1 }, -1, 1)
  return { x = x, y = (x * 3):sin() }
end
local DATA = make_data()

-- The pcall runs in this file: errors raised at the caller's line of
-- mimic.search name test_search.lua, as test_errors asserts.
local check_error = require("helpers").check_error
local function raises(plain, f, ...) return check_error(plain, pcall(f, ...)) end

local function tmpfile()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".h5"
end

-- The fields of the trials that do not depend on timing.
local function outcome(result)
  local rows = {}
  for i, t in ipairs(result.trials) do
    rows[i] = { index = t.index, cfg = t.cfg, val = t.val, epochs = t.epochs, best_epoch = t.best_epoch,
                params = t.params, flops = t.flops }
  end
  return rows
end

local function run(extra)
  local o = { data = DATA, space = { depth = { 1, 2 }, width = { 8, 16 } }, epochs = 4, seed = 5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return mimic.search(o)
end

TestSearch = {}

function TestSearch.test_grid_is_the_full_product_in_order()
  local r = run { space = { depth = { 1, 2 }, width = { 8, 16 }, activation = { "tanh", "relu" } }, epochs = 2 }
  lu.assertEquals(#r.trials, 8)
  local got = {}
  for i, t in ipairs(r.trials) do
    lu.assertEquals(t.index, i)
    got[i] = string.format("%d/%d/%s", t.cfg.depth, t.cfg.width, t.cfg.activation)
    -- dimensions outside the space take their defaults
    lu.assertEquals(t.cfg.lr, 1e-3)
    lu.assertEquals(t.cfg.batch, 64)
    lu.assertEquals(t.cfg.encoding, "none")
  end
  lu.assertEquals(got, { "1/8/tanh", "1/8/relu", "1/16/tanh", "1/16/relu", "2/8/tanh", "2/8/relu", "2/16/tanh",
                         "2/16/relu" })
  -- parameters and FLOPs of the default MLP: 1-8-1 and 1-16-16-1
  lu.assertEquals(r.trials[1].params, 8 + 8 + 8 + 1)
  lu.assertEquals(r.trials[1].flops, (2 * 8 + 8) + 8 + (2 * 8 + 1))
  lu.assertEquals(r.trials[8].params, 32 + 16 * 16 + 16 + 17)
  for _, t in ipairs(r.trials) do
    lu.assertTrue(t.seconds >= 0)
    lu.assertTrue(t.us_per_sample > 0)
  end
end

function TestSearch.test_best_is_the_minimum_and_predicts_raw_inputs()
  local r = run { space = { depth = { 1, 2 }, width = { 16 }, encoding = { "none", "standardize" } } }
  local min = math.huge
  for _, t in ipairs(r.trials) do min = math.min(min, t.val) end
  lu.assertEquals(r.best.val, min)
  lu.assertEquals(r.trials[r.best.index].val, min)
  -- predict applies the trial's encoding: its MSE on the raw validation
  -- inputs (the last 51 samples) is the recorded metric
  local vx, vy = DATA.x:narrow(1, 206, 51), DATA.y:narrow(1, 206, 51)
  local mse = nn.MSELoss()(r.best.predict(vx), vy):item()
  lu.assertAlmostEquals(mse, r.best.val, 1e-6 * (1 + r.best.val))
  -- standardize is fitted on the training split only
  for _, t in ipairs(r.trials) do
    if t.cfg.encoding == "standardize" and t.index == r.best.index then
      local tx = DATA.x:narrow(1, 1, 205)
      lu.assertAlmostEquals(r.best.encoder.mean:item(), tx:mean():item(), 1e-6)
    end
  end
end

function TestSearch.test_random_is_reproducible()
  local space = { depth = { 1, 2, 3 }, width = { 8, 16 }, lr = { 1e-3, 1e-2 } }
  local a = run { space = space, strategy = "random", trials = 4, seed = 11, epochs = 2 }
  local b = run { space = space, strategy = "random", trials = 4, seed = 11, epochs = 2 }
  lu.assertEquals(#a.trials, 4)
  lu.assertEquals(outcome(a), outcome(b))
  -- distinct configurations
  local seen = {}
  for _, t in ipairs(a.trials) do
    local k = string.format("%d/%d/%g", t.cfg.depth, t.cfg.width, t.cfg.lr)
    lu.assertNil(seen[k])
    seen[k] = true
  end
  -- another seed draws another sequence
  local c = run { space = space, strategy = "random", trials = 4, seed = 12, epochs = 2 }
  lu.assertNotEquals(outcome(a), outcome(c))
  -- more trials than configurations: each one once
  local d = run { space = { depth = { 1, 2 }, width = { 8 } }, strategy = "random", trials = 10, epochs = 1 }
  lu.assertEquals(#d.trials, 2)
end

function TestSearch.test_grid_is_reproducible()
  -- The same seed trains the same trials, bit for bit; another seed does not.
  local a, b = run(), run()
  lu.assertEquals(outcome(a), outcome(b))
  lu.assertNotEquals(outcome(run { seed = 6 }), outcome(a))
end

function TestSearch.test_interrupted_search_resumes()
  local path = tmpfile()
  local builds = 0
  local function build(cfg, nin, nout)
    builds = builds + 1
    local g = mimic.Generator(cfg.depth * 100 + cfg.width)
    local layers, n = {}, nin
    for _ = 1, cfg.depth do
      layers[#layers + 1] = nn.Linear(n, cfg.width, { generator = g })
      layers[#layers + 1] = nn.Tanh()
      n = cfg.width
    end
    layers[#layers + 1] = nn.Linear(n, nout, { generator = g })
    return nn.Sequential(table.unpack(layers))
  end
  local full = run { build = build }
  lu.assertEquals(builds, 4)

  builds = 0
  local ok, err = pcall(run, { build = build, state = path, on_trial = function(_, i)
    if i == 2 then error("interrupted") end
  end })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "interrupted")
  lu.assertEquals(builds, 2)
  lu.assertEquals(#mimic.load(path).trials, 2)

  builds = 0
  local resumed = run { build = build, state = path }
  -- trials 3 and 4 trained; the best of trials 1-2 rebuilt from its weights
  lu.assertEquals(builds, 2 + 1)
  lu.assertEquals(outcome(resumed), outcome(full))
  lu.assertEquals(mimic.search.table(resumed, { timing = false }), mimic.search.table(full, { timing = false }))
  lu.assertEquals(resumed.best.index, full.best.index)
  lu.assertAlmostEquals(nn.MSELoss()(resumed.best.predict(DATA.x), DATA.y):item(),
    nn.MSELoss()(full.best.predict(DATA.x), DATA.y):item(), 1e-7)

  -- a finished search: nothing to train
  builds = 0
  local again = run { build = build, state = path }
  lu.assertEquals(builds, 1)
  lu.assertEquals(outcome(again), outcome(full))

  -- another search with the same file is refused
  raises("holds a different search", run, { build = build, state = path, epochs = 3 })
  os.remove(path)
end

function TestSearch.test_markdown_table()
  local r = run { space = { depth = { 1, 2 }, width = { 8 } }, epochs = 2 }
  local md = mimic.search.table(r)
  local lines = {}
  for l in md:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 4)
  lu.assertEquals(lines[1], "| rank | trial | depth | width | val | epochs | params | FLOPs/sample | train s | µs/sample |")
  lu.assertStrMatches(lines[2], "^|[-:|]+|$")
  -- sorted by the metric
  local v1 = tonumber(lines[3]:match("^| 1 | %d+ | %d+ | %d+ | ([^ ]+) |"))
  local v2 = tonumber(lines[4]:match("^| 2 | %d+ | %d+ | %d+ | ([^ ]+) |"))
  lu.assertTrue(v1 <= v2)
  lu.assertEquals(tonumber(lines[3]:match("^| 1 | (%d+) |")), r.best.index)
  local short = mimic.search.table(r, { timing = false })
  lu.assertNil(short:find("µs", 1, true))
  raises("unknown option 'timings'", mimic.search.table, r, { timings = false })
  raises("expects the result of mimic.search", mimic.search.table, 3)
end

function TestSearch.test_verbose_prints_trials_and_the_table()
  local path = tmpfile()
  local f = assert(io.open(path, "w+"))
  run { space = { depth = { 1 }, width = { 8 } }, epochs = 1, verbose = true, output = f }
  f:seek("set")
  local text = f:read("a")
  f:close()
  os.remove(path)
  lu.assertStrContains(text, "trial 1/1  depth=1 width=8  val ")
  lu.assertStrContains(text, "| rank | trial | depth | width |")
end

function TestSearch.test_custom_encoder_and_dimension()
  mimic.search.encoders.scale2 = { fit = function() return { k = 2 } end, apply = function(s, x) return x * s.k end }
  local seen = {}
  local r = run { space = { depth = { 1 }, width = { 8 }, encoding = { "scale2" }, dropout = { 0, 0.1 } }, epochs = 1,
                  build = function(cfg, nin, nout)
                    seen[#seen + 1] = cfg.dropout
                    return nn.Sequential(nn.Linear(nin, cfg.width), nn.Tanh(), nn.Dropout(cfg.dropout),
                      nn.Linear(cfg.width, nout))
                  end }
  mimic.search.encoders.scale2 = nil
  lu.assertEquals(seen, { 0, 0.1 })
  lu.assertEquals(#r.trials, 2)
  lu.assertNil(r.trials[1].flops) -- Dropout: not a plain MLP
  lu.assertEquals(r.trials[1].params, 8 + 8 + 8 + 1)
end

function TestSearch.test_errors()
  raises("space is empty", run, { space = {} })
  raises("space.width must be a non-empty list", run, { space = { width = {} } })
  raises("unknown option 'epoch'", run, { epoch = 3 })
  raises("unknown space dimension 'dropout'", run, { space = { dropout = { 0.1 } } })
  raises("unknown activation 'swish'", run, { space = { activation = { "swish" } } })
  raises("unknown encoding 'pca'", run, { space = { encoding = { "pca" } } })
  raises("space.depth[1] must be an integer >= 1", run, { space = { depth = { 1.5 } } })
  raises("needs trials", run, { strategy = "random" })
  raises("trials is for strategy = \"random\"", run, { trials = 3 })
  raises("strategy must be", run, { strategy = "bayes" })
  raises("space is required", mimic.search, { data = DATA })
  raises("data must be a table", mimic.search, { space = { depth = { 1 } } })
  raises("unknown early_stopping option 'patiense'", run, { early_stopping = { patiense = 2 } })
  -- errors point at the caller's line
  local msg = raises("mimic.search: unknown option", run, { bogus = 1 })
  lu.assertStrContains(msg, "test_search.lua:")
end

os.exit(lu.LuaUnit.run())
