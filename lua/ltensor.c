/* The Tensor userdata ("mimic.Tensor"): creation, queries, views, conversions,
 * 1-based indexing, printing; and the Generator userdata (random numbers).
 *
 * A Tensor is a box holding one reference to a mimic_tensor. The box is
 * created before the tensor it will hold, so a Lua error raised in between
 * never leaks it; __gc and __close release it and leave the box empty, which
 * makes both safe to run twice. Views hold their own reference, and the core's
 * refcounting keeps the shared storage alive. */
#include "lmimic.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* --- the box ------------------------------------------------------------------- */
mimic_tensor **lmimic_newtensor(lua_State *L)
{
    mimic_tensor **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    luaL_setmetatable(L, LMIMIC_TENSOR);
    return box;
}

/* Lua's collector sees only a tensor's small box, not the C memory behind it,
 * so a loop making big temporaries would run far ahead of collection. Bytes
 * of new tensors are counted, and once they exceed both 32 MB and twice the
 * Lua heap a full collection runs: its cost is proportional to the Lua heap,
 * so it stays a bounded fraction of the allocation work. (LUA_GCSTEP debt is
 * not enough: in generational mode, the default of the lua5.4 interpreter,
 * it only triggers minor collections, which never free the finalizable
 * boxes.) Views of a live tensor share its storage and are not counted,
 * except results of recorded ops: their storage is also referenced by the
 * graph, so a fresh one cannot be told from a view and is counted
 * (over-counting only makes collection a little more eager). The count
 * belongs to the Lua state (a userdata in its registry), not to C. */
static const char gc_pending_key = 0;

static size_t *gc_pending(lua_State *L)
{
    size_t *p;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &gc_pending_key) == LUA_TUSERDATA) {
        p = lua_touserdata(L, -1);
    } else {
        lua_pop(L, 1);
        p = lua_newuserdatauv(L, sizeof *p, 0); /* kept alive by the registry */
        *p = 0;
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &gc_pending_key);
    }
    lua_pop(L, 1);
    return p;
}

static void gc_account(lua_State *L, const mimic_tensor *t)
{
    const mimic_storage *s = t->storage;
    if (!s->owned || (s->refcount != 1 && mimic_is_leaf(t)))
        return;
    size_t *pending = gc_pending(L);
    *pending += s->nbytes + sizeof *t + sizeof *s;
    if (*pending < (size_t)32 << 20)
        return;
    size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
    if (*pending < 2 * heap)
        return;
    *pending = 0;
    if (lua_gc(L, LUA_GCISRUNNING)) /* respect collectgarbage("stop") */
        lua_gc(L, LUA_GCCOLLECT);
}

void lmimic_checkresult(lua_State *L, mimic_tensor *const *slot)
{
    if (!*slot)
        lmimic_error(L);
    gc_account(L, *slot);
}

static int newbox(lua_State *L)
{
    lmimic_newtensor(L);
    return 1;
}

void lmimic_pushtensor(lua_State *L, mimic_tensor *t)
{
    if (!t)
        lmimic_error(L);
    /* Protected, so that a failed box allocation releases t before raising. */
    lua_pushcfunction(L, newbox);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
        mimic_tensor_free(t);
        lua_error(L);
    }
    *(mimic_tensor **)lua_touserdata(L, -1) = t;
    gc_account(L, t);
}

mimic_tensor *lmimic_totensor(lua_State *L, int arg)
{
    mimic_tensor **box = luaL_testudata(L, arg, LMIMIC_TENSOR);
    if (!box)
        return NULL;
    if (!*box)
        luaL_argerror(L, arg, "attempt to use a closed tensor");
    return *box;
}

mimic_tensor *lmimic_checktensor(lua_State *L, int arg)
{
    mimic_tensor *t = lmimic_totensor(L, arg);
    if (!t)
        luaL_typeerror(L, arg, LMIMIC_TENSOR);
    return t;
}

static int t_gc(lua_State *L)
{
    mimic_tensor **box = luaL_checkudata(L, 1, LMIMIC_TENSOR);
    mimic_tensor_free(*box);
    *box = NULL;
    return 0;
}

/* Pushes a new tensor box whose content the caller fills; shorthand. */
#define NEWT(L) lmimic_newtensor(L)
#define RESULT(L, box, expr) ((*(box) = (expr)), lmimic_checkresult((L), (box)))

/* --- elements ------------------------------------------------------------------ */
static int64_t elem_offset(const mimic_tensor *t, const int64_t *idx)
{
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++)
        off += idx[d] * t->stride[d];
    return off;
}

/* int64 elements as Lua integers (exact beyond 2^53), bools as booleans. */
static void push_elem(lua_State *L, const mimic_tensor *t, const int64_t *idx)
{
    int64_t off = elem_offset(t, idx);
    const void *p = t->storage->data;
    switch (t->dtype) {
    case MIMIC_F32: lua_pushnumber(L, ((const float *)p)[off]); break;
    case MIMIC_F64: lua_pushnumber(L, ((const double *)p)[off]); break;
    case MIMIC_I64: lua_pushinteger(L, (lua_Integer)((const int64_t *)p)[off]); break;
    default: lua_pushboolean(L, ((const uint8_t *)p)[off] != 0); break;
    }
}

static void set_elem(lua_State *L, mimic_tensor *t, const int64_t *idx, int vidx)
{
    if (t->dtype == MIMIC_I64 && lua_isinteger(L, vidx)) {
        ((int64_t *)t->storage->data)[elem_offset(t, idx)] = (int64_t)lua_tointeger(L, vidx);
        return;
    }
    mimic_set(t, idx, lmimic_checkvalue(L, vidx));
}

/* Sets every element of t to the value at vidx. mimic_fill takes a double,
 * which rounds int64 values beyond 2^53; a Lua integer goes in through a
 * 0-dim int64 tensor instead (mimic_fill is that same broadcast copy). */
static int fill_value(lua_State *L, mimic_tensor *t, int vidx)
{
    lmimic_scalar sc;
    if (t->dtype == MIMIC_I64 && lua_isinteger(L, vidx))
        return mimic_copy(t, lmimic_toscalar(L, vidx, MIMIC_I64, &sc, false));
    return mimic_fill(t, lmimic_checkvalue(L, vidx));
}

/* --- creation ------------------------------------------------------------------- */
typedef struct fill_ctx {
    mimic_tensor *t;
    int ndim;
    const int64_t *shape;
    int64_t pos[MIMIC_MAX_DIMS];
    int64_t k; /* next element, row-major */
} fill_ctx;

