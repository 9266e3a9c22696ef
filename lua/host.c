/* Lua scripts called from a host program (mimic/script.h), and the search
 * paths of mimic's pure-Lua modules, shared with the executable (main.c).
 *
 * Every step that can raise a Lua error (opening the libraries, loading and
 * running the script, wrapping arrays, checking results) runs inside
 * lua_pcall, so neither an error nor a panic ever reaches the host. */
#define _GNU_SOURCE /* dladdr */
#include "lmimic.h"
#include "mimic/script.h"

#include <lualib.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- search paths ------------------------------------------------------- */

static void dirname_inplace(char *p)
{
    char *slash = strrchr(p, '/');
    if (slash)
        *(slash == p ? slash + 1 : slash) = '\0';
    else
        strcpy(p, ".");
}

static int exists(const char *dir, const char *rel)
{
    char probe[PATH_MAX + 64];
    snprintf(probe, sizeof probe, "%s/%s", dir, rel);
    return access(probe, R_OK) == 0;
}

void lmimic_add_paths(lua_State *L, const char *binary, int cpath)
{
    if (binary == NULL || binary[0] != '/' || strlen(binary) >= PATH_MAX)
        return;
    char prefix[PATH_MAX]; /* PREFIX for PREFIX/{bin,lib}/binary, build/ in a checkout */
    strcpy(prefix, binary);
    dirname_inplace(prefix);
    dirname_inplace(prefix);
    /* The checkout: build/'s parent, or build/asan/'s grandparent. */
    char repo[PATH_MAX];
    strcpy(repo, prefix);
    int in_tree = 0;
    for (int up = 0; up < 2 && !in_tree && strcmp(repo, "/") != 0; up++) {
        dirname_inplace(repo);
        in_tree = exists(repo, "lua/lmimic.h") && exists(repo, "lua/mimic");
    }

    lua_getglobal(L, "package");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (in_tree) {
        lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;", repo, repo);
        luaL_addvalue(&b);
    }
    lua_pushfstring(L, "%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;", prefix, prefix);
    luaL_addvalue(&b);
    lua_getfield(L, -2, "path");
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");

    if (cpath) {
        lua_pushfstring(L, "%s/lib/lua/5.4/?.so;", prefix);
        lua_getfield(L, -2, "cpath");
        lua_concat(L, 2);
        lua_setfield(L, -2, "cpath");
    }
    lua_pop(L, 1);
}

/* ---- the handle ----------------------------------------------------------- */

struct mimic_script {
    lua_State *L;
    char *err; /* last error, mimic_malloc'ed; NULL: none */
};

#define MAX_INPUTS 64

/* State of one call, shared between the protected body and the C side. */
typedef struct call_ctx {
    mimic_script *s;
    const char *fn;
    int nin, nout;
    const mimic_array *in;
    mimic_array *out;
    int64_t n;
    int code;                          /* status to report if the body raises */
    mimic_storage *storage[MAX_INPUTS]; /* of each wrapped input */
    int released[MAX_INPUTS];           /* set when the last view of input k went */
} call_ctx;

static const char *const INPUTS_KEY = "mimic.script.inputs"; /* registry: the input boxes */

static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        mimic_free(ptr);
        return NULL;
    }
    return mimic_realloc(ptr, nsize);
}

/* Records code + msg as the handle's and the thread's last error. */
static int set_error(mimic_script *s, int code, const char *msg)
{
    if (s) {
        size_t len = strlen(msg);
        char *copy = mimic_malloc(len + 1);
        mimic_free(s->err);
        s->err = copy;
        if (copy)
            memcpy(copy, msg, len + 1);
    }
    return mimic_error(code, "%s", msg);
}

/* The Lua status of a failed pcall as a mimic status, and its message. */
static int lua_failure(mimic_script *s, int lstatus, int code)
{
    lua_State *L = s->L;
    const char *msg = lua_tostring(L, -1);
    int rc = set_error(s, lstatus == LUA_ERRMEM ? MIMIC_ENOMEM : code,
                       msg ? msg : "script: error object is not a string");
    lua_pop(L, 1);
    return rc;
}

int lmimic_msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1; /* an object that describes itself: no traceback */
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

extern const char mimic_lua_prefix[]; /* lua/prefix.c */

/* Relative to the binaries holding this code: libmimic_lua.so, or the
 * executable it is linked into; before those, the prefix an installed static
 * archive was made for. Later additions take precedence. */
