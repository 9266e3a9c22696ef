/* Tensor operations (core/include/mimic/ops.h) as Tensor methods and as module
 * functions: `t:sum(2)` and `mimic.sum(t, 2)` are the same C function.
 *
 * Everything here is argument handling: 1-based dims and indices become
 * 0-based, Lua numbers become stack scalars, results are boxed. The maths,
 * broadcasting and shape checks are the core's. */
#include "lmimic.h"
#include "mimic/autograd.h"
#include "mimic/ops.h"

#include <math.h>
#include <stdio.h>

#define NEWT(L) lmimic_newtensor(L)
#define RESULT(L, box, expr) ((*(box) = (expr)), lmimic_checkresult((L), (box)))
#define OPCODE(L) ((int)lua_tointeger((L), lua_upvalueindex(1)))

/* Index tensors the core returns are fresh, contiguous int64: shift them to 1-based. */
static void one_based(mimic_tensor *t)
{
    int64_t *p = mimic_data(t), n = mimic_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i] += 1;
}

/* A tensor operand, or a number as a scalar of the other operand's dtype.
 * Non-integral numbers against int64/bool tensors stay float64 so that
 * comparisons like t:lt(2.5) mean what they say. */
static const mimic_tensor *operand(lua_State *L, int idx, const mimic_tensor *other, lmimic_scalar *sc)
{
    mimic_tensor *t = lmimic_totensor(L, idx);
    if (t)
        return t;
    if (lua_type(L, idx) != LUA_TNUMBER && lua_type(L, idx) != LUA_TBOOLEAN)
        luaL_typeerror(L, idx, "mimic.Tensor or number");
    mimic_dtype dt = other ? other->dtype : MIMIC_F32;
    if ((dt == MIMIC_I64 || dt == MIMIC_BOOL) && lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx)) {
        lua_Number v = lua_tonumber(L, idx);
        if (v != floor(v) || (dt == MIMIC_BOOL && v != 0 && v != 1))
            dt = MIMIC_F64;
    }
    bool retained = other && mimic_requires_grad(other) && mimic_grad_enabled();
    return lmimic_toscalar(L, idx, dt, sc, retained);
}

/* Two operands of which at least one is a tensor. */
static void operands(lua_State *L, int i, const mimic_tensor **a, const mimic_tensor **b, lmimic_scalar *sa,
                     lmimic_scalar *sb)
{
    mimic_tensor *ta = lmimic_totensor(L, i), *tb = lmimic_totensor(L, i + 1);
    if (!ta && !tb) {
        if (lua_type(L, i) == LUA_TNUMBER || lua_type(L, i) == LUA_TBOOLEAN)
            luaL_typeerror(L, i + 1, "mimic.Tensor");
        luaL_typeerror(L, i, "mimic.Tensor or number");
    }
    *a = operand(L, i, tb, sa);
    *b = operand(L, i + 1, ta, sb);
}

/* --- element-wise -------------------------------------------------------------- */
static int l_unary(lua_State *L)
{
    mimic_tensor *a = lmimic_checktensor(L, 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_unary((mimic_unop)OPCODE(L), a));
    return 1;
}

static int l_unary_(lua_State *L)
{
    mimic_tensor *a = lmimic_checktensor(L, 1);
    return lmimic_return_self(L, mimic_unary_out(a, (mimic_unop)OPCODE(L), a));
}

static int l_binary(lua_State *L)
{
    lmimic_scalar sa, sb;
    const mimic_tensor *a, *b;
    operands(L, 1, &a, &b, &sa, &sb);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_binary((mimic_binop)OPCODE(L), a, b));
    return 1;
}

static int l_binary_(lua_State *L)
{
    lmimic_scalar sb;
    mimic_tensor *a = lmimic_checktensor(L, 1);
    const mimic_tensor *b = operand(L, 2, a, &sb);
    return lmimic_return_self(L, mimic_binary_out(a, (mimic_binop)OPCODE(L), a, b));
}

static int l_compare(lua_State *L)
{
    lmimic_scalar sa, sb;
    const mimic_tensor *a, *b;
    operands(L, 1, &a, &b, &sa, &sb);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_compare((mimic_cmpop)OPCODE(L), a, b));
    return 1;
}

/* __unm gets the operand twice (Lua 5.4); only the first one counts. */
static int l_unm(lua_State *L)
{
    mimic_tensor *a = lmimic_checktensor(L, 1);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_unary(MIMIC_NEG, a));
    return 1;
}