static const char *pos_str(char *buf, size_t n, const int64_t *pos, int depth)
{
    size_t k = 0;
    buf[0] = '\0';
    for (int d = 0; d < depth && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "[%lld]", (long long)pos[d] + 1);
    return buf;
}

/* The table on top of the stack holds the entries of depth `depth`. */
static void fill_nested(lua_State *L, fill_ctx *c, int depth)
{
    char where[128];
    int64_t n = c->shape[depth];
    lua_Unsigned len = lua_rawlen(L, -1);
    if ((int64_t)len != n)
        luaL_error(L, "tensor: row at %s has %d entries, expected %d (rows must be rectangular)",
                   depth ? pos_str(where, sizeof where, c->pos, depth) : "[]", (int)len, (int)n);
    for (int64_t i = 0; i < n; i++) {
        c->pos[depth] = i;
        int ty = lua_rawgeti(L, -1, (lua_Integer)i + 1);
        if (depth + 1 < c->ndim) {
            if (ty != LUA_TTABLE)
                luaL_error(L, "tensor: entry at %s is a %s, expected a table of %d entries",
                           pos_str(where, sizeof where, c->pos, depth + 1), lua_typename(L, ty),
                           (int)c->shape[depth + 1]);
            fill_nested(L, c, depth + 1);
        } else {
            if (ty != LUA_TNUMBER && ty != LUA_TBOOLEAN)
                luaL_error(L, "tensor: element at %s is a %s, expected a number%s",
                           pos_str(where, sizeof where, c->pos, depth + 1), lua_typename(L, ty),
                           ty == LUA_TTABLE ? " (rows nest deeper than the first row)" : "");
            int64_t k = c->k++;
            void *p = mimic_data(c->t);
            switch (c->t->dtype) {
            case MIMIC_F32: ((float *)p)[k] = (float)lmimic_checkvalue(L, -1); break;
            case MIMIC_F64: ((double *)p)[k] = lmimic_checkvalue(L, -1); break;
            case MIMIC_I64:
                ((int64_t *)p)[k] = lua_isinteger(L, -1) ? (int64_t)lua_tointeger(L, -1)
                                                          : (int64_t)lmimic_checkvalue(L, -1);
                break;
            default: ((uint8_t *)p)[k] = lmimic_checkvalue(L, -1) != 0; break;
            }
        }
        lua_pop(L, 1);
    }
}

/* A new tensor of that shape and dtype holding the value at vidx everywhere
 * (mimic_full, but exact for int64). */
static void push_full(lua_State *L, int ndim, const int64_t *shape, mimic_dtype dt, int vidx)
{
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_empty(ndim, shape, dt));
    if (fill_value(L, *box, vidx) != MIMIC_OK)
        lmimic_error(L);
}

/* scalar(v [, dtype]) */
static int l_scalar(lua_State *L)
{
    lmimic_checkvalue(L, 1); /* a bad value is reported before a bad dtype */
    push_full(L, 0, NULL, lmimic_optdtype(L, 2, lua_type(L, 1) == LUA_TBOOLEAN ? MIMIC_BOOL : MIMIC_F32), 1);
    return 1;
}

/* mimic.tensor(nested_table | number | tensor [, dtype]) */
static int l_tensor(lua_State *L)
{
    mimic_tensor *src = lmimic_totensor(L, 1);
    if (src) { /* a copy, optionally converted */
        mimic_dtype dt = lmimic_optdtype(L, 2, src->dtype);
        mimic_tensor **box = NEWT(L);
        RESULT(L, box, mimic_to_dtype(src, dt));
        return 1;
    }
    int ty = lua_type(L, 1);
    if (ty == LUA_TNUMBER || ty == LUA_TBOOLEAN)
        return l_scalar(L);
    if (ty != LUA_TTABLE)
        return luaL_typeerror(L, 1, "table, number or mimic.Tensor");
    /* The shape is that of the first row at each depth; fill_nested checks the rest. */
    int64_t shape[MIMIC_MAX_DIMS];
    int ndim = 0, leaf = LUA_TNIL;
    lua_pushvalue(L, 1);
    for (;;) {
        if (ndim == MIMIC_MAX_DIMS)
            return luaL_error(L, "tensor: nesting is deeper than %d levels; mimic supports at most %d dims",
                              MIMIC_MAX_DIMS, MIMIC_MAX_DIMS);
        shape[ndim++] = (int64_t)lua_rawlen(L, -1);
        if (shape[ndim - 1] == 0)
            break;
        leaf = lua_rawgeti(L, -1, 1);
        if (leaf != LUA_TTABLE) {
            lua_pop(L, 1);
            break;
        }
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    mimic_dtype dt = lmimic_optdtype(L, 2, leaf == LUA_TBOOLEAN ? MIMIC_BOOL : MIMIC_F32);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_empty(ndim, shape, dt));
    fill_ctx c = {.t = *box, .ndim = ndim, .shape = shape};
    lua_pushvalue(L, 1);
    fill_nested(L, &c, 0);
    lua_pop(L, 1);
    return 1;
}

/* zeros/ones/empty(shape... | {shape} [, dtype]) */
static int make_filled(lua_State *L, int kind)
{
    int64_t shape[MIMIC_MAX_DIMS];
    int next, ndim = lmimic_checkshape(L, 1, shape, &next, 0);
    mimic_dtype dt = lmimic_optdtype(L, next, MIMIC_F32);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, kind == 0 ? mimic_zeros(ndim, shape, dt) : kind == 1 ? mimic_ones(ndim, shape, dt)
                                                                        : mimic_empty(ndim, shape, dt));
    return 1;
}
static int l_zeros(lua_State *L) { return make_filled(L, 0); }
static int l_ones(lua_State *L) { return make_filled(L, 1); }
static int l_empty(lua_State *L) { return make_filled(L, 2); }

/* A shape that is a table, or a single number for a 1-D shape (when more
 * arguments follow the shape and varargs would be ambiguous). */
static int shape_arg(lua_State *L, int arg, int64_t *shape)
{
    if (lua_type(L, arg) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, arg);
        luaL_argcheck(L, n >= 0, arg, "size must be >= 0");
        shape[0] = (int64_t)n;
        return 1;
    }
    int next;
    luaL_checktype(L, arg, LUA_TTABLE);
    return lmimic_checkshape(L, arg, shape, &next, 0);
}

