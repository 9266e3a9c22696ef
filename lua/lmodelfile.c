/* Model files in Lua (core/include/mimic/modelfile.h); the Lua side is
 * lua/mimic/modelfile.lua (model:save, mimic.load_model).
 *
 *   mimic._save_model(path, records, nin, dtype, inputs, outputs, in_enc, out_enc, meta)
 *       records: the flat layer list of plan.records (lua/mimic/plan.lua), built
 *       by lmimic_build_model (lua/lplan.c); inputs/outputs: lists of
 *       {name =, units =, size =}; in_enc/out_enc: encoder:state() tables or
 *       nil; meta: {key = string | number | integer}. Returns the hash.
 *   mimic._load_model(path) -> handle, contract, meta, hash, dtype
 *   handle:forward(x)  x [n, nin] or [nin] (float32/float64, raw) -> raw [n, nout] in float64
 *   handle:bind(which, names [, sizes])  0 inputs / 1 outputs: mimic_contract_bind
 *
 * The handle owns the model, its plan and the file's info; __gc frees them. */
#include "lmimic.h"

#include "mimic/modelfile.h"

#include <string.h>

#define HANDLE_META "mimic.ModelFile"

typedef struct hbox {
    mimic_model *m;
    mimic_plan *p;
    mimic_model_info *info;
} hbox;

/* Scratch memory the save path needs until the call ends: a userdata on the
 * stack holding pointers freed by its __gc, so a Lua error cannot leak. */
#define SCRATCH_META "mimic.ModelFileScratch"
#define SCRATCH_MAX 256
typedef struct scratch {
    int n;
    void *p[SCRATCH_MAX];
} scratch;

static int scratch_gc(lua_State *L)
{
    scratch *s = luaL_checkudata(L, 1, SCRATCH_META);
    for (int i = 0; i < s->n; i++)
        mimic_free(s->p[i]);
    s->n = 0;
    return 0;
}

static void *scratch_alloc(lua_State *L, scratch *s, size_t bytes)
{
    if (s->n == SCRATCH_MAX)
        luaL_error(L, "save: too many encoder stages or variables");
    void *p = mimic_calloc(1, bytes ? bytes : 1);
    if (!p)
        lmimic_error(L);
    s->p[s->n++] = p;
    return p;
}

static int hbox_gc(lua_State *L)
{
    hbox *b = luaL_checkudata(L, 1, HANDLE_META);
    mimic_plan_free(b->p);
    mimic_model_free(b->m);
    mimic_model_info_free(b->info);
    b->p = NULL, b->m = NULL, b->info = NULL;
    return 0;
}

static double num_field(lua_State *L, int rec, const char *name, double def)
{
    lua_getfield(L, rec, name);
    double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static const char *str_field(lua_State *L, int t, const char *k, const char *def, const char *what, int i)
{
    lua_getfield(L, t, k);
    const char *s = lua_isnil(L, -1) && def ? def : lua_tostring(L, -1);
    if (!s || (lua_type(L, -1) != LUA_TSTRING && !(lua_isnil(L, -1) && def)))
        luaL_error(L, "save: %s %d: '%s' must be a string", what, i, k);
    lua_pop(L, 1); /* the string stays alive in the table it came from */
    return s;
}

static void read_vars(lua_State *L, scratch *s, int idx, const char *what, mimic_io_var **out, int *n)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer k = luaL_len(L, idx);
    if (k < 1 || k > 4096)
        luaL_error(L, "save: %s: give a list of 1..4096 {name =, units =, size =}", what);
    mimic_io_var *v = scratch_alloc(L, s, (size_t)k * sizeof *v);
    for (lua_Integer i = 1; i <= k; i++) {
        lua_geti(L, idx, i);
        int t = lua_gettop(L);
        luaL_checktype(L, t, LUA_TTABLE);
        v[i - 1].name = str_field(L, t, "name", NULL, what, (int)i);
        v[i - 1].units = str_field(L, t, "units", "", what, (int)i);
        v[i - 1].size = (int64_t)num_field(L, t, "size", 1);
        lua_pop(L, 1);
    }
    *out = v;
    *n = (int)k;
}

