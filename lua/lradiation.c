/* mimic.radiation: the radiation reference physics of libmimic_solvers
 * (core/include/mimic/rad_*.h) from Lua. One section per header; the
 * line-by-line model's functions (rad_lbl.h) get their own section.
 *
 * Arrays arrive as tensors of any dtype (or Lua lists for 1-D ones, numbers
 * where a per-column value may be a constant); each is copied to a contiguous
 * float64 tensor boxed on the Lua stack, so an error never leaks it. Results
 * are float64 tensors. Shapes follow rad_rte.h with 1-based Lua dims:
 * tau [ncol, nlay, ngpt], fluxes [ncol, nlay + 1], level 1 = top. */
#include "lmimic.h"
#include "mimic/rad_kdist.h"
#include "mimic/rad_lbl.h"
#include "mimic/rad_nn.h"
#include "mimic/rad_rce.h"
#include "mimic/rad_rte.h"

#include <math.h>
#include <string.h>

void lmimic_open_radiation(lua_State *L, int mod, int methods);

/* --- shared argument helpers ------------------------------------------------------- */

/* A contiguous float64 copy of the tensor at idx (boxed, pushed). */
static double *push_f64(lua_State *L, mimic_tensor *t)
{
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_to_dtype(t, MIMIC_F64);
    lmimic_checkresult(L, slot);
    return mimic_data(*slot);
}

/* opts[name] as a float64 array pushed on the stack (or NULL and nothing
 * pushed when absent and optional). ndim sizes must equal shape[d] where
 * shape[d] >= 0; where shape[d] < 0 it is set from the tensor. A number is
 * accepted when `number_n` > 0 (filled to number_n values), a Lua list of
 * numbers for ndim == 1. */
static double *opt_array(lua_State *L, int opts, const char *fn, const char *name, int ndim, int64_t *shape,
                         int required, int64_t number_n)
{
    lua_getfield(L, opts, name);
    int v = lua_gettop(L);
    if (lua_isnil(L, v)) {
        lua_pop(L, 1);
        if (required)
            luaL_error(L, "%s: option '%s' is required", fn, name);
        return NULL;
    }
    if (lua_type(L, v) == LUA_TNUMBER && number_n > 0) {
        double x = lua_tonumber(L, v), *d = lua_newuserdatauv(L, (size_t)number_n * sizeof *d, 0);
        for (int64_t i = 0; i < number_n; i++)
            d[i] = x;
        lua_remove(L, v);
        return d;
    }
    if (lua_istable(L, v) && ndim == 1) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, v);
        if (shape[0] >= 0 && n != shape[0])
            luaL_error(L, "%s: '%s' has %I entries, expected %I", fn, name, n, (lua_Integer)shape[0]);
        if (n < 1)
            luaL_error(L, "%s: '%s' is empty", fn, name);
        double *d = lua_newuserdatauv(L, (size_t)n * sizeof *d, 0);
        for (lua_Integer i = 0; i < n; i++) {
            lua_rawgeti(L, v, i + 1);
            int isnum;
            d[i] = lua_tonumberx(L, -1, &isnum);
            if (!isnum)
                luaL_error(L, "%s: '%s'[%I] is a %s, expected a number", fn, name, i + 1, luaL_typename(L, -1));
            lua_pop(L, 1);
        }
        shape[0] = n;
        lua_remove(L, v);
        return d;
    }
    mimic_tensor *t = lmimic_totensor(L, v);
    if (!t)
        luaL_error(L, "%s: '%s' must be a mimic.Tensor%s, got a %s", fn, name,
                   number_n > 0 ? " or a number" : ndim == 1 ? " or a list of numbers" : "", luaL_typename(L, v));
    if (t->ndim != ndim)
        luaL_error(L, "%s: '%s' has %d dims, expected %d", fn, name, t->ndim, ndim);
    for (int d = 0; d < ndim; d++) {
        if (shape[d] >= 0 && t->shape[d] != shape[d])
            luaL_error(L, "%s: '%s' has size %I in dim %d, expected %I", fn, name, (lua_Integer)t->shape[d], d + 1,
                       (lua_Integer)shape[d]);
        shape[d] = t->shape[d];
    }
    double *d = push_f64(L, t);
    lua_remove(L, v);
    return d;
}

static int opt_int(lua_State *L, int opts, const char *name, int def)
{
    lua_getfield(L, opts, name);
    int isnum, r = lua_isnil(L, -1) ? def : (int)lua_tointegerx(L, -1, &isnum);
    if (!lua_isnil(L, -1) && !isnum)
        luaL_error(L, "option '%s' must be an integer", name);
    lua_pop(L, 1);
    return r;
}

/* A new float64 tensor of the given shape, pushed; returns its data. */
static double *push_new(lua_State *L, int ndim, const int64_t *shape)
{
    mimic_tensor **slot = lmimic_newtensor(L);
    *slot = mimic_empty(ndim, shape, MIMIC_F64);
    lmimic_checkresult(L, slot);
    return mimic_data(*slot);
}

static void check_sizes(lua_State *L, const char *fn, int64_t ncol, int64_t nlay, int64_t ngpt)
{
    if (ncol < 1 || nlay < 1 || ngpt < 1 || ncol > 1 << 28 || nlay > 1 << 20 || ngpt > 1 << 24)
        luaL_error(L, "%s: sizes ncol = %I, nlay = %I, ngpt = %I are out of range", fn, (lua_Integer)ncol,
                   (lua_Integer)nlay, (lua_Integer)ngpt);
}

/* A userdata holding one object of libmimic_solvers, created by new_box
 * before the object so an error never leaks it; p is NULL once freed. */
typedef struct pbox {
    void *p;
} pbox;

static pbox *new_box(lua_State *L, const char *meta)
{
    pbox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    luaL_setmetatable(L, meta);
    return b;
}

static void *check_box(lua_State *L, int arg, const char *meta, const char *what)
{
    pbox *b = luaL_checkudata(L, arg, meta);
    if (!b->p)
        luaL_argerror(L, arg, what);
    return b->p;
}

/* --- gases, columns (rad_atmos.h) --------------------------------------------------- */

/* gas_names() -> {"h2o", "co2", ...} in the C enum's order */
static int l_gas_names(lua_State *L)
{
    lua_createtable(L, MIMIC_NGAS, 0);
    for (int g = 0; g < MIMIC_NGAS; g++) {
        lua_pushstring(L, mimic_rad_gas_name((mimic_rad_gas)g));
        lua_rawseti(L, -2, g + 1);
    }
    return 1;
}

/* col_dry(p_top, p_bottom [, h2o]) -> molecules / cm^2 */
static int l_col_dry(lua_State *L)
{
    lua_pushnumber(L, mimic_rad_col_dry(luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_optnumber(L, 3, 0)));
    return 1;
}

/* --- Planck (rad_rte.h) ------------------------------------------------------------- */

static double checked(lua_State *L, const char *fn, double v)
{
    if (isnan(v))
        luaL_error(L, "%s: invalid arguments (need 0 <= nu1 <= nu2 cm^-1 and a finite T > 0 K)", fn);
    return v;
}

/* planck(nu, T): B per cm^-1, W m^-2 sr^-1 (cm^-1)^-1 */
static int l_planck(lua_State *L)
{
    lua_pushnumber(L, checked(L, "planck", mimic_rad_planck(luaL_checknumber(L, 1), luaL_checknumber(L, 2))));
    return 1;
}