/* full(shape, v [, dtype]) */
static int l_full(lua_State *L)
{
    int64_t shape[MIMIC_MAX_DIMS];
    int ndim = shape_arg(L, 1, shape);
    lmimic_checkvalue(L, 2); /* a bad value is reported before a bad dtype */
    push_full(L, ndim, shape, lmimic_optdtype(L, 3, lua_type(L, 2) == LUA_TBOOLEAN ? MIMIC_BOOL : MIMIC_F32), 2);
    return 1;
}

/* arange([start,] stop [, step] [, dtype]) */
static int l_arange(lua_State *L)
{
    int nnum = 0;
    while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER)
        nnum++;
    if (nnum == 0)
        return luaL_typeerror(L, 1, "number");
    double a = 0, b, step = 1;
    if (nnum == 1) {
        b = lua_tonumber(L, 1);
    } else {
        a = lua_tonumber(L, 1);
        b = lua_tonumber(L, 2);
        if (nnum == 3)
            step = lua_tonumber(L, 3);
    }
    mimic_dtype dt = lmimic_optdtype(L, nnum + 1, MIMIC_F32);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_arange(a, b, step, dt));
    return 1;
}

static int l_linspace(lua_State *L)
{
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    lua_Integer n = luaL_checkinteger(L, 3);
    mimic_dtype dt = lmimic_optdtype(L, 4, MIMIC_F32);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_linspace(a, b, (int64_t)n, dt));
    return 1;
}

/* eye(n [, m] [, dtype]) */
static int l_eye(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1), m = n;
    int darg = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        m = luaL_checkinteger(L, 2);
        darg = 3;
    }
    luaL_argcheck(L, n >= 0, 1, "size must be >= 0");
    luaL_argcheck(L, m >= 0, 2, "size must be >= 0");
    mimic_dtype dt = lmimic_optdtype(L, darg, MIMIC_F32);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_eye((int64_t)n, (int64_t)m, dt));
    return 1;
}

static int l_is_tensor(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, LMIMIC_TENSOR) != NULL);
    return 1;
}

/* --- queries ---------------------------------------------------------------------- */
static int push_sizes(lua_State *L, const mimic_tensor *t, const int64_t *v, const char *fn)
{
    if (lua_isnoneornil(L, 2)) {
        lua_createtable(L, t->ndim, 0);
        for (int d = 0; d < t->ndim; d++) {
            lua_pushinteger(L, (lua_Integer)v[d]);
            lua_rawseti(L, -2, d + 1);
        }
        return 1;
    }
    if (t->ndim == 0)
        return luaL_error(L, "%s: a 0-dim tensor has no dims", fn);
    lua_pushinteger(L, (lua_Integer)v[lmimic_checkdim(L, 2, t->ndim)]);
    return 1;
}

static int t_size(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    return push_sizes(L, t, t->shape, "size");
}

static int t_stride(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    return push_sizes(L, t, t->stride, "stride");
}

static int t_dim(lua_State *L)
{
    lua_pushinteger(L, lmimic_checktensor(L, 1)->ndim);
    return 1;
}

static int t_numel(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mimic_numel(lmimic_checktensor(L, 1)));
    return 1;
}

static int t_dtype(lua_State *L)
{
    lua_pushstring(L, mimic_dtype_name(lmimic_checktensor(L, 1)->dtype));
    return 1;
}

static int t_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, mimic_is_contiguous(lmimic_checktensor(L, 1)));
    return 1;
}

static int t_len(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "len: a 0-dim tensor has no length; use item() or numel()");
    lua_pushinteger(L, (lua_Integer)t->shape[0]);
    return 1;
}

/* --- views ------------------------------------------------------------------------- */
static int view_or_reshape(lua_State *L, int reshape)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int64_t shape[MIMIC_MAX_DIMS];
    int next, ndim = lmimic_checkshape(L, 2, shape, &next, 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, reshape ? mimic_reshape(t, ndim, shape) : mimic_view(t, ndim, shape));
    return 1;
}
static int t_view(lua_State *L) { return view_or_reshape(L, 0); }
static int t_reshape(lua_State *L) { return view_or_reshape(L, 1); }

static int t_t(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (t->ndim > 2)
        return luaL_error(L, "t: expects a tensor of at most 2 dims, got %d; use transpose(d1, d2) or permute",
                          t->ndim);
    if (t->ndim < 2) {
        lua_settop(L, 1);
        return 1;
    }
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_transpose(t, 0, 1));
    return 1;
}

static int t_transpose(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int d0 = lmimic_checkdim(L, 2, t->ndim), d1 = lmimic_checkdim(L, 3, t->ndim);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_transpose(t, d0, d1));
    return 1;
}

static int t_permute(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int dims[MIMIC_MAX_DIMS], n;
    if (lua_istable(L, 2)) {
        n = (int)lua_rawlen(L, 2);
        if (n != t->ndim)
            return luaL_error(L, "permute: %d dims given for a %d-dim tensor", n, t->ndim);
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 2, i + 1);
            int isint;
            lua_Integer d = lua_tointegerx(L, -1, &isint);
            if (!isint)
                return luaL_error(L, "permute: entry %d of the dims is not an integer", i + 1);
            dims[i] = lmimic_dim(L, "permute", d, t->ndim);
            lua_pop(L, 1);
        }
    } else {
        n = lua_gettop(L) - 1;
        if (n != t->ndim)
            return luaL_error(L, "permute: %d dims given for a %d-dim tensor", n, t->ndim);
        for (int i = 0; i < n; i++)
            dims[i] = lmimic_checkdim(L, i + 2, t->ndim);
    }
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_permute(t, dims));
    return 1;
}

/* Inclusive 1-based range {a, b} (negatives from the end) as 0-based [start, stop). */
static void resolve_range(lua_State *L, const char *fn, lua_Integer a, lua_Integer b, int64_t size, int dim0,
                          int64_t *start, int64_t *stop)
{
    lua_Integer n = (lua_Integer)size, a1 = a < 0 ? a + n + 1 : a, b1 = b < 0 ? b + n + 1 : b;
    if (a1 < 1 || a1 > n + 1 || b1 > n || b1 < a1 - 1)
        luaL_error(L, "%s: range %I..%I is out of range for dim %d of size %I (1-based, inclusive; "
                      "negatives count from the end)", fn, a, b, dim0 + 1, n);
    *start = (int64_t)a1 - 1;
    *stop = (int64_t)b1;
}

