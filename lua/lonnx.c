/* mimic.onnx: ONNX import, export and checked conversion (docs/interop.md).
 *
 *   mimic.onnx.import(path_in [, path_out]) -> with path_out: writes a model
 *       file and returns its hash; without: returns the model, loaded as by
 *       mimic.load_model
 *   mimic.onnx.export(model_or_file, path [, save_opts]) -> writes ONNX; a
 *       model file path, or a built-in Sequential with model:save's options
 *   mimic.onnx.convert(in, out [, {samples =, quiet =}]) -> report table;
 *       the direction from the extensions (.onnx in: import), then both sides
 *       run on the same sample inputs and the max difference is printed
 *       (what `mimic convert IN OUT` runs)
 *
 * The converters live in libmimic_interop (links libprotobuf-c). They are
 * referenced weakly, so a host that links libmimic_lua without the interop
 * library still loads mimic; mimic.onnx then explains what to link. */
#include "lmimic.h"

#include "mimic/base.h"
#include "mimic/onnx.h"

#include <string.h>

#pragma weak mimic_onnx_import
#pragma weak mimic_onnx_export

static void need_interop(lua_State *L)
{
    if (!mimic_onnx_import || !mimic_onnx_export)
        luaL_error(L, "mimic.onnx: ONNX support is not linked into this program; link libmimic_interop and "
                      "libprotobuf-c (-lmimic_interop -lprotobuf-c), or use the mimic executable");
}

/* Frees what the import/export calls hold if a Lua error unwinds. */
typedef struct obox {
    mimic_model *m;
    mimic_model_info *info;
} obox;

static int obox_gc(lua_State *L)
{
    obox *b = luaL_checkudata(L, 1, "mimic.OnnxScratch");
    mimic_model_free(b->m);
    mimic_model_info_free(b->info);
    b->m = NULL, b->info = NULL;
    return 0;
}

static obox *new_box(lua_State *L)
{
    obox *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, "mimic.OnnxScratch");
    return b;
}

/* mimic.onnx._import(in, out) -> hash */
static int l_import(lua_State *L)
{
    const char *in = luaL_checkstring(L, 1), *out = luaL_checkstring(L, 2);
    need_interop(L);
    obox *b = new_box(L);
    b->m = mimic_onnx_import(in, &b->info);
    if (!b->m)
        return lmimic_error(L);
    if (mimic_model_save(out, b->m, &b->info->contract, NULL, NULL, &b->info->meta))
        return lmimic_error(L);
    char hash[72];
    if (mimic_model_hash(b->m, &b->info->contract, NULL, NULL, hash))
        return lmimic_error(L);
    mimic_model_free(b->m);
    mimic_model_info_free(b->info);
    b->m = NULL, b->info = NULL;
    lua_pushstring(L, hash);
    return 1;
}

/* mimic.onnx._export(model_file, out) */
static int l_export(lua_State *L)
{
    const char *in = luaL_checkstring(L, 1), *out = luaL_checkstring(L, 2);
    need_interop(L);
    obox *b = new_box(L);
    b->m = mimic_model_load(in, &b->info);
    if (!b->m)
        return lmimic_error(L);
    if (mimic_onnx_export(out, b->m, &b->info->contract, &b->info->input_encoder, &b->info->output_encoder))
        return lmimic_error(L);
    return 0;
}