/* One stage from an encoder:state() table at idx. */
static void read_stage(lua_State *L, scratch *s, int idx, mimic_enc_stage *st)
{
    lua_getfield(L, idx, "kind");
    const char *kind = lua_tostring(L, -1);
    int k = mimic_enc_kind_parse(kind);
    if (k < 0)
        luaL_error(L, "save: encoder kind '%s' has no file form (standard, minmax, log, signed_log, identity)",
                   kind ? kind : "?");
    lua_pop(L, 1);
    st->kind = (mimic_enc_kind)k;
    st->offset = num_field(L, idx, "offset", 0);
    st->scale = num_field(L, idx, "scale", 1);
    if (k == MIMIC_ENC_STANDARD || k == MIMIC_ENC_MINMAX) {
        const char *an = k == MIMIC_ENC_STANDARD ? "mean" : "min", *bn = k == MIMIC_ENC_STANDARD ? "std" : "range";
        double *ab[2] = {NULL, NULL};
        const char *nm[2] = {an, bn};
        for (int j = 0; j < 2; j++) {
            lua_getfield(L, idx, nm[j]);
            mimic_tensor *t = lmimic_totensor(L, -1);
            if (!t)
                luaL_error(L, "save: %s encoder: '%s' must be a tensor (fit the encoder first)", kind, nm[j]);
            st->n = mimic_numel(t);
            ab[j] = scratch_alloc(L, s, (size_t)st->n * sizeof(double)); /* may raise: before d exists */
            mimic_tensor *d = mimic_to_dtype(t, MIMIC_F64);
            if (!d)
                lmimic_error(L);
            memcpy(ab[j], mimic_data(d), (size_t)st->n * sizeof(double));
            mimic_tensor_free(d);
            lua_pop(L, 1);
        }
        st->a = ab[0], st->b = ab[1];
    }
}

/* An encoder state (a stage or {kind = "chain", stage1, stage2, ...}) or nil. */
static void read_encoder(lua_State *L, scratch *s, int idx, mimic_encoder *e)
{
    e->nstages = 0, e->stages = NULL;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "kind");
    bool chain = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), "chain") == 0;
    lua_pop(L, 1);
    int n = chain ? (int)luaL_len(L, idx) : 1;
    if (n < 0 || n > 16)
        luaL_error(L, "save: an encoder chain has 0..16 stages");
    mimic_enc_stage *st = scratch_alloc(L, s, (size_t)(n ? n : 1) * sizeof *st);
    for (int i = 0; i < n; i++) {
        if (chain) {
            lua_geti(L, idx, i + 1);
            luaL_checktype(L, -1, LUA_TTABLE);
            read_stage(L, s, lua_gettop(L), &st[i]);
            lua_pop(L, 1);
        } else {
            read_stage(L, s, idx, &st[i]);
        }
    }
    e->nstages = n, e->stages = st;
}

static int l_save_model(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer nin = luaL_checkinteger(L, 3);
    mimic_dtype dt = lmimic_optdtype(L, 4, MIMIC_F32);
    scratch *s = lua_newuserdatauv(L, sizeof *s, 0);
    s->n = 0;
    luaL_setmetatable(L, SCRATCH_META);
    mimic_model *m = lmimic_build_model(L, 2, nin, dt, "save");
    mimic_contract c;
    read_vars(L, s, 5, "inputs", (mimic_io_var **)&c.inputs, &c.ninputs);
    read_vars(L, s, 6, "outputs", (mimic_io_var **)&c.outputs, &c.noutputs);
    mimic_encoder ie, oe;
    read_encoder(L, s, 7, &ie);
    read_encoder(L, s, 8, &oe);
    mimic_meta meta = {0, NULL};
    if (!lua_isnoneornil(L, 9)) {
        luaL_checktype(L, 9, LUA_TTABLE);
        int count = 0;
        lua_pushnil(L);
        while (lua_next(L, 9)) {
            count++;
            lua_pop(L, 1);
        }
        mimic_meta_entry *me = scratch_alloc(L, s, (size_t)(count ? count : 1) * sizeof *me);
        lua_pushnil(L);
        while (lua_next(L, 9)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "save: meta keys must be strings");
            mimic_meta_entry *e = &me[meta.n++];
            e->key = lua_tostring(L, -2);
            if (lua_isinteger(L, -1))
                e->kind = MIMIC_META_INT, e->i = lua_tointeger(L, -1);
            else if (lua_type(L, -1) == LUA_TNUMBER)
                e->kind = MIMIC_META_NUMBER, e->d = lua_tonumber(L, -1);
            else if (lua_type(L, -1) == LUA_TSTRING)
                e->kind = MIMIC_META_STRING, e->s = lua_tostring(L, -1);
            else if (lua_type(L, -1) == LUA_TBOOLEAN)
                e->kind = MIMIC_META_INT, e->i = lua_toboolean(L, -1);
            else
                return luaL_error(L, "save: meta '%s' must be a string or a number, got %s", e->key,
                                  luaL_typename(L, -1));
            lua_pop(L, 1);
        }
        meta.entries = me;
    }
    if (mimic_model_save(path, m, &c, &ie, &oe, &meta))
        return lmimic_error(L);
    char h[72];
    if (mimic_model_hash(m, &c, &ie, &oe, h))
        return lmimic_error(L);
    lua_pushstring(L, h);
    return 1;
}

