/* The compiled training step in Lua (core/include/mimic/trainstep.h).
 *
 *   mimic.trainstep(layers, nin, flat_params, flat_grads, max_batch) -> TrainStep
 *   ts:set_loss(name [, delta [, sum]])   name "mse", "l1" or "huber"
 *   ts:step(x, y, opt) -> loss            one optimizer step (see below)
 *   ts:gradients(x, y) -> loss            forward, loss, gradients; no update
 *   ts:set_threads(n)                     0: chosen by timing (default), 1 or 2
 *   ts:nin(), ts:nout(), ts:max_batch()
 *
 * layers: {type = "dense", out =, bias = true|false} and {type = <activation>,
 * p0 =, p1 =} records. flat_params/flat_grads: an optimizer's flat buffers
 * (mimic.flatten_parameters), which the step keeps alive.
 *
 * ts:step(x, y, opt): opt is a mimic.optim Adam, AdamW or SGD object; its
 * options are read at each call (so schedules and changes between steps
 * apply), its state tensors are updated in place (created as zeros when
 * missing, as the Lua update does) and opt.state.step is incremented. A
 * non-finite loss is returned without any update (the caller raises). */
#include "lmimic.h"

#include "mimic/trainstep.h"

#include <math.h>
#include <string.h>

#define TS_META "mimic.TrainStep"

typedef struct tsbox { mimic_trainstep *ts; } tsbox;

static int tsbox_gc(lua_State *L)
{
    tsbox *b = luaL_checkudata(L, 1, TS_META);
    mimic_trainstep_free(b->ts);
    b->ts = NULL;
    return 0;
}

static mimic_trainstep *checkts(lua_State *L)
{
    tsbox *b = luaL_checkudata(L, 1, TS_META);
    if (!b->ts)
        luaL_error(L, "TrainStep: already freed");
    return b->ts;
}

static int l_trainstep(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer nin = luaL_checkinteger(L, 2);
    mimic_tensor *fp = lmimic_checktensor(L, 3), *fg = lmimic_checktensor(L, 4);
    lua_Integer maxb = luaL_checkinteger(L, 5);
    int n = (int)luaL_len(L, 1);
    if (n < 1 || n > 4096)
        return luaL_argerror(L, 1, "expected a list of 1 to 4096 layer records");
    mimic_trainstep_layer *ls = lua_newuserdatauv(L, (size_t)n * sizeof *ls, 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        int rec = lua_gettop(L);
        if (!lua_istable(L, rec))
            return luaL_error(L, "trainstep: layer %d is a %s, expected a table", i + 1, luaL_typename(L, rec));
        lua_getfield(L, rec, "type");
        ls[i].type = lua_tostring(L, -1); /* kept alive by the record, which the list holds */
        if (!ls[i].type)
            return luaL_error(L, "trainstep: layer %d has no type", i + 1);
        lua_getfield(L, rec, "out");
        ls[i].out = lua_isnil(L, -1) ? 0 : (int64_t)luaL_checkinteger(L, -1);
        lua_getfield(L, rec, "bias");
        ls[i].bias = lua_toboolean(L, -1);
        lua_getfield(L, rec, "p0");
        ls[i].p0 = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
        lua_getfield(L, rec, "p1");
        ls[i].p1 = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
        lua_settop(L, rec - 1);
    }
    tsbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->ts = NULL;
    luaL_setmetatable(L, TS_META);
    b->ts = mimic_trainstep_new(fp->dtype, (int64_t)nin, ls, n, fp, fg, (int64_t)maxb);
    if (!b->ts)
        return lmimic_error(L);
    return 1;
}

