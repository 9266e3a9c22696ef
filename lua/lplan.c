/* Compiled inference plans in Lua (core/include/mimic/model.h).
 *
 *   mimic.compile_layers(records, nin [, {dtype =, chunk =, deterministic =}]) -> Plan
 *   plan:forward(x)            x [n, nin] (or [nin]) of the plan's dtype -> new tensor
 *   plan:set_deterministic(on), plan:nin(), plan:nout(), plan:dtype(), plan:chunk(),
 *   plan:workspace_bytes(), plan:weight_bytes()
 *
 * records is the flat layer list that lua/mimic/plan.lua makes from an
 * nn.Sequential: {type = "dense", weight = W [out, in], bias = b | nil},
 * {type = <activation name>, p0 =, p1 =}, {type = "layernorm", eps =, weight =,
 * bias =}, {type = "batchnorm1d", eps =, mean =, var =, weight =, bias =},
 * {type = "residual_begin"}, {type = "residual_end"}, {type = "conv" | "max_pool" |
 * "avg_pool", ndim =, in_channels =, out_channels =, groups =, size =, kernel =,
 * stride =, padding =, dilation = (tables of ndim integers), circular = (conv:
 * circular padding; avg_pool: count_include_pad), weight =, bias =},
 * {type = "global_avg_pool" | "global_max_pool", channels =}, {type = "flatten"},
 * {type = "upsample", ndim =, in_channels =, size =, stride = (the integer factors)},
 * {type = "upsample_linear", (as upsample), circular = align_corners},
 * {type = "conv_transpose", (as conv), output_padding =} (weight [in, out/groups, k...]),
 * {type = "rnn_tanh" | "rnn_relu" | "lstm" | "gru", seq_len =, input_size =, hidden_size =,
 * weight_ih =, weight_hh =, bias_ih =, bias_hh =}, {type = "last_step", seq_len =}. Weights are converted to
 * the plan's dtype and copied: the plan is a snapshot. */
#include "lmimic.h"

#include "mimic/model.h"

#include <string.h>

#define PLAN_META "mimic.Plan"
#define MODEL_META "mimic.ModelBuilder"

typedef struct mbox { mimic_model *m; } mbox;
typedef struct pbox { mimic_plan *p; } pbox;

static int mbox_gc(lua_State *L)
{
    mbox *b = luaL_checkudata(L, 1, MODEL_META);
    mimic_model_free(b->m);
    b->m = NULL;
    return 0;
}

static int pbox_gc(lua_State *L)
{
    pbox *b = luaL_checkudata(L, 1, PLAN_META);
    mimic_plan_free(b->p);
    b->p = NULL;
    return 0;
}

static mimic_plan *checkplan(lua_State *L)
{
    pbox *b = luaL_checkudata(L, 1, PLAN_META);
    return b->p;
}

/* Field `name` of the record at index rec as a contiguous tensor of dtype dt
 * with `count` elements, pushed on the stack (kept alive there); NULL if the
 * field is nil and optional. Errors start with `what`. */
static const void *weight_field(lua_State *L, const char *what, int rec, int i, const char *name, mimic_dtype dt,
                                int64_t count, bool optional)
{
    lua_getfield(L, rec, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        if (!optional)
            luaL_error(L, "%s: layer %d: '%s' is missing", what, i, name);
        return NULL;
    }
    mimic_tensor *t = lmimic_totensor(L, -1);
    if (!t)
        luaL_error(L, "%s: layer %d: '%s' must be a tensor", what, i, name);
    if (mimic_numel(t) != count)
        luaL_error(L, "%s: layer %d: '%s' has %d elements, expected %d", what, i, name, (int)mimic_numel(t),
                   (int)count);
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = t->dtype == dt ? mimic_contiguous(t) : mimic_to_dtype(t, dt);
    lmimic_checkresult(L, slot);
    lua_remove(L, -2);
    return mimic_data(*slot);
}