static void push_stage_table(lua_State *L, const mimic_enc_stage *st)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, mimic_enc_kind_name(st->kind));
    lua_setfield(L, -2, "kind");
    if (st->kind == MIMIC_ENC_LOG) {
        lua_pushnumber(L, st->offset);
        lua_setfield(L, -2, "offset");
    } else if (st->kind == MIMIC_ENC_SIGNED_LOG) {
        lua_pushnumber(L, st->scale);
        lua_setfield(L, -2, "scale");
    } else if (st->kind == MIMIC_ENC_STANDARD || st->kind == MIMIC_ENC_MINMAX) {
        lua_pushboolean(L, st->n != 1);
        lua_setfield(L, -2, "per_feature");
        const double *v[2] = {st->a, st->b};
        const char *nm[2][2] = {{"mean", "std"}, {"min", "range"}};
        for (int j = 0; j < 2; j++) {
            mimic_tensor **slot = lmimic_newtensor(L);
            *slot = mimic_empty(1, &st->n, MIMIC_F64);
            lmimic_checkresult(L, slot);
            memcpy(mimic_data(*slot), v[j], (size_t)st->n * sizeof(double));
            lua_setfield(L, -2, nm[st->kind == MIMIC_ENC_MINMAX][j]);
        }
    }
}

