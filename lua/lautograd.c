/* Autograd (core/include/mimic/autograd.h) in Lua: gradient requirements,
 * the t.grad property, backward, detach, and grad mode.
 *
 *   t:requires_grad_([on]) -> t       t:requires_grad() -> bool
 *   t.grad  (read: tensor or nil; `t.grad = g` sets, `t.grad = nil` clears)
 *   t:backward([grad] [, {create_graph = bool}])
 *   t:detach(), t:is_leaf(), t:grad_fn() -> op name or nil
 *   mimic.no_grad(f, ...), mimic.enable_grad(f, ...) -> f's results
 *   mimic.set_grad_enabled(on) -> previous, mimic.is_grad_enabled()
 *
 * t.grad is a property, not a method: ltensor.c looks string keys that are
 * not methods up in the metatable's __getters/__setters tables, filled here. */
#include "lmimic.h"
#include "mimic/autograd.h"

#include <string.h>

/* --- per-tensor state ---------------------------------------------------------- */
static int t_requires_grad_(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    bool on = lua_isnoneornil(L, 2) ? true : lua_toboolean(L, 2);
    return lmimic_return_self(L, mimic_set_requires_grad(t, on));
}

static int t_requires_grad(lua_State *L)
{
    lua_pushboolean(L, mimic_requires_grad(lmimic_checktensor(L, 1)));
    return 1;
}

static int t_is_leaf(lua_State *L)
{
    lua_pushboolean(L, mimic_is_leaf(lmimic_checktensor(L, 1)));
    return 1;
}

static int t_grad_fn(lua_State *L)
{
    const char *name = mimic_grad_fn_name(lmimic_checktensor(L, 1));
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushnil(L);
    return 1;
}

static int t_detach(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    mimic_tensor **box = lmimic_newtensor(L);
    *box = mimic_detach(t);
    lmimic_checkresult(L, box);
    return 1;
}

/* Getter of t.grad: a new box holding another reference to the gradient, so
 * the values stay valid after a later zero_grad; in-place accumulation by a
 * later backward shows through it (as in PyTorch). */
static int get_grad(lua_State *L)
{
    mimic_tensor *g = mimic_grad(lmimic_checktensor(L, 1));
    if (!g) {
        lua_pushnil(L);
        return 1;
    }
    mimic_tensor **box = lmimic_newtensor(L); /* before the retain: it may raise */
    mimic_tensor_retain(g);
    *box = g;
    return 1;
}

/* Setter of t.grad. The stored gradient is g itself (shared, as in PyTorch);
 * a non-contiguous g (e.g. an expanded view) is copied first, because the
 * next backward adds into the stored gradient in place. */
static int set_grad(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    if (lua_isnil(L, 2))
        return mimic_set_grad(t, NULL) == MIMIC_OK ? 0 : lmimic_error(L);
    mimic_tensor *g = lmimic_totensor(L, 2);
    if (!g)
        return luaL_error(L, "grad: assigned value is a %s; assign a tensor of the same shape and dtype, or nil",
                          luaL_typename(L, 2));
    if (g->dtype != t->dtype)
        return luaL_error(L, "grad: gradient of dtype %s for a %s tensor; convert it with :to('%s')",
                          mimic_dtype_name(g->dtype), mimic_dtype_name(t->dtype), mimic_dtype_name(t->dtype));
    if (!mimic_is_contiguous(g)) {
        mimic_tensor **box = lmimic_newtensor(L);
        *box = mimic_clone(g);
        lmimic_checkresult(L, box);
        g = *box;
    }
    return mimic_set_grad(t, g) == MIMIC_OK ? 0 : lmimic_error(L);
}

/* backward([grad] [, opts]): grad is a tensor of the result's shape (nil for a
 * one-element result); opts = {create_graph = bool}. retain_graph is accepted
 * and ignored: the graph always lives as long as the tensors that hold it. */