static void clamp_bounds(lua_State *L, double *lo, double *hi)
{
    *lo = lua_isnoneornil(L, 2) ? -INFINITY : luaL_checknumber(L, 2);
    *hi = lua_isnoneornil(L, 3) ? INFINITY : luaL_checknumber(L, 3);
}

/* clamp(t, lo, hi): nil bounds are unbounded */
static int l_clamp(lua_State *L)
{
    mimic_tensor *a = lmimic_checktensor(L, 1);
    double lo, hi;
    clamp_bounds(L, &lo, &hi);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_clamp(a, lo, hi));
    return 1;
}

static int l_clamp_(lua_State *L)
{
    mimic_tensor *a = lmimic_checktensor(L, 1);
    double lo, hi;
    clamp_bounds(L, &lo, &hi);
    return lmimic_return_self(L, mimic_clamp_out(a, a, lo, hi));
}

/* leaky_relu(t [, slope = 0.01]) */
static int l_leaky_relu(lua_State *L)
{
    mimic_tensor *a = lmimic_checktensor(L, 1);
    double slope = luaL_optnumber(L, 2, 0.01);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_leaky_relu(a, slope));
    return 1;
}

/* where(cond, a, b): a and b are tensors or numbers */
static int l_where(lua_State *L)
{
    mimic_tensor *cond = lmimic_checktensor(L, 1);
    lmimic_scalar sa, sb;
    mimic_tensor *ta = lmimic_totensor(L, 2), *tb = lmimic_totensor(L, 3);
    const mimic_tensor *a = operand(L, 2, tb, &sa), *b = operand(L, 3, ta ? ta : a, &sb);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_where(cond, a, b));
    return 1;
}

/* --- reductions ------------------------------------------------------------------ */
typedef struct red_args {
    int dim; /* 0-based, or MIMIC_ALL_DIMS */
    int keepdim;
    double param;
} red_args;

/* Positional (dim, keepdim[, ddof]) -- norm: (p, dim, keepdim) -- and/or a
 * trailing options table {dim=, keepdim=, ddof=, p=}. */
static red_args reduction_args(lua_State *L, const mimic_tensor *t, int op)
{
    red_args r = {MIMIC_ALL_DIMS, 0, op == MIMIC_NORM ? 2.0 : 0.0};
    int top = lua_gettop(L), opts = 0;
    if (top >= 2 && lua_istable(L, top))
        opts = top--;
    int a = 2;
    if (op == MIMIC_NORM) {
        if (a <= top && !lua_isnil(L, a))
            r.param = luaL_checknumber(L, a);
        a++;
    }
    if (a <= top)
        r.dim = lmimic_optdim(L, a, t->ndim, MIMIC_ALL_DIMS);
    if (a + 1 <= top)
        r.keepdim = lua_toboolean(L, a + 1);
    if ((op == MIMIC_VAR || op == MIMIC_STD) && a + 2 <= top && !lua_isnil(L, a + 2))
        r.param = luaL_checknumber(L, a + 2);
    if (opts) {
        if (lua_getfield(L, opts, "dim") != LUA_TNIL)
            r.dim = lmimic_dim(L, "options", luaL_checkinteger(L, -1), t->ndim);
        if (lua_getfield(L, opts, "keepdim") != LUA_TNIL)
            r.keepdim = lua_toboolean(L, -1);
        if (lua_getfield(L, opts, op == MIMIC_NORM ? "p" : "ddof") != LUA_TNIL)
            r.param = luaL_checknumber(L, -1);
        lua_pop(L, 3);
    }
    return r;
}

static int l_reduce(lua_State *L)
{
    mimic_redop op = (mimic_redop)OPCODE(L);
    mimic_tensor *t = lmimic_checktensor(L, 1);
    red_args r = reduction_args(L, t, op);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_reduce(op, t, r.dim, r.keepdim, r.param));
    return 1;
}

/* min/max: with a dim, values and 1-based indices; with a tensor second
 * argument, the element-wise minimum/maximum. */
static int l_minmax(lua_State *L)
{
    mimic_redop op = (mimic_redop)OPCODE(L);
    if (lmimic_totensor(L, 2)) {
        lmimic_scalar sa, sb;
        const mimic_tensor *a, *b;
        operands(L, 1, &a, &b, &sa, &sb);
        mimic_tensor **box = NEWT(L);
        RESULT(L, box, mimic_binary(op == MIMIC_MAX ? MIMIC_MAXIMUM : MIMIC_MINIMUM, a, b));
        return 1;
    }
    mimic_tensor *t = lmimic_checktensor(L, 1);
    red_args r = reduction_args(L, t, op);
    mimic_tensor **vals = NEWT(L);
    RESULT(L, vals, mimic_reduce(op, t, r.dim, r.keepdim, 0));
    if (r.dim == MIMIC_ALL_DIMS)
        return 1;
    mimic_tensor **idx = NEWT(L);
    RESULT(L, idx, op == MIMIC_MAX ? mimic_argmax(t, r.dim, r.keepdim) : mimic_argmin(t, r.dim, r.keepdim));
    one_based(*idx);
    return 2;
}