static void add_library_paths(lua_State *L)
{
    if (mimic_lua_prefix[0] && strlen(mimic_lua_prefix) < PATH_MAX - 32) {
        char lib[PATH_MAX];
        snprintf(lib, sizeof lib, "%s/lib/libmimic_lua.a", mimic_lua_prefix);
        lmimic_add_paths(L, lib, 0);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        lmimic_add_paths(L, exe, 0);
    }
    Dl_info info;
    if (dladdr((void *)&mimic_script_open, &info) && info.dli_fname && info.dli_fname[0] == '/') {
        char lib[PATH_MAX];
        if (realpath(info.dli_fname, lib) && (n <= 0 || strcmp(lib, exe) != 0))
            lmimic_add_paths(L, lib, 0); /* prepended: takes precedence over the executable's */
    }
}

/* os.exit would end the host's process from inside the library. */
static int no_exit(lua_State *L)
{
    return luaL_error(L, "os.exit is disabled in a script run by a host program; return, or raise an error");
}

/* Protected: libraries, paths, mimic preloaded, then the script (path and
 * ctx are light userdata 1 and 2). */
static int open_body(lua_State *L)
{
    const char *path = lua_touserdata(L, 1);
    call_ctx *ctx = lua_touserdata(L, 2);
    luaL_openlibs(L);
    lua_getglobal(L, "os");
    lua_pushcfunction(L, no_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    add_library_paths(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_mimic);
    lua_setfield(L, -2, "mimic");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, INPUTS_KEY);
    lua_settop(L, 0);
    lua_pushcfunction(L, lmimic_msghandler);
    int st = luaL_loadfilex(L, path, "t"); /* text only: no precompiled chunks */
    if (st != LUA_OK) {
        ctx->code = st == LUA_ERRFILE ? MIMIC_EIO : MIMIC_EVALUE;
        return lua_error(L);
    }
    ctx->code = MIMIC_EVALUE;
    if (lua_pcall(L, 0, 0, 1) != LUA_OK)
        return lua_error(L);
    return 0;
}

int mimic_script_open(const char *path, mimic_script **out)
{
    if (out == NULL)
        return mimic_error(MIMIC_EARG, "script_open: out is NULL; pass the address of a mimic_script *");
    *out = NULL;
    if (path == NULL)
        return mimic_error(MIMIC_EARG, "script_open: path is NULL; pass the script's file name");
    mimic_script *s = mimic_calloc(1, sizeof *s);
    if (!s)
        return MIMIC_ENOMEM;
    s->L = lua_newstate(l_alloc, NULL);
    if (!s->L) {
        mimic_free(s);
        return mimic_error(MIMIC_ENOMEM, "script_open: cannot create the Lua state: out of memory");
    }
    call_ctx ctx = {.s = s, .code = MIMIC_EVALUE};
    lua_pushcfunction(s->L, open_body);
    lua_pushlightuserdata(s->L, (void *)path);
    lua_pushlightuserdata(s->L, &ctx);
    int st = lua_pcall(s->L, 2, 0, 0);
    if (st != LUA_OK) {
        int rc = lua_failure(s, st, ctx.code);
        lua_close(s->L);
        mimic_free(s->err);
        mimic_free(s);
        return rc;
    }
    *out = s;
    return MIMIC_OK;
}

static void on_release(void *flag)
{
    *(int *)flag = 1;
}

/* Inputs may repeat elements (a stride of 0 broadcasts); outputs may not:
 * their samples would overwrite each other. */
static int check_array(const mimic_array *a, bool output, int k, int64_t n)
{
    const char *what = output ? "output" : "input";
    if (a->data == NULL && a->size > 0)
        return mimic_error(MIMIC_EARG, "script_call: %s %d has NULL data", what, k + 1);
    if (a->dtype != MIMIC_F32 && a->dtype != MIMIC_F64)
        return mimic_error(MIMIC_EARG, "script_call: %s %d has dtype %s; host arrays are float32 or float64",
                           what, k + 1, mimic_dtype_name(a->dtype));
    if (a->size <= 0 || a->sample_stride < 0 || a->feature_stride < 0)
        return mimic_error(MIMIC_EARG,
                           "script_call: %s %d has size %lld, strides %lld/%lld; the size must be > 0 and "
                           "the strides >= 0",
                           what, k + 1, (long long)a->size, (long long)a->sample_stride,
                           (long long)a->feature_stride);
    const bool shared_samples = n > 1 && a->sample_stride == 0;
    if (output && (shared_samples || (a->size > 1 && a->feature_stride == 0)))
        return mimic_error(MIMIC_EARG,
                           "script_call: output %d has a zero %s stride, so its %s would overwrite each other; "
                           "give every sample and feature its own element",
                           k + 1, shared_samples ? "sample" : "feature", shared_samples ? "samples" : "features");
    return MIMIC_OK;
}