/* The Lua half: file handling, sample inputs, the reference run. */
static const char onnx_lua[] =
    "local mimic, C = ...\n"
    "local M = {}\n"
    "local function fail(m) error(m, 0) end\n"
    "local function tmp(ext) local p = os.tmpname(); os.remove(p); return p .. ext end\n"
    "function M.import(path_in, path_out)\n"
    "  if type(path_in) ~= 'string' then fail('mimic.onnx.import(path_in [, path_out]): path_in must be a string') end\n"
    "  if path_out ~= nil then return C._import(path_in, path_out) end\n"
    "  local t = tmp('.h5')\n"
    "  local ok, err = pcall(C._import, path_in, t)\n"
    "  if not ok then os.remove(t); error(err, 0) end\n"
    "  local ok2, m = pcall(mimic.load_model, t)\n"
    "  os.remove(t)\n"
    "  if not ok2 then error(m, 0) end\n"
    "  return m\n"
    "end\n"
    "function M.export(src, path, opts)\n"
    "  if type(path) ~= 'string' then fail('mimic.onnx.export(model_or_file, path): path must be a string') end\n"
    "  if type(src) == 'string' then return C._export(src, path) end\n"
    "  if type(src) == 'table' and src.save then\n"
    "    local t = tmp('.h5')\n"
    "    local ok, err = pcall(function() src:save(t, opts or {}); C._export(t, path) end)\n"
    "    os.remove(t)\n"
    "    if not ok then error(err, 0) end\n"
    "    return\n"
    "  end\n"
    "  fail('mimic.onnx.export: expected a model file path or a built-in Sequential model (with model:save options)')\n"
    "end\n"
    /* tools/onnx_eval.py: next to the checkout's lua/ or in PREFIX/share/mimic/tools. */
    "local function evaluator()\n"
    "  local e = os.getenv('MIMIC_ONNX_EVAL')\n"
    "  if e then return e end\n"
    "  local f = package.searchpath('mimic.modelfile', package.path)\n"
    "  if not f then return nil end\n"
    "  local cands = { (f:gsub('lua/mimic/modelfile%.lua$', 'tools/onnx_eval.py')),\n"
    "                  (f:gsub('share/lua/5%.4/mimic/modelfile%.lua$', 'share/mimic/tools/onnx_eval.py')) }\n"
    "  for _, c in ipairs(cands) do local h = io.open(c); if h then h:close(); return c end end\n"
    "end\n"
    "local function write_bin(path, t)\n"
    "  local h = assert(io.open(path, 'wb'))\n"
    "  for _, row in ipairs(t:totable()) do for _, v in ipairs(row) do h:write(string.pack('<d', v)) end end\n"
    "  h:close()\n"
    "end\n"
    /* Runs the ONNX file through the NumPy reference; nil + reason if unavailable. */
    "function M.reference(onnx_path, x)\n"
    "  local ev = evaluator()\n"
    "  if not ev then return nil, 'tools/onnx_eval.py not found (set MIMIC_ONNX_EVAL)' end\n"
    "  local fi, fo = tmp('.bin'), tmp('.bin')\n"
    "  write_bin(fi, x)\n"
    "  local py = os.getenv('MIMIC_PYTHON') or '/usr/bin/python3'\n"
    "  local q = function(s) return \"'\" .. s:gsub(\"'\", \"'\\\\''\") .. \"'\" end\n"
    "  local cmd = table.concat({ q(py), q(ev), q(onnx_path), q(fi), q(fo) }, ' ') .. ' >/dev/null 2>&1'\n"
    "  local ok = os.execute(cmd)\n"
    "  os.remove(fi)\n"
    "  local h = ok and io.open(fo, 'rb')\n"
    "  local s = h and h:read('a'); if h then h:close() end\n"
    "  os.remove(fo)\n"
    "  if not s or #s == 0 or #s % (8 * x:size(1)) ~= 0 then return nil, py .. ' with python3-onnx and python3-numpy could not evaluate it' end\n"
    "  local n, w, t, at = x:size(1), #s // (8 * x:size(1)), {}, 1\n"
    "  for i = 1, n do local r = {}; for j = 1, w do r[j], at = string.unpack('<d', s, at) end; t[i] = r end\n"
    "  return mimic.tensor(t, 'float64')\n"
    "end\n"
    "function M.convert(fin, fout, o)\n"
    "  o = o or {}\n"
    "  if type(fin) ~= 'string' or type(fout) ~= 'string' then fail('mimic.onnx.convert(in, out): two paths') end\n"
    "  local say = o.quiet and function() end or print\n"
    "  local onnx_in = fin:lower():match('%.onnx$') ~= nil\n"
    "  local onnx_path, mfile, hash\n"
    "  if onnx_in then\n"
    "    if fout:lower():match('%.onnx$') then fail('convert: ' .. fout .. ': the output of an ONNX import is a mimic model file (.h5)') end\n"
    "    hash = C._import(fin, fout); onnx_path, mfile = fin, fout\n"
    "    say(string.format('converted %s (ONNX) -> %s (mimic model file, %s)', fin, fout, hash))\n"
    "  else\n"
    "    if not fout:lower():match('%.onnx$') then fail('convert: one side must be an .onnx file (ONNX -> mimic, or a mimic model file -> .onnx)') end\n"
    "    C._export(fin, fout); onnx_path, mfile = fout, fin\n"
    "    say(string.format('converted %s (mimic model file) -> %s (ONNX opset %d)', fin, fout, C.opset))\n"
    "  end\n"
    "  local m = mimic.load_model(mfile)\n"
    "  local n = o.samples or 64\n"
    "  mimic.manual_seed(20261126)\n"
    "  local x = mimic.rand(n, m.nin, 'float64') + 0.5\n"
    "  local ym = m:forward(x)\n"
    "  local yr, why = M.reference(onnx_path, x)\n"
    "  local rep = { samples = n, hash = hash, mimic = ym }\n"
    "  if yr and yr:size(2) == ym:size(2) then\n"
    "    rep.max_diff = (ym - yr):abs():max():item()\n"
    "    rep.max_ref = yr:abs():max():item()\n"
    "    say(string.format('verified on %d samples (inputs uniform in [0.5, 1.5)): max |mimic - ONNX reference| = %.3g (max |y| = %.3g; reference: tools/onnx_eval.py, NumPy float64)', n, rep.max_diff, rep.max_ref))\n"
    "  else\n"
    "    rep.unverified = why or 'output widths differ'\n"
    "    say('not verified: ' .. rep.unverified)\n"
    "  end\n"
    "  return rep\n"
    "end\n"
    "return M\n";

void lmimic_open_onnx(lua_State *L, int mod, int methods)
{
    (void)methods;
    luaL_newmetatable(L, "mimic.OnnxScratch");
    lua_pushcfunction(L, obox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    if (luaL_loadbuffer(L, onnx_lua, sizeof onnx_lua - 1, "=mimic.onnx") != LUA_OK)
        lua_error(L);
    lua_pushvalue(L, mod);
    lua_newtable(L);
    lua_pushcfunction(L, l_import);
    lua_setfield(L, -2, "_import");
    lua_pushcfunction(L, l_export);
    lua_setfield(L, -2, "_export");
    lua_pushinteger(L, MIMIC_ONNX_OPSET_EXPORT);
    lua_setfield(L, -2, "opset");
    lua_call(L, 2, 1);
    lua_setfield(L, mod, "onnx");
}