/* argmin/argmax(t [, dim [, keepdim]]): 1-based; without dim, into the flattened tensor */
static int l_argminmax(lua_State *L)
{
    int is_max = OPCODE(L);
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int dim = lmimic_optdim(L, 2, t->ndim, MIMIC_ALL_DIMS);
    int keepdim = lua_toboolean(L, 3);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, is_max ? mimic_argmax(t, dim, keepdim) : mimic_argmin(t, dim, keepdim));
    one_based(*box);
    return 1;
}

/* cumsum(t [, dim]): without dim, over the flattened tensor (NumPy's default) */
static int l_cumsum(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int dim = lmimic_optdim(L, 2, t->ndim, MIMIC_ALL_DIMS);
    if (dim == MIMIC_ALL_DIMS) {
        mimic_tensor **flat = NEWT(L);
        RESULT(L, flat, mimic_reshape(t, 1, (int64_t[]){-1}));
        t = *flat;
        dim = 0;
    }
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_cumsum(t, dim));
    return 1;
}

/* --- linear algebra ----------------------------------------------------------------- */
/* f(a, b) of two tensor arguments: matmul, bmm, dot, outer. */
static int tensor_pair(lua_State *L, mimic_tensor *(*f)(const mimic_tensor *, const mimic_tensor *))
{
    mimic_tensor *a = lmimic_checktensor(L, 1), *b = lmimic_checktensor(L, 2);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, f(a, b));
    return 1;
}
static int l_matmul(lua_State *L) { return tensor_pair(L, mimic_matmul); }
static int l_bmm(lua_State *L) { return tensor_pair(L, mimic_bmm); }
static int l_dot(lua_State *L) { return tensor_pair(L, mimic_dot); }
static int l_outer(lua_State *L) { return tensor_pair(L, mimic_outer); }

/* --- joining, splitting, indexing ------------------------------------------------------ */
/* The tensors of the list at arg, in a userdata array (collected, so an error
 * later frees it); the list itself keeps them alive. */
