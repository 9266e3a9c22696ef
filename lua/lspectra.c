/* The C half of mimic.validate's field diagnostics (core/include/mimic/
 * spectra.h, in libmimic_solvers, which links FFTW): mimic._spectra, wrapped
 * by lua/mimic/validate.lua. Fields arrive as a Lua list of same-shape
 * tensors (the components); each is converted to a contiguous float64 copy
 * boxed on the Lua stack, so a Lua error never leaks it. */
#include "lmimic.h"
#include "mimic/spectra.h"

#include <limits.h>

/* The components at arg (a list of tensors of one shape, ndim 1..3) as one
 * contiguous double array (userdata on the stack); *ncomp, *ndim, shape out. */
static double *check_components(lua_State *L, int arg, int *ncomp, int *ndim, int64_t *shape)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, arg);
    if (n < 1 || n > 64)
        luaL_argerror(L, arg, "expected a list of 1..64 tensors (the components)");
    int64_t N = 0;
    for (lua_Integer c = 1; c <= n; c++) {
        lua_rawgeti(L, arg, c);
        mimic_tensor *t = lmimic_totensor(L, -1);
        if (!t)
            luaL_argerror(L, arg, lua_pushfstring(L, "component %I is a %s, expected a mimic.Tensor", c,
                                                  luaL_typename(L, -1)));
        if (c == 1) {
            if (t->ndim < 1 || t->ndim > 3)
                luaL_argerror(L, arg, lua_pushfstring(L, "fields must be 1-, 2- or 3-D, got %d dims", t->ndim));
            *ndim = t->ndim;
            N = 1;
            for (int d = 0; d < t->ndim; d++) {
                shape[d] = t->shape[d];
                N *= shape[d];
            }
        } else {
            int same = t->ndim == *ndim;
            for (int d = 0; same && d < t->ndim; d++)
                same = t->shape[d] == shape[d];
            if (!same)
                luaL_argerror(L, arg, lua_pushfstring(L, "component %I has a different shape from component 1", c));
        }
        lua_pop(L, 1);
    }
    if (N < 1 || (uint64_t)N * (uint64_t)n > (uint64_t)INT_MAX)
        luaL_argerror(L, arg, "field is empty or too large");
    double *buf = lua_newuserdatauv(L, (size_t)(N * n) * sizeof *buf, 0);
    for (lua_Integer c = 1; c <= n; c++) {
        lua_rawgeti(L, arg, c);
        mimic_tensor *t = lmimic_totensor(L, -1);
        mimic_tensor **slot = lmimic_newtensor(L); /* boxed: freed by the GC on error */
        *slot = mimic_to_dtype(t, MIMIC_F64);
        lmimic_checkresult(L, slot);
        const double *src = mimic_data(*slot);
        for (int64_t i = 0; i < N; i++)
            buf[(c - 1) * N + i] = src[i];
        lua_pop(L, 2);
    }
    *ncomp = (int)n;
    return buf;
}

static void push_list(lua_State *L, const double *d, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, d[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

/* spectrum({components}) -> power (list, shell 0 first), count (list) */
static int l_spectrum(lua_State *L)
{
    int ncomp, ndim;
    int64_t shape[3];
    double *f = check_components(L, 1, &ncomp, &ndim, shape);
    int ns = mimic_spectrum_nshells(ndim, shape);
    if (ns < 1)
        return lmimic_error(L);
    double *p = lua_newuserdatauv(L, (size_t)ns * sizeof *p, 0);
    int64_t *cnt = lua_newuserdatauv(L, (size_t)ns * sizeof *cnt, 0);
    if (mimic_spectrum(ndim, shape, ncomp, f, ns, p, cnt) != MIMIC_OK)
        return lmimic_error(L);
    push_list(L, p, ns);
    lua_createtable(L, ns, 0);
    for (int s = 0; s < ns; s++) {
        lua_pushinteger(L, (lua_Integer)cnt[s]);
        lua_rawseti(L, -2, s + 1);
    }
    return 2;
}

static double *check_numbers(lua_State *L, int arg, int *n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer len = (lua_Integer)lua_rawlen(L, arg);
    if (len > INT_MAX / 16)
        luaL_argerror(L, arg, "list too long");
    double *d = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *d, 0);
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

/* spectrum_error(pred, ref, kmin, kmax) -> {shells, max_rel, mean_rel, rms_log10, band_rel};
 * kmin/kmax are shell wavenumbers (0-based: shell k is |k| ~ k). */
static int l_spectrum_error(lua_State *L)
{
    int np, nr;
    double *p = check_numbers(L, 1, &np), *r = check_numbers(L, 2, &nr);
    if (np != nr)
        return luaL_error(L, "spectrum_error: pred has %d shells, ref %d", np, nr);
    lua_Integer kmin = luaL_optinteger(L, 3, 0), kmax = luaL_optinteger(L, 4, np - 1);
    if (kmin < 0 || kmax > INT_MAX)
        return luaL_error(L, "spectrum_error: band %I..%I out of range", kmin, kmax);
    mimic_spectrum_err e;
    if (mimic_spectrum_error(np, p, r, (int)kmin, (int)kmax, &e) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, e.shells);
    lua_setfield(L, -2, "shells");
    lua_pushnumber(L, e.max_rel);
    lua_setfield(L, -2, "max_rel");
    lua_pushnumber(L, e.mean_rel);
    lua_setfield(L, -2, "mean_rel");
    lua_pushnumber(L, e.rms_log10);
    lua_setfield(L, -2, "rms_log10");
    lua_pushnumber(L, e.band_rel);
    lua_setfield(L, -2, "band_rel");
    return 1;
}

/* divergence({components}, h list or nil) -> float64 tensor of the field's shape */
static int l_divergence(lua_State *L)
{
    int ncomp, ndim;
    int64_t shape[3];
    double *u = check_components(L, 1, &ncomp, &ndim, shape);
    if (ncomp != ndim)
        return luaL_error(L, "divergence: a %d-D field needs %d components, got %d", ndim, ndim, ncomp);
    double h[3] = {1, 1, 1};
    if (!lua_isnoneornil(L, 2)) {
        int nh;
        double *hh = check_numbers(L, 2, &nh);
        if (nh != ndim)
            return luaL_error(L, "divergence: spacing has %d values, expected %d (one per dim)", nh, ndim);
        for (int d = 0; d < ndim; d++)
            h[d] = hh[d];
    }
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_empty(ndim, shape, MIMIC_F64);
    lmimic_checkresult(L, slot);
    if (mimic_divergence(ndim, shape, u, h, mimic_data(*slot)) != MIMIC_OK)
        return lmimic_error(L);
    return 1;
}

void lmimic_open_spectra(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"spectrum", l_spectrum},
        {"spectrum_error", l_spectrum_error},
        {"divergence", l_divergence},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_setfield(L, mod, "_spectra");
}
