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

/* --- column driver with a Lua optics callback ------------------------------------------ */

typedef struct lua_optics {
    lua_State *L;
    int fn_idx, ngpt, col;
    const mimic_rad_layer *lay;
    int nlay;
    double *tau, *frac;
} lua_optics;

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
    int64_t ncol = s2[0], nlay = s2[1], ngpt = -1;
    check_sizes(L, fn, ncol, nlay, 1);
    atm.ncol = (int)ncol, atm.nlay = (int)nlay;
    atm.t_lay = opt_array(L, 1, fn, "t_lay", 2, (int64_t[2]){ncol, nlay}, 1, 0);
    atm.p_lev = opt_array(L, 1, fn, "p_lev", 2, (int64_t[2]){ncol, nlay + 1}, 1, 0);
    atm.t_lev = opt_array(L, 1, fn, "t_lev", 2, (int64_t[2]){ncol, nlay + 1}, 1, 0);
    atm.t_sfc = opt_array(L, 1, fn, "t_sfc", 1, (int64_t[1]){ncol}, 1, 0);
    atm.sfc_emis = opt_array(L, 1, fn, "sfc_emis", 1, (int64_t[1]){ncol}, 1, ncol);
    mimic_rad_optics opt = {0};
    opt.nu1 = opt_array(L, 1, fn, "nu1", 1, &ngpt, 1, 0);
    check_sizes(L, fn, ncol, nlay, ngpt);
    opt.ngpt = (int)ngpt;
    opt.nu2 = opt_array(L, 1, fn, "nu2", 1, (int64_t[1]){ngpt}, 1, 0);
    opt.weight = opt_array(L, 1, fn, "weight", 1, (int64_t[1]){ngpt}, 0, 0);
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
    lua_getfield(L, 1, "optics");
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "%s: option 'optics' must be a function(state) -> tau, planck_frac", fn);
    lua_optics lo = {L, lua_gettop(L), opt.ngpt, 0, NULL, 0, NULL, NULL};
    opt.fn = optics_trampoline, opt.ud = &lo;
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

/* --- registration ------------------------------------------------------------------ */

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
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_setfield(L, mod, "radiation");
}