static mimic_tensor **tensor_list(lua_State *L, int arg, int *n, const char *fn)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Unsigned len = lua_rawlen(L, arg);
    if (len == 0)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s needs a non-empty list of tensors", fn));
    if (len > INT32_MAX / sizeof(mimic_tensor *))
        luaL_argerror(L, arg, "list is too long");
    mimic_tensor **ts = lua_newuserdatauv(L, (size_t)len * sizeof *ts, 0);
    for (lua_Unsigned i = 0; i < len; i++) {
        lua_rawgeti(L, arg, (lua_Integer)i + 1);
        ts[i] = lmimic_totensor(L, -1);
        if (!ts[i])
            luaL_argerror(L, arg, lua_pushfstring(L, "entry %I of the list is a %s, expected a mimic.Tensor",
                                                  (lua_Integer)i + 1, luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    *n = (int)len;
    return ts;
}

static int join(lua_State *L, int stack)
{
    int n;
    lua_settop(L, 2); /* the list's array goes above the arguments */
    mimic_tensor **ts = tensor_list(L, 1, &n, stack ? "stack" : "cat");
    int dim = lmimic_optdim(L, 2, ts[0]->ndim + stack, 0);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, stack ? mimic_stack(ts, n, dim) : mimic_cat(ts, n, dim));
    return 1;
}
static int l_cat(lua_State *L) { return join(L, 0); }
static int l_stack(lua_State *L) { return join(L, 1); }

/* A Lua list of views of `size` along dim. The boxes exist before the core
 * call, so nothing can raise between getting the views and owning them. */
static int split_views(lua_State *L, mimic_tensor *t, int64_t size, int dim)
{
    int64_t len = t->shape[dim];
    int64_t count = len == 0 ? 1 : (len + size - 1) / size;
    if (count > INT32_MAX)
        return luaL_error(L, "split: %I pieces are too many", (lua_Integer)count);
    lua_createtable(L, (int)count, 0);
    for (int64_t i = 0; i < count; i++) {
        lmimic_newtensor(L);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    int n = 0;
    mimic_tensor **views = mimic_split(t, size, dim, &n);
    if (!views)
        return lmimic_error(L);
    for (int i = 0; i < n; i++) {
        mimic_tensor **box = NULL;
        if (i < count) {
            lua_rawgeti(L, -1, i + 1);
            box = lua_touserdata(L, -1);
            lua_pop(L, 1);
        }
        if (box)
            *box = views[i];
        else
            mimic_tensor_free(views[i]);
    }
    mimic_free(views);
    if (n != count)
        return luaL_error(L, "split: the core returned %d pieces, expected %I (a bug: please report it)", n,
                          (lua_Integer)count);
    return 1;
}

/* split(t, size [, dim]) */
static int l_split(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    lua_Integer size = luaL_checkinteger(L, 2);
    if (t->ndim == 0)
        return luaL_error(L, "split: cannot split a 0-dim tensor");
    int dim = lmimic_optdim(L, 3, t->ndim, 0);
    luaL_argcheck(L, size >= 1, 2, "piece size must be >= 1");
    return split_views(L, t, (int64_t)size, dim);
}

/* chunk(t, n [, dim]): n pieces of equal size (the last may be shorter or they may be fewer) */
static int l_chunk(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    if (t->ndim == 0)
        return luaL_error(L, "chunk: cannot split a 0-dim tensor");
    int dim = lmimic_optdim(L, 3, t->ndim, 0);
    luaL_argcheck(L, n >= 1, 2, "number of chunks must be >= 1");
    int64_t len = t->shape[dim], size = (len + n - 1) / n;
    return split_views(L, t, size > 0 ? size : 1, dim);
}

/* A 0-based int64 copy of the 1-based index tensor at arg (negatives count
 * from the end of a dim of `size`), left boxed on the stack. */
static mimic_tensor *zero_based_index(lua_State *L, const char *fn, int arg, int64_t size, int dim0)
{
    mimic_tensor *idx = lmimic_checktensor(L, arg);
    if (idx->dtype != MIMIC_I64)
        luaL_argerror(L, arg, lua_pushfstring(L, "index must be an int64 tensor of 1-based indices, got %s; "
                                                 "convert it with :long()", mimic_dtype_name(idx->dtype)));
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_clone(idx));
    int64_t *p = mimic_data(*box), n = mimic_numel(*box);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = p[i], j = v < 0 ? v + size : v - 1;
        if (v == 0 || j < 0 || j >= size)
            luaL_error(L, "%s: index %I (entry %I of the index) is out of range for dim %d of size %I "
                          "(indices are 1-based: valid 1..%I or -%I..-1)", fn, (lua_Integer)v, (lua_Integer)i + 1,
                       dim0 + 1, (lua_Integer)size, (lua_Integer)size, (lua_Integer)size);
        p[i] = j;
    }
    return *box;
}

/* gather(t, dim, index) */
static int l_gather(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int dim = lmimic_checkdim(L, 2, t->ndim);
    mimic_tensor *idx = zero_based_index(L, "gather", 3, t->ndim ? t->shape[dim] : 1, dim);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_gather(t, dim, idx));
    return 1;
}

/* index_select(t, dim, index) */
static int l_index_select(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (t->ndim == 0)
        return luaL_error(L, "index_select: cannot index a 0-dim tensor");
    int dim = lmimic_checkdim(L, 2, t->ndim);
    mimic_tensor *idx = zero_based_index(L, "index_select", 3, t->shape[dim], dim);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_index_select(t, dim, idx));
    return 1;
}

static int l_masked_select(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1), *mask = lmimic_checktensor(L, 2);
    mimic_tensor **box = NEWT(L);
    RESULT(L, box, mimic_masked_select(t, mask));
    return 1;
}

/* --- sorting -------------------------------------------------------------------------------- */
/* sort(t [, dim [, descending]]) -> values, indices; dim defaults to the last */
static int l_sort(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int dim = lmimic_optdim(L, 2, t->ndim, t->ndim ? t->ndim - 1 : 0);
    int desc = lua_toboolean(L, 3);
    mimic_tensor **vals = NEWT(L), **idx = NEWT(L);
    RESULT(L, vals, mimic_sort(t, dim, desc, idx));
    one_based(*idx);
    return 2;
}

/* argsort(t [, dim [, descending]]) -> indices (stable) */
static int l_argsort(lua_State *L)
{
    l_sort(L);
    return 1;
}