/* planck_band(nu1, nu2, T): W m^-2 sr^-1; nu2 may be math.huge */
static int l_planck_band(lua_State *L)
{
    lua_pushnumber(L, checked(L, "planck_band", mimic_rad_planck_band(luaL_checknumber(L, 1), luaL_checknumber(L, 2),
                                                                      luaL_checknumber(L, 3))));
    return 1;
}

static int l_planck_band_dt(lua_State *L)
{
    lua_pushnumber(L, checked(L, "planck_band_dt", mimic_rad_planck_band_dt(luaL_checknumber(L, 1),
                                                                            luaL_checknumber(L, 2),
                                                                            luaL_checknumber(L, 3))));
    return 1;
}

/* angles(nmu) -> {mu...}, {w...} */
static int l_angles(lua_State *L)
{
    double mu[MIMIC_RAD_MAX_MU], w[MIMIC_RAD_MAX_MU];
    int n = (int)luaL_checkinteger(L, 1);
    if (mimic_rad_angles(n, mu, w) != MIMIC_OK)
        return lmimic_error(L);
    lua_createtable(L, n, 0);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushnumber(L, mu[i]);
        lua_rawseti(L, -3, i + 1);
        lua_pushnumber(L, w[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 2;
}

/* --- longwave solver (rad_rte.h) ---------------------------------------------------- */

/* lw_solve{tau=[ncol,nlay,ngpt], lev_src=[ncol,nlay+1,ngpt], sfc_src=[ncol,ngpt],
 *          sfc_emis=[ncol]|number, lay_src=, sfc_emis_gpt=[ncol,ngpt], weight=[ngpt],
 *          nmu=1, gpt_fluxes=false}
 *   -> {flux_up=[ncol,nlay+1], flux_dn=, gpt_flux_up=[ncol,nlay+1,ngpt], gpt_flux_dn=} */
static int l_lw_solve(lua_State *L)
{
    const char *fn = "radiation.lw_solve";
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t s3[3] = {-1, -1, -1};
    mimic_rad_lw_input in = {0};
    in.tau = opt_array(L, 1, fn, "tau", 3, s3, 1, 0);
    check_sizes(L, fn, s3[0], s3[1], s3[2]);
    in.ncol = (int)s3[0], in.nlay = (int)s3[1], in.ngpt = (int)s3[2];
    in.nmu = opt_int(L, 1, "nmu", 1);
    in.lay_src = opt_array(L, 1, fn, "lay_src", 3, (int64_t[3]){s3[0], s3[1], s3[2]}, 0, 0);
    in.lev_src = opt_array(L, 1, fn, "lev_src", 3, (int64_t[3]){s3[0], s3[1] + 1, s3[2]}, 1, 0);
    in.sfc_src = opt_array(L, 1, fn, "sfc_src", 2, (int64_t[2]){s3[0], s3[2]}, 1, 0);
    in.sfc_emis_gpt = opt_array(L, 1, fn, "sfc_emis_gpt", 2, (int64_t[2]){s3[0], s3[2]}, 0, 0);
    in.sfc_emis = opt_array(L, 1, fn, "sfc_emis", 1, (int64_t[1]){s3[0]}, !in.sfc_emis_gpt, s3[0]);
    in.weight = opt_array(L, 1, fn, "weight", 1, (int64_t[1]){s3[2]}, 0, 0);
    lua_getfield(L, 1, "gpt_fluxes");
    int want_gpt = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_createtable(L, 0, 4);
    int res = lua_gettop(L);
    int64_t s2[2] = {s3[0], s3[1] + 1}, sg[3] = {s3[0], s3[1] + 1, s3[2]};
    mimic_rad_lw_output out = {0};
    out.flux_up = push_new(L, 2, s2);
    lua_setfield(L, res, "flux_up");
    out.flux_dn = push_new(L, 2, s2);
    lua_setfield(L, res, "flux_dn");
    if (want_gpt) {
        out.gpt_flux_up = push_new(L, 3, sg);
        lua_setfield(L, res, "gpt_flux_up");
        out.gpt_flux_dn = push_new(L, 3, sg);
        lua_setfield(L, res, "gpt_flux_dn");
    }
    if (mimic_rad_lw_solve(&in, &out) != MIMIC_OK)
        return lmimic_error(L);
    lua_settop(L, res);
    return 1;
}

/* heating_rate(p_lev [ncol,nlev], flux_up, flux_dn) -> K/day [ncol, nlay] */
static int l_heating_rate(lua_State *L)
{
    const char *fn = "radiation.heating_rate";
    lua_settop(L, 3);
    lua_createtable(L, 0, 3);
    int o = lua_gettop(L);
    const char *names[3] = {"p_lev", "flux_up", "flux_dn"};
    for (int i = 0; i < 3; i++) {
        lua_pushvalue(L, i + 1);
        lua_setfield(L, o, names[i]);
    }
    int64_t s[2] = {-1, -1};
    const double *p = opt_array(L, o, fn, "p_lev", 2, s, 1, 0);
    if (s[1] < 2)
        luaL_error(L, "%s: need at least 2 levels", fn);
    const double *u = opt_array(L, o, fn, "flux_up", 2, s, 1, 0), *d = opt_array(L, o, fn, "flux_dn", 2, s, 1, 0);
    double *h = push_new(L, 2, (int64_t[2]){s[0], s[1] - 1});
    if (mimic_rad_heating_rate((int)s[0], (int)s[1] - 1, p, u, d, h) != MIMIC_OK)
        return lmimic_error(L);
    return 1;
}

/* Every way of giving gas optics from Lua (parse_optics, after the models it knows). */
typedef struct gray_optics {
    double k, kq;
} gray_optics;

typedef struct lbl_optics {
    const struct mimic_rad_lbl *lbl;
    int64_t n;
    const double *nu;
} lbl_optics;

typedef struct lua_optics {
    lua_State *L;
    int fn_idx, ngpt, col;
    const mimic_rad_layer *lay;
    int nlay;
    double *tau, *frac;
} lua_optics;

typedef union optics_store {
    gray_optics gray;
    lbl_optics lbl;
    lua_optics lua;
} optics_store;

static void parse_optics(lua_State *L, int opts, const char *fn, int nlay, mimic_rad_optics *opt,
                         optics_store *store);

/* --- column driver with a Lua optics callback ------------------------------------------ */

/* Runs under lua_pcall: builds the column state, calls the Lua optics function,
 * copies its results. Errors raised here never cross the C driver. */
static int optics_protected(lua_State *L)
{
    lua_optics *o = lua_touserdata(L, 1);
    int nlay = o->nlay;
    int64_t n1 = nlay;
    lua_pushvalue(L, 2); /* the Lua optics function (this frame's argument 2) */
    lua_createtable(L, 0, 5);
    int st = lua_gettop(L);
    double *p = push_new(L, 1, &n1);
    lua_setfield(L, st, "p");
    double *t = push_new(L, 1, &n1);
    lua_setfield(L, st, "t");
    double *cd = push_new(L, 1, &n1);
    lua_setfield(L, st, "col_dry");
    for (int l = 0; l < nlay; l++)
        p[l] = o->lay[l].p, t[l] = o->lay[l].t, cd[l] = o->lay[l].col_dry;
    lua_createtable(L, 0, MIMIC_NGAS);
    for (int g = 0; g < MIMIC_NGAS; g++) {
        double *v = push_new(L, 1, &n1);
        for (int l = 0; l < nlay; l++)
            v[l] = o->lay[l].vmr[g];
        lua_setfield(L, -2, mimic_rad_gas_name((mimic_rad_gas)g));
    }
    lua_setfield(L, st, "vmr");
    lua_pushinteger(L, o->col + 1);
    lua_setfield(L, st, "column");
    lua_call(L, 1, 2);
    const char *what[2] = {"tau", "planck_frac"};
    double *dst[2] = {o->tau, o->frac};
    for (int k = 0; k < 2; k++) {
        int idx = 3 + k; /* results after the two arguments */
        if (k == 1 && lua_isnil(L, idx)) {
            for (int64_t i = 0; i < (int64_t)nlay * o->ngpt; i++)
                o->frac[i] = 1;
            continue;
        }
        mimic_tensor *r = lmimic_totensor(L, idx);
        if (!r || r->ndim != 2 || r->shape[0] != nlay || r->shape[1] != o->ngpt)
            return luaL_error(L, "optics callback (column %d): result %d (%s) must be a tensor [nlay=%d, ngpt=%d]%s",
                              o->col + 1, k + 1, what[k], nlay, o->ngpt, k ? " or nil (fractions 1)" : "");
        memcpy(dst[k], push_f64(L, r), (size_t)nlay * (size_t)o->ngpt * sizeof(double));
        lua_pop(L, 1);
    }
    return 0;
}

static int optics_trampoline(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    lua_optics *o = ud;
    lua_State *L = o->L;
    o->lay = lay, o->nlay = nlay, o->tau = tau, o->frac = frac;
    int top = lua_gettop(L);
    lua_pushcfunction(L, optics_protected);
    lua_pushlightuserdata(L, o);
    lua_pushvalue(L, o->fn_idx); /* an index of the caller's frame: pass it as an argument */
    int rc = lua_pcall(L, 2, 0, 0);
    int status = MIMIC_OK;
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        status = mimic_error(MIMIC_EVALUE, "%s", msg ? msg : "optics callback failed (non-string error)");
    }
    lua_settop(L, top);
    o->col++;
    return status;
}

/* lw_fluxes{p_lay=[ncol,nlay], t_lay=, p_lev=[ncol,nlay+1], t_lev=, t_sfc=[ncol],
 *           sfc_emis=[ncol]|number, vmr={gas=[ncol,nlay]|number, ...} (absent gases 0),
 *           nu1=[ngpt], nu2=[ngpt], weight=[ngpt], nmu=1,
 *           optics=function(state) -> tau [nlay,ngpt], planck_frac [nlay,ngpt] | nil}
 *   state = {p=, t=, col_dry= [nlay], vmr={gas=[nlay]}, column=}
 *   -> {flux_up=[ncol,nlay+1], flux_dn=, heating=[ncol,nlay] K/day} */
static int l_lw_fluxes(lua_State *L)
{
    const char *fn = "radiation.lw_fluxes";
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t s2[2] = {-1, -1};
    mimic_rad_atm atm = {0};
    atm.p_lay = opt_array(L, 1, fn, "p_lay", 2, s2, 1, 0);
    int64_t ncol = s2[0], nlay = s2[1];
    check_sizes(L, fn, ncol, nlay, 1);
    atm.ncol = (int)ncol, atm.nlay = (int)nlay;
    atm.t_lay = opt_array(L, 1, fn, "t_lay", 2, (int64_t[2]){ncol, nlay}, 1, 0);
    atm.p_lev = opt_array(L, 1, fn, "p_lev", 2, (int64_t[2]){ncol, nlay + 1}, 1, 0);
    atm.t_lev = opt_array(L, 1, fn, "t_lev", 2, (int64_t[2]){ncol, nlay + 1}, 1, 0);
    atm.t_sfc = opt_array(L, 1, fn, "t_sfc", 1, (int64_t[1]){ncol}, 1, 0);
    atm.sfc_emis = opt_array(L, 1, fn, "sfc_emis", 1, (int64_t[1]){ncol}, 1, ncol);
    int nmu = opt_int(L, 1, "nmu", 1);
    /* vmr [ncol][nlay][ngas] from per-gas [ncol, nlay] arrays */
    double *vmr = lua_newuserdatauv(L, (size_t)(ncol * nlay * MIMIC_NGAS) * sizeof *vmr, 0);
    memset(vmr, 0, (size_t)(ncol * nlay * MIMIC_NGAS) * sizeof *vmr);
    lua_getfield(L, 1, "vmr");
    int vt = lua_gettop(L);
    if (!lua_istable(L, vt))
        return luaL_error(L, "%s: option 'vmr' must be a table {gas = tensor [ncol, nlay] or number}", fn);
    lua_pushnil(L);
    while (lua_next(L, vt)) {
        const char *gas = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        int g = mimic_rad_gas_parse(gas);
        if (g < 0) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int k = 0; k < MIMIC_NGAS; k++) {
                luaL_addstring(&b, k ? ", " : "");
                luaL_addstring(&b, mimic_rad_gas_name((mimic_rad_gas)k));
            }
            luaL_pushresult(&b);
            return luaL_error(L, "%s: unknown gas '%s' in vmr (gases: %s)", fn, gas ? gas : "?", lua_tostring(L, -1));
        }
        lua_pop(L, 1);
        const double *v = opt_array(L, vt, fn, gas, 2, (int64_t[2]){ncol, nlay}, 1, ncol * nlay);
        for (int64_t i = 0; i < ncol * nlay; i++)
            vmr[i * MIMIC_NGAS + g] = v[i];
        lua_pop(L, 1);
    }
    atm.vmr = vmr;
    mimic_rad_optics opt = {0};
    optics_store store;
    parse_optics(L, 1, fn, (int)nlay, &opt, &store);
    lua_createtable(L, 0, 3);
    int res = lua_gettop(L);
    double *fu = push_new(L, 2, (int64_t[2]){ncol, nlay + 1});
    lua_setfield(L, res, "flux_up");
    double *fd = push_new(L, 2, (int64_t[2]){ncol, nlay + 1});
    lua_setfield(L, res, "flux_dn");
    double *hr = push_new(L, 2, (int64_t[2]){ncol, nlay});
    lua_setfield(L, res, "heating");
    if (mimic_rad_lw_fluxes(&atm, &opt, nmu, fu, fd, hr) != MIMIC_OK)
        return lmimic_error(L);
    lua_settop(L, res);
    return 1;
}

