/* The C half of mimic.validate (core/include/mimic/validate.h): the raw
 * metrics as functions of the table mimic._validate, which the pure-Lua
 * module lua/mimic/validate.lua wraps (argument conversion, 1-based labels,
 * defaults, documentation). Tensors arrive as mimic.Tensor; bin edges and
 * histograms as Lua lists of numbers. Scratch arrays live in userdata on the
 * Lua stack, so a Lua error never leaks them. */
#include "lmimic.h"
#include "mimic/validate.h"

#include <limits.h>
#include <math.h>

/* Scratch memory owned by the Lua stack (freed by the GC). */
static void *scratch(lua_State *L, size_t n, size_t size)
{
    if (n > (size_t)INT_MAX)
        luaL_error(L, "validate: too many elements (%d)", (int)n);
    return lua_newuserdatauv(L, (n ? n : 1) * size, 0);
}

/* The list of numbers at arg as a double array on the stack; *n its length. */
static double *check_list(lua_State *L, int arg, int *n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer len = (lua_Integer)lua_rawlen(L, arg);
    if (len > INT_MAX / 2)
        luaL_argerror(L, arg, "list too long");
    double *d = scratch(L, (size_t)len, sizeof *d);
    for (lua_Integer i = 0; i < len; i++) {
        lua_rawgeti(L, arg, i + 1);
        int isnum;
        d[i] = lua_tonumberx(L, -1, &isnum);
        if (!isnum)
            luaL_argerror(L, arg, lua_pushfstring(L, "entry %I is a %s, expected a number", i + 1, luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    *n = (int)len;
    return d;
}

static void push_list(lua_State *L, const double *d, int64_t n)
{
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, d[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* As push_list, for counts: Lua sees them as integers, not floats. */
static void push_int_list(lua_State *L, const int64_t *d, int64_t n)
{
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)d[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* Field k of the table on top := the list d[0..n-1]; most results are
 * tables of such lists. */
static void setlist(lua_State *L, const char *k, const double *d, int64_t n)
{
    push_list(L, d, n);
    lua_setfield(L, -2, k);
}

static void setnum(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}
static void setint(lua_State *L, const char *k, int64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int64_t ncols_checked(lua_State *L, const mimic_tensor *t)
{
    int64_t c = mimic_val_ncols(t);
    if (c < 1 || c > INT_MAX / 2)
        luaL_error(L, "validate: tensor has %I columns", (lua_Integer)c);
    return c;
}

/* regression(pred, ref, rel_floor) -> list of per-column tables */
static int l_regression(lua_State *L)
{
    mimic_tensor *p = lmimic_checktensor(L, 1), *r = lmimic_checktensor(L, 2);
    double floor_ = luaL_optnumber(L, 3, 0);
    int64_t C = ncols_checked(L, r);
    mimic_val_reg *o = scratch(L, (size_t)C, sizeof *o);
    if (mimic_val_regression(p, r, floor_, o) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, (int)C, 0);
    for (int64_t c = 0; c < C; c++) {
        lua_createtable(L, 0, 9);
        setint(L, "n", o[c].n);
        setnum(L, "bias", o[c].bias);
        setnum(L, "mae", o[c].mae);
        setnum(L, "rmse", o[c].rmse);
        setnum(L, "max_abs", o[c].max_abs);
        setnum(L, "rel", o[c].rel);
        setnum(L, "r2", o[c].r2);
        setnum(L, "pearson", o[c].pearson);
        setnum(L, "spearman", o[c].spearman);
        lua_rawseti(L, -2, c + 1);
    }
    return 1;
}

/* binned_quantiles(value, coord, edges, q) -> {count=, mean=, q={per q: list per bin}} */
static int l_binned_quantiles(lua_State *L)
{
    mimic_tensor *v = lmimic_checktensor(L, 1), *c = lmimic_checktensor(L, 2);
    int ne, nq;
    double *e = check_list(L, 3, &ne), *q = check_list(L, 4, &nq);
    int nb = ne - 1;
    if (nb < 1)
        luaL_argerror(L, 3, "needs at least 2 edges");
    int64_t *count = scratch(L, (size_t)nb, sizeof *count);
    double *mean = scratch(L, (size_t)nb, sizeof *mean), *qu = scratch(L, (size_t)nb * (size_t)(nq ? nq : 1), sizeof *qu);
    if (mimic_val_binned_quantiles(v, c, nb, e, nq, q, count, mean, qu) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 3);
    push_int_list(L, count, nb);
    lua_setfield(L, -2, "count");
    setlist(L, "mean", mean, nb);
    lua_createtable(L, nq, 0);
    for (int j = 0; j < nq; j++) {
        lua_createtable(L, nb, 0);
        for (int b = 0; b < nb; b++) {
            lua_pushnumber(L, qu[(size_t)b * (size_t)nq + (size_t)j]);
            lua_rawseti(L, -2, b + 1);
        }
        lua_rawseti(L, -2, j + 1);
    }
    lua_setfield(L, -2, "q");
    return 1;
}

/* histogram(x, edges) -> counts, outside */
static int l_histogram(lua_State *L)
{
    mimic_tensor *x = lmimic_checktensor(L, 1);
    int ne;
    double *e = check_list(L, 2, &ne);
    if (ne < 2)
        luaL_argerror(L, 2, "needs at least 2 edges");
    double *counts = scratch(L, (size_t)ne - 1, sizeof *counts);
    int64_t out;
    if (mimic_val_histogram(x, ne - 1, e, counts, &out) != MIMIC_OK)
        return lmimic_error(L);
    push_list(L, counts, ne - 1);
    lua_pushinteger(L, (lua_Integer)out);
    return 2;
}

/* histogram2d(x, y, xedges, yedges) -> counts (rows: x bins), outside */
static int l_histogram2d(lua_State *L)
{
    mimic_tensor *x = lmimic_checktensor(L, 1), *y = lmimic_checktensor(L, 2);
    int nx, ny;
    double *ex = check_list(L, 3, &nx), *ey = check_list(L, 4, &ny);
    if (nx < 2 || ny < 2)
        luaL_argerror(L, nx < 2 ? 3 : 4, "needs at least 2 edges");
    nx--, ny--;
    double *counts = scratch(L, (size_t)nx * (size_t)ny, sizeof *counts);
    int64_t out;
    if (mimic_val_histogram2d(x, y, nx, ex, ny, ey, counts, &out) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, nx, 0);
    for (int i = 0; i < nx; i++) {
        push_list(L, counts + (size_t)i * (size_t)ny, ny);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushinteger(L, (lua_Integer)out);
    return 2;
}

static double *two_lists(lua_State *L, double **b, int *n)
{
    int na, nb;
    double *a = check_list(L, 1, &na);
    *b = check_list(L, 2, &nb);
    if (na != nb)
        luaL_error(L, "validate: histograms have %d and %d bins; use the same edges for both", na, nb);
    *n = na;
    return a;
}

/* chi2(a, b) -> chi2, dof, p */
static int l_chi2(lua_State *L)
{
    int n, dof;
    double *b, *a = two_lists(L, &b, &n), s, p;
    if (mimic_val_chi2(n, a, b, &s, &dof, &p) != MIMIC_OK)
        return lmimic_error(L);
    lua_pushnumber(L, s);
    lua_pushinteger(L, dof);
    lua_pushnumber(L, p);
    return 3;
}

/* js(p, q) -> divergence (base 2) */
static int l_js(lua_State *L)
{
    int n;
    double *b, *a = two_lists(L, &b, &n), v;
    if (mimic_val_js(n, a, b, &v) != MIMIC_OK)
        return lmimic_error(L);
    lua_pushnumber(L, v);
    return 1;
}

/* holes(ref, sample) -> table */
static int l_holes(lua_State *L)
{
    int n;
    double *b, *a = two_lists(L, &b, &n);
    mimic_val_holes h;
    if (mimic_val_holes_count(n, a, b, &h) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 5);
    setint(L, "ref_bins", h.ref_bins);
    setint(L, "holes", h.holes);
    setint(L, "spurious", h.spurious);
    setnum(L, "hole_mass", h.hole_mass);
    setnum(L, "spurious_mass", h.spurious_mass);
    return 1;
}

/* ks(a, b) -> d, p */
static int l_ks(lua_State *L)
{
    double d, p;
    if (mimic_val_ks(lmimic_checktensor(L, 1), lmimic_checktensor(L, 2), &d, &p) != MIMIC_OK)
        return lmimic_error(L);
    lua_pushnumber(L, d);
    lua_pushnumber(L, p);
    return 2;
}

static int l_kolmogorov_sf(lua_State *L)
{
    lua_pushnumber(L, mimic_val_kolmogorov_sf(luaL_checknumber(L, 1)));
    return 1;
}

static int l_wasserstein(lua_State *L)
{
    double w;
    if (mimic_val_wasserstein(lmimic_checktensor(L, 1), lmimic_checktensor(L, 2), &w) != MIMIC_OK)
        return lmimic_error(L);
    lua_pushnumber(L, w);
    return 1;
}

/* moments(x) -> list of per-column tables */
static int l_moments(lua_State *L)
{
    mimic_tensor *x = lmimic_checktensor(L, 1);
    int64_t C = ncols_checked(L, x);
    mimic_val_moments *o = scratch(L, (size_t)C, sizeof *o);
    if (mimic_val_moments_of(x, o) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, (int)C, 0);
    for (int64_t c = 0; c < C; c++) {
        lua_createtable(L, 0, 5);
        setint(L, "n", o[c].n);
        setnum(L, "mean", o[c].mean);
        setnum(L, "var", o[c].var);
        setnum(L, "skew", o[c].skew);
        setnum(L, "kurt", o[c].kurt);
        lua_rawseti(L, -2, c + 1);
    }
    return 1;
}

/* confusion(pred, truth, k) with 0-based labels -> k x k nested list (rows: truth) */
static int l_confusion(lua_State *L)
{
    mimic_tensor *p = lmimic_checktensor(L, 1), *t = lmimic_checktensor(L, 2);
    lua_Integer k = luaL_checkinteger(L, 3);
    luaL_argcheck(L, k >= 1 && k <= 4096, 3, "number of classes must be in 1..4096");
    int64_t *cm = scratch(L, (size_t)(k * k), sizeof *cm);
    if (mimic_val_confusion(p, t, (int)k, cm) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, (int)k, 0);
    for (lua_Integer i = 0; i < k; i++) {
        push_int_list(L, cm + i * k, k);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* class_scores(cm) -> table with per-class lists */
static int l_class_scores(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer k = (lua_Integer)lua_rawlen(L, 1);
    luaL_argcheck(L, k >= 1 && k <= 4096, 1, "confusion matrix must have 1..4096 rows");
    int64_t *cm = scratch(L, (size_t)(k * k), sizeof *cm);
    for (lua_Integer i = 0; i < k; i++) {
        lua_rawgeti(L, 1, i + 1);
        if (!lua_istable(L, -1) || (lua_Integer)lua_rawlen(L, -1) != k)
            luaL_argerror(L, 1, lua_pushfstring(L, "row %I is not a list of %I counts", i + 1, k));
        for (lua_Integer j = 0; j < k; j++) {
            lua_rawgeti(L, -1, j + 1);
            int isint;
            cm[i * k + j] = (int64_t)lua_tointegerx(L, -1, &isint);
            if (!isint)
                luaL_argerror(L, 1, lua_pushfstring(L, "entry [%I][%I] is not an integer", i + 1, j + 1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    double *pr = scratch(L, (size_t)k, sizeof(double)), *rc = scratch(L, (size_t)k, sizeof(double)),
           *f1 = scratch(L, (size_t)k, sizeof(double));
    mimic_val_class o;
    if (mimic_val_class_scores((int)k, cm, &o, pr, rc, f1) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 9);
    setint(L, "n", o.n);
    setnum(L, "accuracy", o.accuracy);
    setnum(L, "balanced_accuracy", o.balanced_accuracy);
    setnum(L, "macro_precision", o.macro_precision);
    setnum(L, "macro_recall", o.macro_recall);
    setnum(L, "macro_f1", o.macro_f1);
    setlist(L, "precision", pr, k);
    setlist(L, "recall", rc, k);
    setlist(L, "f1", f1, k);
    return 1;
}

/* The three arrays of mimic_val_roc, freed by __gc if pushing the result raises. */
typedef struct roc_box {
    double *f, *t, *h;
} roc_box;
static int roc_gc(lua_State *L)
{
    roc_box *b = lua_touserdata(L, 1);
    mimic_free(b->f);
    mimic_free(b->t);
    mimic_free(b->h);
    b->f = b->t = b->h = NULL;
    return 0;
}

/* roc(score, label) -> {auc=, fpr=, tpr=, threshold=} */
static int l_roc(lua_State *L)
{
    mimic_tensor *s = lmimic_checktensor(L, 1), *l = lmimic_checktensor(L, 2);
    roc_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->f = b->t = b->h = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, roc_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    double auc;
    int64_t m;
    if (mimic_val_roc(s, l, &auc, &m, &b->f, &b->t, &b->h) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 4);
    setnum(L, "auc", auc);
    setlist(L, "fpr", b->f, m);
    setlist(L, "tpr", b->t, m);
    setlist(L, "threshold", b->h, m);
    return 1;
}

/* calibration(prob, label, nbins) -> {count=, mean_prob=, frac_pos=, ece=} */
static int l_calibration(lua_State *L)
{
    mimic_tensor *p = lmimic_checktensor(L, 1), *l = lmimic_checktensor(L, 2);
    lua_Integer nb = luaL_optinteger(L, 3, 10);
    luaL_argcheck(L, nb >= 1 && nb <= 100000, 3, "number of bins must be in 1..100000");
    int64_t *count = scratch(L, (size_t)nb, sizeof *count);
    double *mp = scratch(L, (size_t)nb, sizeof *mp), *fp = scratch(L, (size_t)nb, sizeof *fp), ece;
    if (mimic_val_calibration(p, l, (int)nb, count, mp, fp, &ece) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 4);
    push_int_list(L, count, nb);
    lua_setfield(L, -2, "count");
    setlist(L, "mean_prob", mp, nb);
    setlist(L, "frac_pos", fp, nb);
    setnum(L, "ece", ece);
    return 1;
}

/* conservation(before, after[, weight]) -> table */
static int l_conservation(lua_State *L)
{
    mimic_tensor *b = lmimic_checktensor(L, 1), *a = lmimic_checktensor(L, 2);
    mimic_tensor *w = lua_isnoneornil(L, 3) ? NULL : lmimic_checktensor(L, 3);
    mimic_val_conservation o;
    if (mimic_val_conservation_check(b, a, w, &o) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 5);
    setnum(L, "before", o.before);
    setnum(L, "after", o.after);
    setnum(L, "global_rel", o.global_rel);
    setnum(L, "max_row_rel", o.max_row_rel);
    setnum(L, "mean_row_rel", o.mean_row_rel);
    return 1;
}

void lmimic_open_validate(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"regression", l_regression},
        {"binned_quantiles", l_binned_quantiles},
        {"histogram", l_histogram},
        {"histogram2d", l_histogram2d},
        {"chi2", l_chi2},
        {"js", l_js},
        {"holes", l_holes},
        {"ks", l_ks},
        {"kolmogorov_sf", l_kolmogorov_sf},
        {"wasserstein", l_wasserstein},
        {"moments", l_moments},
        {"confusion", l_confusion},
        {"class_scores", l_class_scores},
        {"roc", l_roc},
        {"calibration", l_calibration},
        {"conservation", l_conservation},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_setfield(L, mod, "_validate");
}
