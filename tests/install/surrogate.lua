-- Run by script_host through libmimic_lua: mimic.load_model and mimic.nn
-- come from the installed pure-Lua modules. MIMIC_MODEL names the model file.
local mimic = require "mimic"
assert(mimic.nn.Sequential)
local m = mimic.load_model(assert(os.getenv("MIMIC_MODEL"), "set MIMIC_MODEL"))
function surrogate(x)
  return m:forward(x:double())
end
