/* ONNX -> mimic layer records (core/include/mimic/onnx.h, docs/interop.md).
 *
 * The graph is walked once in its (topological) node order and turned into
 * a list of records kept in double precision; the model is built from the
 * list at the end, so a failure halfway leaves nothing half-built. The chain
 * rule: every node reads the current value ("head") except the Add that
 * closes a residual block, which also reads an earlier value s; the block
 * then starts where s was produced. Blocks must nest (they always do for
 * x + f(x) models). */
#include "onnx_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { R_DENSE, R_ACT, R_LN, R_AFFINE, R_RES_END, R_CONV, R_POOL, R_GPOOL, R_FLATTEN, R_RNN, R_LAST };

typedef struct rec {
    int kind;
    int64_t in, out;
    double *w, *b;    /* dense: w [out, in], b [out] or NULL; ln: weight, bias; affine: scale, shift */
    mimic_activation act;
    double p0, p1;    /* activation parameters; ln: p0 = eps; pools: p0 = 1 for max */
    mimic_spatial g;  /* conv, pools; global pool: g.in_channels */
    mimic_recurrent rr; /* R_RNN: w = w_ih, w2 = w_hh, b = b_ih, b2 = b_hh (PyTorch's gate order); R_LAST */
    double *w2, *b2;
} rec;

typedef struct val {
    const char *name;
    int64_t width;
    int nd;           /* 0: features; 1..3: [C, spatial...] flattened, channels first */
    int64_t ch, sp[3];
    int pos;          /* records before it: a block that starts at this value begins at pos */
    int rec;          /* the record that produced it, -1 for none (graph input, aliases) */
    int seq;          /* sequences (nd = 1, ch = T, sp[0] = features): 0 batch first [N, T, F],
                         1 time first [T, N, F], 2 a recurrent node's output [T, 1, N, H] */
} val;

typedef struct blk {
    int begin, end;   /* begin position, index of its residual_end record */
} blk;

typedef struct importer {
    const char *path;
    const Onnx__GraphProto *g;
    rec *recs;
    int nrec;
    int *begins;      /* residual_begin records before record i (size nrec max + 1) */
    val *vals;
    int nval;
    blk *blks;
    int nblk;
    int *consumers;   /* per value, how many node inputs read it */
    val head;
    char label[32];
    const char *node;
    char *skip;       /* per node: part of a recurrent node's initial-state computation (zeros) */
} importer;

static const char *const SUPPORTED[] = {
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Elu", "Tanh", "Sigmoid", "Softplus",
    "Identity", "Dropout", "Flatten", "Reshape", "BatchNormalization", "LayerNormalization", "Constant",
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Pad", "LSTM", "GRU", "RNN",
    "Transpose", "Squeeze", "Gather", NULL};

static int supported(const Onnx__NodeProto *n)
{
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
        return 0;
    for (int i = 0; SUPPORTED[i]; i++)
        if (n->op_type && strcmp(n->op_type, SUPPORTED[i]) == 0)
            return 1;
    return 0;
}

/* Every unsupported operator, with its node, in one message. */
static int check_ops(importer *im)
{
    char msg[1536];
    size_t len = 0;
    int bad = 0;
    msg[0] = '\0';
    for (size_t i = 0; i < im->g->n_node; i++) {
        const Onnx__NodeProto *n = im->g->node[i];
        if (supported(n) || (im->skip && im->skip[i]))
            continue;
        char buf[32];
        if (len < sizeof msg - 200) {
            int k = snprintf(msg + len, sizeof msg - len, "%s%s%s%s (node '%s')", bad ? ", " : "",
                             n->domain && n->domain[0] ? n->domain : "", n->domain && n->domain[0] ? "." : "",
                             n->op_type ? n->op_type : "?", onnx_node_label(n, (int)i, buf));
            len += k > 0 ? (size_t)k : 0;
        } else if (len < sizeof msg - 8) {
            len += (size_t)snprintf(msg + len, sizeof msg - len, ", ...");
        }
        bad++;
    }
    if (!bad)
        return 0;
    char sup[512];
    size_t sl = 0;
    for (int i = 0; SUPPORTED[i]; i++)
        sl += (size_t)snprintf(sup + sl, sizeof sup - sl, "%s%s", i ? ", " : "", SUPPORTED[i]);
    return mimic_error(MIMIC_EIO, "%s: %d ONNX operator%s not supported by mimic (nothing was converted): %s. "
                       "mimic converts: %s; rewrite the model with these or file an issue", im->path, bad,
                       bad == 1 ? " is" : "s are", msg, sup);
}

static int find_val(const importer *im, const char *name)
{
    for (int i = im->nval - 1; i >= 0; i--)
        if (strcmp(im->vals[i].name, name) == 0)
            return i;
    return -1;
}

static int ferr(importer *im, int code, const char *what)
{
    return mimic_error(code, "%s: node '%s': %s", im->path, im->node, what);
}

/* The constant at input k of n as doubles; validates its count when want >= 0
 * (a count of 1 is accepted as a broadcast scalar when scalar_ok). */
static double *input_const(importer *im, const Onnx__NodeProto *n, size_t k, int64_t want, int scalar_ok,
                           int64_t dims[4], int *ndim, int64_t *numel)
{
    char what[160];
    if (k >= n->n_input || !n->input[k][0]) {
        mimic_error(MIMIC_EIO, "%s: node '%s': input %zu is missing", im->path, im->node, k);
        return NULL;
    }
    const Onnx__TensorProto *t = onnx_find_const(im->g, n->input[k]);
    if (!t) {
        mimic_error(MIMIC_EIO, "%s: node '%s' (%s): input '%s' must be a constant (an initializer) for mimic to "
                    "convert it", im->path, im->node, n->op_type, n->input[k]);
        return NULL;
    }
    snprintf(what, sizeof what, "node '%s': tensor '%s'", im->node, n->input[k]);
    double *d = onnx_const_doubles(im->path, t, what, dims, ndim, numel);
    if (d && want >= 0 && *numel != want && !(scalar_ok && *numel == 1)) {
        mimic_free(d);
        mimic_error(MIMIC_ESHAPE, "%s: %s has %lld elements, %lld expected (the feature width here)", im->path, what,
                    (long long)*numel, (long long)want);
        return NULL;
    }
    return d;
}

/* A per-feature vector of width w from a constant (broadcasting a scalar). */
static double *vec_const(importer *im, const Onnx__NodeProto *n, size_t k, int64_t w)
{
    int64_t dims[4], numel;
    int nd;
    double *d = input_const(im, n, k, w, 1, dims, &nd, &numel);
    if (!d || numel == w)
        return d;
    double *v = mimic_malloc((size_t)w * sizeof *v);
    if (v)
        for (int64_t i = 0; i < w; i++)
            v[i] = d[0];
    mimic_free(d);
    return v;
}

