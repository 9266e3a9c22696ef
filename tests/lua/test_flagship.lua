-- The flagship end to end (scripts/flagship.lua, what `make run` runs): a
-- small training run through the `mimic` executable must finish, write its
-- model files, report and plots' data, and print the key table; and the
-- shipped models (models/rad_lw_*.h5) must meet the issue's flux and forcing
-- targets on the held-out sites, through the C adapter. The a-posteriori
-- host (scripts/rad_rce_hybrid.c) in its quick mode: the reference kernel on
-- both sides must give identical equilibria, and the shipped surrogate must
-- keep them within 0.5 K below 10 hPa.
local lu = require "luaunit"

local EXE = os.getenv("MIMIC_EXE") or "build/bin/mimic"
local RCE = (os.getenv("MIMIC_BUILD") or "build") .. "/scripts/rad_rce_hybrid"

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

local function run(args, cmd)
  local out = os.tmpname()
  local ok = os.execute(string.format("%s %s > '%s' 2>&1", cmd or (EXE .. " scripts/flagship.lua"), args, out)) == true
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(out)
  return ok, text
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

-- The key table's row starting with `label`: its figure and "met" cells.
local function row(text, label)
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #label + 2) == "| " .. label then
      -- from the end: a label may contain '|' (as in |flux error|), the figures do not
      local fig, met = line:match("|%s*([^|]-)%s*|[^|]*|%s*([^|]-)%s*|$")
      return fig, met
    end
  end
end

TestFlagship = {}

function TestFlagship.test_small_training_run()
  local dir = tmpdir()
  local ok, text = run("--per-site 1 --epochs 2 --out '" .. dir .. "'")
  lu.assertTrue(ok, text)
  for _, f in ipairs({ "rad_lw_tau.h5", "rad_lw_planck.h5", "rad_lw_guard.h5", "README.md", "flux_net_PD.dat",
    "flux_net_PD.gp", "apriori_gpoint.dat" }) do
    lu.assertTrue(exists(dir .. "/" .. f), "missing " .. f .. "\n" .. text)
  end
  local fig = row(text, "flux MAE per level")
  lu.assertNotNil(fig, text)
  -- three experiments, each a finite, non-negative error
  local n = 0
  for v in fig:gmatch("[%d%.]+") do
    n = n + 1
    lu.assertTrue(tonumber(v) >= 0)
  end
  lu.assertEquals(n, 3)
  os.execute("rm -rf '" .. dir .. "'")
end

function TestFlagship.test_bad_arguments()
  local ok, text = run("--epochs zero")
  lu.assertFalse(ok)
  lu.assertStrContains(text, "--epochs needs a positive integer")
  ok, text = run("--shipped --models /nonexistent")
  lu.assertFalse(ok)
  lu.assertStrContains(text, "/nonexistent")
end

function TestFlagship.test_shipped_models_meet_the_targets()
  if not exists("models/rad_lw_tau.h5") then
    lu.skip("models/rad_lw_tau.h5 is not there (make study-radiation writes it)")
  end
  local dir = tmpdir()
  local ok, text = run("--shipped --out '" .. dir .. "'")
  lu.assertTrue(ok, text)
  for _, label in ipairs({ "flux MAE per level", "95th percentile", "forcing error 4xCO2 - PI, TOA",
    "forcing error 4xCO2 - PI, surface" }) do
    local fig, met = row(text, label)
    lu.assertNotNil(fig, label .. "\n" .. text)
    lu.assertEquals(met, "yes", label .. ": " .. tostring(fig))
  end
  os.execute("rm -rf '" .. dir .. "'")
end

function TestFlagship.test_rce_host_self_check()
  local dir = tmpdir()
  local ok, text = run("--quick --out '" .. dir .. "'", RCE)
  lu.assertTrue(ok, text)
  lu.assertStrContains(text, "reference kernel on both sides gives dT == 0 exactly")
  lu.assertTrue(exists(dir .. "/rce.md"), text)
  ok, text = run("--quick --tau /nonexistent/tau.h5 --planck /nonexistent/planck.h5 --out '" .. dir .. "'", RCE)
  lu.assertFalse(ok)
  lu.assertStrContains(text, "/nonexistent/tau.h5")
  os.execute("rm -rf '" .. dir .. "'")
end

function TestFlagship.test_rce_host_with_shipped_models_meets_the_target()
  if not exists("models/rad_lw_tau.h5") then
    lu.skip("models/rad_lw_tau.h5 is not there (make study-radiation writes it)")
  end
  local dir = tmpdir()
  local ok, text = run("--quick --check-target --tau models/rad_lw_tau.h5 --planck models/rad_lw_planck.h5 "
    .. "--guard models/rad_lw_guard.h5 --out '" .. dir .. "'", RCE)
  lu.assertTrue(ok, text)
  os.execute("rm -rf '" .. dir .. "'")
end

os.exit(lu.LuaUnit.run())
