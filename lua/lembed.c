/* The embedding API, the guard and the profiler in Lua (core/include/mimic/
 * embed.h, guard.h, profile.h; docs/embedding.md). Lua is where a surrogate's
 * embedding is rehearsed before the host's Fortran or C calls the same file.
 *
 *   mimic.embed.open(path [, {precision = "float32"|"float64"|"stored", chunk =,
 *                             threads =, deterministic =}]) -> Handle
 *   h:inputs(), h:outputs()   lists of {name =, units =, size =}
 *   h:hash()                  "sha256:..."
 *   h:check_vars(names [, "inputs"|"outputs" [, sizes]]) -> true: the host's
 *       whole variable list, in order, against the contract (else an error)
 *   h:run(inputs [, n] [, out]) -> {name = tensor [n, size]}
 *       inputs: {name = tensor [n, size]} (or [n] for size 1), or one tensor
 *       [n, nin] with the inputs' columns in contract order; float32/float64,
 *       any strides but a zero sample stride (expanded: t:contiguous()):
 *       bound zero-copy. out: {name = tensor [>= n, size]} to write into;
 *       default new float64 tensors.
 *   h:set_guard(g | nil), h:set_bounds(output, lo, hi), h:set_spread_limit(x),
 *   h:add_member(path), h:set_fallback(function(idx, outputs, inputs) | nil)
 *       idx: int64 tensor of 1-based sample indices (ascending); the function
 *       writes those samples' outputs into `outputs`. Its errors propagate
 *       from h:run unchanged.
 *   h:set_residual(function(idx, outputs, inputs) -> residuals, tol | nil)
 *       the host's conservation check on the samples the surrogate kept:
 *       returns one residual per entry of idx (a tensor or a list); |r| > tol
 *       flags the sample (then it goes to the fallback).
 *   h:flags() -> int64 tensor [n] of the last run's masks (mimic.embed.FLAGS)
 *   h:stats(), h:reset_stats(), h:close() (also __gc and __close)
 *
 *   mimic.guard.fit(x [, {margin = 0.05, distance = true, quantile = 0.999}])
 *   g:check(x) -> int64 tensor [n] of masks; g:limits() -> lo, hi, dist_limit;
 *   g:nfeat(); g:save(path); mimic.guard.load(path)
 *
 *   mimic.profiler() -> Profiler: p:region(name) -> id, p:begin(name | id),
 *   p:finish(name | id), p:wrap(name, fn) -> fn', p:time(name, fn, ...) -> fn(...),
 *   p:entries(), p:elapsed(), p:reset(), p:report{...} (lua/mimic/profile.lua)
 *
 * Bound tensors are referenced from the handle's uservalue while bound, so
 * the collector cannot free memory the handle points at. The fallback runs on
 * the thread that called h:run (mimic_run calls it outside its parallel
 * regions), inside lua_pcall: a Lua error never unwinds through the core. */
#include "lmimic.h"

#include "mimic/embed.h"
#include "mimic/guard.h"
#include "mimic/profile.h"

#include <math.h>
#include <string.h>

#define PROF_META "mimic.Profiler"
#define HANDLE_META "mimic.Handle"
#define GUARD_META "mimic.Guard"

static const char *const flag_names[MIMIC_NUM_FLAGS] = {"input_nan", "range",  "distance", "output_nan",
                                                        "bounds",    "residual", "spread"};

/* ================================ profiler ================================== */
/* Uservalue 1: a table name -> 0-based id, so begin(name) in a loop costs a
 * table lookup, not the core's linear search. */
typedef struct pbox { mimic_profiler *p; } pbox;

static mimic_profiler *checkprof(lua_State *L, int idx)
{
    pbox *b = luaL_checkudata(L, idx, PROF_META);
    if (!b->p)
        luaL_error(L, "profiler: already freed");
    return b->p;
}

/* The 0-based id of the region named or numbered (1-based) at arg; a new name
 * creates the region. */
static int region_arg(lua_State *L, mimic_profiler *p, int prof, int arg)
{
    if (lua_type(L, arg) == LUA_TNUMBER) {
        lua_Integer id = luaL_checkinteger(L, arg);
        int count = mimic_prof_count(p);
        if (id < 1 || id > count)
            luaL_argerror(L, arg, lua_pushfstring(L, "region id %I does not exist (the profiler has %d; ids come from "
                                                     "p:region(name))", id, count));
        return (int)id - 1;
    }
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_typeerror(L, arg, "region name or id");
    lua_getiuservalue(L, prof, 1);
    lua_pushvalue(L, arg);
    if (lua_rawget(L, -2) == LUA_TNUMBER) {
        int id = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
        return id;
    }
    lua_pop(L, 1);
    int id = mimic_prof_region(p, lua_tostring(L, arg));
    if (id < 0)
        lmimic_error(L);
    lua_pushvalue(L, arg);
    lua_pushinteger(L, id);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    return id;
}

static int l_profiler(lua_State *L)
{
    pbox *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->p = NULL;
    luaL_setmetatable(L, PROF_META);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    if (!(b->p = mimic_profiler_new()))
        return lmimic_error(L);
    return 1;
}