static rec *push_rec(importer *im, int kind, int64_t in, int64_t out)
{
    rec *r = &im->recs[im->nrec++];
    memset(r, 0, sizeof *r);
    r->kind = kind, r->in = in, r->out = out;
    return r;
}

/* The record that produced the head, if folding a constant into it cannot be
 * seen by anyone else: the head is its only output and is read once. */
static rec *foldable(importer *im, int kind)
{
    if (im->head.rec < 0 || im->head.rec != im->nrec - 1 || im->recs[im->head.rec].kind != kind)
        return NULL;
    int vi = find_val(im, im->head.name);
    return vi >= 0 && im->consumers[vi] == 1 ? &im->recs[im->head.rec] : NULL;
}

static rec *affine_rec(importer *im, int64_t w)
{
    rec *r = foldable(im, R_AFFINE);
    if (r)
        return r;
    r = push_rec(im, R_AFFINE, w, w);
    r->w = mimic_malloc((size_t)w * sizeof(double));
    r->b = mimic_calloc((size_t)w, sizeof(double));
    if (!r->w || !r->b)
        return NULL;
    for (int64_t i = 0; i < w; i++)
        r->w[i] = 1;
    return r;
}

/* --- recurrent nodes ------------------------------------------------------------ */
/* PyTorch's export computes a recurrent node's zero initial state from the
 * input's batch size (Shape, Gather, Unsqueeze, Concat, ConstantOfShape,
 * Slice, ...). Those nodes are marked here and skipped: a node is part of
 * the state computation if each of its outputs is read only by such nodes or
 * as an LSTM/GRU/RNN state input (sequence_lens, initial_h, initial_c). The
 * value is checked to be zeros where it is made (ConstantOfShape). */
static int is_recurrent(const char *op) { return !strcmp(op, "LSTM") || !strcmp(op, "GRU") || !strcmp(op, "RNN"); }

static const char *const STATE_OPS[] = {"Shape", "Gather", "Unsqueeze", "Concat", "ConstantOfShape", "Slice",
                                        "Constant", "Expand", "Cast", "Squeeze", "Reshape", "Identity", NULL};

static int mark_state_nodes(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    for (size_t i = g->n_node; i-- > 0;) {
        const Onnx__NodeProto *n = g->node[i];
        int ok = 0;
        for (int k = 0; STATE_OPS[k]; k++)
            ok |= n->op_type && !strcmp(n->op_type, STATE_OPS[k]);
        int used = 0;
        for (size_t o = 0; ok && o < n->n_output; o++) {
            if (!n->output[o][0])
                continue;
            for (size_t k = 0; ok && k < g->n_output; k++)
                ok = strcmp(g->output[k]->name, n->output[o]) != 0;
            for (size_t j = i + 1; ok && j < g->n_node; j++) {
                const Onnx__NodeProto *c = g->node[j];
                for (size_t k = 0; ok && k < c->n_input; k++) {
                    if (strcmp(c->input[k], n->output[o]) != 0)
                        continue;
                    used = 1;
                    ok = im->skip[j] || (is_recurrent(c->op_type) && k >= 4);
                }
            }
        }
        im->skip[i] = (char)(ok && used);
        if (im->skip[i] && !strcmp(n->op_type, "ConstantOfShape")) {
            const Onnx__AttributeProto *a = onnx_attr(n, "value");
            if (a && a->t) {
                int64_t dims[4], numel;
                int nd;
                double *v = onnx_const_doubles(im->path, a->t, "ConstantOfShape value", dims, &nd, &numel);
                if (!v)
                    return MIMIC_EIO;
                int zero = numel == 1 && v[0] == 0;
                mimic_free(v);
                if (!zero)
                    return mimic_error(MIMIC_EIO, "%s: node '%s': a recurrent node's initial state is not zeros; "
                                       "mimic runs from zero states only", im->path,
                                       onnx_node_label(n, (int)i, im->label));
            }
        }
    }
    return 0;
}

/* The name is an output of a skipped (initial-state) node. */
static int state_value(const importer *im, const char *name)
{
    for (size_t i = 0; im->skip && i < im->g->n_node; i++)
        for (size_t o = 0; im->skip[i] && o < im->g->node[i]->n_output; o++)
            if (!strcmp(im->g->node[i]->output[o], name))
                return 1;
    return 0;
}

/* LSTM, GRU, RNN (forward, PyTorch's semantics) on the time-first head:
 * one R_RNN record with the weights in PyTorch's gate order. */
