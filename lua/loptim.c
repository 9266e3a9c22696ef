/* Flat parameter buffers (core/include/mimic/optim.h) for mimic.optim:
 *
 *   mimic.flatten_parameters(params) -> flat_params, flat_grads
 *   mimic.flat_attach_grads(params, flat_grads)
 *
 * params is a list of tensors. After flattening, every parameter (the same
 * Lua object as before) views its slice of flat_params and its .grad is its
 * slice of flat_grads; the rules (leaves, one dtype, no sharing, one buffer
 * per parameter) are the core's, and so are the error messages. */
#include "lmimic.h"
#include "mimic/optim.h"

#include <limits.h>

/* The tensors of the list at arg, in a userdata array on the stack (so
 * nothing leaks on an error); the tensors stay alive in the list. */
static mimic_tensor **check_list(lua_State *L, int arg, int *n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer len = (lua_Integer)lua_rawlen(L, arg);
    if (len > INT_MAX / 2)
        luaL_argerror(L, arg, "too many parameters");
    mimic_tensor **ps = lua_newuserdatauv(L, (size_t)(len ? len : 1) * sizeof *ps, 0);
    for (lua_Integer i = 0; i < len; i++) {
        lua_rawgeti(L, arg, i + 1);
        if (!(ps[i] = lmimic_totensor(L, -1)))
            luaL_argerror(L, arg, lua_pushfstring(L, "entry %I of the parameter list is a %s, expected a mimic.Tensor",
                                                  i + 1, luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
    *n = (int)len;
    return ps;
}

static int l_flatten_parameters(lua_State *L)
{
    int n;
    mimic_tensor **ps = check_list(L, 1, &n);
    mimic_tensor **fp = lmimic_newtensor(L), **fg = lmimic_newtensor(L);
    if (mimic_flatten_parameters(ps, n, fp, fg) != MIMIC_OK)
        return lmimic_error(L);
    return 2;
}

static int l_flat_attach_grads(lua_State *L)
{
    int n;
    mimic_tensor *fg = lmimic_checktensor(L, 2);
    mimic_tensor **ps = check_list(L, 1, &n);
    if (mimic_flat_attach_grads(ps, n, fg) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

/* adam_update(p, g, m, v, vmax|nil, lr, beta1, beta2, eps, weight_decay, decoupled, step):
 * mimic_adam_update, the fused step mimic.optim's Adam and AdamW call. */
static int l_adam_update(lua_State *L)
{
    mimic_tensor *p = lmimic_checktensor(L, 1), *g = lmimic_checktensor(L, 2), *m = lmimic_checktensor(L, 3),
                 *v = lmimic_checktensor(L, 4);
    mimic_tensor *vmax = lua_isnoneornil(L, 5) ? NULL : lmimic_checktensor(L, 5);
    double lr = luaL_checknumber(L, 6), b1 = luaL_checknumber(L, 7), b2 = luaL_checknumber(L, 8),
           eps = luaL_checknumber(L, 9), wd = luaL_checknumber(L, 10);
    bool decoupled = lua_toboolean(L, 11);
    lua_Integer step = luaL_checkinteger(L, 12);
    if (mimic_adam_update(p, g, m, v, vmax, lr, b1, b2, eps, wd, decoupled, (int64_t)step) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

void lmimic_open_optim(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg funcs[] = {
        {"flatten_parameters", l_flatten_parameters},
        {"flat_attach_grads", l_flat_attach_grads},
        {"adam_update", l_adam_update},
        {NULL, NULL},
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
