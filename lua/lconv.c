/* Convolution and pooling (core/ops/conv.c) as module functions:
 *   mimic.conv1d/2d/3d(x, w [, bias] [, opts])
 *   mimic.conv_transpose1d/2d/3d(x, w [, bias] [, opts])
 *   mimic.max_pool1d/2d/3d(x, kernel [, opts]), mimic.avg_pool1d/2d/3d(x, kernel [, opts])
 *   mimic.upsample(x, opts)
 * Per-dim options are a number (every dim) or a table of one per dim.
 * Argument handling only: the core checks shapes and words the errors. */
#include "lmimic.h"
#include "mimic/ops.h"

#include <math.h>
#include <string.h>

/* Raises on a key of the options table at idx that is not in `known`
 * (a typo must not be ignored silently). */
static void check_keys(lua_State *L, const char *fn, int idx, const char *const *known)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        bool ok = false;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        for (int i = 0; k && known[i]; i++)
            ok = ok || strcmp(k, known[i]) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int i = 0; known[i]; i++) {
                luaL_addstring(&b, i ? ", " : "");
                luaL_addstring(&b, known[i]);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (known: %s)", fn, k ? k : luaL_typename(L, -3), lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
}

/* A per-dim integer at the top of the stack (a number, or a table of nsp), popped. */
static void per_dim(lua_State *L, const char *fn, const char *what, int nsp, int64_t *out)
{
    if (lua_isinteger(L, -1) || lua_type(L, -1) == LUA_TNUMBER) {
        lua_Integer v = 0;
        if (!lua_isinteger(L, -1))
            luaL_error(L, "%s: %s must be an integer or a table of %d integers", fn, what, nsp);
        v = lua_tointeger(L, -1);
        for (int i = 0; i < nsp; i++)
            out[i] = v;
    } else if (lua_istable(L, -1)) {
        if ((int)lua_rawlen(L, -1) != nsp)
            luaL_error(L, "%s: %s has %d entries; give one per spatial dim (%d)", fn, what, (int)lua_rawlen(L, -1), nsp);
        for (int i = 0; i < nsp; i++) {
            lua_rawgeti(L, -1, i + 1);
            if (!lua_isinteger(L, -1))
                luaL_error(L, "%s: %s[%d] must be an integer", fn, what, i + 1);
            out[i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s: %s must be an integer or a table of %d integers, got %s", fn, what, nsp, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* Reads opts[key] as a per-dim integer into out when present; returns whether it was. */
static bool opt_dims(lua_State *L, const char *fn, int opts, const char *key, int nsp, int64_t *out)
{
    if (!opts || lua_getfield(L, opts, key) == LUA_TNIL) {
        if (opts)
            lua_pop(L, 1);
        return false;
    }
    per_dim(L, fn, key, nsp, out);
    return true;
}

static bool opt_bool(lua_State *L, int opts, const char *key, bool def)
{
    if (!opts)
        return def;
    bool v = lua_getfield(L, opts, key) == LUA_TNIL ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* conv / conv_transpose: (x, w [, bias] [, opts]); upvalue 1 = nsp, 2 = transposed. */
static int l_conv(lua_State *L)
{
    int nsp = (int)lua_tointeger(L, lua_upvalueindex(1));
    bool tr = lua_toboolean(L, lua_upvalueindex(2));
    static const char *const names[2][4] = {{"", "conv1d", "conv2d", "conv3d"},
                                            {"", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}};
    const char *fn = names[tr][nsp];
    mimic_tensor *x = lmimic_checktensor(L, 1), *w = lmimic_checktensor(L, 2), *b = NULL;
    int opts = 0;
    if (lua_gettop(L) >= 3 && !lua_isnil(L, 3)) {
        if ((b = lmimic_totensor(L, 3)) == NULL) {
            luaL_checktype(L, 3, LUA_TTABLE);
            opts = 3;
        }
    }
    if (!opts && lua_gettop(L) >= 4 && !lua_isnil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        opts = 4;
    }
    if (w->ndim != nsp + 2)
        return luaL_error(L, "%s: weight of shape %s must have %d dims [out, in/groups, k...]", fn,
                          mimic_shape_str(w->ndim, w->shape, (char[96]){0}, 96), nsp + 2);
    mimic_conv_opts o;
    memset(&o, 0, sizeof o);
    int64_t opad[3] = {0};
    if (opts) {
        static const char *const known[] = {"stride", "padding", "dilation", "groups", "padding_mode", NULL};
        static const char *const known_t[] = {"stride", "padding", "dilation", "groups", "padding_mode",
                                              "output_padding", NULL};
        check_keys(L, fn, opts, tr ? known_t : known);
        opt_dims(L, fn, opts, "stride", nsp, o.stride);
        opt_dims(L, fn, opts, "dilation", nsp, o.dilation);
        int pt = lua_getfield(L, opts, "padding");
        if (pt == LUA_TNIL) {
            lua_pop(L, 1);
        } else if (pt == LUA_TSTRING) {
            const char *p = lua_tostring(L, -1);
            if (strcmp(p, "same") == 0 && !tr) {
                /* PyTorch's padding='same' when it is symmetric (stride 1, odd reach) */
                for (int i = 0; i < nsp; i++) {
                    int64_t d = o.dilation[i] ? o.dilation[i] : 1, reach = d * (w->shape[2 + i] - 1);
                    if ((o.stride[i] && o.stride[i] != 1) || reach % 2)
                        return luaL_error(L, "%s: padding='same' needs stride 1 and an odd kernel (or an even "
                                          "dilation) along dim %d; give the padding as numbers", fn, i + 1);
                    o.padding[i] = reach / 2;
                }
            } else if (strcmp(p, "valid") == 0) {
                /* no padding */
            } else {
                return luaL_error(L, "%s: padding '%s' is not known (give numbers, 'valid' or 'same')", fn, p);
            }
            lua_pop(L, 1);
        } else {
            per_dim(L, fn, "padding", nsp, o.padding);
        }
        if (lua_getfield(L, opts, "groups") != LUA_TNIL)
            o.groups = luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        if (lua_getfield(L, opts, "padding_mode") != LUA_TNIL) {
            const char *m = luaL_checkstring(L, -1);
            if (strcmp(m, "circular") == 0)
                o.circular = true;
            else if (strcmp(m, "zeros") != 0)
                return luaL_error(L, "%s: padding_mode '%s' is not supported ('zeros' or 'circular')", fn, m);
        }
        lua_pop(L, 1);
        if (tr)
            opt_dims(L, fn, opts, "output_padding", nsp, opad);
    }
    mimic_tensor **box = lmimic_newtensor(L);
    *box = tr ? mimic_conv_transpose(x, w, b, &o, opad) : mimic_conv(x, w, b, &o);
    lmimic_checkresult(L, box);
    return 1;
}

/* max_pool / avg_pool: (x, kernel [, opts]); upvalue 1 = nsp, 2 = avg. */
static int l_pool(lua_State *L)
{
    int nsp = (int)lua_tointeger(L, lua_upvalueindex(1));
    bool avg = lua_toboolean(L, lua_upvalueindex(2));
    static const char *const names[2][4] = {{"", "max_pool1d", "max_pool2d", "max_pool3d"},
                                            {"", "avg_pool1d", "avg_pool2d", "avg_pool3d"}};
    const char *fn = names[avg][nsp];
    mimic_tensor *x = lmimic_checktensor(L, 1);
    mimic_pool_opts o;
    memset(&o, 0, sizeof o);
    luaL_checkany(L, 2);
    lua_pushvalue(L, 2);
    per_dim(L, fn, "kernel_size", nsp, o.kernel);
    int opts = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        opts = 3;
        static const char *const known_max[] = {"stride", "padding", "dilation", "return_indices", NULL};
        static const char *const known_avg[] = {"stride", "padding", "count_include_pad", NULL};
        check_keys(L, fn, opts, avg ? known_avg : known_max);
        opt_dims(L, fn, opts, "stride", nsp, o.stride);
        opt_dims(L, fn, opts, "padding", nsp, o.padding);
        if (!avg)
            opt_dims(L, fn, opts, "dilation", nsp, o.dilation);
        else
            o.exclude_pad = !opt_bool(L, opts, "count_include_pad", true);
    }
    if (avg) {
        mimic_tensor **box = lmimic_newtensor(L);
        *box = mimic_avg_pool(x, nsp, &o);
        lmimic_checkresult(L, box);
        return 1;
    }
    bool want_idx = opt_bool(L, opts, "return_indices", false);
    mimic_tensor **box = lmimic_newtensor(L), **ibox = want_idx ? lmimic_newtensor(L) : NULL;
    mimic_tensor *idx = NULL;
    *box = mimic_max_pool(x, nsp, &o, want_idx ? &idx : NULL);
    lmimic_checkresult(L, box);
    if (!ibox)
        return 1;
    /* a copy: the recorded node keeps the 0-based positions for the backward */
    *ibox = mimic_clone(idx);
    mimic_tensor_free(idx);
    lmimic_checkresult(L, ibox);
    /* 1-based flat positions within each plane, as every index the Lua API returns */
    int64_t *p = mimic_data(*ibox), n = mimic_numel(*ibox);
    for (int64_t i = 0; i < n; i++)
        p[i] += 1;
    return 2;
}

/* upsample(x, {size = | scale_factor =, mode = "nearest", align_corners = false}):
 * x has 1 to 3 spatial dims; scale_factor gives size floor(in * factor). */
static int l_upsample(lua_State *L)
{
    const char *fn = "upsample";
    mimic_tensor *x = lmimic_checktensor(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    static const char *const known[] = {"size", "scale_factor", "mode", "align_corners", NULL};
    check_keys(L, fn, 2, known);
    int nsp = x->ndim - 2;
    if (nsp < 1 || nsp > 3)
        return luaL_error(L, "%s: input of shape %s must have 3 to 5 dims [N, C, spatial...]", fn,
                          mimic_shape_str(x->ndim, x->shape, (char[96]){0}, 96));
    int64_t size[3] = {0};
    bool has_size = opt_dims(L, fn, 2, "size", nsp, size);
    int sf = lua_getfield(L, 2, "scale_factor");
    if (has_size == (sf != LUA_TNIL))
        return luaL_error(L, "%s: give exactly one of size and scale_factor", fn);
    if (sf != LUA_TNIL) {
        for (int i = 0; i < nsp; i++) {
            lua_Number f;
            if (lua_istable(L, -1)) {
                if ((int)lua_rawlen(L, -1) != nsp)
                    return luaL_error(L, "%s: scale_factor needs %d entries", fn, nsp);
                lua_rawgeti(L, -1, i + 1);
                f = luaL_checknumber(L, -1);
                lua_pop(L, 1);
            } else {
                f = luaL_checknumber(L, -1);
            }
            if (!(f > 0))
                return luaL_error(L, "%s: scale_factor must be > 0", fn);
            size[i] = (int64_t)floor((double)x->shape[2 + i] * f);
        }
    }
    lua_pop(L, 1);
    mimic_upsample_mode mode = MIMIC_UPSAMPLE_NEAREST;
    if (lua_getfield(L, 2, "mode") != LUA_TNIL) {
        static const char *const lin[4] = {"", "linear", "bilinear", "trilinear"};
        const char *m = luaL_checkstring(L, -1);
        if (strcmp(m, "nearest") == 0)
            mode = MIMIC_UPSAMPLE_NEAREST;
        else if (strcmp(m, lin[nsp]) == 0 || strcmp(m, "linear") == 0)
            mode = MIMIC_UPSAMPLE_LINEAR;
        else
            return luaL_error(L, "%s: mode '%s' does not fit a %d-dim input (nearest, %s)", fn, m, x->ndim, lin[nsp]);
    }
    lua_pop(L, 1);
    bool align = opt_bool(L, 2, "align_corners", false);
    if (align && mode == MIMIC_UPSAMPLE_NEAREST)
        return luaL_error(L, "%s: align_corners applies to the linear modes only", fn);
    mimic_tensor **box = lmimic_newtensor(L);
    *box = mimic_upsample(x, nsp, size, mode, align);
    lmimic_checkresult(L, box);
    return 1;
}

void lmimic_open_conv(lua_State *L, int mod, int methods)
{
    lua_pushcfunction(L, l_upsample);
    lua_setfield(L, mod, "upsample");
    (void)methods;
    static const char *const conv[4] = {"", "conv1d", "conv2d", "conv3d"};
    static const char *const convt[4] = {"", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"};
    static const char *const maxp[4] = {"", "max_pool1d", "max_pool2d", "max_pool3d"};
    static const char *const avgp[4] = {"", "avg_pool1d", "avg_pool2d", "avg_pool3d"};
    for (int nsp = 1; nsp <= 3; nsp++) {
        for (int k = 0; k < 4; k++) {
            lua_pushinteger(L, nsp);
            lua_pushboolean(L, k == 1 || k == 3);
            lua_pushcclosure(L, k < 2 ? l_conv : l_pool, 2);
            lua_setfield(L, mod, (k == 0 ? conv : k == 1 ? convt : k == 2 ? maxp : avgp)[nsp]);
        }
    }
}