static int recurrent_node(importer *im, const Onnx__NodeProto *n, val *outv)
{
    const val *h = &im->head;
    const char *op = n->op_type;
    if (h->nd != 1 || h->seq != 1)
        return ferr(im, MIMIC_ESHAPE, "a recurrent node needs a time-first [T, batch, features] sequence: export "
                    "with batch_first = True and a [batch, T, features] graph input");
    const Onnx__AttributeProto *dir = onnx_attr(n, "direction");
    if (dir && dir->has_s && !(dir->s.len == 7 && !memcmp(dir->s.data, "forward", 7)))
        return ferr(im, MIMIC_EIO, "only direction 'forward' is supported (no bidirectional or reverse layers)");
    if (onnx_attr_i(n, "layout", 0) != 0 || onnx_attr(n, "clip") || onnx_attr_i(n, "input_forget", 0) ||
        onnx_attr(n, "activation_alpha") || onnx_attr(n, "activation_beta"))
        return ferr(im, MIMIC_EIO, "layout, clip, input_forget and activation parameters are not supported");
    int cell = op[0] == 'L' ? MIMIC_CELL_LSTM : op[0] == 'G' ? MIMIC_CELL_GRU : MIMIC_CELL_RNN_TANH;
    const Onnx__AttributeProto *acts = onnx_attr(n, "activations");
    if (acts) {
        static const char *const want[3][3] = {{"Tanh"}, {"Sigmoid", "Tanh", "Tanh"}, {"Sigmoid", "Tanh"}};
        int wi = cell == MIMIC_CELL_LSTM ? 1 : cell == MIMIC_CELL_GRU ? 2 : 0;
        size_t nw = wi == 1 ? 3 : wi == 2 ? 2 : 1;
        int ok = acts->n_strings == nw;
        for (size_t k = 0; ok && k < nw; k++) {
            const char *w = want[wi][k];
            ok = acts->strings[k].len == strlen(w) && !memcmp(acts->strings[k].data, w, strlen(w));
            if (!ok && wi == 0 && acts->strings[k].len == 4 && !memcmp(acts->strings[k].data, "Relu", 4))
                ok = 1, cell = MIMIC_CELL_RNN_RELU;
        }
        if (!ok)
            return ferr(im, MIMIC_EIO, "activations other than the defaults (RNN: Tanh or Relu) are not supported");
    }
    if (cell == MIMIC_CELL_GRU && onnx_attr_i(n, "linear_before_reset", 0) != 1)
        return ferr(im, MIMIC_EIO, "GRU with linear_before_reset = 0 is not PyTorch's GRU; not supported");
    for (size_t k = 4; k < n->n_input && k < 7; k++) {
        const char *in = n->input[k];
        if (!in[0] || state_value(im, in))
            continue;
        const Onnx__TensorProto *t = onnx_find_const(im->g, in);
        int zero = 0;
        if (t && k > 4) {
            int64_t dims[4], numel;
            int nd;
            double *v = onnx_const_doubles(im->path, t, "initial state", dims, &nd, &numel);
            if (!v)
                return MIMIC_EIO;
            zero = 1;
            for (int64_t i = 0; i < numel; i++)
                zero &= v[i] == 0;
            mimic_free(v);
        }
        if (!zero)
            return ferr(im, MIMIC_EIO, k == 4 ? "sequence_lens is not supported (all sequences have the length T)"
                                             : "the initial state must be zeros (mimic's plan starts from zeros)");
    }
    int64_t H = onnx_attr_i(n, "hidden_size", 0), G = cell == MIMIC_CELL_LSTM ? 4 : cell == MIMIC_CELL_GRU ? 3 : 1;
    int64_t T = h->ch, I = h->sp[0];
    if (H < 1 || H > ONNX_MAX_WIDTH || T * H > ONNX_MAX_WIDTH)
        return ferr(im, MIMIC_ESHAPE, "hidden_size is missing or out of range (T x hidden_size <= 2^20)");
    int64_t dims[4], numel;
    int nd;
    double *W = input_const(im, n, 1, G * H * I, 0, dims, &nd, &numel);
    double *R = W ? input_const(im, n, 2, G * H * H, 0, dims, &nd, &numel) : NULL;
    double *B = R && n->n_input > 3 && n->input[3][0] ? input_const(im, n, 3, 2 * G * H, 0, dims, &nd, &numel) : NULL;
    int rc = !W || !R || (n->n_input > 3 && n->input[3][0] && !B) ? MIMIC_EIO : 0;
    rec *r = rc ? NULL : push_rec(im, R_RNN, h->width, T * H);
    if (r) {
        r->rr = (mimic_recurrent){.cell = cell, .seq_len = T, .input_size = I, .hidden_size = H};
        r->w = mimic_malloc((size_t)(G * H * I) * sizeof(double));
        r->w2 = mimic_malloc((size_t)(G * H * H) * sizeof(double));
        if (B) {
            r->b = mimic_malloc((size_t)(G * H) * sizeof(double));
            r->b2 = mimic_malloc((size_t)(G * H) * sizeof(double));
        }
        if (!r->w || !r->w2 || (B && (!r->b || !r->b2)))
            rc = MIMIC_ENOMEM;
    }
    /* gate q of PyTorch's order from ONNX's: LSTM i f g o <- i o f c; GRU r z n <- z r h */
    static const int lstm_from[4] = {0, 2, 3, 1}, gru_from[3] = {1, 0, 2};
    for (int64_t q = 0; !rc && q < G; q++) {
        int64_t src = cell == MIMIC_CELL_LSTM ? lstm_from[q] : cell == MIMIC_CELL_GRU ? gru_from[q] : 0;
        memcpy(r->w + q * H * I, W + src * H * I, (size_t)(H * I) * sizeof(double));
        memcpy(r->w2 + q * H * H, R + src * H * H, (size_t)(H * H) * sizeof(double));
        if (B) {
            memcpy(r->b + q * H, B + src * H, (size_t)H * sizeof(double));
            memcpy(r->b2 + q * H, B + G * H + src * H, (size_t)H * sizeof(double));
        }
    }
    mimic_free(W), mimic_free(R), mimic_free(B);
    if (rc)
        return rc;
    *outv = *h;
    outv->seq = 2, outv->sp[0] = H, outv->width = T * H;
    return 0;
}

/* Transpose, Squeeze, Gather on sequences: layout changes are no-ops on rows
 * (a row is always one sample's [T, F]); Gather of the last step is a
 * last_step record. */
static int sequence_node(importer *im, const Onnx__NodeProto *n, val *outv)
{
    const val *h = &im->head;
    const char *op = n->op_type;
    *outv = *h;
    if (!strcmp(op, "Transpose")) {
        const Onnx__AttributeProto *a = onnx_attr(n, "perm");
        if (h->nd != 1 || h->seq > 1 || !a || a->n_ints != 3 || a->ints[0] != 1 || a->ints[1] != 0 || a->ints[2] != 2)
            return ferr(im, MIMIC_EIO, "Transpose is supported only to swap the batch and time axes of a sequence "
                        "(perm = [1, 0, 2])");
        outv->seq = !h->seq;
        return 0;
    }
    if (!strcmp(op, "Squeeze")) {
        int64_t ax[4];
        int k = 0;
        const Onnx__AttributeProto *a = onnx_attr(n, "axes");
        if (a) {
            for (size_t i = 0; i < a->n_ints && k < 4; i++)
                ax[k++] = a->ints[i];
        } else if (n->n_input > 1 && n->input[1][0]) {
            const Onnx__TensorProto *t = onnx_find_const(im->g, n->input[1]);
            k = t ? onnx_const_ints(im->path, t, "Squeeze axes", ax, 4) : -1;
        }
        if (h->seq != 2 || k != 1 || ax[0] != 1)
            return ferr(im, MIMIC_EIO, "Squeeze is supported only on a recurrent node's output (axes = [1], its "
                        "direction axis)");
        outv->seq = 1;
        return 0;
    }
    /* Gather: the last step */
    int64_t idx[2];
    const Onnx__TensorProto *t = n->n_input > 1 ? onnx_find_const(im->g, n->input[1]) : NULL;
    int k = t ? onnx_const_ints(im->path, t, "Gather indices", idx, 2) : -1;
    int64_t axis = onnx_attr_i(n, "axis", 0), T = h->ch;
    if (h->nd != 1 || h->seq > 1 || k != 1 || (t && t->n_dims != 0) || axis != (h->seq ? 0 : 1) ||
        !(idx[0] == -1 || idx[0] == T - 1))
        return ferr(im, MIMIC_EIO, "Gather is supported only to take the last step of a sequence (x[:, -1] batch "
                    "first, x[-1] time first)");
    rec *r = push_rec(im, R_LAST, h->width, h->sp[0]);
    r->rr = (mimic_recurrent){.cell = -1, .seq_len = T, .input_size = h->sp[0], .hidden_size = h->sp[0]};
    outv->nd = 0, outv->seq = 0, outv->ch = 0, outv->sp[0] = 0, outv->width = h->sp[0];
    return 0;
}