static int l_set_loss(lua_State *L)
{
    mimic_trainstep *ts = checkts(L);
    static const char *const names[] = {"mse", "l1", "huber", NULL};
    int k = luaL_checkoption(L, 2, NULL, names);
    double delta = luaL_optnumber(L, 3, 1.0);
    bool sum = lua_toboolean(L, 4);
    mimic_trainstep_loss kinds[] = {MIMIC_LOSS_MSE, MIMIC_LOSS_L1, MIMIC_LOSS_HUBER};
    if (mimic_trainstep_set_loss(ts, kinds[k], delta, sum) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

/* The data of tensor arg as a contiguous [n, w] block of dt; a copy (left on
 * the stack) when it is not contiguous already. */
static const void *rows_of(lua_State *L, int arg, const char *what, mimic_dtype dt, int64_t w, int64_t *n)
{
    mimic_tensor *t = lmimic_checktensor(L, arg);
    if (t->dtype != dt || t->ndim != 2 || t->shape[1] != w) {
        char buf[96];
        luaL_error(L, "TrainStep: %s of shape %s and dtype %s; expected [n, %d] of %s", what,
                   mimic_shape_str(t->ndim, t->shape, buf, sizeof buf), mimic_dtype_name(t->dtype), (int)w,
                   mimic_dtype_name(dt));
    }
    *n = t->shape[0];
    if (mimic_is_contiguous(t))
        return mimic_data(t);
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_contiguous(t);
    lmimic_checkresult(L, slot);
    return mimic_data(*slot);
}

static double opt_num(lua_State *L, int idx, const char *k, double def)
{
    lua_getfield(L, idx, k);
    double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* state[k]: a tensor, created as zeros of n elements when missing (then *fresh). */
static mimic_tensor *state_tensor(lua_State *L, int st, const char *k, mimic_dtype dt, int64_t n, bool *fresh)
{
    lua_getfield(L, st, k);
    mimic_tensor *t = lmimic_totensor(L, -1);
    lua_pop(L, 1);
    if (fresh)
        *fresh = t == NULL;
    if (t)
        return t;
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_zeros(1, &n, dt);
    lmimic_checkresult(L, slot);
    t = *slot;
    lua_setfield(L, st, k); /* the state table keeps it alive */
    return t;
}

static int do_step(lua_State *L, bool with_update)
{
    mimic_trainstep *ts = checkts(L);
    int64_t n, ny;
    lua_settop(L, 4);
    mimic_dtype dt = mimic_trainstep_dtype(ts);
    const void *x = rows_of(L, 2, "x", dt, mimic_trainstep_nin(ts), &n);
    const void *y = rows_of(L, 3, "y", dt, mimic_trainstep_nout(ts), &ny);
    if (n != ny)
        return luaL_error(L, "TrainStep: x has %d rows but y has %d", (int)n, (int)ny);
    double loss;
    if (!with_update) {
        if (mimic_trainstep_step(ts, x, y, n, NULL, &loss) != MIMIC_OK)
            return lmimic_error(L);
        lua_pushnumber(L, loss);
        return 1;
    }
    luaL_checktype(L, 4, LUA_TTABLE);
    mimic_trainstep_optim o = {0};
    lua_getfield(L, 4, "__name");
    const char *name = lua_tostring(L, -1);
    if (name && strcmp(name, "Adam") == 0)
        o.kind = MIMIC_OPTIM_ADAM;
    else if (name && strcmp(name, "AdamW") == 0)
        o.kind = MIMIC_OPTIM_ADAMW;
    else if (name && strcmp(name, "SGD") == 0)
        o.kind = MIMIC_OPTIM_SGD;
    else
        return luaL_error(L, "TrainStep:step: the optimizer is %s; the compiled step runs mimic.optim Adam, AdamW "
                          "and SGD", name ? name : "not a mimic.optim object");
    lua_pop(L, 1);
    o.lr = opt_num(L, 4, "lr", -1);
    o.weight_decay = opt_num(L, 4, "weight_decay", 0);
    lua_getfield(L, 4, "state");
    int st = lua_gettop(L);
    luaL_checktype(L, st, LUA_TTABLE);
    lua_getfield(L, st, "step");
    lua_Integer step = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    int64_t np = mimic_trainstep_num_params(ts);
    if (o.kind == MIMIC_OPTIM_SGD) {
        o.momentum = opt_num(L, 4, "momentum", 0);
        o.dampening = opt_num(L, 4, "dampening", 0);
        lua_getfield(L, 4, "nesterov");
        o.nesterov = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (o.momentum != 0)
            o.momentum_buffer = state_tensor(L, st, "momentum_buffer", dt, np, &o.init_buffer);
    } else {
        lua_getfield(L, 4, "betas");
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        o.beta1 = luaL_checknumber(L, -2);
        o.beta2 = luaL_checknumber(L, -1);
        lua_pop(L, 3);
        o.eps = opt_num(L, 4, "eps", 1e-8);
        o.step = (int64_t)step + 1;
        o.exp_avg = state_tensor(L, st, "exp_avg", dt, np, NULL);
        o.exp_avg_sq = state_tensor(L, st, "exp_avg_sq", dt, np, NULL);
        lua_getfield(L, 4, "amsgrad");
        bool ams = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (ams)
            o.max_exp_avg_sq = state_tensor(L, st, "max_exp_avg_sq", dt, np, NULL);
    }
    if (mimic_trainstep_step(ts, x, y, n, &o, &loss) != MIMIC_OK)
        return lmimic_error(L);
    if (isfinite(loss)) {
        lua_pushinteger(L, step + 1);
        lua_setfield(L, st, "step");
    }
    lua_pushnumber(L, loss);
    return 1;
}

static int l_step(lua_State *L) { return do_step(L, true); }
static int l_gradients(lua_State *L) { return do_step(L, false); }

static int l_set_threads(lua_State *L)
{
    if (mimic_trainstep_set_threads(checkts(L), (int)luaL_checkinteger(L, 2)) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

static int l_nin(lua_State *L)
{
    lua_pushinteger(L, mimic_trainstep_nin(checkts(L)));
    return 1;
}
static int l_nout(lua_State *L)
{
    lua_pushinteger(L, mimic_trainstep_nout(checkts(L)));
    return 1;
}
static int l_max_batch(lua_State *L)
{
    lua_pushinteger(L, mimic_trainstep_max_batch(checkts(L)));
    return 1;
}

void lmimic_open_trainstep(lua_State *L, int mod, int methods);
void lmimic_open_trainstep(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg meths[] = {
        {"set_loss", l_set_loss}, {"step", l_step}, {"gradients", l_gradients}, {"nin", l_nin},
        {"nout", l_nout},         {"max_batch", l_max_batch}, {"set_threads", l_set_threads}, {NULL, NULL},
    };
    luaL_newmetatable(L, TS_META);
    lua_pushcfunction(L, tsbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L);
    luaL_setfuncs(L, meths, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_trainstep);
    lua_setfield(L, mod, "trainstep");
}