static int p_gc(lua_State *L)
{
    pbox *b = luaL_checkudata(L, 1, PROF_META);
    mimic_profiler_free(b->p);
    b->p = NULL;
    return 0;
}

static int p_region(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TSTRING);
    lua_pushinteger(L, region_arg(L, checkprof(L, 1), 1, 2) + 1);
    return 1;
}

static int p_begin(lua_State *L)
{
    mimic_profiler *p = checkprof(L, 1);
    if (mimic_prof_begin(p, region_arg(L, p, 1, 2)))
        return lmimic_error(L);
    return 0;
}

static int p_finish(lua_State *L)
{
    mimic_profiler *p = checkprof(L, 1);
    if (mimic_prof_end(p, region_arg(L, p, 1, 2)))
        return lmimic_error(L);
    return 0;
}

/* Calls the function at `fn` with the arguments above it inside region id:
 * the region ends even when the function raises, and the error propagates.
 * (A function that yields cannot be timed this way: lua_pcall is a C boundary.) */
static int timed_call(lua_State *L, mimic_profiler *p, int id, int fn)
{
    int nargs = lua_gettop(L) - fn;
    if (mimic_prof_begin(p, id))
        return lmimic_error(L);
    int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
    int erc = mimic_prof_end(p, id);
    if (rc != LUA_OK)
        return lua_error(L);
    if (erc)
        return lmimic_error(L); /* the function left a region of its own open */
    return lua_gettop(L) - fn + 1;
}

static int p_wrapped(lua_State *L)
{
    int id = (int)lua_tointeger(L, lua_upvalueindex(2));
    mimic_profiler *p = ((pbox *)lua_touserdata(L, lua_upvalueindex(1)))->p; /* alive: the closure holds it */
    lua_pushvalue(L, lua_upvalueindex(3));
    lua_insert(L, 1);
    return timed_call(L, p, id, 1);
}

static int p_wrap(lua_State *L)
{
    int id = region_arg(L, checkprof(L, 1), 1, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, id);
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, p_wrapped, 3);
    return 1;
}

static int p_time(lua_State *L)
{
    mimic_profiler *p = checkprof(L, 1);
    int id = region_arg(L, p, 1, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    return timed_call(L, p, id, 3);
}

static int p_entries(lua_State *L)
{
    mimic_profiler *p = checkprof(L, 1);
    int n = mimic_prof_count(p);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        mimic_prof_entry e;
        if (mimic_prof_get(p, i, &e))
            return lmimic_error(L);
        lua_createtable(L, 0, 5);
        lua_pushstring(L, e.name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, (lua_Integer)e.calls);
        lua_setfield(L, -2, "calls");
        lua_pushnumber(L, e.total);
        lua_setfield(L, -2, "total");
        lua_pushnumber(L, e.self);
        lua_setfield(L, -2, "self");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int p_elapsed(lua_State *L)
{
    lua_pushnumber(L, mimic_prof_elapsed(checkprof(L, 1)));
    return 1;
}

static int p_reset(lua_State *L)
{
    if (mimic_prof_reset(checkprof(L, 1)))
        return lmimic_error(L);
    lua_settop(L, 1);
    return 1;
}

static int p_report(lua_State *L)
{
    checkprof(L, 1);
    lua_settop(L, 2);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mimic.profile");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "report");
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 2);
    return 2;
}

static int p_tostring(lua_State *L)
{
    mimic_profiler *p = checkprof(L, 1);
    lua_pushfstring(L, "Profiler(%d regions, %f s)", mimic_prof_count(p), (lua_Number)mimic_prof_elapsed(p));
    return 1;
}

static int l_amdahl(lua_State *L)
{
    double v = mimic_amdahl_bound(luaL_checknumber(L, 1), luaL_checknumber(L, 2));
    if (isnan(v))
        return lmimic_error(L);
    lua_pushnumber(L, v);
    return 1;
}

static int l_break_even(lua_State *L)
{
    double v = mimic_break_even_runs(luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3));
    if (isnan(v))
        return lmimic_error(L);
    lua_pushnumber(L, v);
    return 1;
}

/* ================================= guard ==================================== */
typedef struct gbox { mimic_guard *g; } gbox;

static mimic_guard *checkguard(lua_State *L, int idx)
{
    gbox *b = luaL_checkudata(L, idx, GUARD_META);
    if (!b->g)
        luaL_error(L, "guard: already freed");
    return b->g;
}

static gbox *newguard(lua_State *L)
{
    gbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->g = NULL;
    luaL_setmetatable(L, GUARD_META);
    return b;
}

static int g_gc(lua_State *L)
{
    gbox *b = luaL_checkudata(L, 1, GUARD_META);
    mimic_guard_free(b->g);
    b->g = NULL;
    return 0;
}