/* Which inputs of n are values of the chain (not constants). */
static int value_inputs(importer *im, const Onnx__NodeProto *n, int idx[2])
{
    int k = 0;
    for (size_t i = 0; i < n->n_input; i++) {
        if (!n->input[i][0] || onnx_find_const(im->g, n->input[i]) || state_value(im, n->input[i]))
            continue;
        int v = find_val(im, n->input[i]);
        if (v < 0)
            return mimic_error(MIMIC_EIO, "%s: node '%s' reads '%s', which no earlier node produces and no "
                               "initializer holds (the graph is not topologically sorted?)", im->path, im->node,
                               n->input[i]);
        if (k == 2)
            return ferr(im, MIMIC_EIO, "more than two computed inputs");
        idx[k++] = (int)i;
    }
    return k;
}

static int residual(importer *im, const Onnx__NodeProto *n, int idx[2])
{
    const char *a = n->input[idx[0]], *b = n->input[idx[1]];
    const char *other = strcmp(a, im->head.name) == 0 ? b : strcmp(b, im->head.name) == 0 ? a : NULL;
    if (!other)
        return ferr(im, MIMIC_EIO, "Add of two values, neither of which is the previous node's output: only "
                    "x + f(x) (residual) patterns are supported");
    val s = im->vals[find_val(im, other)];
    if (s.width != im->head.width)
        return ferr(im, MIMIC_ESHAPE, "residual Add of values of different widths");
    if (strcmp(other, im->head.name) == 0) { /* x + x */
        rec *r = affine_rec(im, s.width);
        if (!r)
            return MIMIC_ENOMEM;
        for (int64_t i = 0; i < s.width; i++)
            r->w[i] *= 2, r->b[i] *= 2;
        return 0;
    }
    for (int i = 0; i < im->nblk; i++) {
        const blk *o = &im->blks[i];
        if (o->begin < s.pos && s.pos <= o->end)
            return ferr(im, MIMIC_EIO, "this residual connection crosses another one (blocks must nest)");
    }
    im->begins[s.pos]++;
    im->blks[im->nblk++] = (blk){s.pos, im->nrec};
    push_rec(im, R_RES_END, s.width, s.width);
    return 0;
}

/* An ints attribute of n spatial dims (pads: 2n, begin and end equal); def if absent. */
static int spatial_attr(importer *im, const Onnx__NodeProto *n, const char *name, int nd, int64_t def, int64_t out[3])
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    int pads = strcmp(name, "pads") == 0;
    for (int d = 0; d < 3; d++)
        out[d] = d < nd ? def : 0;
    if (!a)
        return 0;
    if (a->n_ints != (size_t)(pads ? 2 * nd : nd))
        return ferr(im, MIMIC_ESHAPE, "an attribute (kernel_shape/strides/pads/dilations) has the wrong length");
    for (int d = 0; d < nd; d++) {
        if (pads && a->ints[d] != a->ints[d + nd])
            return ferr(im, MIMIC_ESHAPE, "asymmetric padding is not supported (mimic pads both ends equally)");
        if (a->ints[d] < (pads ? 0 : 1) || a->ints[d] > ONNX_MAX_WIDTH)
            return ferr(im, MIMIC_ESHAPE, "an attribute (kernel_shape/strides/pads/dilations) is out of range");
        out[d] = a->ints[d];
    }
    return 0;
}

/* Conv, MaxPool, AveragePool: the geometry from the head's shape and the attributes. */
static int spatial_node(importer *im, const Onnx__NodeProto *n, int conv, val *outv)
{
    const val *h = &im->head;
    int nd = h->nd;
    if (nd < 1)
        return ferr(im, MIMIC_ESHAPE, "a convolution or pooling needs a [batch, C, spatial...] input");
    const Onnx__AttributeProto *ap = onnx_attr(n, "auto_pad");
    if (ap && ap->has_s && !(ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0) &&
        !(ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0))
        return ferr(im, MIMIC_EIO, "auto_pad SAME_* is not supported (give explicit pads)");
    if (onnx_attr_i(n, "ceil_mode", 0))
        return ferr(im, MIMIC_EIO, "ceil_mode = 1 is not supported (mimic floors the output size)");
    mimic_spatial g;
    memset(&g, 0, sizeof g);
    g.ndim = nd, g.in_channels = h->ch, g.out_channels = h->ch, g.groups = 1;
    for (int d = 0; d < nd; d++)
        g.size[d] = h->sp[d];
    double *W = NULL;
    if (conv) {
        int64_t dims[4], numel;
        int r;
        W = input_const(im, n, 1, -1, 0, dims, &r, &numel);
        if (!W)
            return MIMIC_EIO;
        g.groups = onnx_attr_i(n, "group", 1);
        if (r != nd + 2 || g.groups < 1 || h->ch % g.groups || dims[1] * g.groups != h->ch || dims[0] % g.groups) {
            mimic_free(W);
            return ferr(im, MIMIC_ESHAPE, "the Conv weight does not match the input channels and group");
        }
        g.out_channels = dims[0];
        for (int d = 0; d < nd; d++)
            g.kernel[d] = dims[d + 2];
    }
    int64_t ks[3];
    int rc = spatial_attr(im, n, "kernel_shape", nd, 0, ks);
    rc = rc ? rc : spatial_attr(im, n, "strides", nd, 1, g.stride);
    rc = rc ? rc : spatial_attr(im, n, "pads", nd, 0, g.padding);
    rc = rc ? rc : spatial_attr(im, n, "dilations", nd, 1, g.dilation);
    for (int d = 0; !rc && d < nd; d++) {
        if (!conv)
            g.kernel[d] = ks[d];
        if (g.kernel[d] < 1 || (conv && ks[d] && ks[d] != g.kernel[d]))
            rc = ferr(im, MIMIC_ESHAPE, "kernel_shape is missing or disagrees with the weight");
    }
    if (rc) {
        mimic_free(W);
        return rc;
    }
    if (!conv)
        g.circular = (int)onnx_attr_i(n, "count_include_pad", 0);
    rec *r = push_rec(im, conv ? R_CONV : R_POOL, h->width, 0);
    r->g = g, r->w = W, r->p0 = strcmp(n->op_type, "MaxPool") == 0;
    if (conv && n->n_input > 2 && n->input[2][0] && !(r->b = vec_const(im, n, 2, g.out_channels)))
        return MIMIC_EIO;
    *outv = *h;
    outv->ch = g.out_channels;
    outv->width = g.out_channels;
    for (int d = 0; d < nd; d++) {
        outv->sp[d] = mimic_spatial_out(&g, d);
        if (outv->sp[d] < 1)
            return ferr(im, MIMIC_ESHAPE, "the window does not fit the input");
        outv->width *= outv->sp[d];
    }
    r->out = outv->width;
    return 0;
}