static void push_vars(lua_State *L, const mimic_io_var *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, v[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, v[i].units);
        lua_setfield(L, -2, "units");
        lua_pushinteger(L, v[i].size);
        lua_setfield(L, -2, "size");
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_load_model(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    hbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->m = NULL, b->p = NULL, b->info = NULL;
    luaL_setmetatable(L, HANDLE_META);
    if (!(b->m = mimic_model_load(path, &b->info)) || !(b->p = mimic_plan_new(b->m, 0)))
        return lmimic_error(L);
    const mimic_model_info *I = b->info;
    /* contract = {inputs = {...}, outputs = {...}, batch_axis = 1, encoders = {input = {...}, output = {...}}} */
    lua_createtable(L, 0, 4);
    push_vars(L, I->contract.inputs, I->contract.ninputs);
    lua_setfield(L, -2, "inputs");
    push_vars(L, I->contract.outputs, I->contract.noutputs);
    lua_setfield(L, -2, "outputs");
    lua_pushinteger(L, 1); /* Lua dims are 1-based: rows (samples) are dim 1 */
    lua_setfield(L, -2, "batch_axis");
    lua_createtable(L, 0, 2);
    const mimic_encoder *encs[2] = {&I->input_encoder, &I->output_encoder};
    const char *side[2] = {"input", "output"};
    for (int k = 0; k < 2; k++) {
        lua_createtable(L, encs[k]->nstages, 1);
        if (encs[k]->nstages == 0) { /* data.chain refuses an empty list */
            lua_pushliteral(L, "identity");
            lua_setfield(L, -2, "kind");
            lua_setfield(L, -2, side[k]);
            continue;
        }
        lua_pushliteral(L, "chain");
        lua_setfield(L, -2, "kind");
        for (int i = 0; i < encs[k]->nstages; i++) {
            push_stage_table(L, &encs[k]->stages[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, side[k]);
    }
    lua_setfield(L, -2, "encoders");
    lua_createtable(L, 0, I->meta.n);
    for (int i = 0; i < I->meta.n; i++) {
        const mimic_meta_entry *e = &I->meta.entries[i];
        if (e->kind == MIMIC_META_STRING)
            lua_pushstring(L, e->s);
        else if (e->kind == MIMIC_META_INT)
            lua_pushinteger(L, e->i);
        else
            lua_pushnumber(L, e->d);
        lua_setfield(L, -2, e->key);
    }
    lua_pushstring(L, I->hash);
    lua_pushstring(L, mimic_dtype_name(mimic_model_dtype(b->m)));
    return 5;
}

static hbox *checkhandle(lua_State *L)
{
    hbox *b = luaL_checkudata(L, 1, HANDLE_META);
    if (!b->m)
        luaL_error(L, "model file handle is closed");
    return b;
}

/* Raw in -> encoders (double) -> plan (model dtype) -> decoders (double) -> raw out. */
static int l_forward(lua_State *L)
{
    hbox *b = checkhandle(L);
    mimic_tensor *x = lmimic_checktensor(L, 2);
    int64_t nin = mimic_model_nin(b->m), nout = mimic_model_nout(b->m);
    int64_t last = x->ndim ? x->shape[x->ndim - 1] : 0;
    if ((x->ndim != 1 && x->ndim != 2) || last != nin)
        return luaL_error(L, "forward: the model takes [n, %d] raw inputs (%d input features), got a %d-dim tensor "
                             "with %d in its last dim", (int)nin, (int)nin, x->ndim, (int)last);
    if (x->dtype != MIMIC_F32 && x->dtype != MIMIC_F64)
        return luaL_error(L, "forward: inputs must be float32 or float64, got %s", mimic_dtype_name(x->dtype));
    int64_t n = x->ndim == 2 ? x->shape[0] : 1;
    mimic_dtype dt = mimic_model_dtype(b->m);
    mimic_tensor **enc = lmimic_newtensor(L);
    *enc = mimic_to_dtype(x, MIMIC_F64); /* always a contiguous copy: encoded in place */
    lmimic_checkresult(L, enc);
    if (mimic_encoder_encode(&b->info->input_encoder, MIMIC_F64, mimic_data(*enc), n, nin))
        return lmimic_error(L);
    mimic_tensor **in = lmimic_newtensor(L);
    *in = mimic_to_dtype(*enc, dt);
    lmimic_checkresult(L, in);
    mimic_tensor **out = lmimic_newtensor(L);
    *out = mimic_plan_forward(b->p, *in);
    lmimic_checkresult(L, out);
    mimic_tensor **res = lmimic_newtensor(L);
    *res = mimic_to_dtype(*out, MIMIC_F64);
    lmimic_checkresult(L, res);
    if (mimic_encoder_decode(&b->info->output_encoder, MIMIC_F64, mimic_data(*res), n, nout))
        return lmimic_error(L);
    return 1;
}

/* handle:bind(which, names [, sizes]) with which 0 (inputs) or 1 (outputs). */
static int l_bind(lua_State *L)
{
    hbox *b = checkhandle(L);
    int which = (int)luaL_checkinteger(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 3);
    if (n > 4096)
        return luaL_error(L, "bind: too many names");
    const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
    int64_t *sizes = lua_istable(L, 4) ? lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *sizes, 0) : NULL;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 3, i);
        names[i - 1] = luaL_checkstring(L, -1); /* alive: held by the table */
        lua_pop(L, 1);
        if (sizes) {
            lua_geti(L, 4, i);
            sizes[i - 1] = (int64_t)luaL_optinteger(L, -1, -1);
            lua_pop(L, 1);
        }
    }
    if (mimic_contract_bind(&b->info->contract, which, names, sizes, (int)n))
        return lmimic_error(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* mimic.load_model(path): the Lua object of lua/mimic/modelfile.lua. */
static int l_load_model_pub(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mimic.modelfile");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "load");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
}

/* mimic.sha256_file(path) -> 64 hex digits: a data file's fingerprint. */
static int l_sha256_file(lua_State *L)
{
    char hex[65];
    if (mimic_sha256_file(luaL_checkstring(L, 1), hex))
        return lmimic_error(L);
    lua_pushstring(L, hex);
    return 1;
}

void lmimic_open_modelfile(lua_State *L, int mod, int methods)
{
    (void)methods;
    luaL_newmetatable(L, SCRATCH_META);
    lua_pushcfunction(L, scratch_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    static const luaL_Reg hmethods[] = {{"forward", l_forward}, {"bind", l_bind}, {NULL, NULL}};
    luaL_newmetatable(L, HANDLE_META);
    lua_pushcfunction(L, hbox_gc);
    lua_setfield(L, -2, "__gc");
    luaL_newlib(L, hmethods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_save_model);
    lua_setfield(L, mod, "_save_model");
    lua_pushcfunction(L, l_load_model);
    lua_setfield(L, mod, "_load_model");
    lua_pushcfunction(L, l_sha256_file);
    lua_setfield(L, mod, "sha256_file");
    lua_pushcfunction(L, l_load_model_pub);
    lua_setfield(L, mod, "load_model");
}