/* A float tensor at arg as rows of features: [n, nfeat], or [nfeat] as one row. */
static mimic_tensor *rows_arg(lua_State *L, int arg, const char *fn, int64_t *n, int64_t *nfeat)
{
    mimic_tensor *x = lmimic_checktensor(L, arg);
    if (x->dtype != MIMIC_F32 && x->dtype != MIMIC_F64)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s: x is %s; give float32 or float64 data (x:double())", fn,
                                              mimic_dtype_name(x->dtype)));
    if (x->ndim == 2) {
        *n = x->shape[0], *nfeat = x->shape[1];
    } else if (x->ndim == 1) {
        *n = 1, *nfeat = x->shape[0];
    } else {
        luaL_argerror(L, arg, lua_pushfstring(L, "%s: x must be [n, nfeat] (one row per sample), got %d dims", fn,
                                              x->ndim));
    }
    return x;
}

static int l_guard_fit(lua_State *L)
{
    int64_t n, nfeat;
    mimic_tensor *x = rows_arg(L, 1, "guard.fit", &n, &nfeat);
    mimic_guard_options o = {.margin = 0.05, .distance = 1, .quantile = 0.999};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            if (strcmp(k, "margin") == 0)
                o.margin = luaL_checknumber(L, -1);
            else if (strcmp(k, "distance") == 0)
                o.distance = lua_toboolean(L, -1);
            else if (strcmp(k, "quantile") == 0)
                o.quantile = luaL_checknumber(L, -1);
            else
                return luaL_error(L, "guard.fit: unknown option '%s' (margin, distance, quantile)", k);
            lua_pop(L, 1);
        }
    }
    mimic_tensor **c = lmimic_newtensor(L); /* row-major copy if needed, boxed: no leak on error */
    *c = mimic_contiguous(x);
    lmimic_checkresult(L, c);
    gbox *b = newguard(L);
    if (!(b->g = mimic_guard_fit(mimic_data(*c), (*c)->dtype, n, nfeat, &o)))
        return lmimic_error(L);
    return 1;
}

static int l_guard_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    gbox *b = newguard(L);
    if (!(b->g = mimic_guard_load(path)))
        return lmimic_error(L);
    return 1;
}

static double elem(const char *p, mimic_dtype dt) { return dt == MIMIC_F32 ? *(const float *)p : *(const double *)p; }

static int g_check(lua_State *L)
{
    mimic_guard *g = checkguard(L, 1);
    int64_t n, nfeat;
    mimic_tensor *x = rows_arg(L, 2, "guard:check", &n, &nfeat);
    if (nfeat != mimic_guard_nfeat(g))
        return luaL_error(L, "guard:check: x has %I features per row, the guard was fitted on %I",
                          (lua_Integer)nfeat, (lua_Integer)mimic_guard_nfeat(g));
    double *buf = lua_newuserdatauv(L, (size_t)(3 * nfeat + 1) * sizeof *buf, 0);
    mimic_tensor **out = lmimic_newtensor(L);
    *out = mimic_empty(1, &n, MIMIC_I64);
    lmimic_checkresult(L, out);
    int64_t *mask = mimic_data(*out);
    size_t es = mimic_dtype_size(x->dtype);
    int64_t ss = x->ndim == 2 ? x->stride[0] : 0, fs = x->stride[x->ndim - 1];
    const char *base = mimic_data(x);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < nfeat; j++)
            buf[j] = elem(base + (size_t)((i * ss + j * fs) * (int64_t)es), x->dtype);
        mask[i] = (int64_t)mimic_guard_check(g, buf, buf + nfeat);
    }
    return 1;
}

static void push_f64(lua_State *L, const double *v, int64_t n)
{
    mimic_tensor **t = lmimic_newtensor(L);
    *t = mimic_empty(1, &n, MIMIC_F64);
    lmimic_checkresult(L, t);
    if (n)
        memcpy(mimic_data(*t), v, (size_t)n * sizeof *v);
}

static int g_limits(lua_State *L)
{
    mimic_guard *g = checkguard(L, 1);
    const double *lo, *hi;
    double dist;
    if (mimic_guard_limits(g, &lo, &hi, &dist))
        return lmimic_error(L);
    int64_t n = mimic_guard_nfeat(g);
    push_f64(L, lo, n);
    push_f64(L, hi, n);
    lua_pushnumber(L, dist);
    return 3;
}

static int g_nfeat(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mimic_guard_nfeat(checkguard(L, 1)));
    return 1;
}

static int g_save(lua_State *L)
{
    if (mimic_guard_save(checkguard(L, 1), luaL_checkstring(L, 2)))
        return lmimic_error(L);
    lua_settop(L, 1);
    return 1;
}

static int g_tostring(lua_State *L)
{
    mimic_guard *g = checkguard(L, 1);
    const double *lo, *hi;
    double dist = 0;
    mimic_guard_limits(g, &lo, &hi, &dist);
    lua_pushfstring(L, "Guard(%I features, %s)", (lua_Integer)mimic_guard_nfeat(g),
                    dist > 0 ? "range + distance" : "range");
    return 1;
}

/* ================================= handle =================================== */
/* Uservalue 1: a table {bound = {tensors bound now}, fallback =, residual = functions}. */
typedef struct hbox {
    mimic_handle *h;
    lua_State *L;     /* the thread running h:run, for the fallback */
    bool running;     /* inside h:run: the fallback must not close or rerun it */
    bool fb_failed;   /* a Lua callback raised; its error value is at err_idx */
    int fn_idx, res_idx, out_idx, in_idx, err_idx; /* stack slots of h:run's frame */
} hbox;