static double num_field(lua_State *L, int rec, const char *name, double def)
{
    lua_getfield(L, rec, name);
    double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static int64_t int_field(lua_State *L, int rec, const char *name, int64_t def)
{
    lua_getfield(L, rec, name);
    int64_t v = lua_isnil(L, -1) ? def : (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A spatial record's geometry: {ndim =, in_channels =, out_channels =, groups =,
 * size = {..}, kernel = {..}, stride = {..}, padding = {..}, dilation = {..}, circular =}. */
static void geom_field(lua_State *L, int rec, mimic_spatial *g)
{
    memset(g, 0, sizeof *g);
    g->ndim = (int)int_field(L, rec, "ndim", 0);
    if (g->ndim < 1 || g->ndim > 3)
        luaL_error(L, "spatial record: ndim must be 1..3");
    g->in_channels = int_field(L, rec, "in_channels", 0);
    g->out_channels = int_field(L, rec, "out_channels", g->in_channels);
    g->groups = int_field(L, rec, "groups", 1);
    static const char *const names[] = {"size", "kernel", "stride", "padding", "dilation", "output_padding"};
    int64_t *dst[] = {g->size, g->kernel, g->stride, g->padding, g->dilation, g->output_padding};
    static const int64_t def[] = {0, 0, 1, 0, 1, 0};
    for (int k = 0; k < 6; k++) {
        lua_getfield(L, rec, names[k]);
        for (int d = 0; d < g->ndim; d++) {
            if (lua_istable(L, -1)) {
                lua_geti(L, -1, d + 1);
                dst[k][d] = (int64_t)luaL_checkinteger(L, -1);
                lua_pop(L, 1);
            } else
                dst[k][d] = lua_isnil(L, -1) ? def[k] : (int64_t)luaL_checkinteger(L, -1);
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, rec, "circular");
    g->circular = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

mimic_model *lmimic_build_model(lua_State *L, int idx_records, lua_Integer nin, mimic_dtype dt, const char *what)
{
    idx_records = lua_absindex(L, idx_records);
    luaL_checktype(L, idx_records, LUA_TTABLE);
    mbox *mb = lua_newuserdatauv(L, sizeof *mb, 0);
    mb->m = NULL;
    luaL_setmetatable(L, MODEL_META);
    if (!(mb->m = mimic_model_new(dt, nin)))
        lmimic_error(L);
    mimic_model *m = mb->m;
    lua_Integer n = luaL_len(L, idx_records);
    for (lua_Integer i = 1; i <= n; i++) {
        int top = lua_gettop(L);
        lua_geti(L, idx_records, i);
        int rec = lua_gettop(L);
        luaL_checktype(L, rec, LUA_TTABLE);
        lua_getfield(L, rec, "type");
        const char *type = luaL_checkstring(L, -1);
        int64_t w = mimic_model_nout(m);
        int act = mimic_activation_parse(type), rc;
        if (strcmp(type, "dense") == 0) {
            lua_getfield(L, rec, "weight");
            mimic_tensor *W = lmimic_totensor(L, -1);
            if (!W || W->ndim != 2 || W->shape[1] != w)
                luaL_error(L, "%s: layer %d: dense weight must be [out, %d]", what, (int)i, (int)w);
            int64_t out = W->shape[0];
            const void *wp = weight_field(L, what, rec, (int)i, "weight", dt, out * w, false);
            const void *bp = weight_field(L, what, rec, (int)i, "bias", dt, out, true);
            rc = mimic_model_add_dense(m, out, wp, bp);
        } else if (act >= 0) {
            rc = mimic_model_add_activation(m, (mimic_activation)act, num_field(L, rec, "p0", 0), num_field(L, rec, "p1", 0));
        } else if (strcmp(type, "layernorm") == 0) {
            const void *g = weight_field(L, what, rec, (int)i, "weight", dt, w, true);
            const void *b = weight_field(L, what, rec, (int)i, "bias", dt, w, true);
            rc = mimic_model_add_layernorm(m, num_field(L, rec, "eps", 1e-5), g, b);
        } else if (strcmp(type, "batchnorm1d") == 0) {
            const void *mean = weight_field(L, what, rec, (int)i, "mean", dt, w, false);
            const void *var = weight_field(L, what, rec, (int)i, "var", dt, w, false);
            const void *g = weight_field(L, what, rec, (int)i, "weight", dt, w, true);
            const void *b = weight_field(L, what, rec, (int)i, "bias", dt, w, true);
            rc = mimic_model_add_batchnorm(m, num_field(L, rec, "eps", 1e-5), mean, var, g, b);
        } else if (strcmp(type, "conv") == 0) {
            mimic_spatial g;
            geom_field(L, rec, &g);
            int64_t kv = g.kernel[0] * (g.ndim > 1 ? g.kernel[1] : 1) * (g.ndim > 2 ? g.kernel[2] : 1);
            int64_t cnt = g.groups > 0 ? g.out_channels * (g.in_channels / g.groups) * kv : 0;
            const void *wp = weight_field(L, what, rec, (int)i, "weight", dt, cnt, false);
            const void *bp = weight_field(L, what, rec, (int)i, "bias", dt, g.out_channels, true);
            rc = mimic_model_add_conv(m, &g, wp, bp);
        } else if (strcmp(type, "max_pool") == 0 || strcmp(type, "avg_pool") == 0) {
            mimic_spatial g;
            geom_field(L, rec, &g);
            rc = mimic_model_add_pool(m, type[0] == 'm', &g);
        } else if (strcmp(type, "global_max_pool") == 0 || strcmp(type, "global_avg_pool") == 0) {
            rc = mimic_model_add_global_pool(m, type[7] == 'm', int_field(L, rec, "channels", 0));
        } else if (strcmp(type, "upsample") == 0) {
            mimic_spatial g;
            geom_field(L, rec, &g);
            rc = mimic_model_add_upsample(m, &g);
        } else if (strcmp(type, "upsample_linear") == 0) {
            mimic_spatial g;
            geom_field(L, rec, &g);
            rc = mimic_model_add_upsample_linear(m, &g);
        } else if (strcmp(type, "conv_transpose") == 0) {
            mimic_spatial g;
            geom_field(L, rec, &g);
            int64_t kv = g.kernel[0] * (g.ndim > 1 ? g.kernel[1] : 1) * (g.ndim > 2 ? g.kernel[2] : 1);
            int64_t cnt = g.groups > 0 ? g.in_channels * (g.out_channels / g.groups) * kv : 0;
            const void *wp = weight_field(L, what, rec, (int)i, "weight", dt, cnt, false);
            const void *bp = weight_field(L, what, rec, (int)i, "bias", dt, g.out_channels, true);
            rc = mimic_model_add_conv_transpose(m, &g, wp, bp);
        } else if (mimic_cell_parse(type) >= 0) {
            mimic_recurrent r = {.cell = mimic_cell_parse(type), .seq_len = int_field(L, rec, "seq_len", 0),
                                 .input_size = int_field(L, rec, "input_size", 0),
                                 .hidden_size = int_field(L, rec, "hidden_size", 0)};
            int64_t GH = (r.cell == MIMIC_CELL_LSTM ? 4 : r.cell == MIMIC_CELL_GRU ? 3 : 1) * r.hidden_size;
            if (r.input_size < 1 || r.hidden_size < 1)
                luaL_error(L, "%s: layer %d: input_size and hidden_size must be >= 1", what, (int)i);
            const void *wi = weight_field(L, what, rec, (int)i, "weight_ih", dt, GH * r.input_size, false);
            const void *wh = weight_field(L, what, rec, (int)i, "weight_hh", dt, GH * r.hidden_size, false);
            const void *bi = weight_field(L, what, rec, (int)i, "bias_ih", dt, GH, true);
            const void *bh = weight_field(L, what, rec, (int)i, "bias_hh", dt, GH, true);
            rc = mimic_model_add_recurrent(m, &r, wi, wh, bi, bh);
        } else if (strcmp(type, "last_step") == 0) {
            rc = mimic_model_add_last_step(m, int_field(L, rec, "seq_len", 0));
        } else if (strcmp(type, "flatten") == 0) {
            rc = mimic_model_add_flatten(m);
        } else if (strcmp(type, "residual_begin") == 0) {
            rc = mimic_model_begin_residual(m);
        } else if (strcmp(type, "residual_end") == 0) {
            rc = mimic_model_end_residual(m);
        } else {
            luaL_error(L, "%s: layer %d: unknown layer type '%s'", what, (int)i, type);
            return NULL;
        }
        if (rc)
            lmimic_error(L);
        lua_settop(L, top);
    }
    return m;
}

void lmimic_free_model(lua_State *L, int idx)
{
    mbox *b = luaL_checkudata(L, idx, MODEL_META);
    mimic_model_free(b->m);
    b->m = NULL;
}

static int l_compile_layers(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer nin = luaL_checkinteger(L, 2);
    mimic_dtype dt = MIMIC_F32;
    lua_Integer chunk = 0;
    bool det = false;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "dtype");
        dt = lmimic_optdtype(L, lua_gettop(L), MIMIC_F32);
        lua_getfield(L, 3, "chunk");
        chunk = luaL_optinteger(L, -1, 0);
        lua_getfield(L, 3, "deterministic");
        det = lua_toboolean(L, -1);
        lua_pop(L, 3);
    }
    mimic_model *m = lmimic_build_model(L, 1, nin, dt, "compile");
    int mbi = lua_gettop(L);
    pbox *pb = lua_newuserdatauv(L, sizeof *pb, 0);
    pb->p = NULL;
    luaL_setmetatable(L, PLAN_META);
    if (!(pb->p = mimic_plan_new(m, chunk)))
        return lmimic_error(L);
    if (mimic_plan_set_deterministic(pb->p, det))
        return lmimic_error(L);
    lmimic_free_model(L, mbi); /* the plan copied what it needs */
    return 1;
}

static int l_forward(lua_State *L)
{
    mimic_plan *p = checkplan(L);
    mimic_tensor *x = lmimic_checktensor(L, 2);
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_plan_forward(p, x);
    lmimic_checkresult(L, slot);
    return 1;
}

static int l_set_deterministic(lua_State *L)
{
    mimic_plan *p = checkplan(L);
    if (mimic_plan_set_deterministic(p, lua_toboolean(L, 2)))
        return lmimic_error(L);
    lua_settop(L, 1);
    return 1;
}

static int l_nin(lua_State *L) { lua_pushinteger(L, mimic_plan_nin(checkplan(L))); return 1; }
static int l_nout(lua_State *L) { lua_pushinteger(L, mimic_plan_nout(checkplan(L))); return 1; }
static int l_chunk(lua_State *L) { lua_pushinteger(L, mimic_plan_chunk(checkplan(L))); return 1; }
static int l_dtype(lua_State *L) { lua_pushstring(L, mimic_dtype_name(mimic_plan_dtype(checkplan(L)))); return 1; }
static int l_workspace(lua_State *L) { lua_pushinteger(L, (lua_Integer)mimic_plan_workspace_bytes(checkplan(L))); return 1; }
static int l_weights(lua_State *L) { lua_pushinteger(L, (lua_Integer)mimic_plan_weight_bytes(checkplan(L))); return 1; }

static int l_tostring(lua_State *L)
{
    mimic_plan *p = checkplan(L);
    lua_pushfstring(L, "Plan(%d -> %d, %s, chunk %d)", (int)mimic_plan_nin(p), (int)mimic_plan_nout(p),
                    mimic_dtype_name(mimic_plan_dtype(p)), (int)mimic_plan_chunk(p));
    return 1;
}

void lmimic_open_plan(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg plan_methods[] = {
        {"forward", l_forward}, {"set_deterministic", l_set_deterministic}, {"nin", l_nin}, {"nout", l_nout},
        {"chunk", l_chunk}, {"dtype", l_dtype}, {"workspace_bytes", l_workspace}, {"weight_bytes", l_weights},
        {NULL, NULL}};
    luaL_newmetatable(L, MODEL_META);
    lua_pushcfunction(L, mbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, PLAN_META);
    lua_pushcfunction(L, pbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, plan_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_compile_layers);
    lua_setfield(L, mod, "compile_layers");
}
