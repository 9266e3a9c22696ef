/* Files in Lua: tensor-dictionary files (core/include/mimic/io.h) and a tty test.
 *
 *   mimic.save(path, tbl)        writes tbl atomically as an HDF5 file
 *   mimic.load(path [, name])    -> the table (or the entry/subtree `name`)
 *   mimic.isatty(f)              f: a file handle (io.stdout) or a descriptor (1)
 *
 * A table maps keys to tensors, numbers, strings, booleans and tables.
 * Nested tables become groups, so {model = {w = t}} is the entry "model/w".
 * Keys are strings (without '/', not "" / "." / "..") or integers; integer
 * keys are stored as their decimal names, and on loading every name that is
 * a canonical integer ("1", "-3"; not "01" or "+1") becomes an integer key
 * again, so sequences round-trip (a string key "1" comes back as 1). Integer
 * and float numbers keep their Lua subtype; an empty table survives as an
 * empty group. */
#include "lmimic.h"

#include "mimic/io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITER_META "mimic.DictWriter"
#define READER_META "mimic.Dict"
#define MAX_DEPTH 64 /* as many levels as the reader accepts */

/* The writer and reader live in to-be-closed boxes whose __close (and __gc)
 * discard/close them, so a Lua error in the middle of a save removes the
 * temporary file at once and a load never leaves the file open. */
typedef struct wbox { mimic_dict_writer *w; } wbox;
typedef struct rbox { mimic_dict *d; } rbox;

static int wbox_gc(lua_State *L)
{
    wbox *b = luaL_checkudata(L, 1, WRITER_META);
    mimic_dict_discard(b->w);
    b->w = NULL;
    return 0;
}

static int rbox_gc(lua_State *L)
{
    rbox *b = luaL_checkudata(L, 1, READER_META);
    mimic_dict_close(b->d);
    b->d = NULL;
    return 0;
}

/* --- save ------------------------------------------------------------------------ */
typedef struct save_ctx {
    mimic_dict_writer *w;
    int seen; /* absolute index of the table of tables being written (cycle check) */
} save_ctx;

/* Pushes the entry name of the key at -2 under prefix ("" at the top). */
static const char *key_name(lua_State *L, const char *prefix)
{
    const char *k;
    if (lua_type(L, -2) == LUA_TNUMBER && lua_isinteger(L, -2)) {
        k = lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -2));
    } else if (lua_type(L, -2) == LUA_TSTRING) {
        size_t n;
        k = lua_tolstring(L, -2, &n);
        if (n == 0 || memchr(k, '/', n) || memchr(k, '\0', n) || strcmp(k, ".") == 0 || strcmp(k, "..") == 0)
            luaL_error(L, "save: key '%s' in %s%s%s is not allowed (keys are non-empty strings without '/', or integers)",
                       k, *prefix ? "'" : "the top table", prefix, *prefix ? "'" : "");
        lua_pushvalue(L, -2);
    } else {
        const char *what = lua_type(L, -2) == LUA_TNUMBER ? "non-integer number" : luaL_typename(L, -2);
        return luaL_error(L, "save: a key in %s%s%s is a %s (keys are strings or integers)",
                          *prefix ? "'" : "the top table", prefix, *prefix ? "'" : "", what), NULL;
    }
    if (*prefix) {
        k = lua_pushfstring(L, "%s/%s", prefix, k);
        lua_remove(L, -2);
    }
    return k;
}

static void save_table(lua_State *L, save_ctx *c, int t, const char *prefix, int depth)
{
    if (depth > MAX_DEPTH)
        luaL_error(L, "save: tables nest deeper than %d levels at '%s'", MAX_DEPTH, prefix);
    luaL_checkstack(L, 8, "save: tables nest too deep");
    lua_pushvalue(L, t);
    if (lua_rawget(L, c->seen) != LUA_TNIL)
        luaL_error(L, "save: the table at '%s' contains itself", prefix);
    lua_pop(L, 1);
    lua_pushvalue(L, t);
    lua_pushboolean(L, 1);
    lua_rawset(L, c->seen);
    int empty = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        empty = 0;
        const char *name = key_name(L, prefix); /* stack: key, value, name */
        int rc = MIMIC_OK;
        mimic_tensor *x;
        switch (lua_type(L, -2)) {
        case LUA_TNUMBER:
            rc = lua_isinteger(L, -2) ? mimic_dict_put_int(c->w, name, (int64_t)lua_tointeger(L, -2))
                                      : mimic_dict_put_number(c->w, name, (double)lua_tonumber(L, -2));
            break;
        case LUA_TSTRING: {
            size_t n;
            const char *s = lua_tolstring(L, -2, &n);
            rc = mimic_dict_put_string(c->w, name, s, n);
            break;
        }
        case LUA_TBOOLEAN: rc = mimic_dict_put_bool(c->w, name, lua_toboolean(L, -2)); break;
        case LUA_TTABLE: save_table(L, c, lua_absindex(L, -2), name, depth + 1); break;
        default: {
            mimic_tensor **box = luaL_testudata(L, -2, LMIMIC_TENSOR);
            if (box) {
                if (!(x = *box))
                    luaL_error(L, "save: '%s' is a closed tensor", name);
                rc = mimic_dict_put_tensor(c->w, name, x);
                break;
            }
            luaL_error(L, "save: '%s' is a %s (values are tensors, numbers, strings, booleans or tables)", name,
                       luaL_typename(L, -2));
        }
        }
        if (rc != MIMIC_OK)
            lmimic_error(L);
        lua_pop(L, 2); /* name, value */
    }
    if (empty && *prefix && mimic_dict_put_group(c->w, prefix) != MIMIC_OK)
        lmimic_error(L);
    /* The same table may appear twice (written twice); only a cycle is an error. */
    lua_pushvalue(L, t);
    lua_pushnil(L);
    lua_rawset(L, c->seen);
}

