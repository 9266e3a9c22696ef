/* Data files in Lua: HDF5 / netCDF-4 datasets (core/include/mimic/data.h).
 * The loader, splits and encoders built on these are lua/mimic/data.lua.
 *
 *   mimic.h5open(path)    -> H5File (read-only)
 *   mimic.h5create(path)  -> H5File (new file, replaces path; readable too)
 *   f:list()              -> {"grp/x", ...} dataset paths, sorted
 *   f:info(name)          -> {shape=, type=, big_endian=, chunk=, filters=, dims=,
 *                             unlimited=, fill=, scale=, offset=}
 *   f:read(name [, opts]) -> Tensor; opts: dtype ("float32"|"float64"|"int64"),
 *                            start (1-based row), count (rows), finite, raw, ndim,
 *                            mask (also return a bool Tensor, true where missing)
 *   f:write(name, t [, opts])  opts: gzip (0..9), shuffle, chunk ({...}), extendable
 *   f:append(name, t)     rows of t after the dataset's rows (extendable datasets)
 *   f:attr(obj, attr)     -> number | string | nil ; f:set_attr(obj, attr, v)
 *   f:attrs(obj)          -> {names}
 *   f:close()             also __close / __gc
 *
 * Rows in Lua are 1-based like everything else: start = 1 is the file's row 0. */
#include "lmimic.h"

#include "mimic/data.h"

#include <string.h>

#define H5FILE_META "mimic.H5File"

typedef struct fbox {
    mimic_h5 *f;
} fbox;

static mimic_h5 *checkfile(lua_State *L, int arg)
{
    fbox *b = luaL_checkudata(L, arg, H5FILE_META);
    if (!b->f)
        luaL_argerror(L, arg, "the file is closed");
    return b->f;
}