static int t_narrow(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int d = lmimic_checkdim(L, 2, t->ndim);
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    if (t->ndim == 0)
        return luaL_error(L, "narrow: cannot narrow a 0-dim tensor");
    luaL_argcheck(L, len >= 0, 4, "length must be >= 0");
    lua_Integer n = (lua_Integer)t->shape[d], s = start < 0 ? start + n + 1 : start;
    if (s < 1 || s > n + 1 || s - 1 + len > n)
        return luaL_error(L, "narrow: start %I with length %I is out of range for dim %d of size %I", start, len,
                          d + 1, n);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_narrow(t, d, (int64_t)s - 1, (int64_t)len));
    return 1;
}

static int t_select(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "select: cannot select from a 0-dim tensor");
    int d = lmimic_checkdim(L, 2, t->ndim);
    int64_t i = lmimic_index(L, "select", luaL_checkinteger(L, 3), t->shape[d], d);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_select(t, d, i));
    return 1;
}

/* slice(d, start, stop [, step]): stop inclusive */
static int t_slice(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "slice: cannot slice a 0-dim tensor");
    int d = lmimic_checkdim(L, 2, t->ndim);
    lua_Integer a = luaL_checkinteger(L, 3), b = luaL_optinteger(L, 4, -1), step = luaL_optinteger(L, 5, 1);
    luaL_argcheck(L, step >= 1, 5, "step must be >= 1");
    int64_t start, stop;
    resolve_range(L, "slice", a, b, t->shape[d], d, &start, &stop);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_slice(t, d, start, stop, (int64_t)step));
    return 1;
}

static int t_expand(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int64_t shape[MIMIC_MAX_DIMS];
    int next, ndim = lmimic_checkshape(L, 2, shape, &next, 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_expand(t, ndim, shape));
    return 1;
}

static int t_squeeze(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int d = lmimic_optdim(L, 2, t->ndim, MIMIC_ALL_DIMS);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_squeeze(t, d));
    return 1;
}

static int t_unsqueeze(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int d = lmimic_checkdim(L, 2, t->ndim + 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_unsqueeze(t, d));
    return 1;
}

static int t_flatten(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int s = lmimic_optdim(L, 2, t->ndim, 0), e = lmimic_optdim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0);
    if (e < s)
        return luaL_error(L, "flatten: end dim %d comes before start dim %d", e + 1, s + 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_flatten(t, s, e));
    return 1;
}

static int t_contiguous(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (mimic_is_contiguous(t)) { /* the same object, as Torch does */
        lua_settop(L, 1);
        return 1;
    }
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_clone(t));
    return 1;
}

static int t_clone(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_clone(t));
    return 1;
}

/* --- conversions and copies -------------------------------------------------------- */
static int convert(lua_State *L, mimic_dtype dt)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (t->dtype == dt) { /* already that type: t itself, as Torch does */
        lua_settop(L, 1);
        return 1;
    }
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_to_dtype(t, dt));
    return 1;
}
static int t_float(lua_State *L) { return convert(L, MIMIC_F32); }
static int t_double(lua_State *L) { return convert(L, MIMIC_F64); }
static int t_long(lua_State *L) { return convert(L, MIMIC_I64); }
static int t_bool(lua_State *L) { return convert(L, MIMIC_BOOL); }
static int t_to(lua_State *L)
{
    lmimic_checktensor(L, 1);
    luaL_checkany(L, 2);
    return convert(L, lmimic_optdtype(L, 2, MIMIC_F32));
}

static int t_copy(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1), *src = lmimic_checktensor(L, 2);
    return lmimic_return_self(L, mimic_copy(t, src));
}

static int t_fill(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    return lmimic_return_self(L, fill_value(L, t, 2));
}

static void push_table(lua_State *L, const mimic_tensor *t, int d, int64_t *idx)
{
    if (d == t->ndim) {
        push_elem(L, t, idx);
        return;
    }
    lua_createtable(L, (int)(t->shape[d] < 1 << 24 ? t->shape[d] : 0), 0);
    for (idx[d] = 0; idx[d] < t->shape[d]; idx[d]++) {
        push_table(L, t, d + 1, idx);
        lua_rawseti(L, -2, (lua_Integer)idx[d] + 1);
    }
}

static int t_totable(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int64_t idx[MIMIC_MAX_DIMS] = {0};
    luaL_checkstack(L, t->ndim + 4, "totable");
    push_table(L, t, 0, idx);
    return 1;
}

static int t_item(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int64_t n = mimic_numel(t), idx[MIMIC_MAX_DIMS] = {0};
    if (n != 1)
        return luaL_error(L, "item: the tensor has %I elements; item() needs exactly one", (lua_Integer)n);
    push_elem(L, t, idx);
    return 1;
}

/* --- indexing ------------------------------------------------------------------------ */
static lua_Integer index_int(lua_State *L, int idx, const char *what)
{
    int isint;
    lua_Integer i = lua_tointegerx(L, idx, &isint);
    if (!isint)
        luaL_error(L, "index: %s %s is not an integer", what, luaL_tolstring(L, idx, NULL));
    return i;
}

/* Resolves key (a number or a table of numbers/ranges) against t. Either the key
 * names one element (returns 1, idx filled, nothing pushed) or a view (returns 0,
 * the view pushed as a Tensor). */