static mimic_tensor *wrap_array(const mimic_array *a, int64_t n, void (*release)(void *), void *ctx)
{
    int64_t shape[2] = {n, a->size}, strides[2] = {a->sample_stride, a->feature_stride};
    return mimic_wrap(a->data, 2, shape, strides, a->dtype, release, ctx);
}

/* Protected: wrap the inputs (their boxes also go to the registry table, so
 * the C side can close them whatever happens), call fn, check and copy. */
static int call_body(lua_State *L)
{
    call_ctx *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_pushcfunction(L, lmimic_msghandler); /* 1 */
    if (lua_getglobal(L, c->fn) != LUA_TFUNCTION) { /* 2 */
        c->code = MIMIC_EARG;
        return luaL_error(L, "script_call: the script defines no function '%s' (got a %s)", c->fn,
                          luaL_typename(L, -1));
    }
    luaL_checkstack(L, c->nin + c->nout + 8, "script_call: too many arguments");
    lua_getfield(L, LUA_REGISTRYINDEX, INPUTS_KEY); /* 3 */
    lua_insert(L, 1);                               /* boxes 1, handler 2, fn 3 */
    for (int k = 0; k < c->nin; k++) {
        c->code = MIMIC_ENOMEM;
        mimic_tensor **box = lmimic_newtensor(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 1, k + 1);
        *box = wrap_array(&c->in[k], c->n, on_release, &c->released[k]);
        if (!*box) {
            c->code = mimic_errcode() ? mimic_errcode() : MIMIC_ENOMEM;
            return luaL_error(L, "script_call: input %d: %s", k + 1, mimic_errmsg());
        }
        c->storage[k] = (*box)->storage;
    }
    c->code = MIMIC_EVALUE;
    int st = lua_pcall(L, c->nin, LUA_MULTRET, 2);
    if (st != LUA_OK) {
        if (st == LUA_ERRMEM)
            c->code = MIMIC_ENOMEM;
        return lua_error(L);
    }
    int got = lua_gettop(L) - 2;
    if (got != c->nout) {
        c->code = MIMIC_ESHAPE;
        return luaL_error(L, "script_call: '%s' returned %d values; the host expects %d tensors", c->fn, got,
                          c->nout);
    }
    for (int k = 0; k < c->nout; k++) {
        int idx = 3 + k;
        mimic_tensor *r = lmimic_totensor(L, idx);
        if (r == NULL) {
            c->code = MIMIC_EDTYPE;
            return luaL_error(L, "script_call: result %d of '%s' is a %s; return a mimic Tensor of shape [%I,%I]",
                              k + 1, c->fn, luaL_typename(L, idx), (lua_Integer)c->n, (lua_Integer)c->out[k].size);
        }
        if (r->ndim != 2 || r->shape[0] != c->n || r->shape[1] != c->out[k].size) {
            char buf[96];
            c->code = MIMIC_ESHAPE;
            return luaL_error(L, "script_call: result %d of '%s' has shape %s; the host expects [%I,%I]", k + 1,
                              c->fn, mimic_shape_str(r->ndim, r->shape, buf, sizeof buf), (lua_Integer)c->n,
                              (lua_Integer)c->out[k].size);
        }
        if (r->dtype != MIMIC_F32 && r->dtype != MIMIC_F64) {
            c->code = MIMIC_EDTYPE;
            return luaL_error(L, "script_call: result %d of '%s' is %s; return float32 or float64 (use :double())",
                              k + 1, c->fn, mimic_dtype_name(r->dtype));
        }
    }
    for (int k = 0; k < c->nout; k++) {
        mimic_tensor *r = lmimic_totensor(L, 3 + k);
        c->code = MIMIC_ENOMEM;
        mimic_tensor **box = lmimic_newtensor(L); /* owns the wrapper: freed even if copy raises */
        *box = wrap_array(&c->out[k], c->n, NULL, NULL);
        lmimic_checkresult(L, box);
        if (mimic_copy(*box, r) != MIMIC_OK) {
            c->code = mimic_errcode();
            return luaL_error(L, "script_call: result %d: %s", k + 1, mimic_errmsg());
        }
        mimic_tensor_free(*box);
        *box = NULL;
        lua_pop(L, 1);
    }
    return 0;
}