static hbox *checkhandle(lua_State *L, int idx, const char *fn)
{
    hbox *b = luaL_checkudata(L, idx, HANDLE_META);
    if (!b->h)
        luaL_error(L, "%s: the handle is closed (open the model again with mimic.embed.open)", fn);
    if (b->running)
        luaL_error(L, "%s: the handle is running (called from its own fallback?); finish h:run first", fn);
    return b;
}

/* Raises the handle's last error message (the core's own for a NULL handle). */
static int herror(lua_State *L, const hbox *b)
{
    const char *msg = mimic_last_error(b ? b->h : NULL);
    if (!msg || !msg[0])
        msg = mimic_errmsg();
    return luaL_error(L, "%s", msg[0] ? msg : "mimic.embed: failed without a message (a bug: please report it)");
}

static int h_gc(lua_State *L)
{
    hbox *b = luaL_checkudata(L, 1, HANDLE_META);
    mimic_close(&b->h);
    return 0;
}

static int l_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    mimic_options o = {0};
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
            if (strcmp(k, "precision") == 0) {
                const char *s = luaL_checkstring(L, -1);
                if (strcmp(s, "float32") == 0)
                    o.precision = MIMIC_PRECISION_F32;
                else if (strcmp(s, "float64") == 0)
                    o.precision = MIMIC_PRECISION_F64;
                else if (strcmp(s, "stored") == 0)
                    o.precision = MIMIC_PRECISION_STORED;
                else
                    return luaL_error(L, "embed.open: precision '%s' is not one of float32, float64, stored", s);
            } else if (strcmp(k, "chunk") == 0) {
                lua_Integer c = luaL_checkinteger(L, -1);
                if (c < 0)
                    return luaL_error(L, "embed.open: chunk %I must be >= 0 (0: the engine's choice)", c);
                o.chunk = (int64_t)c;
            } else if (strcmp(k, "threads") == 0) {
                lua_Integer t = luaL_checkinteger(L, -1);
                if (t < 0 || t > 1 << 16)
                    return luaL_error(L, "embed.open: threads %I must be in 0..65536 (0: mimic.get_num_threads())", t);
                o.num_threads = (int)t;
            } else if (strcmp(k, "deterministic") == 0) {
                o.deterministic = lua_toboolean(L, -1);
            } else {
                return luaL_error(L, "embed.open: unknown option '%s' (precision, chunk, threads, deterministic)", k);
            }
            lua_pop(L, 1);
        }
    }
    hbox *b = lua_newuserdatauv(L, sizeof *b, 1);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, HANDLE_META);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    if (mimic_open(path, &o, &b->h) != MIMIC_OK)
        return herror(L, NULL);
    return 1;
}

static int h_close(lua_State *L)
{
    hbox *b = luaL_checkudata(L, 1, HANDLE_META);
    if (b->running)
        return luaL_error(L, "close: the handle is running (called from its own fallback?); close it after h:run");
    mimic_close(&b->h);
    lua_newtable(L); /* drop the bound tensors and callbacks */
    lua_setiuservalue(L, 1, 1);
    return 0;
}

static int nvars(lua_State *L, const hbox *b, int which)
{
    int n;
    if (mimic_num_vars(b->h, which, &n))
        herror(L, b);
    return n;
}

static void var_info(lua_State *L, const hbox *b, int which, int i, const char **name, const char **units, int64_t *size)
{
    if (mimic_var_info(b->h, which, i, name, units, size))
        herror(L, b);
}

static int push_vars(lua_State *L, int which)
{
    hbox *b = checkhandle(L, 1, which == MIMIC_INPUT ? "inputs" : "outputs");
    int n = nvars(L, b, which);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        const char *name, *units;
        int64_t size;
        var_info(L, b, which, i, &name, &units, &size);
        lua_createtable(L, 0, 3);
        lua_pushstring(L, name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, units ? units : "");
        lua_setfield(L, -2, "units");
        lua_pushinteger(L, (lua_Integer)size);
        lua_setfield(L, -2, "size");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int h_inputs(lua_State *L) { return push_vars(L, MIMIC_INPUT); }
static int h_outputs(lua_State *L) { return push_vars(L, MIMIC_OUTPUT); }

static int h_hash(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "hash");
    lua_pushstring(L, mimic_model_hash_of(b->h));
    return 1;
}

static int h_check_vars(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "check_vars");
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *w = luaL_optstring(L, 3, "inputs");
    int which = strcmp(w, "inputs") == 0 ? MIMIC_INPUT : strcmp(w, "outputs") == 0 ? MIMIC_OUTPUT : -1;
    if (which < 0)
        return luaL_argerror(L, 3, "must be 'inputs' or 'outputs'");
    bool sized = !lua_isnoneornil(L, 4);
    if (sized)
        luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    if (n > 1 << 20)
        return luaL_argerror(L, 2, "too many names");
    if (sized && luaL_len(L, 4) != n)
        return luaL_argerror(L, 4, lua_pushfstring(L, "%I sizes for %I names", luaL_len(L, 4), n));
    const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
    int64_t *sizes = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *sizes, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_geti(L, 2, i) != LUA_TSTRING)
            return luaL_error(L, "check_vars: name %I is %s, expected a string", i, luaL_typename(L, -1));
        names[i - 1] = lua_tostring(L, -1); /* kept alive by the table at 2 */
        lua_pop(L, 1);
        if (sized) {
            lua_geti(L, 4, i);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint)
                return luaL_error(L, "check_vars: size %I is not an integer", i);
            sizes[i - 1] = (int64_t)v;
            lua_pop(L, 1);
        }
    }
    if (mimic_check_vars(b->h, which, names, sized ? sizes : NULL, (int)n))
        return herror(L, b);
    lua_pushboolean(L, 1);
    return 1;
}