/* --- line-by-line model (rad_lbl.h) ------------------------------------------------ */

#define LBL_META "mimic.radiation.LBL"

static mimic_rad_lbl *check_lbl(lua_State *L, int arg)
{
    return check_box(L, arg, LBL_META, "the line-by-line model is freed");
}

static int lbl_gc(lua_State *L)
{
    pbox *b = luaL_checkudata(L, 1, LBL_META);
    mimic_rad_lbl_free(b->p);
    b->p = NULL;
    return 0;
}

static double opt_num(lua_State *L, int opts, const char *fn, const char *name, double def)
{
    lua_getfield(L, opts, name);
    int isnum;
    double v = lua_tonumberx(L, -1, &isnum);
    if (!isnum && !lua_isnil(L, -1))
        luaL_error(L, "%s: option '%s' must be a number, got a %s", fn, name, luaL_typename(L, -1));
    lua_pop(L, 1);
    return isnum ? v : def;
}

static int check_gas(lua_State *L, const char *fn, int idx)
{
    const char *name = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    int g = mimic_rad_gas_parse(name);
    if (g < 0) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (int k = 0; k < MIMIC_NGAS; k++) {
            luaL_addstring(&b, k ? ", " : "");
            luaL_addstring(&b, mimic_rad_gas_name((mimic_rad_gas)k));
        }
        luaL_pushresult(&b);
        luaL_error(L, "%s: unknown gas '%s' (gases: %s)", fn, name ? name : luaL_typename(L, idx), lua_tostring(L, -1));
    }
    return g;
}

