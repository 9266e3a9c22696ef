-- mimic.report: validation reports as a folder with README.md (markdown
-- tables, figure links, how to regenerate, date, mimic version, provenance)
-- and PNG plots drawn by gnuplot (docs/validation.md).
--
--   local rep = mimic.report.new { dir = "validation/x", title = "...",
--     command = "mimic scripts/x.lua", provenance = { data = "...", seed = 1 } }
--   rep:text("...")            -- a paragraph
--   rep:table { header = {...}, rows = {{...}, ...} }
--   rep:scatter {...}; rep:band {...}; rep:histograms {...}; rep:curves {...}
--   rep:write()                -- writes everything; returns the README path
--
-- Every figure writes <name>.dat (the plotted numbers) and <name>.gp (the
-- gnuplot script) next to <name>.png, so a reader can restyle a plot without
-- rerunning the experiment. Without gnuplot the README, the tables and the
-- data files are still written, and the README says how to draw the plots.
-- Every file is written to a temporary name and renamed into place, so an
-- interrupted run never leaves a half-written file behind.
local mimic = require "mimic"

local report = {}
local Report = {}
Report.__index = Report

local function fail(msg, level) error("mimic.report: " .. msg, (level or 1) + 1) end

-- Writes text to path atomically: temp file in the same directory, rename.
local function write_file(path, text)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then fail("cannot write " .. path .. ": " .. tostring(err), 3) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    fail("cannot write " .. path .. ": " .. tostring(werr or cerr), 3)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    fail("cannot rename " .. tmp .. " to " .. path .. ": " .. tostring(rerr), 3)
  end
end
report.write_file = write_file

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- gnuplot's terminal: pngcairo (antialiased) if present, png otherwise, nil
-- without gnuplot. Probed once per process.
local terminal_probe
local function terminal()
  if terminal_probe == nil then
    local function ok(cmd)
      local r = os.execute(cmd .. " >/dev/null 2>&1")
      return r == true or r == 0
    end
    if not ok("command -v gnuplot") then terminal_probe = false
    elseif ok("gnuplot -e 'set terminal pngcairo'") then terminal_probe = "pngcairo"
    elseif ok("gnuplot -e 'set terminal png'") then terminal_probe = "png"
    else terminal_probe = false end
  end
  return terminal_probe or nil
end
report.terminal = terminal

--- Formats a number for a table: 4 significant digits, NaN as "n/a".
function report.fmt(x, digits)
  if type(x) ~= "number" then return tostring(x) end
  if x ~= x then return "n/a" end
  if x == math.huge then return "inf" elseif x == -math.huge then return "-inf" end
  if math.type(x) == "integer" then return tostring(x) end
  local s = string.format("%." .. (digits or 4) .. "g", x)
  return s
end
local fmt = report.fmt

local function num(x) -- a number for a gnuplot data file
  if x ~= x or x == math.huge or x == -math.huge then return "NaN" end
  return string.format("%.9g", x)
end

local function gp_string(s) return '"' .. tostring(s):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"' end

--- A new report writing into opts.dir (created if missing). Fields: title,
--- command (the line that regenerates it), provenance (a table of name ->
--- value, listed in the README, sorted by name), size ({w, h} pixels,
--- default {800, 560}), plots (false: write tables and plot data only, as
--- when gnuplot is missing).
function report.new(opts)
  if type(opts) ~= "table" or type(opts.dir) ~= "string" then fail("new: opts.dir (a folder) is required", 2) end
  local self = setmetatable({
    dir = opts.dir:gsub("/+$", ""), title = opts.title or "Validation report", command = opts.command,
    provenance = opts.provenance or {}, size = opts.size or { 800, 560 }, blocks = {}, figures = {},
    plots = opts.plots ~= false,
  }, Report)
  local r = os.execute("mkdir -p " .. shell_quote(self.dir))
  if not (r == true or r == 0) then fail("new: cannot create folder " .. self.dir, 2) end
  return self
end