static int act_rec(importer *im, mimic_activation a, double p0, double p1)
{
    rec *r = push_rec(im, R_ACT, im->head.width, im->head.width);
    r->act = a, r->p0 = p0, r->p1 = p1;
    return 0;
}

/* One node; updates the head. */
static int convert_node(importer *im, const Onnx__NodeProto *n)
{
    const char *op = n->op_type;
    if (n->n_output < 1 || !n->output[0][0])
        return ferr(im, MIMIC_EIO, "no output");
    if (strcmp(op, "Constant") == 0 || onnx_find_const(im->g, n->output[0]))
        return 0; /* a constant (Constant, Identity of a constant): read where used */
    for (size_t i = 1; i < n->n_output; i++) /* optional extra outputs (Dropout mask, ...) must be unused */
        for (size_t j = 0; j < im->g->n_node; j++)
            for (size_t k = 0; n->output[i][0] && k < im->g->node[j]->n_input; k++)
                if (strcmp(im->g->node[j]->input[k], n->output[i]) == 0)
                    return ferr(im, MIMIC_EIO, "a secondary output of this node is used; mimic computes only the first");
    int idx[2];
    int nv = value_inputs(im, n, idx);
    if (nv < 0)
        return nv;
    if (nv == 0)
        return ferr(im, MIMIC_EIO, "computes on constants only (fold constants before export)");
    int rc = 0;
    int64_t w = im->head.width, w_out = w;
    val sv = im->head; /* the output's shape: the head's unless the node changes it */
    if (nv == 2) {
        if (strcmp(op, "Add") != 0)
            return ferr(im, MIMIC_EIO, "two computed inputs: only Add (a residual connection) may have them");
        rc = residual(im, n, idx);
    } else if (strcmp(n->input[idx[0]], im->head.name) != 0) {
        return ferr(im, MIMIC_EIO, "reads an earlier value, not the previous node's output: mimic converts chains "
                    "of layers (and x + f(x) residual blocks)");
    } else if (is_recurrent(op)) {
        if (idx[0] != 0)
            return ferr(im, MIMIC_EIO, "the sequence must be the first input");
        rc = recurrent_node(im, n, &sv);
        w_out = sv.width;
    } else if (!strcmp(op, "Transpose") || !strcmp(op, "Squeeze") || !strcmp(op, "Gather")) {
        rc = sequence_node(im, n, &sv);
        w_out = sv.width;
    } else if (im->head.seq) {
        return ferr(im, MIMIC_ESHAPE, "a time-first sequence (or a recurrent node's raw output) reaches an operator "
                    "other than a recurrent node, Squeeze, Transpose or Gather of the last step");
    } else if ((strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0 || strcmp(op, "LayerNormalization") == 0 ||
                strcmp(op, "Reshape") == 0) && im->head.nd > 0) {
        return ferr(im, MIMIC_ESHAPE, "needs [batch, features]: add a Flatten after the convolutional part");
    } else if (strcmp(op, "Gemm") == 0 || strcmp(op, "MatMul") == 0) {
        int gemm = op[0] == 'G';
        if (idx[0] != 0 || (gemm && onnx_attr_i(n, "transA", 0)))
            return ferr(im, MIMIC_EIO, "the weight must be the second operand (x W or Gemm with transA = 0)");
        int64_t dims[4], numel;
        int nd;
        double *W = input_const(im, n, 1, -1, 0, dims, &nd, &numel);
        if (!W)
            return MIMIC_EIO;
        int tb = gemm && onnx_attr_i(n, "transB", 0);
        if (nd != 2 || dims[tb ? 1 : 0] != w) {
            mimic_free(W);
            return ferr(im, MIMIC_ESHAPE, "the weight's shape does not match the input width");
        }
        w_out = dims[tb ? 0 : 1];
        if (w_out < 1 || w_out > ONNX_MAX_WIDTH) {
            mimic_free(W);
            return ferr(im, MIMIC_ESHAPE, "output width out of range 1..2^20");
        }
        rec *r = push_rec(im, R_DENSE, w, w_out);
        r->w = mimic_malloc((size_t)(w * w_out) * sizeof(double));
        if (!r->w) {
            mimic_free(W);
            return MIMIC_ENOMEM;
        }
        double alpha = gemm ? onnx_attr_f(n, "alpha", 1.0) : 1.0;
        /* mimic's layout is [out, in] (transB = 1); MatMul and transB = 0 store [in, out]. */
        for (int64_t o = 0; o < w_out; o++)
            for (int64_t i = 0; i < w; i++)
                r->w[o * w + i] = alpha * (tb ? W[o * w + i] : W[i * w_out + o]);
        mimic_free(W);
        if (gemm && n->n_input > 2 && n->input[2][0]) {
            r->b = vec_const(im, n, 2, w_out);
            if (!r->b)
                return MIMIC_EIO;
            double beta = onnx_attr_f(n, "beta", 1.0);
            for (int64_t o = 0; o < w_out; o++)
                r->b[o] *= beta;
        }
    } else if (strcmp(op, "Add") == 0 || strcmp(op, "Sub") == 0 || strcmp(op, "Mul") == 0 || strcmp(op, "Div") == 0) {
        if ((op[0] == 'S' || op[0] == 'D') && idx[0] != 0)
            return ferr(im, MIMIC_EIO, "constant - x and constant / x are not affine maps of x; not supported");
        double *c = vec_const(im, n, idx[0] == 0 ? 1 : 0, w);
        if (!c)
            return MIMIC_EIO;
        rec *d = op[0] == 'A' ? foldable(im, R_DENSE) : NULL;
        if (d) { /* MatMul + Add: the bias */
            if (!d->b) {
                d->b = c;
                c = NULL;
            } else {
                for (int64_t i = 0; i < w; i++)
                    d->b[i] += c[i];
            }
        } else {
            rec *r = affine_rec(im, w);
            if (!r) {
                mimic_free(c);
                return MIMIC_ENOMEM;
            }
            for (int64_t i = 0; i < w; i++) {
                if (op[0] == 'A')
                    r->b[i] += c[i];
                else if (op[0] == 'S')
                    r->b[i] -= c[i];
                else if (op[0] == 'M')
                    r->w[i] *= c[i], r->b[i] *= c[i];
                else if (c[i] == 0) {
                    mimic_free(c);
                    return ferr(im, MIMIC_EVALUE, "division by zero");
                } else
                    r->w[i] /= c[i], r->b[i] /= c[i];
            }
        }
        mimic_free(c);
    } else if (strcmp(op, "Conv") == 0 || strcmp(op, "MaxPool") == 0 || strcmp(op, "AveragePool") == 0) {
        if (idx[0] != 0)
            return ferr(im, MIMIC_EIO, "the data must be the first input");
        rc = spatial_node(im, n, op[0] == 'C', &sv);
        w_out = sv.width;
    } else if (strcmp(op, "GlobalAveragePool") == 0 || strcmp(op, "GlobalMaxPool") == 0) {
        if (im->head.nd < 1)
            return ferr(im, MIMIC_ESHAPE, "a global pooling needs a [batch, C, spatial...] input");
        rec *r = push_rec(im, R_GPOOL, w, im->head.ch);
        r->p0 = op[6] == 'M', r->g.in_channels = im->head.ch;
        for (int d = 0; d < 3; d++)
            sv.sp[d] = 1;
        w_out = sv.width = im->head.ch;
    } else if (strcmp(op, "Relu") == 0) {
        rc = act_rec(im, MIMIC_ACT_RELU, 0, 0);
    } else if (strcmp(op, "Tanh") == 0) {
        rc = act_rec(im, MIMIC_ACT_TANH, 0, 0);
    } else if (strcmp(op, "Sigmoid") == 0) {
        rc = act_rec(im, MIMIC_ACT_SIGMOID, 0, 0);
    } else if (strcmp(op, "LeakyRelu") == 0) {
        rc = act_rec(im, MIMIC_ACT_LEAKY_RELU, onnx_attr_f(n, "alpha", 0.01), 0);
    } else if (strcmp(op, "Elu") == 0) {
        rc = act_rec(im, MIMIC_ACT_ELU, onnx_attr_f(n, "alpha", 1.0), 0);
    } else if (strcmp(op, "Softplus") == 0) {
        /* ONNX's log(1 + e^x) has no threshold; beyond 20 the two differ by
         * < 2e-9 (PyTorch's default). */
        rc = act_rec(im, MIMIC_ACT_SOFTPLUS, 1.0, 20.0);
    } else if (strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0) {
        if (op[0] == 'D' && n->n_input > 2 && n->input[2][0])
            return ferr(im, MIMIC_EIO, "Dropout in training mode");
    } else if (strcmp(op, "Flatten") == 0) {
        int64_t ax = onnx_attr_i(n, "axis", 1);
        if (ax != 1 && !(ax == -1 && im->head.nd == 0))
            return ferr(im, MIMIC_ESHAPE, "Flatten must give [batch, features] (axis = 1)");
        if (im->head.nd > 0) {
            push_rec(im, R_FLATTEN, w, w);
            sv.nd = 0;
        }
    } else if (strcmp(op, "Pad") == 0) {
        /* PyTorch exports AvgPool1d with a Pad of zeros in front; a real
         * padding belongs in the next Conv's/pool's pads. */
        int64_t pads[10];
        const Onnx__TensorProto *t = n->n_input > 1 ? onnx_find_const(im->g, n->input[1]) : NULL;
        int k = t ? onnx_const_ints(im->path, t, "Pad pads", pads, 10) : 0;
        if (k < 0)
            return k;
        for (int i = 0; i < k; i++)
            if (pads[i])
                return ferr(im, MIMIC_EIO, "Pad with non-zero pads is not supported (use the padding of the next "
                            "Conv or pooling)");
    } else if (strcmp(op, "Reshape") == 0) {
        int64_t s[5];
        const Onnx__TensorProto *t = n->n_input > 1 ? onnx_find_const(im->g, n->input[1]) : NULL;
        if (!t)
            return ferr(im, MIMIC_EIO, "Reshape's shape must be a constant");
        int k = onnx_const_ints(im->path, t, "Reshape shape", s, 5);
        if (k < 0)
            return k;
        int64_t prod = 1;
        for (int i = 1; i < k; i++)
            prod *= s[i] > 0 && s[i] <= ONNX_MAX_WIDTH ? s[i] : ONNX_MAX_WIDTH + 1;
        if (k >= 3 && k <= 5 && (s[0] == -1 || s[0] == 0) && prod == w) { /* rows -> [batch, C, spatial...] */
            sv.nd = k - 2, sv.ch = s[1];
            for (int d = 0; d < k - 2; d++)
                sv.sp[d] = s[d + 2];
        } else if (!(k == 2 && (s[0] == -1 || s[0] == 0) && (s[1] == w || (s[1] == -1 && s[0] == 0)))) {
            return ferr(im, MIMIC_ESHAPE, "Reshape must keep the rows: [-1, F], [0, F], or [-1, C, spatial...] "
                        "with C * prod(spatial) = F");
        }
    } else if (strcmp(op, "BatchNormalization") == 0) {
        if (onnx_attr_i(n, "training_mode", 0))
            return ferr(im, MIMIC_EIO, "BatchNormalization in training mode (export the model in eval mode)");
        double eps = onnx_attr_f(n, "epsilon", 1e-5);
        double *p[4] = {0};
        /* On [C, spatial...] rows the statistics are per channel: each
         * channel's value repeats over its positions (channels first). */
        int64_t nc = im->head.nd > 0 ? im->head.ch : w, rep = w / nc;
        for (int k = 0; k < 4; k++)
            if (!(p[k] = vec_const(im, n, (size_t)k + 1, nc))) {
                for (int j = 0; j < k; j++)
                    mimic_free(p[j]);
                return MIMIC_EIO;
            }
        rec *r = push_rec(im, R_AFFINE, w, w);
        r->w = mimic_malloc((size_t)w * sizeof(double));
        r->b = mimic_malloc((size_t)w * sizeof(double));
        for (int64_t c = 0; r->w && r->b && c < nc; c++) {
            if (!(p[3][c] + eps > 0)) {
                rc = ferr(im, MIMIC_EVALUE, "variance + epsilon is not positive");
                break;
            }
            /* folded as mimic_model_add_batchnorm does, in double */
            double sc = p[0][c] / sqrt(p[3][c] + eps), sh = p[1][c] - p[2][c] * sc;
            for (int64_t j = 0; j < rep; j++)
                r->w[c * rep + j] = sc, r->b[c * rep + j] = sh;
        }
        for (int k = 0; k < 4; k++)
            mimic_free(p[k]);
        if (!rc && (!r->w || !r->b))
            rc = MIMIC_ENOMEM;
    } else if (strcmp(op, "LayerNormalization") == 0) {
        int64_t axis = onnx_attr_i(n, "axis", -1);
        if (axis != -1 && axis != 1)
            return ferr(im, MIMIC_ESHAPE, "LayerNormalization must normalise the features (axis = -1)");
        rec *r = push_rec(im, R_LN, w, w);
        r->p0 = onnx_attr_f(n, "epsilon", 1e-5);
        if (!(r->w = vec_const(im, n, 1, w)))
            return MIMIC_EIO;
        if (n->n_input > 2 && n->input[2][0]) {
            if (!(r->b = vec_const(im, n, 2, w)))
                return MIMIC_EIO;
        } else if (!(r->b = mimic_calloc((size_t)w, sizeof(double)))) {
            return MIMIC_ENOMEM;
        }
    } else {
        return ferr(im, MIMIC_EINTERNAL, "operator listed as supported but not handled");
    }
    if (rc)
        return rc;
    /* The output becomes the head. Records that were folded into (bias,
     * affine) leave the head produced by the same record. */
    val v = sv;
    v.name = n->output[0], v.width = w_out, v.pos = im->nrec;
    v.rec = im->nrec > 0 && im->recs[im->nrec - 1].kind != R_RES_END ? im->nrec - 1 : -1;
    if (!(strcmp(op, "Identity") && strcmp(op, "Dropout") && strcmp(op, "Flatten") && strcmp(op, "Reshape") &&
          strcmp(op, "Pad") && strcmp(op, "Transpose") && strcmp(op, "Squeeze")) && !(op[0] == 'F' && im->head.nd > 0))
        v.rec = im->head.rec, v.pos = im->head.pos; /* an alias of the head */
    if (find_val(im, v.name) >= 0)
        return ferr(im, MIMIC_EIO, "its output name is produced twice (not a valid ONNX graph)");
    im->vals[im->nval++] = v;
    im->head = v;
    return 0;
}