/* lbl{gases = {"h2o", ...} (default all), cutoff = 25, nu_min = 10, nu_max = 3250, seed =}
 *   -> a line-by-line model (synthetic line list, docs/radiation-lbl.md) */
static int l_lbl(lua_State *L)
{
    const char *fn = "radiation.lbl";
    lua_settop(L, 1);
    mimic_rad_lbl_options o;
    mimic_rad_lbl_options_default(&o);
    if (!lua_isnil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        o.cutoff = opt_num(L, 1, fn, "cutoff", o.cutoff);
        o.nu_min = opt_num(L, 1, fn, "nu_min", o.nu_min);
        o.nu_max = opt_num(L, 1, fn, "nu_max", o.nu_max);
        lua_getfield(L, 1, "seed");
        if (!lua_isnil(L, -1)) {
            int isint;
            lua_Integer seed = lua_tointegerx(L, -1, &isint);
            if (!isint || seed < 0)
                return luaL_error(L, "%s: option 'seed' must be an integer >= 0", fn);
            o.seed = (uint64_t)seed;
        }
        lua_pop(L, 1);
        lua_getfield(L, 1, "gases");
        if (!lua_isnil(L, -1)) {
            if (!lua_istable(L, -1))
                return luaL_error(L, "%s: option 'gases' must be a list of gas names", fn);
            int gt = lua_gettop(L);
            for (lua_Integer i = 1; i <= (lua_Integer)lua_rawlen(L, gt); i++) {
                lua_rawgeti(L, gt, i);
                o.gases |= 1u << check_gas(L, fn, lua_gettop(L));
                lua_pop(L, 1);
            }
            if (!o.gases)
                return luaL_error(L, "%s: option 'gases' is empty (omit it for all gases)", fn);
        }
        lua_pop(L, 1);
    }
    pbox *b = new_box(L, LBL_META);
    if (!(b->p = mimic_rad_lbl_new(&o)))
        return lmimic_error(L);
    return 1;
}

/* A 1-D float64 array from argument arg (tensor or list), pushed; n set. */
static double *arg_array(lua_State *L, int arg, const char *fn, const char *name, int64_t *n)
{
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, arg);
    lua_setfield(L, -2, name);
    int t = lua_gettop(L);
    *n = -1;
    double *d = opt_array(L, t, fn, name, 1, n, 1, 0);
    lua_remove(L, t);
    return d;
}

/* Pushes a grid's nu and w as float64 tensors and frees the grid. */
static int push_grid(lua_State *L, mimic_rad_grid *g)
{
    mimic_tensor **a = lmimic_newtensor(L), **b;
    *a = mimic_empty(1, &g->n, MIMIC_F64);
    b = lmimic_newtensor(L);
    *b = mimic_empty(1, &g->n, MIMIC_F64);
    if (*a && *b) {
        memcpy(mimic_data(*a), g->nu, (size_t)g->n * sizeof(double));
        memcpy(mimic_data(*b), g->w, (size_t)g->n * sizeof(double));
    }
    mimic_rad_grid_free(g);
    lmimic_checkresult(L, a);
    lmimic_checkresult(L, b);
    return 2;
}

/* lbl:grid(nu_min, nu_max, p_min [, res = 1]) -> nu [n], w [n] (cm^-1) */
static int lbl_grid(lua_State *L)
{
    mimic_rad_lbl *lbl = check_lbl(L, 1);
    mimic_rad_grid *g = mimic_rad_lbl_grid(lbl, luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                                           luaL_checknumber(L, 4), luaL_optnumber(L, 5, 1));
    if (!g)
        return lmimic_error(L);
    return push_grid(L, g);
}

/* uniform_grid(nu_min, nu_max, dnu) -> nu [n], w [n] */
static int l_uniform_grid(lua_State *L)
{
    mimic_rad_grid *g = mimic_rad_grid_uniform(luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3));
    if (!g)
        return lmimic_error(L);
    return push_grid(L, g);
}

static unsigned check_parts(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return MIMIC_RAD_LBL_ALL;
    static const char *const names[] = {"lines", "continuum", "all", NULL};
    return (unsigned)luaL_checkoption(L, arg, NULL, names) + 1;
}

/* lbl:absorption(gas, p, T, h2o, nu [, parts = "all" | "lines" | "continuum"])
 *   -> cross-section per molecule of gas, cm^2 [n] */
static int lbl_absorption(lua_State *L)
{
    const char *fn = "lbl:absorption";
    mimic_rad_lbl *lbl = check_lbl(L, 1);
    int gas = check_gas(L, fn, 2);
    double p = luaL_checknumber(L, 3), t = luaL_checknumber(L, 4), h2o = luaL_checknumber(L, 5);
    unsigned parts = check_parts(L, 7);
    int64_t n;
    const double *nu = arg_array(L, 6, fn, "nu", &n);
    double *k = push_new(L, 1, &n);
    if (mimic_rad_lbl_absorption(lbl, (mimic_rad_gas)gas, p, t, h2o, parts, n, nu, k) != MIMIC_OK)
        return lmimic_error(L);
    return 1;
}