static int f_close(lua_State *L)
{
    fbox *b = luaL_checkudata(L, 1, H5FILE_META);
    int rc = mimic_h5_close(b->f); /* closing twice is fine: b->f is NULL then */
    b->f = NULL;
    if (rc != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

static int f_gc(lua_State *L)
{
    fbox *b = luaL_checkudata(L, 1, H5FILE_META);
    mimic_h5_close(b->f);
    b->f = NULL;
    return 0;
}

static int open_common(lua_State *L, bool create)
{
    const char *path = luaL_checkstring(L, 1);
    fbox *b = lua_newuserdatauv(L, sizeof *b, 0); /* box first: nothing leaks on an error */
    b->f = NULL;
    luaL_setmetatable(L, H5FILE_META);
    b->f = create ? mimic_h5_create(path) : mimic_h5_open(path);
    if (!b->f)
        return lmimic_error(L);
    return 1;
}

static int l_open(lua_State *L) { return open_common(L, false); }
static int l_create(lua_State *L) { return open_common(L, true); }

static int f_list(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    int64_t n = mimic_h5_count(f);
    if (n < 0)
        return lmimic_error(L);
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushstring(L, mimic_h5_name(f, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static void push_dims(lua_State *L, int n, const int64_t *v)
{
    lua_createtable(L, n, 0);
    for (int d = 0; d < n; d++) {
        lua_pushinteger(L, (lua_Integer)v[d]);
        lua_rawseti(L, -2, d + 1);
    }
}

static int f_info(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    mimic_h5_info in;
    if (mimic_h5_info_get(f, name, &in) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 10);
    push_dims(L, in.ndim, in.shape);
    lua_setfield(L, -2, "shape");
    lua_pushstring(L, in.type);
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, in.big_endian);
    lua_setfield(L, -2, "big_endian");
    if (in.chunked) {
        push_dims(L, in.ndim, in.chunk);
        lua_setfield(L, -2, "chunk");
    }
    lua_pushstring(L, in.filters);
    lua_setfield(L, -2, "filters");
    lua_pushboolean(L, in.dims_unlimited);
    lua_setfield(L, -2, "unlimited");
    lua_createtable(L, in.ndim, 0);
    for (int d = 0; d < in.ndim; d++) {
        lua_pushstring(L, in.dim_names[d]);
        lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "dims");
    if (in.has_fill) {
        lua_pushnumber(L, in.fill);
        lua_setfield(L, -2, "fill");
    }
    lua_pushnumber(L, in.scale);
    lua_setfield(L, -2, "scale");
    lua_pushnumber(L, in.offset);
    lua_setfield(L, -2, "offset");
    return 1;
}

static const char *const read_opts[] = {"count", "dtype", "finite", "mask", "ndim", "raw", "start", NULL};
static const char *const write_opts[] = {"chunk", "extendable", "gzip", "shuffle", NULL};

/* Unknown keys in an options table are errors that list the valid ones. */
static void check_keys(lua_State *L, int arg, const char *fn, const char *const *valid)
{
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; valid[i] && !ok; i++)
                ok = strcmp(lua_tostring(L, -1), valid[i]) == 0;
        if (!ok) {
            const char *key = luaL_tolstring(L, -1, NULL);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; valid[i]; i++) {
                if (i)
                    luaL_addstring(&b, ", ");
                luaL_addstring(&b, valid[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (options: %s)", fn, key, lua_tostring(L, -1));
        }
    }
}

static lua_Integer opt_int(lua_State *L, int arg, const char *key, lua_Integer def)
{
    lua_getfield(L, arg, key);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int isnum;
        v = lua_tointegerx(L, -1, &isnum);
        if (!isnum)
            luaL_error(L, "option '%s' must be an integer, got %s", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int arg, const char *key)
{
    lua_getfield(L, arg, key);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static int f_read(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    mimic_h5_read_opts o = {0};
    bool mask = false;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        check_keys(L, 3, "read", read_opts);
        mask = opt_bool(L, 3, "mask");
        lua_getfield(L, 3, "dtype");
        o.dtype = lmimic_optdtype(L, -1, MIMIC_F32);
        lua_pop(L, 1);
        lua_Integer start = opt_int(L, 3, "start", 0), count = opt_int(L, 3, "count", -1);
        if (start != 0 || count >= 0) {
            mimic_h5_info in;
            if (mimic_h5_info_get(f, name, &in) != MIMIC_OK)
                return lmimic_error(L);
            if (in.ndim == 0)
                return luaL_error(L, "read: '%s' is a scalar (0 dims); it has no rows", name);
            if (start == 0)
                start = 1;
            if (start < 1 || start > in.shape[0] + 1)
                return luaL_error(L, "read: start %I is out of range for '%s' with %I rows (rows are 1-based)", start,
                                  name, (lua_Integer)in.shape[0]);
            if (count < 0)
                count = in.shape[0] - (start - 1);
            if (count > in.shape[0] - (start - 1))
                return luaL_error(L, "read: rows %I..%I are out of range for '%s' with %I rows", start,
                                  start + count - 1, name, (lua_Integer)in.shape[0]);
            o.rows = true;
            o.start = start - 1;
            o.count = count;
        }
        o.finite = opt_bool(L, 3, "finite");
        o.raw = opt_bool(L, 3, "raw");
        lua_Integer nd = opt_int(L, 3, "ndim", -1);
        if (nd >= 0) {
            o.check_ndim = true;
            o.ndim = (int)nd;
        }
    }
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_h5_read(f, name, &o);
    lmimic_checkresult(L, slot);
    if (!mask)
        return 1;
    slot = lmimic_newtensor(L);
    *slot = mimic_h5_read_mask(f, name, &o);
    lmimic_checkresult(L, slot);
    return 2;
}

static int f_write(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    const char *name = luaL_checkstring(L, 2);
    mimic_tensor *t = lmimic_checktensor(L, 3);
    mimic_h5_write_opts o = {0};
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        check_keys(L, 4, "write", write_opts);
        o.gzip = (int)opt_int(L, 4, "gzip", 0);
        o.shuffle = opt_bool(L, 4, "shuffle");
        o.extendable = opt_bool(L, 4, "extendable");
        lua_getfield(L, 4, "chunk");
        if (!lua_isnil(L, -1)) {
            int next;
            o.nchunk = lmimic_checkshape(L, lua_gettop(L), o.chunk, &next, 0);
        }
        lua_pop(L, 1);
    }
    if (mimic_h5_write(f, name, t, &o) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

static int f_append(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    if (mimic_h5_append(f, luaL_checkstring(L, 2), lmimic_checktensor(L, 3)) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

static int f_attr(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    mimic_h5_attr a;
    if (mimic_h5_get_attr(f, luaL_optstring(L, 2, ""), luaL_checkstring(L, 3), &a) != MIMIC_OK)
        return lmimic_error(L);
    switch (a.kind) {
    case MIMIC_H5_ATTR_NUMBER: lua_pushnumber(L, a.number); break;
    case MIMIC_H5_ATTR_STRING:
        lua_pushstring(L, a.str); /* may raise on memory: free first */
        break;
    default: lua_pushnil(L); break;
    }
    mimic_free(a.str);
    return 1;
}

static int f_set_attr(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    const char *obj = luaL_optstring(L, 2, ""), *attr = luaL_checkstring(L, 3);
    int rc;
    if (lua_type(L, 4) == LUA_TNUMBER)
        rc = mimic_h5_set_attr_number(f, obj, attr, lua_tonumber(L, 4));
    else
        rc = mimic_h5_set_attr_string(f, obj, attr, luaL_checkstring(L, 4));
    if (rc != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

static int f_attrs(lua_State *L)
{
    mimic_h5 *f = checkfile(L, 1);
    char *s = mimic_h5_attr_names(f, luaL_optstring(L, 2, ""));
    if (!s)
        return lmimic_error(L);
    lua_newtable(L);
    int k = 0;
    for (char *p = s; *p;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        lua_pushlstring(L, p, n);
        lua_rawseti(L, -2, ++k);
        p += n + (nl != NULL);
    }
    mimic_free(s);
    return 1;
}

static int f_tostring(lua_State *L)
{
    fbox *b = luaL_checkudata(L, 1, H5FILE_META);
    lua_pushfstring(L, "mimic.H5File(%s)", b->f ? "open" : "closed");
    return 1;
}

void lmimic_open_data(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg fmethods[] = {
        {"list", f_list}, {"info", f_info}, {"read", f_read}, {"write", f_write}, {"append", f_append},
        {"attr", f_attr}, {"set_attr", f_set_attr}, {"attrs", f_attrs}, {"close", f_close}, {NULL, NULL},
    };
    luaL_newmetatable(L, H5FILE_META);
    luaL_newlib(L, fmethods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, f_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, f_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, f_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_open);
    lua_setfield(L, mod, "h5open");
    lua_pushcfunction(L, l_create);
    lua_setfield(L, mod, "h5create");
}