static char *dupname(const char *s)
{
    /* Contract names: printable, no '/', 1..256 characters (model-format.md). */
    size_t n = s ? strlen(s) : 0;
    if (n > 256)
        n = 256;
    char *d = mimic_malloc(n ? n + 1 : 2);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++)
        d[i] = (s[i] == '/' || s[i] < 0x20 || s[i] > 0x7e) ? '_' : s[i];
    if (!n)
        d[n++] = 'x';
    d[n] = '\0';
    return d;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s);
    char *d = mimic_malloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static mimic_model_info *make_info(const char *path, const Onnx__ModelProto *mp, const char *in, int64_t nin,
                                   const char *out, int64_t nout, int64_t opset)
{
    mimic_model_info *info = mimic_calloc(1, sizeof *info);
    if (!info)
        return NULL;
    info->format_version = MIMIC_MODEL_FORMAT_VERSION;
    mimic_io_var *vi = mimic_calloc(1, sizeof *vi), *vo = mimic_calloc(1, sizeof *vo);
    mimic_meta_entry *me = mimic_calloc(3, sizeof *me);
    info->contract.inputs = vi, info->contract.outputs = vo, info->meta.entries = me;
    if (!vi || !vo || !me) {
        mimic_model_info_free(info);
        return NULL;
    }
    info->contract.ninputs = info->contract.noutputs = 1;
    vi->name = dupname(in), vi->units = dupstr(""), vi->size = nin;
    vo->name = dupname(out), vo->units = dupstr(""), vo->size = nout;
    const char *base = strrchr(path, '/');
    char prod[256];
    snprintf(prod, sizeof prod, "%s %s", mp->producer_name ? mp->producer_name : "",
             mp->producer_version ? mp->producer_version : "");
    info->meta.n = 3; /* sorted by key */
    me[0] = (mimic_meta_entry){.key = dupstr("onnx_file"), .kind = MIMIC_META_STRING, .s = dupstr(base ? base + 1 : path)};
    me[1] = (mimic_meta_entry){.key = dupstr("onnx_opset"), .kind = MIMIC_META_INT, .i = opset};
    me[2] = (mimic_meta_entry){.key = dupstr("onnx_producer"), .kind = MIMIC_META_STRING, .s = dupstr(prod)};
    if (!vi->name || !vi->units || !vo->name || !vo->units || !me[0].key || !me[0].s || !me[1].key || !me[2].key ||
        !me[2].s) {
        mimic_model_info_free(info);
        return NULL;
    }
    return info;
}