/* A layer from {p =, t =, col_dry =, vmr = {gas = number}} (absent gases 0). */
static void check_layer(lua_State *L, int idx, const char *fn, mimic_rad_layer *lay)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(lay, 0, sizeof *lay);
    lay->p = opt_num(L, idx, fn, "p", NAN);
    lay->t = opt_num(L, idx, fn, "t", NAN);
    lay->col_dry = opt_num(L, idx, fn, "col_dry", NAN);
    if (isnan(lay->p) || isnan(lay->t) || isnan(lay->col_dry))
        luaL_error(L, "%s: the layer needs numbers p (Pa), t (K) and col_dry (molecules cm^-2; radiation.col_dry)", fn);
    lua_getfield(L, idx, "vmr");
    int vt = lua_gettop(L);
    if (!lua_istable(L, vt))
        luaL_error(L, "%s: the layer needs vmr = {gas = mol/mol, ...}", fn);
    lua_pushnil(L);
    while (lua_next(L, vt)) {
        int g = check_gas(L, fn, -2);
        int isnum;
        lay->vmr[g] = lua_tonumberx(L, -1, &isnum);
        if (!isnum)
            luaL_error(L, "%s: vmr.%s must be a number", fn, mimic_rad_gas_name((mimic_rad_gas)g));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* lbl:layer_tau({p =, t =, col_dry =, vmr = {gas = number}}, nu) -> optical depth [n] */
static int lbl_layer_tau(lua_State *L)
{
    const char *fn = "lbl:layer_tau";
    mimic_rad_lbl *lbl = check_lbl(L, 1);
    mimic_rad_layer lay;
    check_layer(L, 2, fn, &lay);
    int64_t n;
    const double *nu = arg_array(L, 3, fn, "nu", &n);
    double *tau = push_new(L, 1, &n);
    if (mimic_rad_lbl_layer_tau(lbl, &lay, n, nu, tau) != MIMIC_OK)
        return lmimic_error(L);
    return 1;
}

/* --- radiative-convective equilibrium (rad_rce.h) ------------------------------------ */

#define RCE_META "mimic.radiation.RCE"

typedef struct rcebox {
    mimic_rad_rce s;
    int live;
} rcebox;

static mimic_rad_rce *check_rce(lua_State *L, int arg)
{
    rcebox *b = luaL_checkudata(L, arg, RCE_META);
    if (!b->live)
        luaL_argerror(L, arg, "the RCE model is freed");
    return &b->s;
}

static int rce_gc(lua_State *L)
{
    rcebox *b = luaL_checkudata(L, 1, RCE_META);
    if (b->live)
        mimic_rad_rce_free(&b->s);
    b->live = 0;
    return 0;
}

/* rce{p_lev = [nlay+1] (Pa, top first), p_lay = [nlay], t_init = [nlay],
 *     vmr = {gas = [nlay] | number}, t_sfc = 288, sfc_emis = 1, sfc_heat_capacity = 1e7,
 *     solar_sfc = 170, solar_atm = 70, solar_o3_fraction = 0.2, lapse_rate = 6.5e-3,
 *     sfc_convective = true, rh_sfc = 0.77, h2o_min = 3e-6, nmu = 1}
 *   -> an RCE model (defaults and formulas: rad_rce.h) */
static int l_rce(lua_State *L)
{
    const char *fn = "radiation.rce";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    mimic_rad_rce_config c;
    mimic_rad_rce_config_default(&c);
    int64_t nlev = -1;
    c.p_lev = opt_array(L, 1, fn, "p_lev", 1, &nlev, 1, 0);
    if (nlev < 3 || nlev > (1 << 20))
        return luaL_error(L, "%s: p_lev needs 3 to 2^20 levels, got %I", fn, (lua_Integer)nlev);
    int64_t nlay = nlev - 1;
    c.nlay = (int)nlay;
    c.p_lay = opt_array(L, 1, fn, "p_lay", 1, (int64_t[1]){nlay}, 0, 0);
    c.t_init = opt_array(L, 1, fn, "t_init", 1, (int64_t[1]){nlay}, 0, 0);
    c.t_sfc_init = opt_num(L, 1, fn, "t_sfc", c.t_sfc_init);
    c.sfc_emis = opt_num(L, 1, fn, "sfc_emis", c.sfc_emis);
    c.sfc_heat_capacity = opt_num(L, 1, fn, "sfc_heat_capacity", c.sfc_heat_capacity);
    c.solar_sfc = opt_num(L, 1, fn, "solar_sfc", c.solar_sfc);
    c.solar_atm = opt_num(L, 1, fn, "solar_atm", c.solar_atm);
    c.solar_o3_fraction = opt_num(L, 1, fn, "solar_o3_fraction", c.solar_o3_fraction);
    c.lapse_rate = opt_num(L, 1, fn, "lapse_rate", c.lapse_rate);
    c.rh_sfc = opt_num(L, 1, fn, "rh_sfc", c.rh_sfc);
    c.h2o_min = opt_num(L, 1, fn, "h2o_min", c.h2o_min);
    c.nmu = opt_int(L, 1, "nmu", c.nmu);
    lua_getfield(L, 1, "sfc_convective");
    if (!lua_isnil(L, -1))
        c.sfc_convective = lua_toboolean(L, -1);
    lua_pop(L, 1);
    double *vmr = lua_newuserdatauv(L, (size_t)nlay * MIMIC_NGAS * sizeof *vmr, 0);
    memset(vmr, 0, (size_t)nlay * MIMIC_NGAS * sizeof *vmr);
    lua_getfield(L, 1, "vmr");
    int vt = lua_gettop(L);
    if (!lua_isnil(L, vt)) {
        if (!lua_istable(L, vt))
            return luaL_error(L, "%s: option 'vmr' must be a table {gas = [nlay] or number}", fn);
        lua_pushnil(L);
        while (lua_next(L, vt)) {
            int g = check_gas(L, fn, -2);
            lua_pop(L, 1);
            const double *v = opt_array(L, vt, fn, mimic_rad_gas_name((mimic_rad_gas)g), 1, (int64_t[1]){nlay}, 1,
                                        nlay);
            for (int64_t l = 0; l < nlay; l++)
                vmr[l * MIMIC_NGAS + g] = v[l];
            lua_pop(L, 1);
        }
    }
    c.vmr = vmr;
    rcebox *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->live = 0;
    luaL_setmetatable(L, RCE_META);
    if (mimic_rad_rce_init(&b->s, &c) != MIMIC_OK)
        return lmimic_error(L);
    b->live = 1;
    return 1;
}

static void set_num(lua_State *L, int t, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, t, k);
}

static void set_array(lua_State *L, int t, const char *k, const double *v, int64_t n, int64_t stride)
{
    double *d = push_new(L, 1, &n);
    for (int64_t i = 0; i < n; i++)
        d[i] = v[i * stride];
    lua_setfield(L, t, k);
}

/* The state as a table (pushed). */
static void push_state(lua_State *L, const mimic_rad_rce *s)
{
    int n = s->nlay;
    lua_createtable(L, 0, 24);
    int t = lua_gettop(L);
    set_array(L, t, "p_lay", s->p_lay, n, 1);
    set_array(L, t, "p_lev", s->p_lev, n + 1, 1);
    set_array(L, t, "t_lay", s->t_lay, n, 1);
    set_array(L, t, "t_lev", s->t_lev, n + 1, 1);
    set_array(L, t, "h2o", s->vmr + MIMIC_GAS_H2O, n, MIMIC_NGAS);
    set_array(L, t, "lw_heating", s->lw_heating, n, 1);
    set_array(L, t, "solar_heating", s->solar_heating, n, 1);
    set_array(L, t, "tendency", s->tendency, n, 1);
    set_array(L, t, "flux_up", s->flux_up, n + 1, 1);
    set_array(L, t, "flux_dn", s->flux_dn, n + 1, 1);
    lua_createtable(L, n, 0);
    for (int l = 0; l < n; l++) {
        lua_pushboolean(L, s->convective[l]);
        lua_rawseti(L, -2, l + 1);
    }
    lua_setfield(L, t, "convective");
    set_num(L, t, "t_sfc", s->t_sfc);
    set_num(L, t, "olr", s->olr);
    set_num(L, t, "toa_imbalance", s->toa_imbalance);
    set_num(L, t, "sfc_imbalance", s->sfc_imbalance);
    set_num(L, t, "sfc_net_rad", s->sfc_net_rad);
    set_num(L, t, "sfc_conv_flux", s->sfc_conv_flux);
    set_num(L, t, "max_tendency", s->max_tendency);
    lua_pushinteger(L, (lua_Integer)s->steps);
    lua_setfield(L, t, "steps");
    lua_pushboolean(L, s->converged);
    lua_setfield(L, t, "converged");
}

/* rce:state() -> the table rce:run returns */
static int rce_state(lua_State *L)
{
    push_state(L, check_rce(L, 1));
    return 1;
}

/* tau = k m_dry (1 + kq h2o / 0.01), m_dry the layer's dry mass path (kg m^-2). */
static int gray_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    const gray_optics *g = ud;
    for (int l = 0; l < nlay; l++) {
        double mass = lay[l].col_dry * 1e4 * MIMIC_RAD_M_DRY / MIMIC_RAD_AVOGADRO;
        tau[l] = g->k * mass * (1 + g->kq * lay[l].vmr[MIMIC_GAS_H2O] / 0.01);
        frac[l] = 1;
    }
    return 0;
}

static int lbl_fn(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *frac)
{
    const lbl_optics *o = ud;
    for (int l = 0; l < nlay; l++) {
        int rc = mimic_rad_lbl_layer_tau(o->lbl, lay + l, o->n, o->nu, tau + (int64_t)l * o->n);
        if (rc != MIMIC_OK)
            return rc;
    }
    for (int64_t i = 0; i < (int64_t)nlay * o->n; i++)
        frac[i] = 1;
    return 0;
}