/* "a [K] (2), b [1] (1)": what the model expects, for messages. */
static const char *expected(lua_State *L, const hbox *b, int which)
{
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    int n = nvars(L, b, which);
    for (int i = 0; i < n; i++) {
        const char *name, *units;
        int64_t size;
        var_info(L, b, which, i, &name, &units, &size);
        lua_pushfstring(L, "%s%s [%s] (%I)", i ? ", " : "", name, units ? units : "", (lua_Integer)size);
        luaL_addvalue(&buf);
    }
    luaL_pushresult(&buf);
    return lua_tostring(L, -1);
}

/* Checks that every string key of the table at t names a variable of `which`. */
static void check_names(lua_State *L, const hbox *b, int t, int which, const char *what)
{
    int n = nvars(L, b, which);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        bool found = false;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; i < n && !found; i++) {
                const char *name, *units;
                int64_t size;
                var_info(L, b, which, i, &name, &units, &size);
                found = strcmp(name, k) == 0;
            }
        }
        if (!found) {
            const char *k = luaL_tolstring(L, -1, NULL);
            luaL_error(L, "run: '%s' is not %s of this model; it expects: %s", k, what, expected(L, b, which));
        }
    }
}

/* Describes tensor t as contract variable `name` of `size` features with at
 * least `rows` samples (rows < 0: any; then sets *rows_out). col: first column
 * when t holds several variables side by side (width: t's expected columns). */
static mimic_array as_array(lua_State *L, const char *what, const char *name, mimic_tensor *t, int64_t size, int64_t col,
                            int64_t width, int64_t rows, int64_t *rows_out, bool output)
{
    if (t->dtype != MIMIC_F32 && t->dtype != MIMIC_F64)
        luaL_error(L, "run: %s '%s' is %s; give float32 or float64 data (t:double())", what, name,
                   mimic_dtype_name(t->dtype));
    int64_t n = 0, ss = 0, fs = 0;
    if (t->ndim == 2 && t->shape[1] == width) {
        n = t->shape[0], ss = t->stride[0], fs = t->stride[1];
    } else if (t->ndim == 1 && width == 1) {
        n = t->shape[0], ss = t->stride[0], fs = 1;
    } else {
        const char *got = t->ndim == 2 ? lua_pushfstring(L, "[%I, %I]", (lua_Integer)t->shape[0], (lua_Integer)t->shape[1])
                                       : lua_pushfstring(L, "a %d-dim tensor", t->ndim);
        luaL_error(L, "run: %s '%s' must be [n, %I]%s, got %s", what, name, (lua_Integer)width,
                   width == 1 ? " or [n]" : "", got);
    }
    if (rows >= 0 && n < rows)
        luaL_error(L, "run: %s '%s' has %I rows, expected %I", what, name, (lua_Integer)n, (lua_Integer)rows);
    if (output && ((n > 1 && ss == 0) || (size > 1 && fs == 0)))
        luaL_error(L, "run: output '%s' has a zero stride (an expanded view); outputs need their own memory", name);
    if (!output && n > 0 && ss == 0) /* mimic_bind needs a sample stride >= 1 */
        luaL_error(L, "run: %s '%s' has a zero sample stride (an expanded view); pass t:contiguous()", what, name);
    if (rows_out)
        *rows_out = n;
    size_t es = mimic_dtype_size(t->dtype);
    return (mimic_array){.data = (char *)mimic_data(t) + (size_t)(col * fs) * es, .dtype = t->dtype, .size = size,
                         .sample_stride = ss, .feature_stride = fs};
}

/* A Lua callback, run protected: (idx lightuserdata, count, fn, outputs,
 * inputs, residual lightuserdata or nil). Calls fn(idx, outputs, inputs)
 * with idx 1-based; for the residual, copies its `count` results out. */