static int resolve_key(lua_State *L, mimic_tensor *t, int key, int64_t *idx)
{
    if (lua_type(L, key) == LUA_TNUMBER) {
        if (t->ndim == 0)
            luaL_error(L, "index: cannot index a 0-dim tensor; use item()");
        idx[0] = lmimic_index(L, "index", index_int(L, key, "index"), t->shape[0], 0);
        if (t->ndim == 1)
            return 1;
        mimic_tensor **box = NEWT(L);
        RESULT(L, box, mimic_select(t, 0, idx[0]));
        return 0;
    }
    int n = (int)lua_rawlen(L, key);
    if (n > t->ndim)
        luaL_error(L, "index: %d entries for a %d-dim tensor", n, t->ndim);
    int allnum = n == t->ndim;
    for (int k = 1; allnum && k <= n; k++) {
        allnum = lua_rawgeti(L, key, k) == LUA_TNUMBER;
        if (allnum)
            idx[k - 1] = lmimic_index(L, "index", index_int(L, -1, "entry"), t->shape[k - 1], k - 1);
        lua_pop(L, 1);
    }
    if (allnum)
        return 1;
    /* The view in progress lives in a box, so errors halfway release it. */
    mimic_tensor **box = NEWT(L);
    mimic_tensor_retain(t);
    *box = t;
    int d = 0; /* dim of the current view that entry k addresses */
    for (int k = 1; k <= n; k++) {
        mimic_tensor *cur = *box, *next = NULL;
        int ty = lua_rawgeti(L, key, k);
        if (ty == LUA_TNUMBER) {
            int64_t i = lmimic_index(L, "index", index_int(L, -1, "entry"), cur->shape[d], k - 1);
            next = mimic_select(cur, d, i);
        } else if (ty == LUA_TTABLE) {
            int m = (int)lua_rawlen(L, -1);
            if (m == 0) {
                d++;
                lua_pop(L, 1);
                continue;
            }
            if (m > 3)
                luaL_error(L, "index: entry %d has %d numbers; a range is {}, {i}, {a, b} or {a, b, step}", k, m);
            lua_Integer r[3] = {0, 0, 1};
            for (int j = 0; j < m; j++) {
                lua_rawgeti(L, -1 - j, j + 1);
                r[j] = index_int(L, -1, "range bound");
            }
            lua_pop(L, m);
            lua_Integer a = r[0], b = m >= 2 ? r[1] : r[0], step = m == 3 ? r[2] : 1;
            if (step < 1)
                luaL_error(L, "index: step %I of entry %d must be >= 1", step, k);
            int64_t start, stop;
            resolve_range(L, "index", a, b, cur->shape[d], k - 1, &start, &stop);
            next = mimic_slice(cur, d, start, stop, (int64_t)step);
            d++;
        } else {
            luaL_error(L, "index: entry %d is a %s; entries are integers or ranges {}, {a, b}, {a, b, step}", k,
                       lua_typename(L, ty));
        }
        lua_pop(L, 1);
        if (!next)
            lmimic_error(L);
        *box = next;
        mimic_tensor_free(cur);
    }
    return 0;
}

/* int64 index tensor (1-based) along dim 1: index_select lives in lops.c; we
 * call it through the method table to keep the 1-based conversion in one place. */
static int index_by_tensor(lua_State *L, int t, int key)
{
    lua_getfield(L, lua_upvalueindex(1), "index_select");
    lua_pushvalue(L, t);
    lua_pushinteger(L, 1);
    lua_pushvalue(L, key);
    lua_call(L, 3, 1);
    return 1;
}

static int t_index(lua_State *L)
{
    int kt = lua_type(L, 2);
    if (kt == LUA_TSTRING) { /* method lookup: the common case */
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
            return 1;
        /* Not a method: a property (t.grad) if extensions registered a getter. */
        if (lua_getfield(L, lua_upvalueindex(1), "__getters") != LUA_TTABLE)
            return 0;
        lua_pushvalue(L, 2);
        if (lua_rawget(L, -2) == LUA_TNIL)
            return 0;
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        return 1;
    }
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int64_t idx[MIMIC_MAX_DIMS];
    if (kt == LUA_TNUMBER || kt == LUA_TTABLE) {
        if (resolve_key(L, t, 2, idx))
            push_elem(L, t, idx);
        return 1;
    }
    mimic_tensor *k = lmimic_totensor(L, 2);
    if (k && k->dtype == MIMIC_BOOL) {
        mimic_tensor **box = NEWT(L);
        RESULT(L, box, mimic_masked_select(t, k));
        return 1;
    }
    if (k && k->dtype == MIMIC_I64)
        return index_by_tensor(L, 1, 2);
    if (k)
        return luaL_error(L, "index: a %s tensor cannot index; use a bool mask or an int64 index tensor",
                          mimic_dtype_name(k->dtype));
    return luaL_error(L, "index: a tensor is indexed by an integer, a table or a tensor, not a %s",
                      luaL_typename(L, 2));
}

static int t_newindex(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int kt = lua_type(L, 2);
    if (kt == LUA_TSTRING) { /* a property (t.grad = g) with a registered setter */
        lua_getmetatable(L, 1);
        if (lua_getfield(L, -1, "__setters") != LUA_TTABLE || lua_getfield(L, -1, lua_tostring(L, 2)) == LUA_TNIL)
            return luaL_error(L, "index: tensors have no settable field '%s'", lua_tostring(L, 2));
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 3);
        lua_call(L, 2, 0);
        return 0;
    }
    int64_t idx[MIMIC_MAX_DIMS];
    mimic_tensor *src = lmimic_totensor(L, 3);
    if (!src && lua_type(L, 3) != LUA_TNUMBER && lua_type(L, 3) != LUA_TBOOLEAN)
        return luaL_error(L, "index: assigned value is a %s; assign a number or a tensor", luaL_typename(L, 3));
    if (kt == LUA_TNUMBER || kt == LUA_TTABLE) {
        if (resolve_key(L, t, 2, idx)) {
            if (src) {
                if (mimic_numel(src) != 1)
                    return luaL_error(L, "index: cannot assign a tensor of %I elements to one element",
                                      (lua_Integer)mimic_numel(src));
                int64_t z[MIMIC_MAX_DIMS] = {0};
                mimic_set(t, idx, mimic_get(src, z));
            } else {
                set_elem(L, t, idx, 3);
            }
            return 0;
        }
        mimic_tensor *v = lmimic_checktensor(L, -1);
        int rc = src ? mimic_copy(v, src) : fill_value(L, v, 3);
        return rc == MIMIC_OK ? 0 : lmimic_error(L);
    }
    mimic_tensor *k = lmimic_totensor(L, 2);
    if (k && k->dtype == MIMIC_BOOL) {
        /* t = where(mask, value, t): the value broadcasts against t. */
        lmimic_scalar sc;
        const mimic_tensor *val = src ? src : lmimic_toscalar(L, 3, t->dtype, &sc, false);
        mimic_tensor **box = NEWT(L);
        RESULT(L, box, mimic_where(k, val, t));
        return mimic_copy(t, *box) == MIMIC_OK ? 0 : lmimic_error(L);
    }
    if (k)
        return luaL_error(L, "index: assignment through a %s tensor is not supported; use a bool mask",
                          mimic_dtype_name(k->dtype));
    return luaL_error(L, "index: a tensor is indexed by an integer, a table or a bool tensor, not a %s",
                      luaL_typename(L, 2));
}

