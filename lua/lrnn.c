/* Recurrent layers (core/ops/rnn.c) as a module function:
 *   mimic.rnn_layer(mode, x, h0, c0, w_ih, w_hh [, b_ih, b_hh])
 * mode is "rnn_tanh", "rnn_relu", "lstm" or "gru"; h0, c0 and the biases may
 * be nil. x is time first [T, B, I]; the result is [T, B, H] (LSTM: [2, T, B, H],
 * hidden then cell states). nn.RNN/LSTM/GRU (lua/mimic/nn.lua) build on it.
 * Argument handling only: the core checks shapes and words the errors. */
#include "lmimic.h"
#include "mimic/ops.h"

#include <string.h>

static mimic_tensor *opt_tensor(lua_State *L, int arg)
{
    return lua_isnoneornil(L, arg) ? NULL : lmimic_checktensor(L, arg);
}

static int l_rnn_layer(lua_State *L)
{
    static const char *const modes[] = {"rnn_tanh", "rnn_relu", "lstm", "gru", NULL};
    int mode = luaL_checkoption(L, 1, NULL, modes);
    mimic_tensor *x = lmimic_checktensor(L, 2), *h0 = opt_tensor(L, 3), *c0 = opt_tensor(L, 4);
    mimic_tensor *wih = lmimic_checktensor(L, 5), *whh = lmimic_checktensor(L, 6);
    mimic_tensor *bih = opt_tensor(L, 7), *bhh = opt_tensor(L, 8);
    mimic_tensor **box = lmimic_newtensor(L);
    *box = mimic_rnn_layer((mimic_rnn_mode)mode, x, h0, c0, wih, whh, bih, bhh);
    lmimic_checkresult(L, box);
    return 1;
}

void lmimic_open_rnn(lua_State *L, int mod, int methods)
{
    (void)methods;
    lua_pushcfunction(L, l_rnn_layer);
    lua_setfield(L, mod, "rnn_layer");
}