/* --- the k-distribution and its reference kernel (rad_kdist.h) ----------------------- */

#define KDIST_META "mimic.radiation.KDist"

static mimic_rad_kdist *check_kdist(lua_State *L, int arg)
{
    return check_box(L, arg, KDIST_META, "the k-distribution is freed");
}

static int kdist_gc(lua_State *L)
{
    pbox *b = luaL_checkudata(L, 1, KDIST_META);
    mimic_rad_kdist_free(b->p);
    b->p = NULL;
    return 0;
}

/* kdist(path) -> a k-distribution (the reference gas-optics kernel's table) */
static int l_kdist(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    pbox *b = new_box(L, KDIST_META);
    if (!(b->p = mimic_rad_kdist_load(path)))
        return lmimic_error(L);
    return 1;
}

/* kd:info() -> {ngpt, nband, ngb, np, nt, neta, p_split (Pa),
 *   nu1, nu2 [ngpt] (band limits of each g-point), band_lo, band_hi [nband], gbound [ngb+1]} */
static int kdist_info(lua_State *L)
{
    const mimic_rad_kdist *k = check_kdist(L, 1);
    lua_createtable(L, 0, 12);
    int t = lua_gettop(L);
    const struct {
        const char *name;
        int v;
    } ints[] = {{"ngpt", k->ngpt}, {"nband", k->nband}, {"ngb", k->ngb}, {"np", k->np}, {"nt", k->nt}, {"neta", k->neta}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        lua_pushinteger(L, ints[i].v);
        lua_setfield(L, t, ints[i].name);
    }
    lua_pushnumber(L, k->p_split);
    lua_setfield(L, t, "p_split");
    const struct {
        const char *name;
        const double *v;
        int64_t n;
    } arrs[] = {{"nu1", k->nu1, k->ngpt}, {"nu2", k->nu2, k->ngpt}, {"band_lo", k->band_lo, k->nband},
                {"band_hi", k->band_hi, k->nband}, {"gbound", k->gbound, k->ngb + 1}};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        memcpy(push_new(L, 1, &arrs[i].n), arrs[i].v, (size_t)arrs[i].n * sizeof(double));
        lua_setfield(L, t, arrs[i].name);
    }
    return 1;
}

/* Layers from a state table {p = [n], t = [n], col_dry = [n], vmr = {gas = [n] | number}}
 * (the table an optics callback receives; absent gases 0), boxed on the stack. */
static mimic_rad_layer *push_layers(lua_State *L, int st, const char *fn, int64_t *n)
{
    luaL_checktype(L, st, LUA_TTABLE);
    *n = -1;
    const double *p = opt_array(L, st, fn, "p", 1, n, 1, 0);
    if (*n < 1 || *n > (int64_t)1 << 30)
        luaL_error(L, "%s: %I layers is out of range", fn, (lua_Integer)*n);
    const double *t = opt_array(L, st, fn, "t", 1, n, 1, 0);
    const double *cd = opt_array(L, st, fn, "col_dry", 1, n, 1, 0);
    mimic_rad_layer *lay = lua_newuserdatauv(L, (size_t)*n * sizeof *lay, 0);
    int box = lua_gettop(L);
    memset(lay, 0, (size_t)*n * sizeof *lay);
    for (int64_t l = 0; l < *n; l++)
        lay[l].p = p[l], lay[l].t = t[l], lay[l].col_dry = cd[l];
    lua_getfield(L, st, "vmr");
    int vt = lua_gettop(L);
    if (!lua_istable(L, vt))
        luaL_error(L, "%s: 'vmr' must be a table {gas = tensor [n] or number}", fn);
    lua_pushnil(L);
    while (lua_next(L, vt)) {
        lua_pop(L, 1);
        int g = check_gas(L, fn, -1);
        const char *gas = lua_tostring(L, -1);
        const double *v = opt_array(L, vt, fn, gas, 1, n, 1, *n);
        for (int64_t l = 0; l < *n; l++)
            lay[l].vmr[g] = v[l];
        lua_pop(L, 1);
    }
    lua_settop(L, box);
    for (int k = st + 1; k < box; k++) /* drop the float64 copies, keep the layers */
        lua_remove(L, st + 1);
    return lay;
}

/* kd:optics(state) -> tau [n, ngpt], planck_frac [n, ngpt] (the reference kernel) */
static int kdist_optics(lua_State *L)
{
    const mimic_rad_kdist *k = check_kdist(L, 1);
    lua_settop(L, 2);
    int64_t n;
    const mimic_rad_layer *lay = push_layers(L, 2, "kd:optics", &n);
    double *tau = push_new(L, 2, (int64_t[2]){n, k->ngpt});
    double *pf = push_new(L, 2, (int64_t[2]){n, k->ngpt});
    if (mimic_rad_gas_optics(k, lay, n, tau, pf) != MIMIC_OK)
        return lmimic_error(L);
    return 2;
}

/* nn_features(state) -> [n, 18]: the neural gas optics' inputs (rad_nn.h) */
static int l_nn_features(lua_State *L)
{
    lua_settop(L, 1);
    int64_t n;
    const mimic_rad_layer *lay = push_layers(L, 1, "radiation.nn_features", &n);
    double *x = push_new(L, 2, (int64_t[2]){n, MIMIC_RAD_NN_NFEAT});
    mimic_rad_nn_features(lay, n, x);
    return 1;
}

/* nn_feature_names() -> {"ln_p", "t", ...}; nn_feature_units() -> the contract's units string */
static int l_nn_feature_names(lua_State *L)
{
    lua_createtable(L, MIMIC_RAD_NN_NFEAT, 0);
    for (int i = 0; i < MIMIC_RAD_NN_NFEAT; i++) {
        lua_pushstring(L, mimic_rad_nn_feature_name(i));
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, MIMIC_RAD_NN_FEATURE_UNITS);
    return 2;
}

/* --- the neural gas optics (rad_nn.h) ---------------------------------------------------- */

#define NN_META "mimic.radiation.NN"

/* The surrogate; the k-distribution it borrows is its uservalue 1, so it
 * lives as long as the surrogate (kb: its box, to notice an early kd:close). */
typedef struct nnbox {
    mimic_rad_nn *s;
    pbox *kb;
} nnbox;

static mimic_rad_nn *check_nn(lua_State *L, int arg)
{
    nnbox *b = luaL_checkudata(L, arg, NN_META);
    if (!b->s)
        luaL_argerror(L, arg, "the neural gas optics is closed");
    if (!b->kb->p)
        luaL_argerror(L, arg, "its k-distribution (kdist=) was closed");
    return b->s;
}

static int nn_gc(lua_State *L)
{
    nnbox *b = luaL_checkudata(L, 1, NN_META);
    mimic_rad_nn_close(&b->s);
    return 0;
}