/* --- printing -------------------------------------------------------------------------- */
enum { PF_INT, PF_FIX, PF_SCI, PF_I64, PF_BOOL };
#define EDGE 3          /* elements shown at each end of a truncated dim */
#define TRUNC_ABOVE 1000 /* tensors with more elements are truncated */
#define LINE_WIDTH 80

typedef struct pstate {
    const mimic_tensor *t;
    int trunc;
    /* format, chosen from the shown elements so every entry looks the same */
    int kind, prec, width;
    /* statistics pass */
    int nonint;
    double maxabs, minnz;
    /* output */
    luaL_Buffer *b;
    int col;
} pstate;

static void fmt_value(const pstate *s, const int64_t *idx, char *buf, size_t n, int prec)
{
    const mimic_tensor *t = s->t;
    int64_t off = elem_offset(t, idx);
    const void *p = t->storage->data;
    if (t->dtype == MIMIC_I64) {
        snprintf(buf, n, "%lld", (long long)((const int64_t *)p)[off]);
        return;
    }
    if (t->dtype == MIMIC_BOOL) {
        snprintf(buf, n, "%s", ((const uint8_t *)p)[off] ? "true" : "false");
        return;
    }
    double v = t->dtype == MIMIC_F32 ? ((const float *)p)[off] : ((const double *)p)[off];
    if (isnan(v))
        snprintf(buf, n, "nan");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else if (s->kind == PF_INT)
        snprintf(buf, n, "%.0f", v);
    else if (s->kind == PF_FIX)
        snprintf(buf, n, "%.*f", prec, v);
    else
        snprintf(buf, n, "%.*e", prec, v);
}

/* Significant decimals of buf's fraction (or mantissa) after trimming zeros. */
static int needed_digits(const char *buf)
{
    const char *dot = strchr(buf, '.');
    if (!dot)
        return 0;
    const char *end = dot + 1;
    while (*end >= '0' && *end <= '9')
        end++;
    const char *last = end - 1;
    while (last > dot && *last == '0')
        last--;
    return (int)(last - dot);
}

typedef void (*visit_fn)(pstate *s, const int64_t *idx);

static void walk(pstate *s, int d, int64_t *idx, visit_fn fn)
{
    const mimic_tensor *t = s->t;
    if (d == t->ndim) {
        fn(s, idx);
        return;
    }
    int64_t n = t->shape[d];
    for (int64_t i = 0; i < n; i++) {
        if (s->trunc && n > 2 * EDGE && i == EDGE)
            i = n - EDGE;
        idx[d] = i;
        walk(s, d + 1, idx, fn);
    }
}

static void visit_stats(pstate *s, const int64_t *idx)
{
    double v = mimic_get(s->t, idx);
    if (!isfinite(v))
        return;
    double a = fabs(v);
    if (a != floor(a))
        s->nonint = 1;
    if (a > s->maxabs)
        s->maxabs = a;
    if (a > 0 && a < s->minnz)
        s->minnz = a;
}

static void visit_prec(pstate *s, const int64_t *idx)
{
    char buf[64];
    fmt_value(s, idx, buf, sizeof buf, 4);
    int p = needed_digits(buf);
    if (p > s->prec)
        s->prec = p;
}

static void visit_width(pstate *s, const int64_t *idx)
{
    char buf[64];
    fmt_value(s, idx, buf, sizeof buf, s->prec);
    int w = (int)strlen(buf);
    if (w > s->width)
        s->width = w;
}

static void choose_format(pstate *s)
{
    int64_t idx[MIMIC_MAX_DIMS] = {0};
    s->prec = 0;
    s->width = 1;
    if (s->t->dtype == MIMIC_I64 || s->t->dtype == MIMIC_BOOL) {
        s->kind = s->t->dtype == MIMIC_I64 ? PF_I64 : PF_BOOL;
    } else {
        s->maxabs = 0;
        s->minnz = INFINITY;
        s->nonint = 0;
        walk(s, 0, idx, visit_stats);
        if (!s->nonint && s->maxabs < 1e15)
            s->kind = PF_INT;
        else
            s->kind = s->maxabs >= 1e8 || s->minnz < 1e-4 ? PF_SCI : PF_FIX;
        if (s->kind != PF_INT) {
            walk(s, 0, idx, visit_prec);
            if (s->kind == PF_FIX && s->prec == 0)
                s->prec = 1;
        }
    }
    walk(s, 0, idx, visit_width);
}

static void emit(pstate *s, const char *str)
{
    luaL_addstring(s->b, str);
    const char *nl = strrchr(str, '\n');
    s->col = nl ? (int)strlen(nl + 1) : s->col + (int)strlen(str);
}

static void emit_newline(pstate *s, int blank, int indent)
{
    for (int i = 0; i <= blank; i++)
        luaL_addchar(s->b, '\n');
    for (int i = 0; i < indent; i++)
        luaL_addchar(s->b, ' ');
    s->col = indent;
}

static void emit_block(pstate *s, int d, int64_t *idx)
{
    const mimic_tensor *t = s->t;
    int64_t n = t->shape[d];
    int last = d == t->ndim - 1;
    char buf[80];
    emit(s, "[");
    for (int64_t i = 0; i < n; i++) {
        int skip = s->trunc && n > 2 * EDGE && i == EDGE;
        if (last) {
            const char *tok;
            if (skip) {
                tok = "...";
            } else {
                char v[64];
                idx[d] = i;
                fmt_value(s, idx, v, sizeof v, s->prec);
                snprintf(buf, sizeof buf, "%*s", s->width, v);
                tok = buf;
            }
            if (i > 0) {
                if (s->col + 1 + (int)strlen(tok) + 1 > LINE_WIDTH)
                    emit_newline(s, 0, d + 1);
                else
                    emit(s, " ");
            }
            emit(s, tok);
        } else {
            if (i > 0)
                emit_newline(s, t->ndim - d - 2, d + 1);
            if (skip) {
                emit(s, "...");
            } else {
                idx[d] = i;
                emit_block(s, d + 1, idx);
            }
        }
        if (skip)
            i = n - EDGE - 1;
    }
    emit(s, "]");
}