static int callback_body(lua_State *L)
{
    const int64_t *idx = lua_touserdata(L, 1);
    int64_t count = (int64_t)lua_tointeger(L, 2);
    double *resid = lua_touserdata(L, 6);
    mimic_tensor **t = lmimic_newtensor(L);
    *t = mimic_empty(1, &count, MIMIC_I64);
    lmimic_checkresult(L, t);
    int64_t *v = mimic_data(*t);
    for (int64_t k = 0; k < count; k++)
        v[k] = idx[k] + 1;
    int ti = lua_gettop(L);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, ti);
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 5);
    lua_call(L, 3, resid ? 1 : 0);
    if (!resid)
        return 0;
    mimic_tensor *r = lmimic_totensor(L, -1);
    if (r) {
        if (mimic_numel(r) != count)
            return luaL_error(L, "residual: the function returned %I values for %I samples",
                              (lua_Integer)mimic_numel(r), (lua_Integer)count);
        mimic_tensor **d = lmimic_newtensor(L);
        *d = mimic_to_dtype(r, MIMIC_F64); /* contiguous float64 copy */
        lmimic_checkresult(L, d);
        if (count)
            memcpy(resid, mimic_data(*d), (size_t)count * sizeof *resid);
    } else if (lua_istable(L, -1)) {
        if ((int64_t)luaL_len(L, -1) != count)
            return luaL_error(L, "residual: the function returned %I values for %I samples", (lua_Integer)luaL_len(L, -1),
                              (lua_Integer)count);
        for (int64_t k = 0; k < count; k++) {
            lua_geti(L, -1, (lua_Integer)k + 1);
            int isnum;
            resid[k] = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                return luaL_error(L, "residual: value %I is not a number", (lua_Integer)k + 1);
            lua_pop(L, 1);
        }
    } else {
        return luaL_error(L, "residual: the function must return a tensor or a list of %I numbers, got %s",
                          (lua_Integer)count, luaL_typename(L, -1));
    }
    return 0;
}

/* Called by mimic_run on h:run's thread and inside h:run's C frame, so its
 * stack slots are ours. Everything that may raise runs under lua_pcall; what
 * is pushed outside it fits in slots reserved by lua_checkstack. */
static int call_lua(hbox *b, int fn_idx, const int64_t *idx, int64_t count, double *resid)
{
    lua_State *L = b->L;
    int top = lua_gettop(L);
    lua_pushcfunction(L, callback_body);
    lua_pushlightuserdata(L, (void *)(uintptr_t)idx);
    lua_pushinteger(L, (lua_Integer)count);
    lua_pushvalue(L, fn_idx);
    lua_pushvalue(L, b->out_idx);
    lua_pushvalue(L, b->in_idx);
    if (resid)
        lua_pushlightuserdata(L, resid);
    else
        lua_pushnil(L);
    if (lua_pcall(L, 6, 0, 0) != LUA_OK) {
        lua_replace(L, b->err_idx);
        lua_settop(L, top);
        b->fb_failed = true;
        return mimic_error(MIMIC_ESTATE, "run: the Lua %s raised an error", resid ? "residual" : "fallback");
    }
    lua_settop(L, top);
    return 0;
}

static int fallback_cb(void *ud, const int64_t *idx, int64_t count)
{
    hbox *b = ud;
    return call_lua(b, b->fn_idx, idx, count, NULL);
}

static int residual_cb(void *ud, const int64_t *idx, int64_t count, double *residual)
{
    hbox *b = ud;
    return call_lua(b, b->res_idx, idx, count, residual);
}