/* An R_RNN record's four weight arrays in dtype dt, then the record. */
static int build_rnn(mimic_model *m, const rec *r, mimic_dtype dt)
{
    int64_t GH = (r->rr.cell == MIMIC_CELL_LSTM ? 4 : r->rr.cell == MIMIC_CELL_GRU ? 3 : 1) * r->rr.hidden_size;
    int64_t cnt[4] = {GH * r->rr.input_size, GH * r->rr.hidden_size, GH, GH};
    const double *src[4] = {r->w, r->w2, r->b, r->b2};
    void *dst[4] = {NULL, NULL, NULL, NULL};
    size_t es = dt == MIMIC_F64 ? 8 : 4;
    int rc = 0;
    for (int k = 0; !rc && k < 4; k++) {
        if (!src[k])
            continue;
        if (!(dst[k] = mimic_malloc((size_t)cnt[k] * es))) {
            rc = MIMIC_ENOMEM;
            break;
        }
        for (int64_t j = 0; j < cnt[k]; j++) {
            if (dt == MIMIC_F64)
                ((double *)dst[k])[j] = src[k][j];
            else
                ((float *)dst[k])[j] = (float)src[k][j];
        }
    }
    if (!rc)
        rc = mimic_model_add_recurrent(m, &r->rr, dst[0], dst[1], dst[2], dst[3]);
    for (int k = 0; k < 4; k++)
        mimic_free(dst[k]);
    return rc;
}