/* topk(t, k [, dim [, largest]]) -> values, indices; dim defaults to the last, largest to true */
static int l_topk(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    lua_Integer k = luaL_checkinteger(L, 2);
    int dim = lmimic_optdim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0);
    int largest = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    int64_t len = t->ndim ? t->shape[dim] : 1;
    if (k < 0 || k > len)
        return luaL_error(L, "topk: k = %I is out of range for dim %d of size %I (valid 0..%I)", k, dim + 1,
                          (lua_Integer)len, (lua_Integer)len);
    mimic_tensor **vals = NEWT(L), **idx = NEWT(L);
    RESULT(L, vals, mimic_topk(t, (int64_t)k, dim, largest, idx));
    one_based(*idx);
    return 2;
}

/* --- registration ------------------------------------------------------------------------------- */
/* Sets f (with an integer upvalue) as field `name` of the tables at a and b. */
static void set_op(lua_State *L, int a, int b, const char *name, lua_CFunction f, int code)
{
    lua_pushinteger(L, code);
    lua_pushcclosure(L, f, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, a, name);
    lua_setfield(L, b, name);
}

void lmimic_open_ops(lua_State *L, int mod, int methods)
{
    char name[64];
    for (int op = 0; op < MIMIC_UNOP_COUNT; op++) {
        set_op(L, mod, methods, mimic_unop_name((mimic_unop)op), l_unary, op);
        snprintf(name, sizeof name, "%s_", mimic_unop_name((mimic_unop)op));
        set_op(L, mod, methods, name, l_unary_, op);
    }
    for (int op = 0; op < MIMIC_BINOP_COUNT; op++) {
        set_op(L, mod, methods, mimic_binop_name((mimic_binop)op), l_binary, op);
        snprintf(name, sizeof name, "%s_", mimic_binop_name((mimic_binop)op));
        set_op(L, mod, methods, name, l_binary_, op);
    }
    for (int op = 0; op < MIMIC_CMPOP_COUNT; op++)
        set_op(L, mod, methods, mimic_cmpop_name((mimic_cmpop)op), l_compare, op);
    static const struct { const char *name; mimic_redop op; } reds[] = {
        {"sum", MIMIC_SUM}, {"mean", MIMIC_MEAN}, {"prod", MIMIC_PROD}, {"var", MIMIC_VAR},
        {"std", MIMIC_STD}, {"norm", MIMIC_NORM}};
    for (size_t i = 0; i < sizeof reds / sizeof reds[0]; i++)
        set_op(L, mod, methods, reds[i].name, l_reduce, reds[i].op);
    set_op(L, mod, methods, "min", l_minmax, MIMIC_MIN);
    set_op(L, mod, methods, "max", l_minmax, MIMIC_MAX);
    set_op(L, mod, methods, "argmin", l_argminmax, 0);
    set_op(L, mod, methods, "argmax", l_argminmax, 1);
    static const luaL_Reg both[] = {
        {"clamp", l_clamp}, {"clamp_", l_clamp_}, {"leaky_relu", l_leaky_relu}, {"where", l_where}, {"cumsum", l_cumsum},
        {"matmul", l_matmul}, {"mm", l_matmul}, {"bmm", l_bmm}, {"dot", l_dot}, {"outer", l_outer},
        {"split", l_split}, {"chunk", l_chunk}, {"gather", l_gather}, {"index_select", l_index_select},
        {"masked_select", l_masked_select}, {"sort", l_sort}, {"argsort", l_argsort}, {"topk", l_topk},
        {NULL, NULL},
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, both, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, methods);
    luaL_setfuncs(L, both, 0);
    lua_pop(L, 1);
    static const luaL_Reg modonly[] = {{"cat", l_cat}, {"stack", l_stack}, {NULL, NULL}};
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, modonly, 0);
    lua_pop(L, 1);
    /* Arithmetic metamethods: a number may be on either side. */
    luaL_getmetatable(L, LMIMIC_TENSOR);
    int meta = lua_gettop(L);
    static const struct { const char *name; mimic_binop op; } arith[] = {
        {"__add", MIMIC_ADD}, {"__sub", MIMIC_SUB}, {"__mul", MIMIC_MUL}, {"__div", MIMIC_DIV}, {"__pow", MIMIC_POW}};
    for (size_t i = 0; i < sizeof arith / sizeof arith[0]; i++) {
        lua_pushinteger(L, arith[i].op);
        lua_pushcclosure(L, l_binary, 1);
        lua_setfield(L, meta, arith[i].name);
    }
    lua_pushcfunction(L, l_unm);
    lua_setfield(L, meta, "__unm");
    lua_pop(L, 1);
}
