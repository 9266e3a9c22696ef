/* The `mimic` Lua module: the module table, thread control, and the argument
 * helpers every binding file shares (errors, dims, shapes, dtypes). */
#include "lmimic.h"
#include "mimic/autograd.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int lmimic_error(lua_State *L)
{
    const char *msg = mimic_errmsg();
    return luaL_error(L, "%s", msg[0] ? msg : "mimic: operation failed without a message (a bug: please report it)");
}

int lmimic_return_self(lua_State *L, int rc)
{
    if (rc != MIMIC_OK)
        return lmimic_error(L);
    lua_settop(L, 1);
    return 1;
}

int lmimic_dim(lua_State *L, const char *fn, lua_Integer dim, int ndim)
{
    lua_Integer n = ndim ? ndim : 1;
    if (dim == 0 || dim < -n || dim > n)
        return luaL_error(L, "%s: dim %I out of range for a %d-dim tensor (dims are 1-based: valid 1..%I or -%I..-1)",
                          fn, dim, ndim, n, n);
    return (int)(dim < 0 ? dim + n : dim - 1);
}

int lmimic_checkdim(lua_State *L, int arg, int ndim)
{
    lua_Integer dim = luaL_checkinteger(L, arg);
    lua_Integer n = ndim ? ndim : 1;
    if (dim == 0 || dim < -n || dim > n) {
        const char *msg = lua_pushfstring(L, "dim %I out of range for a %d-dim tensor (valid 1..%I or -%I..-1)",
                                          dim, ndim, n, n);
        return luaL_argerror(L, arg, msg);
    }
    return (int)(dim < 0 ? dim + n : dim - 1);
}

int lmimic_optdim(lua_State *L, int arg, int ndim, int def)
{
    return lua_isnoneornil(L, arg) ? def : lmimic_checkdim(L, arg, ndim);
}

int64_t lmimic_index(lua_State *L, const char *fn, lua_Integer i, int64_t size, int dim0)
{
    lua_Integer j = i < 0 ? i + size + 1 : i;
    if (j < 1 || j > size) {
        if (size == 0)
            luaL_error(L, "%s: index %I is out of range for dim %d of size 0", fn, i, dim0 + 1);
        luaL_error(L, "%s: index %I is out of range for dim %d of size %I (indices are 1-based: valid 1..%I or -%I..-1)",
                   fn, i, dim0 + 1, (lua_Integer)size, (lua_Integer)size, (lua_Integer)size);
    }
    return (int64_t)(j - 1);
}

static int64_t shape_entry(lua_State *L, int arg, int k, int is_table, int allow_neg)
{
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < (allow_neg ? -1 : 0)) {
        const char *got = lua_isnumber(L, -1) ? lua_pushfstring(L, "%s", lua_tostring(L, -1)) : luaL_typename(L, -1);
        const char *msg = is_table ? lua_pushfstring(L, "size %d of the shape is %s; sizes are integers >= %d", k, got,
                                                     allow_neg ? -1 : 0)
                                   : lua_pushfstring(L, "size is %s; sizes are integers >= %d", got, allow_neg ? -1 : 0);
        luaL_argerror(L, is_table ? arg : arg + k - 1, msg);
    }
    return (int64_t)v;
}

int lmimic_checkshape(lua_State *L, int arg, int64_t *shape, int *next, int allow_neg)
{
    int n = 0;
    if (lua_istable(L, arg)) {
        lua_Integer len = (lua_Integer)lua_rawlen(L, arg);
        if (len > MIMIC_MAX_DIMS)
            luaL_argerror(L, arg, lua_pushfstring(L, "shape has %I dims; mimic supports at most %d", len, MIMIC_MAX_DIMS));
        for (n = 0; n < (int)len; n++) {
            lua_rawgeti(L, arg, n + 1);
            shape[n] = shape_entry(L, arg, n + 1, 1, allow_neg);
            lua_pop(L, 1);
        }
        *next = arg + 1;
        return n;
    }
    while (lua_type(L, arg + n) == LUA_TNUMBER) {
        if (n == MIMIC_MAX_DIMS)
            luaL_argerror(L, arg + n, lua_pushfstring(L, "too many sizes; mimic supports at most %d dims", MIMIC_MAX_DIMS));
        lua_pushvalue(L, arg + n);
        shape[n] = shape_entry(L, arg, n + 1, 0, allow_neg);
        lua_pop(L, 1);
        n++;
    }
    *next = arg + n;
    return n;
}

mimic_dtype lmimic_optdtype(lua_State *L, int arg, mimic_dtype def)
{
    if (lua_isnoneornil(L, arg))
        return def;
    const char *name = luaL_checkstring(L, arg);
    mimic_dtype t;
    if (mimic_dtype_parse(name, &t) != MIMIC_OK)
        luaL_argerror(L, arg, mimic_errmsg());
    return t;
}