static int h_run(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "run");
    /* (h, inputs [, n] [, out]) */
    int out_arg = 0;
    lua_Integer n_arg = -1;
    if (lua_type(L, 3) == LUA_TTABLE) {
        out_arg = 3;
    } else if (!lua_isnoneornil(L, 3)) {
        n_arg = luaL_checkinteger(L, 3);
        if (n_arg < 0)
            return luaL_argerror(L, 3, "the sample count must be >= 0");
        if (!lua_isnoneornil(L, 4)) {
            luaL_checktype(L, 4, LUA_TTABLE);
            out_arg = 4;
        }
    }
    lua_settop(L, 4);
    mimic_tensor *whole = lmimic_totensor(L, 2);
    if (!whole && !lua_istable(L, 2))
        return luaL_typeerror(L, 2, "table of named input tensors or one tensor [n, nin]");
    int nin = nvars(L, b, MIMIC_INPUT), nout = nvars(L, b, MIMIC_OUTPUT);
    if (!whole)
        check_names(L, b, 2, MIMIC_INPUT, "an input");
    if (out_arg)
        check_names(L, b, out_arg, MIMIC_OUTPUT, "an output");

    /* Check every input before binding any, and keep the tensors referenced. */
    int64_t total_in = 0;
    for (int i = 0; i < nin; i++) {
        const char *name, *units;
        int64_t size;
        var_info(L, b, MIMIC_INPUT, i, &name, &units, &size);
        total_in += size;
    }
    mimic_array *in = lua_newuserdatauv(L, (size_t)(nin + nout + 1) * sizeof *in, 0); /* slot 5 */
    mimic_array *out = in + nin;
    lua_createtable(L, nin + nout + 1, 0); /* slot 6: what stays referenced while bound */
    int bound = lua_gettop(L);
    int64_t rows = -1, col = 0;
    for (int i = 0; i < nin; i++) {
        const char *name, *units;
        int64_t size, r;
        var_info(L, b, MIMIC_INPUT, i, &name, &units, &size);
        if (whole) {
            in[i] = as_array(L, "input", "(all inputs)", whole, size, col, total_in, rows, &r, false);
            col += size;
        } else {
            if (lua_getfield(L, 2, name) == LUA_TNIL)
                luaL_error(L, "run: input '%s' [%s] (%I features) is missing; the model expects: %s", name,
                           units ? units : "", (lua_Integer)size, expected(L, b, MIMIC_INPUT));
            mimic_tensor *t = lmimic_totensor(L, -1);
            if (!t)
                luaL_error(L, "run: input '%s' must be a mimic.Tensor, got %s", name, luaL_typename(L, -1));
            in[i] = as_array(L, "input", name, t, size, 0, size, -1, &r, false);
            if (rows >= 0 && r != rows)
                luaL_error(L, "run: input '%s' has %I rows, the others %I", name, (lua_Integer)r, (lua_Integer)rows);
            lua_rawseti(L, bound, i + 1);
        }
        rows = r;
    }
    if (whole) {
        lua_pushvalue(L, 2);
        lua_rawseti(L, bound, 1);
    }
    if (rows < 0)
        rows = 0;
    int64_t n = n_arg >= 0 ? (int64_t)n_arg : rows;
    if (n > rows)
        return luaL_error(L, "run: n = %I samples, but the inputs have %I rows", (lua_Integer)n, (lua_Integer)rows);

    /* Outputs: the caller's tensors, or new float64 ones. */
    lua_newtable(L); /* slot 7: the outputs table returned */
    int outs = lua_gettop(L);
    for (int i = 0; i < nout; i++) {
        const char *name, *units;
        int64_t size;
        var_info(L, b, MIMIC_OUTPUT, i, &name, &units, &size);
        mimic_tensor *t;
        if (out_arg) {
            if (lua_getfield(L, out_arg, name) == LUA_TNIL)
                luaL_error(L, "run: output '%s' is missing from the out table; the model writes: %s", name,
                           expected(L, b, MIMIC_OUTPUT));
            t = lmimic_totensor(L, -1);
            if (!t)
                luaL_error(L, "run: output '%s' must be a mimic.Tensor, got %s", name, luaL_typename(L, -1));
        } else {
            mimic_tensor **slot = lmimic_newtensor(L);
            *slot = mimic_zeros(2, (int64_t[]){n, size}, MIMIC_F64);
            lmimic_checkresult(L, slot);
            t = *slot;
        }
        out[i] = as_array(L, "output", name, t, size, 0, size, n, NULL, true);
        lua_pushvalue(L, -1);
        lua_rawseti(L, bound, nin + i + 1);
        lua_setfield(L, outs, name);
    }
    /* Referenced from the handle before anything is bound to the handle. */
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, bound);
    lua_setfield(L, -2, "bound");
    lua_getfield(L, -1, "fallback"); /* slot 9 */
    int fn = lua_gettop(L);
    lua_getfield(L, -2, "residual"); /* slot 10 */
    if (n == 0) {
        lua_pushvalue(L, outs);
        return 1;
    }
    for (int i = 0; i < nin + nout; i++) {
        int which = i < nin ? MIMIC_INPUT : MIMIC_OUTPUT, k = i < nin ? i : i - nin;
        const char *name, *units;
        int64_t size;
        var_info(L, b, which, k, &name, &units, &size);
        if (mimic_bind(b->h, which, name, NULL, &in[i]))
            return herror(L, b);
    }
    lua_pushnil(L); /* the fallback's error, if it raises */
    b->err_idx = lua_gettop(L);
    luaL_checkstack(L, 16, "run: the fallback needs stack room");
    b->L = L, b->fn_idx = fn, b->res_idx = fn + 1, b->out_idx = outs, b->in_idx = 2;
    b->fb_failed = false;
    b->running = true;
    int rc = mimic_run(b->h, n);
    b->running = false;
    b->L = NULL;
    /* Written in place: autograd must see the outputs as modified. */
    for (int i = 0; i < nout; i++) {
        lua_rawgeti(L, bound, nin + i + 1);
        mimic_tensor *t = lmimic_totensor(L, -1);
        t->storage->version++;
        lua_pop(L, 1);
    }
    if (b->fb_failed) {
        b->fb_failed = false;
        lua_pushvalue(L, b->err_idx);
        return lua_error(L);
    }
    if (rc)
        return herror(L, b);
    lua_pushvalue(L, outs);
    return 1;
}

static int h_set_fallback(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "set_fallback");
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "fallback");
    if (lua_isnil(L, 2) ? mimic_set_fallback(b->h, NULL, NULL) : mimic_set_fallback(b->h, fallback_cb, b))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_set_residual(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "set_residual");
    double tol = 0;
    if (!lua_isnil(L, 2)) {
        luaL_checktype(L, 2, LUA_TFUNCTION);
        tol = luaL_checknumber(L, 3);
    }
    lua_settop(L, 3);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "residual");
    if (lua_isnil(L, 2) ? mimic_set_residual(b->h, NULL, NULL, 0) : mimic_set_residual(b->h, residual_cb, b, tol))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_set_guard(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "set_guard");
    const mimic_guard *g = lua_isnoneornil(L, 2) ? NULL : checkguard(L, 2);
    if (mimic_set_guard(b->h, g))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_set_bounds(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "set_bounds");
    const char *name = luaL_checkstring(L, 2);
    double lo = luaL_optnumber(L, 3, -INFINITY), hi = luaL_optnumber(L, 4, INFINITY);
    if (mimic_set_output_bounds(b->h, name, lo, hi))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_add_member(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "add_member");
    if (mimic_add_member(b->h, luaL_checkstring(L, 2)))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_set_spread_limit(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "set_spread_limit");
    if (mimic_set_spread_limit(b->h, luaL_checknumber(L, 2)))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_flags(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "flags");
    const uint8_t *f = NULL;
    int64_t n = 0;
    if (mimic_last_flags(b->h, &f, &n))
        return herror(L, b);
    mimic_tensor **t = lmimic_newtensor(L);
    *t = mimic_empty(1, &n, MIMIC_I64);
    lmimic_checkresult(L, t);
    int64_t *v = mimic_data(*t);
    for (int64_t i = 0; i < n; i++)
        v[i] = f[i];
    return 1;
}

