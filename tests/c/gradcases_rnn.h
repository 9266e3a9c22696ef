/* Gradient-check cases of the recurrent layers (included by test_autograd.c).
 * Each case runs a 2-layer stack (layer 2 reads layer 1's hidden states) with
 * initial states and biases, joined with a 1-layer run without them, so every
 * input of the op (x, h0, c0, both weights and biases) and the NULL paths show
 * in the total. Inputs: x as a batch-first [B, T, I] tensor passed transposed
 * (a non-contiguous view); the initial states packed as [L (h) + L (c), B, H];
 * all weights packed in one 1-D tensor, PyTorch's order per layer. PyTorch
 * values and thread independence are in test_rnn.c and test_rnn.lua. */

enum { RN_T = 3, RN_B = 2, RN_I = 3, RN_H = 2 };

static int rn_gates(mimic_rnn_mode m) { return m == MIMIC_LSTM ? 4 : m == MIMIC_GRU ? 3 : 1; }

/* Number of packed weights of a layer with `in` input features. */
static int64_t rn_nparams(mimic_rnn_mode m, int64_t in)
{
    int64_t GH = rn_gates(m) * RN_H;
    return GH * in + GH * RN_H + 2 * GH;
}

/* A view of p[off .. off + numel(shape)) with that shape (new reference). */
static mimic_tensor *rn_take(const mimic_tensor *p, int64_t *off, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    mimic_tensor *v = mimic_narrow((mimic_tensor *)p, 0, *off, n);
    mimic_tensor *r = v ? mimic_reshape(v, ndim, shape) : NULL;
    mimic_tensor_free(v);
    *off += n;
    return r;
}

/* One layer with the weights at *off of p; h0/c0 from states[l] / states[L + l] unless st is NULL. */
static mimic_tensor *rn_layer(mimic_rnn_mode m, const mimic_tensor *x, const mimic_tensor *st, int l, int L,
                              const mimic_tensor *p, int64_t *off, bool bias)
{
    int64_t GH = rn_gates(m) * RN_H, in = x->shape[2];
    mimic_tensor *wih = rn_take(p, off, 2, (int64_t[]){GH, in});
    mimic_tensor *whh = rn_take(p, off, 2, (int64_t[]){GH, RN_H});
    mimic_tensor *bih = rn_take(p, off, 1, (int64_t[]){GH});
    mimic_tensor *bhh = rn_take(p, off, 1, (int64_t[]){GH});
    mimic_tensor *h0 = st ? mimic_select((mimic_tensor *)st, 0, l) : NULL;
    mimic_tensor *c0 = st && m == MIMIC_LSTM ? mimic_select((mimic_tensor *)st, 0, L + l) : NULL;
    mimic_tensor *y = wih && whh && bih && bhh
                          ? mimic_rnn_layer(m, x, h0, c0, wih, whh, bias ? bih : NULL, bias ? bhh : NULL)
                          : NULL;
    mimic_tensor *t[6] = {wih, whh, bih, bhh, h0, c0};
    for (int i = 0; i < 6; i++)
        mimic_tensor_free(t[i]);
    return y;
}

static void rn_make(mimic_rnn_mode m, mimic_tensor **in)
{
    in[0] = AWAY0(RN_B, RN_T, RN_I);
    in[1] = AWAY0(4, RN_B, RN_H);
    in[2] = AWAY0(rn_nparams(m, RN_I) + rn_nparams(m, RN_H));
}

/* Layers 1 and 2 with states and biases (both results), and layer 1 alone
 * without them; joined (cv_join, gradcases_conv.h). */
static mimic_tensor *rn_call(mimic_rnn_mode m, mimic_tensor *const *in)
{
    mimic_tensor *x = mimic_transpose(in[0], 0, 1); /* [T, B, I], non-contiguous */
    int64_t off = 0, off0 = 0;
    mimic_tensor *y1 = x ? rn_layer(m, x, in[1], 0, 2, in[2], &off, true) : NULL;
    mimic_tensor *h1 = !y1 ? NULL : m == MIMIC_LSTM ? mimic_select(y1, 0, 0) : cv_ref(y1);
    mimic_tensor *y2 = h1 ? rn_layer(m, h1, in[1], 1, 2, in[2], &off, true) : NULL;
    mimic_tensor *y3 = x ? rn_layer(m, x, NULL, 0, 2, in[2], &off0, false) : NULL;
    mimic_tensor_free(h1);
    mimic_tensor_free(x);
    return cv_join(3, (mimic_tensor *[]){y1, y2, y3});
}

static void make_rnn_tanh(mimic_tensor **in) { rn_make(MIMIC_RNN_TANH, in); }
static mimic_tensor *call_rnn_tanh(mimic_tensor *const *in) { return rn_call(MIMIC_RNN_TANH, in); }
/* ReLU: pre-activations away from the kink for these inputs is not guaranteed,
 * but a kink within 1e-6 of a random point is a 1e-6 chance per element. */
static void make_rnn_relu(mimic_tensor **in) { rn_make(MIMIC_RNN_RELU, in); }
static mimic_tensor *call_rnn_relu(mimic_tensor *const *in) { return rn_call(MIMIC_RNN_RELU, in); }
static void make_lstm(mimic_tensor **in) { rn_make(MIMIC_LSTM, in); }
static mimic_tensor *call_lstm(mimic_tensor *const *in) { return rn_call(MIMIC_LSTM, in); }
static void make_gru(mimic_tensor **in) { rn_make(MIMIC_GRU, in); }
static mimic_tensor *call_gru(mimic_tensor *const *in) { return rn_call(MIMIC_GRU, in); }

static const gcase cases_rnn[] = {
    CASE(rnn_tanh), CASE(rnn_relu), CASE(lstm), CASE(gru),
    {NULL, NULL, NULL},
};