static int t_tostring(lua_State *L)
{
    mimic_tensor **box = luaL_checkudata(L, 1, LMIMIC_TENSOR);
    if (!*box) {
        lua_pushliteral(L, "[mimic.Tensor (closed)]");
        return 1;
    }
    const mimic_tensor *t = *box;
    char shape[128];
    mimic_shape_str(t->ndim, t->shape, shape, sizeof shape);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    pstate s = {.t = t, .trunc = mimic_numel(t) > TRUNC_ABOVE, .b = &b};
    int64_t idx[MIMIC_MAX_DIMS] = {0};
    if (mimic_numel(t) == 0) {
        emit(&s, "[]");
    } else if (t->ndim == 0) {
        char v[64];
        choose_format(&s);
        fmt_value(&s, idx, v, sizeof v, s.prec);
        emit(&s, v);
    } else {
        choose_format(&s);
        emit_block(&s, 0, idx);
    }
    char footer[192];
    snprintf(footer, sizeof footer, "\n[mimic.Tensor %s %s]", mimic_dtype_name(t->dtype), shape);
    luaL_addstring(&b, footer);
    luaL_pushresult(&b);
    return 1;
}

/* --- generators ----------------------------------------------------------------------------- */
#define DEFAULT_GEN_KEY "mimic.default_generator"

mimic_rng *lmimic_checkgenerator(lua_State *L, int arg)
{
    return luaL_checkudata(L, arg, LMIMIC_GENERATOR);
}

mimic_rng *lmimic_defaultgenerator(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_GEN_KEY);
    mimic_rng *r = luaL_testudata(L, -1, LMIMIC_GENERATOR);
    lua_pop(L, 1); /* the registry keeps it alive */
    if (!r)
        luaL_error(L, "mimic: the default generator is missing from the registry");
    return r;
}

static uint64_t check_seed(lua_State *L, int arg)
{
    int isint;
    lua_Integer s = lua_tointegerx(L, arg, &isint);
    if (!isint)
        luaL_typeerror(L, arg, "integer seed");
    return (uint64_t)s;
}

static mimic_rng *new_generator(lua_State *L, uint64_t seed)
{
    mimic_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
    mimic_rng_init(r, seed);
    luaL_setmetatable(L, LMIMIC_GENERATOR);
    return r;
}

static int l_generator(lua_State *L)
{
    new_generator(L, lua_isnoneornil(L, 1) ? 0 : check_seed(L, 1));
    return 1;
}

static int l_default_generator(lua_State *L)
{
    lmimic_defaultgenerator(L);
    lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_GEN_KEY);
    return 1;
}

static int l_manual_seed(lua_State *L)
{
    mimic_rng_init(lmimic_defaultgenerator(L), check_seed(L, 1));
    return 0;
}

static int g_manual_seed(lua_State *L)
{
    mimic_rng_init(lmimic_checkgenerator(L, 1), check_seed(L, 2));
    lua_settop(L, 1);
    return 1;
}

static int g_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lmimic_checkgenerator(L, 1)->seed);
    return 1;
}

static int g_state(lua_State *L)
{
    mimic_rng *r = lmimic_checkgenerator(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)r->seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)r->counter);
    lua_setfield(L, -2, "counter");
    return 1;
}

static int g_set_state(lua_State *L)
{
    mimic_rng *r = lmimic_checkgenerator(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "seed");
    lua_getfield(L, 2, "counter");
    int ok1, ok2;
    lua_Integer seed = lua_tointegerx(L, -2, &ok1), counter = lua_tointegerx(L, -1, &ok2);
    luaL_argcheck(L, ok1 && ok2, 2, "state table needs integer fields 'seed' and 'counter' (from g:state())");
    r->seed = (uint64_t)seed;
    r->counter = (uint64_t)counter;
    lua_settop(L, 1);
    return 1;
}

static int g_clone(lua_State *L)
{
    mimic_rng *r = lmimic_checkgenerator(L, 1);
    *new_generator(L, 0) = *r;
    return 1;
}

static int g_tostring(lua_State *L)
{
    mimic_rng *r = lmimic_checkgenerator(L, 1);
    lua_pushfstring(L, "mimic.Generator(seed=%I, counter=%I)", (lua_Integer)r->seed, (lua_Integer)r->counter);
    return 1;
}

/* --- random tensors ----------------------------------------------------------------------- */
/* Options at arg: nil, a dtype string, a Generator, or a table {generator=, dtype=}. */
static void random_opts(lua_State *L, int arg, mimic_rng **g, mimic_dtype *dt)
{
    switch (lua_type(L, arg)) {
    case LUA_TNONE:
    case LUA_TNIL: return;
    case LUA_TSTRING: *dt = lmimic_optdtype(L, arg, *dt); return;
    case LUA_TUSERDATA: *g = lmimic_checkgenerator(L, arg); return;
    case LUA_TTABLE:
        if (lua_getfield(L, arg, "generator") != LUA_TNIL) {
            mimic_rng *r = luaL_testudata(L, -1, LMIMIC_GENERATOR);
            if (!r)
                luaL_argerror(L, arg, "field 'generator' must be a mimic.Generator");
            *g = r; /* the options table keeps it alive for the call */
        }
        lua_pop(L, 1);
        lua_getfield(L, arg, "dtype");
        *dt = lmimic_optdtype(L, lua_gettop(L), *dt);
        lua_pop(L, 1);
        return;
    default: luaL_typeerror(L, arg, "options table");
    }
}

static int is_options_table(lua_State *L, int arg)
{
    if (!lua_istable(L, arg) || lua_rawlen(L, arg) > 0)
        return 0;
    int top = lua_gettop(L);
    int has = lua_getfield(L, arg, "generator") != LUA_TNIL;
    has |= lua_getfield(L, arg, "dtype") != LUA_TNIL;
    lua_settop(L, top);
    return has;
}

enum { R_RAND, R_RANDN, R_UNIFORM, R_NORMAL };

/* rand/randn(shape... [, opts]); uniform(shape, lo, hi [, opts]); normal(shape, mean, std [, opts]).
 * g is the generator of a method call (first = 2), or NULL for the module form. */
static int random_tensor(lua_State *L, int kind, mimic_rng *g, int first)
{
    int64_t shape[MIMIC_MAX_DIMS];
    int ndim, next;
    double a = 0, b = 1;
    if (kind == R_RAND || kind == R_RANDN) {
        if (is_options_table(L, first)) {
            ndim = 0;
            next = first;
        } else {
            ndim = lmimic_checkshape(L, first, shape, &next, 0);
        }
    } else {
        ndim = shape_arg(L, first, shape);
        a = luaL_checknumber(L, first + 1);
        b = luaL_checknumber(L, first + 2);
        next = first + 3;
    }
    mimic_dtype dt = MIMIC_F32;
    mimic_rng *og = NULL;
    random_opts(L, next, &og, &dt);
    if (!g)
        g = og ? og : lmimic_defaultgenerator(L);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_empty(ndim, shape, dt));
    int rc = kind == R_RAND || kind == R_UNIFORM ? mimic_rng_uniform(g, *box, a, b) : mimic_rng_normal(g, *box, a, b);
    return rc == MIMIC_OK ? 1 : lmimic_error(L);
}