static int t_backward(lua_State *L)
{
    mimic_tensor *t = lmimic_checktensor(L, 1);
    int opts = 0;
    mimic_tensor *g = NULL;
    if (lua_istable(L, 2) && lua_isnoneornil(L, 3)) {
        opts = 2;
    } else {
        if (!lua_isnil(L, 2) && !lua_isnone(L, 2) && !(g = lmimic_totensor(L, 2)))
            return luaL_typeerror(L, 2, "mimic.Tensor (the gradient of the result), options table or nil");
        if (!lua_isnoneornil(L, 3)) {
            luaL_checktype(L, 3, LUA_TTABLE);
            opts = 3;
        }
    }
    bool create_graph = false;
    if (opts) {
        lua_pushnil(L);
        while (lua_next(L, opts)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (k && strcmp(k, "create_graph") == 0)
                create_graph = lua_toboolean(L, -1);
            else if (!k || strcmp(k, "retain_graph") != 0)
                return luaL_argerror(L, opts, lua_pushfstring(L, "unknown option '%s' (options: create_graph, "
                                                                 "retain_graph)", luaL_tolstring(L, -2, NULL)));
            lua_pop(L, 1);
        }
    }
    if (mimic_backward(t, g, create_graph) != MIMIC_OK)
        return lmimic_error(L);
    return 0;
}

/* --- grad mode ---------------------------------------------------------------------- */
static int l_set_grad_enabled(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, mimic_set_grad_enabled(lua_toboolean(L, 1)));
    return 1;
}

static int l_is_grad_enabled(lua_State *L)
{
    lua_pushboolean(L, mimic_grad_enabled());
    return 1;
}

/* Calls f(...) (arg 1, any callable: a function or e.g. a module) with grad
 * mode `on`, and restores the previous mode however f ends: the error is
 * re-raised unchanged after the restore. Not yieldable: grad mode belongs to
 * the OS thread, and a coroutine suspended inside would leak the mode to its
 * resumer. */
static int with_grad_mode(lua_State *L, bool on, const char *fn)
{
    if (!lua_isfunction(L, 1)) {
        if (luaL_getmetafield(L, 1, "__call") == LUA_TNIL)
            return luaL_argerror(L, 1, lua_pushfstring(L, "%s expects a function (or callable) to run, got %s", fn,
                                                       luaL_typename(L, 1)));
        lua_pop(L, 1);
    }
    int nargs = lua_gettop(L) - 1;
    bool prev = mimic_set_grad_enabled(on);
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    mimic_set_grad_enabled(prev);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

static int l_no_grad(lua_State *L) { return with_grad_mode(L, false, "no_grad"); }
static int l_enable_grad(lua_State *L) { return with_grad_mode(L, true, "enable_grad"); }

/* --- registration --------------------------------------------------------------------- */
/* Sets f as entry `name` of the table in field `field` of the table at idx,
 * creating that table if needed (other files may add properties too). */
static void set_property(lua_State *L, int idx, const char *field, const char *name, lua_CFunction f)
{
    if (lua_getfield(L, idx, field) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, idx, field);
    }
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

void lmimic_open_autograd(lua_State *L, int mod, int methods)
{
    static const luaL_Reg tmethods[] = {
        {"requires_grad_", t_requires_grad_}, {"requires_grad", t_requires_grad}, {"backward", t_backward},
        {"detach", t_detach}, {"is_leaf", t_is_leaf}, {"grad_fn", t_grad_fn},
        {NULL, NULL},
    };
    static const luaL_Reg funcs[] = {
        {"no_grad", l_no_grad}, {"enable_grad", l_enable_grad},
        {"set_grad_enabled", l_set_grad_enabled}, {"is_grad_enabled", l_is_grad_enabled},
        {NULL, NULL},
    };
    lua_pushvalue(L, methods);
    luaL_setfuncs(L, tmethods, 0);
    lua_pop(L, 1);
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
    set_property(L, methods, "__getters", "grad", get_grad);
    set_property(L, methods, "__setters", "grad", set_grad);
}