/* opts[name] as a path string, or NULL when absent. */
static const char *opt_path(lua_State *L, int opts, const char *fn, const char *name, int required)
{
    lua_getfield(L, opts, name);
    const char *v = NULL;
    if (lua_type(L, -1) == LUA_TSTRING)
        v = lua_tostring(L, -1); /* the options table keeps the string alive */
    else if (!lua_isnil(L, -1) || required)
        luaL_error(L, "%s: option '%s' must be %sa model file path (string), got %s", fn, name,
                   required ? "" : "nil or ", luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

/* nn{tau = path, planck = path, kdist = kd,
 *    tau_upper = path, planck_upper = path, p_split = Pa (default kd's),  -- optional pair for p < p_split
 *    guard = path, guard_upper = path,                                     -- optional guards (raw features)
 *    precision = "f32" | "f64" (default: as stored), threads = 0, deterministic = false}
 *   -> the neural gas optics: usable as optics = in lw_fluxes and rce:run/step;
 *      :optics(state) -> tau, planck_frac (as kd:optics), :stats() -> {layers, fallback}, :close() */
static int l_nn(lua_State *L)
{
    const char *fn = "radiation.nn";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    static const char *const known[] = {"tau", "planck", "kdist", "tau_upper", "planck_upper", "p_split", "guard",
                                        "guard_upper", "precision", "threads", "deterministic", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        int ok = 0;
        for (int i = 0; k && known[i]; i++)
            ok |= strcmp(k, known[i]) == 0;
        if (!ok)
            return luaL_error(L, "%s: unknown option '%s' (tau, planck, kdist, tau_upper, planck_upper, p_split, "
                                 "guard, guard_upper, precision, threads, deterministic)", fn, k ? k : "?");
        lua_pop(L, 1);
    }
    mimic_rad_nn_options o;
    memset(&o, 0, sizeof o);
    lua_getfield(L, 1, "kdist");
    int kdi = lua_gettop(L);
    pbox *kb = luaL_testudata(L, kdi, KDIST_META);
    if (!kb)
        return luaL_error(L, "%s: option 'kdist' must be a radiation.kdist (the reference kernel, its g-points and "
                             "the fallback), got %s", fn, luaL_typename(L, kdi));
    const mimic_rad_kdist *kd = check_kdist(L, kdi);
    o.tau_path = opt_path(L, 1, fn, "tau", 1);
    o.planck_path = opt_path(L, 1, fn, "planck", 1);
    o.tau_upper_path = opt_path(L, 1, fn, "tau_upper", 0);
    o.planck_upper_path = opt_path(L, 1, fn, "planck_upper", 0);
    o.guard_path = opt_path(L, 1, fn, "guard", 0);
    o.guard_upper_path = opt_path(L, 1, fn, "guard_upper", 0);
    o.p_split = opt_num(L, 1, fn, "p_split", o.tau_upper_path || o.planck_upper_path ? kd->p_split : 0);
    lua_getfield(L, 1, "precision");
    if (!lua_isnil(L, -1)) {
        const char *pr = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(pr, "f32") == 0 || strcmp(pr, "float32") == 0)
            o.open.precision = MIMIC_PRECISION_F32;
        else if (strcmp(pr, "f64") == 0 || strcmp(pr, "float64") == 0)
            o.open.precision = MIMIC_PRECISION_F64;
        else if (strcmp(pr, "stored") != 0)
            return luaL_error(L, "%s: precision must be \"f32\", \"f64\" or nil (as stored), got %s", fn,
                              lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "threads");
    if (!lua_isnil(L, -1)) {
        int isint = 0;
        lua_Integer t = lua_tointegerx(L, -1, &isint);
        if (!isint || t < 0 || t > 1 << 16)
            return luaL_error(L, "%s: threads must be an integer in 0..65536 (0: mimic.get_num_threads())", fn);
        o.open.num_threads = (int)t;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "deterministic");
    o.open.deterministic = lua_toboolean(L, -1);
    lua_pop(L, 1);
    nnbox *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->s = NULL, b->kb = kb;
    luaL_setmetatable(L, NN_META);
    lua_pushvalue(L, kdi);
    lua_setiuservalue(L, -2, 1);
    if (mimic_rad_nn_open(&o, kd, &b->s) != MIMIC_OK)
        return lmimic_error(L);
    return 1;
}

/* nn:optics(state) -> tau [n, ngpt], planck_frac [n, ngpt] (state as kd:optics) */
static int nn_optics(lua_State *L)
{
    mimic_rad_nn *s = check_nn(L, 1);
    nnbox *b = lua_touserdata(L, 1);
    lua_settop(L, 2);
    int64_t n;
    const mimic_rad_layer *lay = push_layers(L, 2, "nn:optics", &n);
    int ngpt = ((mimic_rad_kdist *)b->kb->p)->ngpt;
    double *tau = push_new(L, 2, (int64_t[2]){n, ngpt});
    double *pf = push_new(L, 2, (int64_t[2]){n, ngpt});
    if (mimic_rad_nn_optics(s, lay, n, tau, pf) != MIMIC_OK)
        return lmimic_error(L);
    return 2;
}

/* nn:stats() -> {layers = computed, fallback = sent to the reference kernel} */
static int nn_stats(lua_State *L)
{
    mimic_rad_nn_stats st;
    mimic_rad_nn_get_stats(check_nn(L, 1), &st);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)st.layers);
    lua_setfield(L, -2, "layers");
    lua_pushinteger(L, (lua_Integer)st.fallback);
    lua_setfield(L, -2, "fallback");
    return 1;
}

/* The optics option of lw_fluxes and rce:run/step, from opts[optics]:
 *   "gray" (k =, kq =) | a radiation.lbl model (nu =, weight =) | a radiation.kdist |
 *   a function(state) -> tau, planck_frac (nu1 =, nu2 =, weight =).
 * Whatever it needs stays on the stack (the caller keeps the frame). */
static void parse_optics(lua_State *L, int opts, const char *fn, int nlay, mimic_rad_optics *opt,
                         optics_store *store)
{
    lua_getfield(L, opts, "optics");
    int oi = lua_gettop(L);
    if (lua_type(L, oi) == LUA_TSTRING && strcmp(lua_tostring(L, oi), "gray") == 0) {
        static const double zero = 0, inf = INFINITY;
        store->gray.k = opt_num(L, opts, fn, "k", 1e-4), store->gray.kq = opt_num(L, opts, fn, "kq", 0);
        opt->ngpt = 1, opt->nu1 = &zero, opt->nu2 = &inf, opt->fn = gray_fn, opt->ud = &store->gray;
    } else if (luaL_testudata(L, oi, LBL_META)) {
        lbl_optics *lo = &store->lbl;
        lo->lbl = check_lbl(L, oi);
        lo->n = -1;
        lo->nu = opt_array(L, opts, fn, "nu", 1, &lo->n, 1, 0);
        if (lo->n > 1 << 24)
            luaL_error(L, "%s: %I spectral points are too many", fn, (lua_Integer)lo->n);
        opt->ngpt = (int)lo->n, opt->nu1 = opt->nu2 = lo->nu, opt->fn = lbl_fn, opt->ud = lo;
        opt->weight = opt_array(L, opts, fn, "weight", 1, (int64_t[1]){lo->n}, 1, 0);
    } else if (luaL_testudata(L, oi, KDIST_META)) {
        mimic_rad_kdist_optics(check_kdist(L, oi), opt);
    } else if (luaL_testudata(L, oi, NN_META)) {
        mimic_rad_nn_optics_fn(check_nn(L, oi), opt);
    } else if (lua_isfunction(L, oi)) {
        int64_t ngpt = -1;
        opt->nu1 = opt_array(L, opts, fn, "nu1", 1, &ngpt, 1, 0);
        check_sizes(L, fn, 1, nlay, ngpt);
        opt->ngpt = (int)ngpt;
        opt->nu2 = opt_array(L, opts, fn, "nu2", 1, (int64_t[1]){ngpt}, 1, 0);
        opt->weight = opt_array(L, opts, fn, "weight", 1, (int64_t[1]){ngpt}, 0, 0);
        store->lua = (lua_optics){L, oi, opt->ngpt, 0, NULL, 0, NULL, NULL};
        opt->fn = optics_trampoline, opt->ud = &store->lua;
    } else {
        luaL_error(L, "%s: option 'optics' must be \"gray\", a radiation.lbl model, a radiation.kdist, a "
                      "radiation.nn or a function(state) -> tau, planck_frac; got a %s", fn, luaL_typename(L, oi));
    }
}