static int l_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    wbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->w = NULL;
    luaL_setmetatable(L, WRITER_META);
    lua_toclose(L, -1); /* an error below discards the writer (and its temporary file) at once */
    lua_newtable(L);
    save_ctx c = {NULL, lua_gettop(L)};
    if (!(b->w = mimic_dict_create(path)))
        return lmimic_error(L);
    c.w = b->w;
    save_table(L, &c, 2, "", 0);
    mimic_dict_writer *w = b->w;
    b->w = NULL; /* commit frees it, whatever the outcome */
    if (mimic_dict_commit(w) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

/* --- load ------------------------------------------------------------------------ */
/* Pushes a name component as a key: a canonical decimal integer that fits in
 * a Lua integer becomes an integer, anything else stays a string. */
static void push_key(lua_State *L, const char *s, size_t n)
{
    const char *p = s;
    size_t k = n;
    if (k > 1 && *p == '-') {
        p++;
        k--;
    }
    int canonical = k > 0 && k <= 19 && (k == 1 || p[0] != '0') && !(p != s && k == 1 && p[0] == '0');
    for (size_t i = 0; canonical && i < k; i++)
        canonical = p[i] >= '0' && p[i] <= '9';
    if (canonical) {
        char buf[24];
        memcpy(buf, s, n);
        buf[n] = '\0';
        errno = 0;
        long long v = strtoll(buf, NULL, 10);
        if (errno == 0 && (lua_Integer)v == v) {
            lua_pushinteger(L, (lua_Integer)v);
            return;
        }
    }
    lua_pushlstring(L, s, n);
}

/* Pushes the value of entry e (a new table for a group). */
static void push_entry(lua_State *L, mimic_dict *d, const mimic_dict_entry *e)
{
    switch (e->kind) {
    case MIMIC_DICT_GROUP: lua_newtable(L); return;
    case MIMIC_DICT_INT: lua_pushinteger(L, (lua_Integer)e->i); return;
    case MIMIC_DICT_NUMBER: lua_pushnumber(L, (lua_Number)e->d); return;
    case MIMIC_DICT_BOOL: lua_pushboolean(L, e->b); return;
    case MIMIC_DICT_STRING: lua_pushlstring(L, e->s, e->len); return;
    default: { /* a tensor; for an unsupported entry this raises its reason */
        mimic_tensor **slot = lmimic_newtensor(L);
        *slot = mimic_dict_get_tensor(d, e->name);
        lmimic_checkresult(L, slot);
        return;
    }
    }
}

/* Stores entry e (its name relative to the loaded subtree: rel) into the table at root. */
static void insert(lua_State *L, mimic_dict *d, int root, const mimic_dict_entry *e, const char *rel)
{
    lua_pushvalue(L, root);
    for (;;) {
        const char *slash = strchr(rel, '/');
        size_t n = slash ? (size_t)(slash - rel) : strlen(rel);
        push_key(L, rel, n);
        if (!slash) { /* stack: parent, key */
            if (e->kind == MIMIC_DICT_GROUP) { /* may exist already: its entries sort after it */
                lua_pushvalue(L, -1);
                if (lua_rawget(L, -3) == LUA_TTABLE) {
                    lua_pop(L, 3);
                    return;
                }
                lua_pop(L, 1);
            }
            push_entry(L, d, e);
            lua_rawset(L, -3);
            lua_pop(L, 1);
            return;
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) != LUA_TTABLE) { /* parents are listed first, so this is rare */
            lua_pop(L, 1);
            lua_newtable(L);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, -5);
        }
        lua_remove(L, -2); /* key */
        lua_remove(L, -2); /* parent */
        rel = slash + 1;
    }
}

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *name = luaL_optstring(L, 2, NULL);
    lua_settop(L, 2);
    rbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->d = NULL;
    luaL_setmetatable(L, READER_META);
    lua_toclose(L, -1); /* closes the file on return and on errors */
    if (!(b->d = mimic_dict_open(path)))
        return lmimic_error(L);
    mimic_dict *d = b->d;
    size_t plen = 0;
    if (name) {
        const mimic_dict_entry *e = mimic_dict_lookup(d, name);
        if (!e)
            return lmimic_error(L);
        if (e->kind != MIMIC_DICT_GROUP) {
            push_entry(L, d, e);
            return 1;
        }
        plen = strlen(name) + 1;
    }
    lua_newtable(L);
    int root = lua_gettop(L);
    for (int64_t i = 0; i < mimic_dict_count(d); i++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(d, i);
        if (name && (strncmp(e->name, name, plen - 1) != 0 || e->name[plen - 1] != '/'))
            continue;
        insert(L, d, root, e, e->name + plen);
    }
    return 1;
}

/* --- isatty ----------------------------------------------------------------------- */
static int l_isatty(lua_State *L)
{
    int fd;
    luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
    if (s) {
        if (!s->f || !s->closef)
            return luaL_argerror(L, 1, "file is closed");
        fd = fileno(s->f);
    } else {
        fd = (int)luaL_checkinteger(L, 1);
    }
    lua_pushboolean(L, fd >= 0 && isatty(fd));
    return 1;
}

void lmimic_open_io(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"save", l_save}, {"load", l_load}, {"isatty", l_isatty}, {NULL, NULL},
    };
    luaL_newmetatable(L, WRITER_META);
    lua_pushcfunction(L, wbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, wbox_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newmetatable(L, READER_META);
    lua_pushcfunction(L, rbox_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, rbox_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