static int l_rand(lua_State *L) { return random_tensor(L, R_RAND, NULL, 1); }
static int l_randn(lua_State *L) { return random_tensor(L, R_RANDN, NULL, 1); }
static int l_uniform(lua_State *L) { return random_tensor(L, R_UNIFORM, NULL, 1); }
static int l_normal(lua_State *L) { return random_tensor(L, R_NORMAL, NULL, 1); }
static int g_rand(lua_State *L) { return random_tensor(L, R_RAND, lmimic_checkgenerator(L, 1), 2); }
static int g_randn(lua_State *L) { return random_tensor(L, R_RANDN, lmimic_checkgenerator(L, 1), 2); }
static int g_uniform(lua_State *L) { return random_tensor(L, R_UNIFORM, lmimic_checkgenerator(L, 1), 2); }
static int g_normal(lua_State *L) { return random_tensor(L, R_NORMAL, lmimic_checkgenerator(L, 1), 2); }

static int randperm(lua_State *L, mimic_rng *g, int first)
{
    lua_Integer n = luaL_checkinteger(L, first);
    luaL_argcheck(L, n >= 0, first, "n must be >= 0");
    mimic_dtype dt = MIMIC_I64;
    mimic_rng *og = NULL;
    random_opts(L, first + 1, &og, &dt);
    if (!g)
        g = og ? og : lmimic_defaultgenerator(L);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_rng_permutation(g, (int64_t)n));
    int64_t *p = mimic_data(*box);
    for (lua_Integer i = 0; i < n; i++)
        p[i] += 1; /* 1-based, like every index the Lua API hands out */
    if (dt != MIMIC_I64) {
        mimic_tensor *c = mimic_to_dtype(*box, dt);
        if (!c)
            return lmimic_error(L);
        mimic_tensor_free(*box);
        *box = c;
    }
    return 1;
}
static int l_randperm(lua_State *L) { return randperm(L, NULL, 1); }
static int g_randperm(lua_State *L) { return randperm(L, lmimic_checkgenerator(L, 1), 2); }

/* t:uniform_(lo, hi [, gen|opts]), t:normal_(mean, std [, gen|opts]) */
static int fill_random(lua_State *L, int normal)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    double a = luaL_optnumber(L, 2, 0), b = luaL_optnumber(L, 3, 1); /* [0,1) or N(0,1) */
    mimic_dtype dt = t->dtype;
    mimic_rng *g = NULL;
    random_opts(L, 4, &g, &dt);
    if (!g)
        g = lmimic_defaultgenerator(L);
    return lmimic_return_self(L, normal ? mimic_rng_normal(g, t, a, b) : mimic_rng_uniform(g, t, a, b));
}
static int t_uniform_(lua_State *L) { return fill_random(L, 0); }
static int t_normal_(lua_State *L) { return fill_random(L, 1); }

/* --- registration ------------------------------------------------------------------------------ */
void lmimic_open_tensor(lua_State *L, int mod, int methods)
{
    static const luaL_Reg tmethods[] = {
        {"size", t_size}, {"shape", t_size}, {"stride", t_stride}, {"dim", t_dim}, {"numel", t_numel},
        {"dtype", t_dtype}, {"is_contiguous", t_is_contiguous},
        {"view", t_view}, {"reshape", t_reshape}, {"t", t_t}, {"transpose", t_transpose},
        {"permute", t_permute}, {"narrow", t_narrow}, {"select", t_select}, {"slice", t_slice},
        {"expand", t_expand}, {"squeeze", t_squeeze}, {"unsqueeze", t_unsqueeze}, {"flatten", t_flatten},
        {"contiguous", t_contiguous}, {"clone", t_clone},
        {"float", t_float}, {"double", t_double}, {"long", t_long}, {"bool", t_bool}, {"to", t_to},
        {"copy", t_copy}, {"fill", t_fill}, {"totable", t_totable}, {"tolist", t_totable}, {"item", t_item},
        {"uniform_", t_uniform_}, {"normal_", t_normal_},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"tensor", l_tensor}, {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty}, {"full", l_full},
        {"arange", l_arange}, {"linspace", l_linspace}, {"eye", l_eye}, {"scalar", l_scalar},
        {"is_tensor", l_is_tensor},
        {"Generator", l_generator}, {"default_generator", l_default_generator}, {"manual_seed", l_manual_seed},
        {"rand", l_rand}, {"randn", l_randn}, {"uniform", l_uniform}, {"normal", l_normal},
        {"randperm", l_randperm},
        {NULL, NULL},
    };
    static const luaL_Reg gmethods[] = {
        {"seed", g_seed}, {"manual_seed", g_manual_seed}, {"state", g_state}, {"set_state", g_set_state},
        {"clone", g_clone}, {"rand", g_rand}, {"randn", g_randn}, {"uniform", g_uniform},
        {"normal", g_normal}, {"randperm", g_randperm},
        {NULL, NULL},
    };
    lua_pushvalue(L, methods);
    luaL_setfuncs(L, tmethods, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
    /* `methods` is the Tensor metatable itself. __index is a function (numbers
     * and tables index elements) that looks strings up in it, its upvalue. */
    lua_pushvalue(L, methods);
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, methods, "__index");
    static const luaL_Reg meta[] = {
        {"__newindex", t_newindex}, {"__len", t_len}, {"__tostring", t_tostring},
        {"__gc", t_gc}, {"__close", t_gc}, {NULL, NULL},
    };
    lua_pushvalue(L, methods);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    /* The Generator metatable and the state's default generator. */
    luaL_newmetatable(L, LMIMIC_GENERATOR);
    luaL_newlib(L, gmethods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, g_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, DEFAULT_GEN_KEY) == LUA_TNIL) {
        new_generator(L, 0);
        lua_setfield(L, LUA_REGISTRYINDEX, DEFAULT_GEN_KEY);
    }
    lua_pop(L, 1);
}