static int h_stats(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "stats");
    mimic_stats s;
    if (mimic_get_stats(b->h, &s))
        return herror(L, b);
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, (lua_Integer)s.calls);
    lua_setfield(L, -2, "calls");
    lua_pushinteger(L, (lua_Integer)s.samples);
    lua_setfield(L, -2, "samples");
    lua_pushinteger(L, (lua_Integer)s.surrogate);
    lua_setfield(L, -2, "surrogate");
    lua_pushinteger(L, (lua_Integer)s.fallback);
    lua_setfield(L, -2, "fallback");
    lua_pushnumber(L, s.seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushnumber(L, s.fallback_seconds);
    lua_setfield(L, -2, "fallback_seconds");
    lua_createtable(L, 0, MIMIC_NUM_FLAGS);
    for (int k = 0; k < MIMIC_NUM_FLAGS; k++) {
        lua_pushinteger(L, (lua_Integer)s.flagged[k]);
        lua_setfield(L, -2, flag_names[k]);
    }
    lua_setfield(L, -2, "flagged");
    return 1;
}

static int h_reset_stats(lua_State *L)
{
    hbox *b = checkhandle(L, 1, "reset_stats");
    if (mimic_reset_stats(b->h))
        return herror(L, b);
    lua_settop(L, 1);
    return 1;
}

static int h_tostring(lua_State *L)
{
    hbox *b = luaL_checkudata(L, 1, HANDLE_META);
    if (!b->h) {
        lua_pushliteral(L, "Handle(closed)");
        return 1;
    }
    int ni = 0, no = 0;
    mimic_num_vars(b->h, MIMIC_INPUT, &ni);
    mimic_num_vars(b->h, MIMIC_OUTPUT, &no);
    lua_pushfstring(L, "Handle(%d inputs -> %d outputs, %s)", ni, no, mimic_model_hash_of(b->h));
    return 1;
}

/* ============================== registration ================================ */
static void new_meta(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, lua_CFunction tostring,
                     bool close)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (close) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

void lmimic_open_embed(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg prof_methods[] = {
        {"region", p_region}, {"begin", p_begin}, {"finish", p_finish}, {"wrap", p_wrap}, {"time", p_time},
        {"entries", p_entries}, {"elapsed", p_elapsed}, {"reset", p_reset}, {"report", p_report}, {NULL, NULL}};
    static const luaL_Reg guard_methods[] = {{"check", g_check}, {"limits", g_limits}, {"nfeat", g_nfeat},
                                             {"save", g_save}, {NULL, NULL}};
    static const luaL_Reg handle_methods[] = {
        {"inputs", h_inputs}, {"outputs", h_outputs}, {"hash", h_hash}, {"check_vars", h_check_vars}, {"run", h_run},
        {"set_fallback", h_set_fallback}, {"set_residual", h_set_residual}, {"set_guard", h_set_guard}, {"set_bounds", h_set_bounds},
        {"add_member", h_add_member}, {"set_spread_limit", h_set_spread_limit}, {"flags", h_flags},
        {"stats", h_stats}, {"reset_stats", h_reset_stats}, {"close", h_close}, {NULL, NULL}};
    new_meta(L, PROF_META, prof_methods, p_gc, p_tostring, false);
    new_meta(L, GUARD_META, guard_methods, g_gc, g_tostring, false);
    new_meta(L, HANDLE_META, handle_methods, h_gc, h_tostring, true);

    static const luaL_Reg funcs[] = {{"profiler", l_profiler}, {"_amdahl_bound", l_amdahl},
                                     {"_break_even_runs", l_break_even}, {NULL, NULL}};
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);

    lua_newtable(L); /* mimic.embed */
    lua_pushcfunction(L, l_open);
    lua_setfield(L, -2, "open");
    lua_createtable(L, 0, MIMIC_NUM_FLAGS);
    for (int k = 0; k < MIMIC_NUM_FLAGS; k++) {
        lua_pushinteger(L, 1 << k);
        lua_setfield(L, -2, flag_names[k]);
    }
    lua_setfield(L, -2, "FLAGS");
    lua_setfield(L, mod, "embed");

    lua_newtable(L); /* mimic.guard */
    lua_pushcfunction(L, l_guard_fit);
    lua_setfield(L, -2, "fit");
    lua_pushcfunction(L, l_guard_load);
    lua_setfield(L, -2, "load");
    lua_setfield(L, mod, "guard");
}