mimic_tensor *lmimic_toscalar(lua_State *L, int idx, mimic_dtype dt, lmimic_scalar *sc, bool retained)
{
    int isint = 0;
    lua_Integer iv = 0;
    double dv;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: dv = lua_toboolean(L, idx); iv = (lua_Integer)dv; isint = 1; break;
    case LUA_TNUMBER:
        dv = lua_tonumber(L, idx);
        iv = lua_tointegerx(L, idx, &isint);
        break;
    default: return NULL;
    }
    switch (dt) {
    case MIMIC_F32: sc->v.f = (float)dv; break;
    case MIMIC_F64: sc->v.d = dv; break;
    case MIMIC_I64: sc->v.i = isint ? (int64_t)iv : dv != dv ? 0 : dv >= 0x1p63 ? INT64_MAX : dv < -0x1p63 ? INT64_MIN : (int64_t)dv; break; /* saturate: an out-of-range cast is UB */
    default: sc->v.b = dv != 0; break;
    }
    sc->storage = (mimic_storage){.data = &sc->v, .nbytes = sizeof sc->v, .refcount = 1, .owned = false};
    sc->t = (mimic_tensor){.storage = &sc->storage, .ndim = 0, .dtype = dt, .refcount = 1};
    if (!retained)
        return &sc->t;
    /* A recorded node outlives this C frame (backward would read a dead stack
     * slot): use a heap copy, boxed so an error cannot leak it. */
    mimic_tensor **box = lmimic_newtensor(L);
    *box = mimic_clone(&sc->t);
    lmimic_checkresult(L, box);
    return *box;
}

double lmimic_checkvalue(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TBOOLEAN)
        return lua_toboolean(L, idx);
    return (double)luaL_checknumber(L, idx);
}

/* --- module functions --------------------------------------------------------- */
static int l_set_num_threads(lua_State *L)
{
    mimic_set_num_threads((int)luaL_checkinteger(L, 1));
    return 0;
}

static int l_get_num_threads(lua_State *L)
{
    lua_pushinteger(L, mimic_get_num_threads());
    return 1;
}

/* Wall-clock seconds from a monotonic clock: os.clock() counts CPU time of all
 * threads, which overstates elapsed time as soon as BLAS runs in parallel. */
static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + 1e-9 * (lua_Number)ts.tv_nsec);
    return 1;
}

/* mimic.nn, mimic.optim, ... are pure-Lua modules (lua/mimic/<name>.lua),
 * loaded on first use so `require "mimic"` stays cheap and the C module has no
 * dependency on where the Lua files live: package.path finds them. */
static const char *const submodules[] = {"nn", "optim", "train", "search", "validate", "report", "data", "diagnose", "modelfile",
                                         "profile", "aposteriori", "rfmip", "generative", "constraints",
                                         "stencil", "augment", "gasoptics", NULL};

static int l_module_index(lua_State *L)
{
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
    for (int i = 0; k && submodules[i]; i++)
        if (strcmp(k, submodules[i]) == 0) {
            lua_getglobal(L, "require");
            lua_pushfstring(L, "mimic.%s", k);
            lua_call(L, 1, 1);
            lua_pushvalue(L, 2);
            lua_pushvalue(L, -2);
            lua_rawset(L, 1); /* cache: later lookups skip this function */
            return 1;
        }
    return 0;
}

int luaopen_mimic(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"set_num_threads", l_set_num_threads},
        {"get_num_threads", l_get_num_threads},
        {"clock", l_clock},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    int mod = lua_gettop(L);
    lua_pushliteral(L, MIMIC_VERSION);
    lua_setfield(L, mod, "version");
    /* The Tensor metatable doubles as its methods table (as in Torch7), where
     * tools like the REPL's completer look for methods. */
    luaL_newmetatable(L, LMIMIC_TENSOR);
    int methods = lua_gettop(L);
    lmimic_open_tensor(L, mod, methods);
    lmimic_open_ops(L, mod, methods);
    lmimic_open_autograd(L, mod, methods);
    lmimic_open_optim(L, mod, methods);
    lmimic_open_io(L, mod, methods);
    lmimic_open_validate(L, mod, methods);
    lmimic_open_data(L, mod, methods);
    lmimic_open_plan(L, mod, methods);
    lmimic_open_modelfile(L, mod, methods);
    lmimic_open_spectra(L, mod, methods);
    lmimic_open_radiation(L, mod, methods);
    lmimic_open_conv(L, mod, methods);
    lmimic_open_rnn(L, mod, methods);
    lmimic_open_trainstep(L, mod, methods);
    lmimic_open_embed(L, mod, methods);
    lmimic_open_onnx(L, mod, methods);
    lua_settop(L, mod);
    lua_newtable(L);
    lua_pushcfunction(L, l_module_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, mod);
    return 1;
}