--- A markdown paragraph (or heading: start it with '#').
function Report:text(s)
  self.blocks[#self.blocks + 1] = tostring(s)
  return self
end

--- A markdown table: t.header (list of strings), t.rows (lists of values;
--- numbers are formatted with report.fmt), t.caption (optional).
function Report:table(t)
  if type(t) ~= "table" or type(t.header) ~= "table" or type(t.rows) ~= "table" then
    fail("table: expected {header = {...}, rows = {{...}, ...}}", 2)
  end
  local out = {}
  if t.caption then out[#out + 1] = t.caption .. "\n" end
  local function row(r)
    local cells = {}
    for i = 1, #t.header do cells[i] = fmt(r[i]):gsub("|", "\\|") end
    return "| " .. table.concat(cells, " | ") .. " |"
  end
  out[#out + 1] = row(t.header)
  out[#out + 1] = "|" .. string.rep("---|", #t.header)
  for _, r in ipairs(t.rows) do out[#out + 1] = row(r) end
  self.blocks[#self.blocks + 1] = table.concat(out, "\n")
  return self
end

local function check_name(name)
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
    fail("figure name must be letters, digits, '_' or '-', got " .. tostring(name), 3)
  end
end

local function tolist(x, what)
  if mimic.is_tensor(x) then return x:double():reshape(-1):totable() end
  if type(x) ~= "table" then fail(what .. " must be a tensor or a list of numbers", 3) end
  return x
end

-- Registers a figure: data text, gnuplot body (after terminal/output), and
-- the caption shown in the README.
function Report:_figure(name, caption, data, body)
  self.figures[#self.figures + 1] = { name = name, data = data, body = body }
  self.blocks[#self.blocks + 1] = { figure = name, caption = caption }
end

local function axis_commands(o)
  local c = {}
  if o.xlabel then c[#c + 1] = "set xlabel " .. gp_string(o.xlabel) end
  if o.ylabel then c[#c + 1] = "set ylabel " .. gp_string(o.ylabel) end
  if o.title then c[#c + 1] = "set title " .. gp_string(o.title) end
  if o.logx then c[#c + 1] = "set logscale x" end
  if o.logy then c[#c + 1] = "set logscale y" end
  c[#c + 1] = "set grid lc rgb '#dddddd'"
  return table.concat(c, "\n")
end

--- Predicted-vs-true density scatter: a 2-D histogram of (x = o.truth,
--- y = o.pred) on shared bins, with a logarithmic colour scale and the 1:1
--- line. With o.residual, y is pred - truth instead (its own bins) and the
--- line is zero error: at a small error the 1:1 plot is a thin line, and the
--- residual plot shows the structure. o.bins (default 80), o.xlabel,
--- o.ylabel (with units), o.title, o.caption.
function Report:scatter(o)
  check_name(o.name)
  local V = mimic.validate
  local x, y = tolist(o.truth, "truth"), tolist(o.pred, "pred")
  if #x ~= #y then fail("scatter: truth has " .. #x .. " values, pred " .. #y, 2) end
  if o.residual then
    local r = {}
    for i = 1, #x do r[i] = y[i] - x[i] end
    y = r
  end
  local n = o.bins or 80
  local ex = V.edges(o.residual and { x } or { x, y }, n)
  local ey = o.residual and V.edges({ y }, n) or ex
  local h = V.histogram2d(x, y, ex, ey)
  local cx, cy = V.centers(ex), V.centers(ey)
  -- gnuplot's "nonuniform matrix": first row n, x centres; then one row
  -- per y centre: y, counts along x. Compact (a commit-sized file) and
  -- drawn directly as an image; empty bins are NaN, left blank.
  local function short(v) return v ~= v and "NaN" or string.format("%.6g", v) end
  local lines = { "# nonuniform matrix: first row n, x centres; rows: y centre, counts (NaN: empty)" }
  local head = { tostring(n) }
  for i = 1, n do head[i + 1] = short(cx[i]) end
  lines[2] = table.concat(head, " ")
  for j = 1, n do
    local row = { short(cy[j]) }
    for i = 1, n do row[i + 1] = h[i][j] > 0 and string.format("%d", h[i][j]) or "NaN" end
    lines[#lines + 1] = table.concat(row, " ")
  end
  local line = o.residual and [[0 with lines dt 2 lw 1.5 lc rgb 'black' title "zero error"]]
      or [[x with lines dt 2 lw 1.5 lc rgb 'black' title "1:1 (perfect)"]]
  local body = axis_commands(o) .. string.format([[

%s
set xrange [%s:%s]
set yrange [%s:%s]
set logscale cb
set cblabel "samples per bin"
set palette defined (0 '#9ecae1', 1 '#4292c6', 2 '#08519c', 3 '#08306b')
set key top left opaque
plot '%s.dat' nonuniform matrix using 1:2:3 with image notitle, \
     %s
]], o.residual and "" or "set size square", num(ex[1]), num(ex[n + 1]), num(ey[1]), num(ey[n + 1]), o.name, line)
  self:_figure(o.name, o.caption, table.concat(lines, "\n") .. "\n", body)
  return self
end

--- Error band versus a coordinate: o.binned is the result of
--- mimic.validate.binned_quantiles with probs {lo, 0.5, hi}; draws the
--- lo-hi band, the median and the mean. o.coord_scale: multiply the bin
--- centres (e.g. 0.01 for Pa -> hPa). o.vertical: the coordinate on the y
--- axis (reversed, as pressure in atmospheric plots). o.xlabel, o.ylabel.
function Report:band(o)
  check_name(o.name)
  local b = o.binned
  if type(b) ~= "table" or not b.q or #b.q < 3 then fail("band: o.binned must come from binned_quantiles with 3 probs", 2) end
  local s = o.coord_scale or 1
  local lines = { string.format("# coord mean q%g q%g q%g count bin_lo bin_hi", b.probs[1] * 100, b.probs[2] * 100,
    b.probs[3] * 100) }
  local c = mimic.validate.centers(b.edges, o.logx)
  for i = 1, #b.count do
    lines[#lines + 1] = table.concat({ num(c[i] * s), num(b.mean[i]), num(b.q[1][i]), num(b.q[2][i]), num(b.q[3][i]),
      tostring(b.count[i]), num(b.edges[i] * s), num(b.edges[i + 1] * s) }, " ")
  end
  local band = string.format("%g-%g %% of errors", b.probs[1] * 100, b.probs[3] * 100)
  local body
  if o.vertical then
    -- The coordinate on the y axis: each bin is a box spanning its quantiles
    -- (x) and its edges (y), so the band reads bin by bin.
    local a = { xlabel = o.ylabel, ylabel = o.xlabel, title = o.title, logy = o.logx }
    body = axis_commands(a) .. string.format([[

set yrange [%s:%s]
set key outside bottom center horizontal
plot '%s.dat' using (($3+$5)/2):1:3:5:7:8 with boxxyerror fs solid 0.35 noborder lc rgb '#6baed6' title %s, \
     '' using 4:1 with linespoints lw 2 pt 5 ps 0.5 lc rgb '#08519c' title "median", \
     '' using 2:1 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#d94801' title "mean", \
     '' using (0):1 with lines lc rgb 'black' dt 2 title "zero error"
]], num(b.edges[#b.edges] * s), num(b.edges[1] * s), o.name, gp_string(band))
  else
    body = axis_commands(o) .. string.format([[

set xrange [%s:%s]
set key outside bottom center horizontal
plot '%s.dat' using 1:3:5 with filledcurves fs transparent solid 0.3 noborder lc rgb '#6baed6' title %s, \
     '' using 1:4 with lines lw 2 lc rgb '#08519c' title "median", \
     '' using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb '#d94801' title "mean", \
     0 with lines lc rgb 'black' dt 2 title "zero error"
]], num(b.edges[1] * s), num(b.edges[#b.edges] * s), o.name, gp_string(band))
  end
  self:_figure(o.name, o.caption, table.concat(lines, "\n") .. "\n", body)
  return self
end

--- Overlaid histograms with a ratio panel: o.compare is the result of
--- mimic.validate.compare(sample, ref); drawn as densities (count / (n *
--- width)); the reference is a thick grey line under the sample's thin one,
--- so both stay visible where they agree. o.labels = {sample, ref} (default
--- {"surrogate", "reference"}),
--- o.xlabel (with units), o.logy.
function Report:histograms(o)
  check_name(o.name)
  local c = o.compare
  if type(c) ~= "table" or not c.edges then fail("histograms: o.compare must come from mimic.validate.compare", 2) end
  local labels = o.labels or { "surrogate", "reference" }
  local ns, nr = 0, 0
  for i = 1, #c.sample do ns, nr = ns + c.sample[i], nr + c.ref[i] end
  local lines = { "# center density_ref density_sample ratio(sample/ref)" }
  for i = 1, #c.sample do
    local w = c.edges[i + 1] - c.edges[i]
    local dr, ds = c.ref[i] / (nr * w), c.sample[i] / (ns * w)
    lines[#lines + 1] = table.concat({ num(c.centers[i]), num(dr), num(ds), num(c.ref[i] > 0 and ds / dr or 0 / 0) }, " ")
  end
  local xl = gp_string(o.xlabel or "")
  local body = string.format([[
set multiplot
set xrange [%s:%s]
set lmargin at screen 0.12
set rmargin at screen 0.96
set tmargin at screen 0.92
set bmargin at screen 0.36
set grid lc rgb '#dddddd'
set format x ""
set ylabel "probability density"
%s%s
set key top right opaque
plot '%s.dat' using 1:2 with histeps lw 5 lc rgb '#aaaaaa' title %s, \
     '' using 1:3 with histeps lw 1.5 lc rgb '#d94801' title %s
unset title
unset logscale y
set format x
set tmargin at screen 0.34
set bmargin at screen 0.1
set xlabel %s
set ylabel %s
set yrange [0.5:1.5]
set ytics 0.25
plot '%s.dat' using 1:4 with histeps lw 2 lc rgb '#d94801' notitle, 1 with lines dt 2 lc rgb 'black' notitle
unset multiplot
]], num(c.edges[1]), num(c.edges[#c.edges]), o.title and ("set title " .. gp_string(o.title) .. "\n") or "", o.logy and "set logscale y\n" or "",
    o.name, gp_string(labels[2]), gp_string(labels[1]), xl, gp_string(labels[1] .. " / " .. labels[2]), o.name)
  self:_figure(o.name, o.caption, table.concat(lines, "\n") .. "\n", body)
  return self
end

--- Learning curves (or any curves sharing x): o.x (list), o.series =
--- {{label =, y = list}, ...}, o.xlabel, o.ylabel, o.logy (default true),
--- o.logx (default false).
function Report:curves(o)
  check_name(o.name)
  local x = tolist(o.x, "x")
  local head = { "# x" }
  for _, s in ipairs(o.series or {}) do head[#head + 1] = (s.label or "y"):gsub("%s", "_") end
  local lines = { table.concat(head, " ") }
  for i = 1, #x do
    local row = { num(x[i]) }
    for k, s in ipairs(o.series) do row[k + 1] = num(s.y[i] or 0 / 0) end
    lines[#lines + 1] = table.concat(row, " ")
  end
  local colours = { "'#08519c'", "'#d94801'", "'#238b45'", "'#6a51a3'" }
  local plots = {}
  for k, s in ipairs(o.series) do
    plots[k] = string.format("%s using 1:%d with lines lw 2 lc rgb %s title %s", k == 1 and ("'" .. o.name .. ".dat'") or "''",
      k + 1, colours[(k - 1) % #colours + 1], gp_string(s.label or ("series " .. k)))
  end
  local a = { xlabel = o.xlabel, ylabel = o.ylabel, title = o.title, logy = o.logy ~= false, logx = o.logx }
  local body = axis_commands(a) .. (a.logy and "\nset format y '%.0e'" or "") .. "\nset key top right opaque\nplot " .. table.concat(plots, ", \\\n     ") .. "\n"
  self:_figure(o.name, o.caption, table.concat(lines, "\n") .. "\n", body)
  return self
end

--- Bar chart of named quantities (e.g. the importance of each input):
--- o.labels (one per group of bars), o.series = {{label =, y = list, err =
--- list (optional error bars)}, ...}, one bar per series in each group;
--- o.xlabel, o.ylabel, o.logy (default false).
function Report:bars(o)
  check_name(o.name)
  if type(o.labels) ~= "table" or type(o.series) ~= "table" or #o.series == 0 then
    fail("bars: expected {labels = {...}, series = {{label =, y = {...}}, ...}}", 2)
  end
  local n = #o.labels
  for k, s in ipairs(o.series) do
    if type(s.y) ~= "table" or #s.y ~= n then fail("bars: series " .. k .. " needs " .. n .. " values (one per label)", 2) end
  end
  -- Every series gets a value and an error column (0 without error bars), so
  -- one "errorbars" histogram style serves both cases.
  local head = { "# label" }
  for _, s in ipairs(o.series) do
    local l = (s.label or "y"):gsub("%s", "_")
    head[#head + 1] = l
    head[#head + 1] = l .. "_err"
  end
  local lines = { table.concat(head, " ") }
  for i = 1, n do
    local row = { gp_string(o.labels[i]) }
    for _, s in ipairs(o.series) do
      row[#row + 1] = num(s.y[i])
      row[#row + 1] = num(s.err and s.err[i] or 0)
    end
    lines[#lines + 1] = table.concat(row, " ")
  end
  local colours = { "'#6baed6'", "'#fd8d3c'", "'#74c476'", "'#9e9ac8'" }
  local plots = {}
  for k, s in ipairs(o.series) do
    plots[k] = string.format("%s using %d:%d%s lc rgb %s title %s", k == 1 and ("'" .. o.name .. ".dat'") or "''",
      2 * k, 2 * k + 1, k == 1 and ":xtic(1)" or "", colours[(k - 1) % #colours + 1], gp_string(s.label or ("series " .. k)))
  end
  local a = { xlabel = o.xlabel, ylabel = o.ylabel, title = o.title, logy = o.logy }
  local body = axis_commands(a) .. [[

set style data histograms
set style histogram errorbars gap 1.5 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 nomirror
set key top right opaque
]] .. "plot " .. table.concat(plots, ", \\\n     ") .. "\n"
  self:_figure(o.name, o.caption, table.concat(lines, "\n") .. "\n", body)
  return self
end

--- Writes the data files, the gnuplot scripts, the PNGs (when gnuplot is
--- available) and README.md. Returns the README's path and whether plots
--- were drawn.
function Report:write()
  local term = self.plots and terminal() or nil
  local failed = {}
  for _, f in ipairs(self.figures) do
    local base = self.dir .. "/" .. f.name
    write_file(base .. ".dat", f.data)
    local termline = term == "pngcairo"
        and string.format("set terminal pngcairo size %d,%d font 'sans,11' noenhanced", self.size[1], self.size[2])
        or string.format("set terminal png size %d,%d noenhanced", self.size[1], self.size[2])
    local script = "# Draws " .. f.name .. ".png from " .. f.name .. ".dat: gnuplot " .. f.name .. ".gp\n"
        .. termline .. "\nset output '" .. f.name .. ".png.tmp'\n" .. f.body
        .. "set output\n" .. "system \"mv -f '" .. f.name .. ".png.tmp' '" .. f.name .. ".png'\"\n"
    write_file(base .. ".gp", script)
    if term then
      local cmd = "cd " .. shell_quote(self.dir) .. " && gnuplot " .. shell_quote(f.name .. ".gp") .. " 2>&1"
      local p = io.popen(cmd)
      local out = p:read("a")
      local ok = p:close()
      if not ok then
        os.remove(base .. ".png.tmp")
        failed[#failed + 1] = f.name .. ": " .. out
      end
    end
  end
  local md = { "# " .. self.title, "" }
  md[#md + 1] = string.format("Generated %s with mimic %s%s.", os.date("!%Y-%m-%d %H:%M UTC"), mimic.version,
    self.command and (" by `" .. self.command .. "`") or "")
  md[#md + 1] = ""
  local keys = {}
  for k in pairs(self.provenance) do keys[#keys + 1] = k end
  table.sort(keys)
  if #keys > 0 then
    md[#md + 1] = "| provenance | |"
    md[#md + 1] = "|---|---|"
    for _, k in ipairs(keys) do md[#md + 1] = "| " .. k .. " | " .. tostring(self.provenance[k]):gsub("|", "\\|") .. " |" end
    md[#md + 1] = ""
  end
  if not term then
    md[#md + 1] = "> Plots were not drawn" .. (self.plots and ": gnuplot was not found" or " (plots = false)") .. ". The plotted numbers are in the `.dat` files; "
        .. "install gnuplot (`apt-get install gnuplot-nox`) and rerun the command above, or run `gnuplot <name>.gp` "
        .. "in this folder."
    md[#md + 1] = ""
  end
  for _, b in ipairs(self.blocks) do
    if type(b) == "table" then
      if term then
        md[#md + 1] = string.format("![%s](%s.png)", b.figure, b.figure)
      else
        md[#md + 1] = string.format("Figure `%s` (not drawn): data in [%s.dat](%s.dat), script [%s.gp](%s.gp).",
          b.figure, b.figure, b.figure, b.figure, b.figure)
      end
      if b.caption then md[#md + 1] = "\n*" .. b.caption .. "*" end
    else
      md[#md + 1] = b
    end
    md[#md + 1] = ""
  end
  if self.command then
    md[#md + 1] = "## Regenerating"
    md[#md + 1] = ""
    md[#md + 1] = "```sh\n" .. self.command .. "\n```"
    md[#md + 1] = ""
    md[#md + 1] = "Each figure's numbers are in `<name>.dat` and its gnuplot script in `<name>.gp` (run "
        .. "`gnuplot <name>.gp` here to redraw it)."
    md[#md + 1] = ""
  end
  local path = self.dir .. "/README.md"
  write_file(path, table.concat(md, "\n"))
  if #failed > 0 then fail("gnuplot failed for " .. table.concat(failed, "\n"), 2) end
  return path, term ~= nil
end

return report