typedef struct lua_progress {
    lua_State *L;
    int fn_idx, failed;
} lua_progress;

static int progress_protected(lua_State *L)
{
    const mimic_rad_rce *s = lua_touserdata(L, 1);
    lua_pushvalue(L, 2);
    lua_createtable(L, 0, 6);
    int t = lua_gettop(L);
    lua_pushinteger(L, (lua_Integer)s->steps);
    lua_setfield(L, t, "steps");
    set_num(L, t, "max_tendency", s->max_tendency);
    set_num(L, t, "t_sfc", s->t_sfc);
    set_num(L, t, "olr", s->olr);
    set_num(L, t, "toa_imbalance", s->toa_imbalance);
    set_num(L, t, "sfc_imbalance", s->sfc_imbalance);
    lua_call(L, 1, 1);
    return 1;
}

/* Calls the Lua progress function; an error stops the run and is re-raised by rce:run. */
static int progress_trampoline(void *ud, const mimic_rad_rce *s)
{
    lua_progress *p = ud;
    lua_State *L = p->L;
    lua_pushcfunction(L, progress_protected);
    lua_pushlightuserdata(L, (void *)s);
    lua_pushvalue(L, p->fn_idx);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        p->failed = 1; /* the message stays on the stack for rce:run */
        return 1;
    }
    int stop = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* rce:run{optics = function(state) -> tau [nlay, ngpt], planck_frac | nil (as lw_fluxes),
 *           nu1 = [ngpt], nu2 = [ngpt], weight = [ngpt]           -- with a function
 *         | optics = "gray", k = 1e-4 (m^2/kg), kq = 0            -- tau = k m_dry (1 + kq h2o / 0.01)
 *         | optics = lbl, nu = [n], weight = [n]                  -- a radiation.lbl model
 *         dt = 86400, tol = 1e-3 (K/day), max_steps = 20000, steps = (run exactly this many: rce:step),
 *         progress = function{steps, max_tendency, t_sfc, olr, ...} -> true to stop}
 *   -> the state table (rce:state()) */
static int rce_run_common(lua_State *L, int single)
{
    const char *fn = single ? "rce:step" : "rce:run";
    mimic_rad_rce *s = check_rce(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    mimic_rad_optics opt = {0};
    optics_store store;
    parse_optics(L, 2, fn, s->nlay, &opt, &store);
    mimic_rad_rce_run_opts ro;
    mimic_rad_rce_run_opts_default(&ro);
    ro.dt = opt_num(L, 2, fn, "dt", ro.dt);
    ro.tol = opt_num(L, 2, fn, "tol", ro.tol);
    double ms = opt_num(L, 2, fn, "max_steps", (double)ro.max_steps);
    if (!(ms >= 1 && ms <= 1e12))
        return luaL_error(L, "%s: max_steps must be in 1..1e12", fn);
    ro.max_steps = (int64_t)ms;
    int rc;
    if (single) {
        rc = mimic_rad_rce_step(s, &opt, ro.dt);
    } else {
        lua_getfield(L, 2, "progress");
        int pi = lua_gettop(L);
        lua_progress lp = {L, pi, 0};
        if (!lua_isnil(L, pi) && !lua_isfunction(L, pi))
            return luaL_error(L, "%s: option 'progress' must be a function(info) -> stop", fn);
        rc = mimic_rad_rce_run(s, &opt, &ro, lua_isfunction(L, pi) ? progress_trampoline : NULL, &lp);
        if (lp.failed)
            return lua_error(L); /* the progress function's error, on the stack top */
    }
    if (rc != MIMIC_OK)
        return lmimic_error(L);
    push_state(L, s);
    return 1;
}

static int rce_run(lua_State *L)
{
    return rce_run_common(L, 0);
}

/* rce:step{same options as run} -> the state table after one step of dt */
static int rce_step(lua_State *L)
{
    return rce_run_common(L, 1);
}

/* rce:set{t_lay = [nlay], t_sfc = K}: restart from a profile */
static int rce_set(lua_State *L)
{
    const char *fn = "rce:set";
    mimic_rad_rce *s = check_rce(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const double *t = opt_array(L, 2, fn, "t_lay", 1, (int64_t[1]){s->nlay}, 0, 0);
    double ts = opt_num(L, 2, fn, "t_sfc", s->t_sfc);
    if (!(ts > 0 && ts < 1000))
        return luaL_error(L, "%s: t_sfc = %f K is outside (0, 1000) K", fn, ts);
    if (t) {
        for (int l = 0; l < s->nlay; l++)
            if (!(t[l] > 0 && t[l] < 1000))
                return luaL_error(L, "%s: t_lay[%d] = %f K is outside (0, 1000) K", fn, l + 1, t[l]);
        memcpy(s->t_lay, t, (size_t)s->nlay * sizeof *t);
    }
    s->t_sfc = ts;
    lua_settop(L, 1);
    return 1;
}

/* --- registration ------------------------------------------------------------------ */

/* A metatable with methods, and gc as __gc and __close (so `<close>` frees early). */
static void new_class(lua_State *L, const char *meta, const luaL_Reg *methods, lua_CFunction gc)
{
    luaL_newmetatable(L, meta);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
}

void lmimic_open_radiation(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg funcs[] = {
        /* rad_atmos.h */
        {"gas_names", l_gas_names},
        {"col_dry", l_col_dry},
        /* rad_rte.h */
        {"planck", l_planck},
        {"planck_band", l_planck_band},
        {"planck_band_dt", l_planck_band_dt},
        {"angles", l_angles},
        {"lw_solve", l_lw_solve},
        {"heating_rate", l_heating_rate},
        {"lw_fluxes", l_lw_fluxes},
        /* rad_lbl.h */
        {"lbl", l_lbl},
        {"uniform_grid", l_uniform_grid},
        /* rad_rce.h */
        {"rce", l_rce},
        /* rad_kdist.h, rad_nn.h */
        {"kdist", l_kdist},
        {"nn_features", l_nn_features},
        {"nn_feature_names", l_nn_feature_names},
        {"nn", l_nn},
        {NULL, NULL},
    };
    static const luaL_Reg lbl_methods[] = {
        {"grid", lbl_grid}, {"absorption", lbl_absorption}, {"layer_tau", lbl_layer_tau}, {NULL, NULL},
    };
    static const luaL_Reg rce_methods[] = {
        {"run", rce_run}, {"step", rce_step}, {"state", rce_state}, {"set", rce_set}, {NULL, NULL},
    };
    static const luaL_Reg kdist_methods[] = {{"info", kdist_info}, {"optics", kdist_optics}, {NULL, NULL}};
    new_class(L, LBL_META, lbl_methods, lbl_gc);
    new_class(L, RCE_META, rce_methods, rce_gc);
    new_class(L, KDIST_META, kdist_methods, kdist_gc);
    static const luaL_Reg nn_methods[] = {{"optics", nn_optics}, {"stats", nn_stats}, {"close", nn_gc}, {NULL, NULL}};
    new_class(L, NN_META, nn_methods, nn_gc);
    luaL_newlib(L, funcs);
    lua_setfield(L, mod, "radiation");
}