/* Protected: closes the input boxes kept in the registry table. */
static int close_inputs(lua_State *L)
{
    int nin = (int)lua_tointeger(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, INPUTS_KEY);
    for (int k = 1; k <= nin; k++) {
        if (lua_rawgeti(L, -1, k) == LUA_TUSERDATA && luaL_getmetafield(L, -1, "__close") != LUA_TNIL) {
            lua_insert(L, -2);
            lua_call(L, 1, 0);
        } else {
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        lua_rawseti(L, -2, k);
    }
    return 0;
}

/* After a call, no view of the host's inputs may outlive it: the boxes are
 * closed, garbage views collected, and a view the script still holds is
 * given a private copy of the bytes it can reach. */
static int release_inputs(mimic_script *s, call_ctx *c)
{
    lua_State *L = s->L;
    lua_pushcfunction(L, close_inputs);
    lua_pushinteger(L, c->nin);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        lua_pop(L, 1); /* out of memory: the collection below releases them */
    int pending = 0;
    for (int k = 0; k < c->nin; k++)
        pending += c->storage[k] && !c->released[k];
    if (pending)
        lua_gc(L, LUA_GCCOLLECT);
    int rc = MIMIC_OK;
    for (int k = 0; k < c->nin; k++) {
        mimic_storage *st = c->storage[k];
        if (!st || c->released[k])
            continue;
        void *copy = mimic_malloc(st->nbytes ? st->nbytes : 1);
        if (!copy) {
            /* Cannot detach: stop the views from reaching the host's memory. */
            st->nbytes = 0;
            st->data = NULL;
            rc = MIMIC_ENOMEM;
        } else {
            memcpy(copy, st->data, st->nbytes);
            st->data = copy;
        }
        st->owned = copy != NULL;
        st->release = NULL;
        st->release_ctx = NULL;
    }
    return rc;
}

int mimic_script_call(mimic_script *s, const char *fn, int nin, const mimic_array *in, int nout,
                      mimic_array *out, int64_t n)
{
    if (s == NULL)
        return mimic_error(MIMIC_EARG, "script_call: handle is NULL (closed, or the open failed)");
    if (fn == NULL)
        return set_error(s, MIMIC_EARG, "script_call: fn is NULL; pass the name of a global function");
    if (nin < 0 || nin > MAX_INPUTS || nout < 0 || nout > MAX_INPUTS || (nin && !in) || (nout && !out) || n < 0) {
        mimic_error(MIMIC_EARG, "script_call: '%s': nin %d, nout %d (0..%d, arrays not NULL) and n %lld (>= 0)",
                    fn, nin, nout, MAX_INPUTS, (long long)n);
        return set_error(s, MIMIC_EARG, mimic_errmsg());
    }
    for (int k = 0; k < nin + nout; k++) {
        int rc = check_array(k < nin ? &in[k] : &out[k - nin], k >= nin, k < nin ? k : k - nin, n);
        if (rc)
            return set_error(s, rc, mimic_errmsg());
    }
    call_ctx c = {.s = s, .fn = fn, .nin = nin, .nout = nout, .in = in, .out = out, .n = n, .code = MIMIC_EVALUE};
    lua_State *L = s->L;
    lua_settop(L, 0);
    lua_pushcfunction(L, call_body);
    lua_pushlightuserdata(L, &c);
    int st = lua_pcall(L, 1, 0, 0);
    int rc = st == LUA_OK ? MIMIC_OK : lua_failure(s, st, c.code);
    lua_settop(L, 0);
    int rel = release_inputs(s, &c);
    if (rc == MIMIC_OK && rel != MIMIC_OK)
        rc = set_error(s, rel, "script_call: out of memory detaching an input the script kept");
    if (rc == MIMIC_OK) {
        mimic_free(s->err);
        s->err = NULL;
    }
    return rc;
}

const char *mimic_script_error(const mimic_script *s)
{
    if (s == NULL)
        return mimic_errmsg();
    return s->err ? s->err : "";
}

int mimic_script_close(mimic_script **s)
{
    if (s == NULL || *s == NULL)
        return MIMIC_OK;
    lua_close((*s)->L);
    mimic_free((*s)->err);
    mimic_free(*s);
    *s = NULL;
    return MIMIC_OK;
}