/* The records, converted to the model's dtype. */
static mimic_model *build(importer *im, mimic_dtype dt, int64_t nin)
{
    mimic_model *m = mimic_model_new(dt, nin);
    if (!m)
        return NULL;
    int64_t maxw = nin;
    for (int i = 0; i < im->nrec; i++) {
        const rec *r = &im->recs[i];
        int64_t k = r->kind == R_DENSE ? r->in * r->out : r->out;
        if (r->kind == R_CONV) {
            k = r->g.out_channels * (r->g.in_channels / r->g.groups);
            for (int d = 0; d < r->g.ndim; d++)
                k *= r->g.kernel[d];
        }
        if (k > maxw)
            maxw = k;
    }
    size_t es = dt == MIMIC_F64 ? 8 : 4;
    char *buf = mimic_malloc((size_t)maxw * es * 2);
    if (!buf) {
        mimic_model_free(m);
        return NULL;
    }
    int rc = 0;
    for (int i = 0; i <= im->nrec && rc == 0; i++) {
        for (int k = 0; k < im->begins[i] && rc == 0; k++)
            rc = mimic_model_begin_residual(m);
        if (i == im->nrec || rc)
            break;
        const rec *r = &im->recs[i];
        int64_t nw = r->kind == R_DENSE ? r->in * r->out : r->out;
        if (r->kind == R_CONV) {
            nw = r->g.out_channels * (r->g.in_channels / r->g.groups);
            for (int d = 0; d < r->g.ndim; d++)
                nw *= r->g.kernel[d];
        }
        void *pw = NULL, *pb = NULL;
        if ((r->w || r->b) && r->kind != R_RNN) {
            pw = buf, pb = buf + (size_t)maxw * es;
            for (int64_t j = 0; j < nw; j++) {
                if (dt == MIMIC_F64)
                    ((double *)pw)[j] = r->w[j];
                else
                    ((float *)pw)[j] = (float)r->w[j];
            }
            int64_t nb = r->kind == R_CONV ? r->g.out_channels : r->out;
            for (int64_t j = 0; r->b && j < nb; j++) {
                if (dt == MIMIC_F64)
                    ((double *)pb)[j] = r->b[j];
                else
                    ((float *)pb)[j] = (float)r->b[j];
            }
            if (!r->b)
                pb = NULL;
        }
        switch (r->kind) {
        case R_DENSE: rc = mimic_model_add_dense(m, r->out, pw, pb); break;
        case R_ACT: rc = mimic_model_add_activation(m, r->act, r->p0, r->p1); break;
        case R_LN: rc = mimic_model_add_layernorm(m, r->p0, pw, pb); break;
        case R_AFFINE: rc = mimic_model_add_affine(m, pw, pb); break;
        case R_CONV: rc = mimic_model_add_conv(m, &r->g, pw, pb); break;
        case R_POOL: rc = mimic_model_add_pool(m, r->p0 != 0, &r->g); break;
        case R_GPOOL: rc = mimic_model_add_global_pool(m, r->p0 != 0, r->g.in_channels); break;
        case R_FLATTEN: rc = mimic_model_add_flatten(m); break;
        case R_RNN: rc = build_rnn(m, r, dt); break;
        case R_LAST: rc = mimic_model_add_last_step(m, r->rr.seq_len); break;
        default: rc = mimic_model_end_residual(m); break;
        }
    }
    mimic_free(buf);
    if (rc) {
        mimic_model_free(m);
        return NULL;
    }
    return m;
}

mimic_model *mimic_onnx_import(const char *path, mimic_model_info **info)
{
    if (info)
        *info = NULL;
    Onnx__ModelProto *mp = onnx_read(path);
    if (!mp)
        return NULL;
    importer im = {.path = path, .g = mp->graph};
    mimic_model *m = NULL;
    int64_t opset, nin;
    int32_t elem;
    const Onnx__ValueInfoProto *gin;
    size_t nn = mp->graph->n_node;
    if (!(im.skip = mimic_calloc(nn + 1, 1)))
        goto done;
    if (onnx_check_opset(path, mp, &opset) || mark_state_nodes(&im) || check_ops(&im))
        goto done;
    if (onnx_graph_io(path, mp->graph, &gin, &nin, &elem)) {
        /* a time-first sequence input [T, batch, F]: say how to export it */
        const Onnx__ValueInfoProto *v = mp->graph->n_input ? mp->graph->input[0] : NULL;
        const Onnx__TensorShapeProto *sh = v && v->type && v->type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE
                                               ? v->type->tensor_type->shape : NULL;
        if (sh && sh->n_dim == 3 && sh->dim[0]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
            sh->dim[1]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", mimic_errmsg());
            mimic_error(MIMIC_ESHAPE, "%s; it looks time first ([T, batch, F]): export the recurrent model with "
                        "batch_first = True", msg);
        }
        goto done;
    }
    if (mp->graph->n_output != 1) {
        mimic_error(MIMIC_EIO, "%s: the graph has %zu outputs; mimic imports models with exactly one output of shape "
                    "[batch, features] (concatenate the outputs before export)", path, mp->graph->n_output);
        goto done;
    }
    im.recs = mimic_calloc(nn + 1, sizeof *im.recs);
    im.begins = mimic_calloc(nn + 2, sizeof *im.begins);
    im.vals = mimic_calloc(nn + 1, sizeof *im.vals);
    im.blks = mimic_calloc(nn + 1, sizeof *im.blks);
    im.consumers = mimic_calloc(nn + 1, sizeof *im.consumers);
    if (!im.recs || !im.begins || !im.vals || !im.blks || !im.consumers)
        goto done;
    im.head = (val){.name = gin->name, .width = nin, .rec = -1};
    {   /* [batch, C, spatial...]: rows are the flattened channels-first arrays */
        const Onnx__TensorShapeProto *sh = gin->type->tensor_type->shape;
        if (sh->n_dim >= 3) {
            im.head.nd = (int)sh->n_dim - 2;
            im.head.ch = sh->dim[1]->dim_value;
            for (int d = 0; d < im.head.nd; d++)
                im.head.sp[d] = sh->dim[d + 2]->dim_value;
        }
    }
    im.vals[im.nval++] = im.head;
    for (size_t i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = mp->graph->node[i];
        if (im.skip[i])
            continue; /* a recurrent node's zero initial state */
        im.node = onnx_node_label(n, (int)i, im.label);
        if (convert_node(&im, n))
            goto done;
        /* consumers of the values known so far, counted over the whole graph once a value exists */
        int vi = im.nval - 1;
        if (n->n_output && vi >= 0 && strcmp(im.vals[vi].name, n->output[0]) == 0 && im.consumers[vi] == 0) {
            for (size_t j = 0; j < nn; j++)
                for (size_t k = 0; k < mp->graph->node[j]->n_input; k++)
                    im.consumers[vi] += strcmp(mp->graph->node[j]->input[k], n->output[0]) == 0;
            for (size_t k = 0; k < mp->graph->n_output; k++)
                im.consumers[vi] += strcmp(mp->graph->output[k]->name, n->output[0]) == 0;
        }
    }
    const char *oname = mp->graph->output[0]->name;
    if (strcmp(oname, im.head.name) == 0 && im.head.seq) {
        mimic_error(MIMIC_EIO, "%s: the graph output '%s' is a time-first sequence; mimic's rows are samples "
                    "(transpose it to [batch, T, features], or take the last step)", path, oname);
        goto done;
    }
    if (strcmp(oname, im.head.name) != 0) {
        mimic_error(MIMIC_EIO, "%s: the graph output '%s' is not the last value of the chain ('%s')", path, oname,
                    im.head.name);
        goto done;
    }
    m = build(&im, elem == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? MIMIC_F64 : MIMIC_F32, nin);
    if (m && info && !(*info = make_info(path, mp, gin->name, nin, oname, im.head.width, opset))) {
        mimic_model_free(m);
        m = NULL;
    }
done:
    for (int i = 0; im.recs && i < im.nrec; i++)
        mimic_free(im.recs[i].w), mimic_free(im.recs[i].b), mimic_free(im.recs[i].w2), mimic_free(im.recs[i].b2);
    mimic_free(im.skip);
    mimic_free(im.recs), mimic_free(im.begins), mimic_free(im.vals), mimic_free(im.blks), mimic_free(im.consumers);
    onnx_model_free(mp);
    return m;
}
