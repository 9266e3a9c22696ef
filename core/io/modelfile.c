/* The versioned model file (see mimic/modelfile.h and docs/model-format.md).
 *
 * Written and read through the tensor dictionary (mimic/io.h) only: this file
 * never calls HDF5, so atomic writes and HDF5's structural checks come from
 * h5dict.c, and this layer checks the meaning. Loading runs in two passes
 * over the dictionary's entry list: pass 1 checks every entry against the
 * spec from its metadata alone (kind, dtype, rank, shape, value) and
 * allocates nothing; pass 2 reads the weights and builds the model. So a
 * hostile file can only make us allocate what pass 1 has bounded. */
#include "mimic/modelfile.h"
#include "modelfile_internal.h"

#include "mimic/base.h"
#include "mimic/io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bounds a reader enforces (documented in docs/model-format.md). They are far
 * above any surrogate's needs and keep a hostile file's demands finite. */
#define MAX_LAYERS 4096
#define MAX_WIDTH (1 << 20)
#define MAX_TENSOR_ELEMS ((int64_t)1 << 28)
#define MAX_TOTAL_BYTES ((int64_t)1 << 31)
#define MAX_VARS 4096
#define MAX_STAGES 16
#define MAX_NESTING 16
#define MAX_META 1024
#define MAX_NAME 256
#define MAX_META_STRING 65536

/* ===================== SHA-256 (FIPS 180-4) ===================== */
typedef struct sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t nbuf;
} sha256;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(sha256 *s, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha_init(sha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->nbuf = 0;
}

static void sha_update(sha256 *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->len += n;
    while (n > 0) {
        size_t k = 64 - s->nbuf < n ? 64 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, k);
        s->nbuf += k, p += k, n -= k;
        if (s->nbuf == 64) {
            sha_block(s, s->buf);
            s->nbuf = 0;
        }
    }
}

static void sha_final(sha256 *s, unsigned char out[32])
{
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    sha_update(s, &pad, 1);
    while (s->nbuf != 56)
        sha_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha_update(s, lenb, 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (unsigned char)(s->h[i] >> (24 - 8 * j));
}

int mimic_sha256_file(const char *path, char hex[65])
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return mimic_error(MIMIC_EIO, "sha256_file: cannot open '%s': %s", path ? path : "(null)", strerror(errno));
    sha256 s;
    sha_init(&s);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return mimic_error(MIMIC_EIO, "sha256_file: read error in '%s'", path);
    unsigned char d[32];
    sha_final(&s, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return MIMIC_OK;
}

void mimic_sha256(const void *data, size_t n, unsigned char digest[32])
{
    sha256 s;
    sha_init(&s);
    sha_update(&s, data, n);
    sha_final(&s, digest);
}

/* ===================== canonical bytes ===================== */
/* Everything is hashed as little-endian fixed-width values, strings as their
 * length (u64) then bytes, so the hash is the same on every platform and no
 * two different contents share a byte stream. */
static void h_u64(sha256 *s, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    sha_update(s, b, 8);
}
static void h_f64(sha256 *s, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    h_u64(s, u);
}
static void h_str(sha256 *s, const char *str)
{
    size_t n = strlen(str);
    h_u64(s, n);
    sha_update(s, str, n);
}
static void h_elems(sha256 *s, mimic_dtype dt, const void *p, int64_t count)
{
    for (int64_t i = 0; i < count; i++) {
        if (dt == MIMIC_F32) {
            uint32_t u;
            memcpy(&u, (const float *)p + i, 4);
            unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                  (unsigned char)(u >> 24)};
            sha_update(s, b, 4);
        } else {
            h_f64(s, ((const double *)p)[i]);
        }
    }
}

/* ===================== layer specs ===================== */
typedef enum { K_DENSE, K_ACT, K_LAYERNORM, K_AFFINE, K_RES_BEGIN, K_RES_END, K_CONV, K_MAXPOOL, K_AVGPOOL, K_GPOOL,
               K_FLATTEN, K_UPSAMPLE, K_CONVT, K_UPLIN, K_RNN, K_LAST } kind_t;

/* Records with a mimic_spatial geometry in the file (int attributes of sp_attrs). */
static bool has_geometry(kind_t k) { return k >= K_CONV && k != K_FLATTEN && k != K_RNN && k != K_LAST; }

typedef struct spec {
    kind_t kind;
    int act;              /* K_ACT: the activation */
    int nattr;
    const char *attr[2];  /* attribute names, in mimic_layer_info.attr order */
    const char *w[2];     /* weight names */
    int ndim;             /* K_CONV, K_MAXPOOL, K_AVGPOOL: spatial dims */
    int cell;             /* K_RNN: the mimic_cell */
} spec;

/* The spec of a record type name; false if the type is unknown. */
static bool spec_of(const char *type, spec *sp)
{
    memset(sp, 0, sizeof *sp);
    int act = mimic_activation_parse(type);
    if (act >= 0) {
        sp->kind = K_ACT;
        sp->act = act;
        if (act == MIMIC_ACT_LEAKY_RELU)
            sp->nattr = 1, sp->attr[0] = "slope";
        else if (act == MIMIC_ACT_ELU)
            sp->nattr = 1, sp->attr[0] = "alpha";
        else if (act == MIMIC_ACT_SOFTPLUS)
            sp->nattr = 2, sp->attr[0] = "beta", sp->attr[1] = "threshold";
        return true;
    }
    if (strcmp(type, "dense") == 0)
        sp->kind = K_DENSE, sp->w[0] = "weight", sp->w[1] = "bias";
    else if (strcmp(type, "layernorm") == 0)
        sp->kind = K_LAYERNORM, sp->nattr = 1, sp->attr[0] = "eps", sp->w[0] = "weight", sp->w[1] = "bias";
    else if (strcmp(type, "batchnorm1d") == 0)
        sp->kind = K_AFFINE, sp->w[0] = "scale", sp->w[1] = "shift";
    else if (strcmp(type, "residual_begin") == 0)
        sp->kind = K_RES_BEGIN;
    else if (strcmp(type, "residual_end") == 0)
        sp->kind = K_RES_END;
    else if (strcmp(type, "global_avg_pool") == 0 || strcmp(type, "global_max_pool") == 0)
        sp->kind = K_GPOOL;
    else if (strcmp(type, "flatten") == 0)
        sp->kind = K_FLATTEN;
    else if (strcmp(type, "last_step") == 0)
        sp->kind = K_LAST;
    else if (mimic_cell_parse(type) >= 0)
        sp->kind = K_RNN, sp->cell = mimic_cell_parse(type);
    else {
        static const char *const pre[] = {"conv", "max_pool", "avg_pool", "upsample", "conv_transpose",
                                          "upsample_linear"};
        static const kind_t kinds[] = {K_CONV, K_MAXPOOL, K_AVGPOOL, K_UPSAMPLE, K_CONVT, K_UPLIN};
        for (int k = 0; k < 6; k++) {
            size_t n = strlen(pre[k]);
            if (strncmp(type, pre[k], n) == 0 && type[n] >= '1' && type[n] <= '3' && strcmp(type + n + 1, "d") == 0) {
                sp->kind = kinds[k];
                sp->ndim = type[n] - '0';
                if (kinds[k] == K_CONV || kinds[k] == K_CONVT)
                    sp->w[0] = "weight", sp->w[1] = "bias";
                return true;
            }
        }
        return false;
    }
    return true;
}

/* The integer attributes of a spatial record, in file (and hash) order:
 * names[i] and the geometry field vals[i] points to. Returns the count. */
static int sp_attrs(const spec *sp, mimic_spatial *g, char names[][20], int64_t *vals[])
{
    int n = 0;
#define ADD(nm, field) (snprintf(names[n], 20, "%s", nm), vals[n++] = &(field))
    if (sp->kind == K_GPOOL) {
        ADD("channels", g->in_channels);
        return n;
    }
    if (sp->kind == K_UPSAMPLE || sp->kind == K_UPLIN) {
        ADD("in_channels", g->in_channels);
        for (int d = 0; d < sp->ndim; d++) {
            snprintf(names[n], 20, "size_%d", d);
            vals[n++] = &g->size[d];
        }
        for (int d = 0; d < sp->ndim; d++) { /* the factor lives in the stride field */
            snprintf(names[n], 20, "scale_%d", d);
            vals[n++] = &g->stride[d];
        }
        return n;
    }
    if (sp->kind != K_CONV && sp->kind != K_MAXPOOL && sp->kind != K_AVGPOOL && sp->kind != K_CONVT)
        return 0;
    ADD("in_channels", g->in_channels);
    if (sp->kind == K_CONV || sp->kind == K_CONVT) {
        ADD("out_channels", g->out_channels);
        ADD("groups", g->groups);
    }
    static const char *const per[] = {"size", "kernel", "stride", "padding", "dilation", "output_padding"};
    int64_t *arr[] = {g->size, g->kernel, g->stride, g->padding, g->dilation, g->output_padding};
    for (int k = 0; k < (sp->kind == K_CONVT ? 6 : 5); k++) {
        if (k == 4 && sp->kind == K_AVGPOOL)
            break;
        for (int d = 0; d < sp->ndim; d++) {
            snprintf(names[n], 20, "%s_%d", per[k], d);
            vals[n++] = &arr[k][d];
        }
    }
#undef ADD
    return n;
}

/* The padding flag's name: conv "circular_padding", avg pool "count_include_pad",
 * linear upsampling "align_corners". */
static const char *sp_flag(const spec *sp)
{
    return sp->kind == K_CONV      ? "circular_padding"
           : sp->kind == K_AVGPOOL ? "count_include_pad"
           : sp->kind == K_UPLIN   ? "align_corners"
                                   : NULL;
}

/* The integer attributes of a recurrent / last_step record, in file (and
 * hash) order. Returns the count. */
static int rec_attrs(const spec *sp, mimic_recurrent *r, const char *names[3], int64_t *vals[3])
{
    if (sp->kind == K_LAST) {
        names[0] = "seq_len", vals[0] = &r->seq_len;
        names[1] = "features", vals[1] = &r->hidden_size;
        return 2;
    }
    if (sp->kind != K_RNN)
        return 0;
    names[0] = "seq_len", vals[0] = &r->seq_len;
    names[1] = "input_size", vals[1] = &r->input_size;
    names[2] = "hidden_size", vals[2] = &r->hidden_size;
    return 3;
}

#define KNOWN_TYPES                                                                                             \
    "dense, identity, relu, leaky_relu, elu, gelu, tanh, sigmoid, softplus, layernorm, batchnorm1d, "           \
    "residual_begin, residual_end, conv1d/2d/3d, max_pool1d/2d/3d, avg_pool1d/2d/3d, global_avg_pool, "        \
    "global_max_pool, flatten, upsample1d/2d/3d, upsample_linear1d/2d/3d, conv_transpose1d/2d/3d, rnn_tanh, "     \
    "rnn_relu, lstm, gru, last_step"

/* ===================== encoders ===================== */
static const char *const enc_names[MIMIC_ENC_COUNT] = {"identity", "standard", "minmax", "log", "signed_log"};

const char *mimic_enc_kind_name(mimic_enc_kind k) { return (unsigned)k < MIMIC_ENC_COUNT ? enc_names[k] : "?"; }

int mimic_enc_kind_parse(const char *name)
{
    for (int i = 0; name && i < MIMIC_ENC_COUNT; i++)
        if (strcmp(name, enc_names[i]) == 0)
            return i;
    return -1;
}

static bool has_vectors(mimic_enc_kind k) { return k == MIMIC_ENC_STANDARD || k == MIMIC_ENC_MINMAX; }

/* Checks a stage against a width (the same rules for what a caller passes to
 * save and what a file holds). fn/where prefix the message. */
static int check_stage(const char *where, int i, const mimic_enc_stage *st, int64_t width)
{
    if ((unsigned)st->kind >= MIMIC_ENC_COUNT)
        return mimic_error(MIMIC_EARG, "%s stage %d: unknown encoder kind %d", where, i, (int)st->kind);
    if (has_vectors(st->kind)) {
        if (st->n != 1 && st->n != width)
            return mimic_error(MIMIC_ESHAPE,
                               "%s stage %d (%s): parameters have %lld elements, expected 1 or %lld (the width)",
                               where, i, enc_names[st->kind], (long long)st->n, (long long)width);
        if (!st->a || !st->b)
            return mimic_error(MIMIC_EARG, "%s stage %d (%s): parameters are missing", where, i, enc_names[st->kind]);
        for (int64_t j = 0; j < st->n; j++)
            if (!isfinite(st->a[j]) || !(st->b[j] > 0) || !isfinite(st->b[j]))
                return mimic_error(MIMIC_EVALUE,
                                   "%s stage %d (%s): element %lld: offsets must be finite and divisors finite and > 0",
                                   where, i, enc_names[st->kind], (long long)j);
    }
    if (st->kind == MIMIC_ENC_LOG && !isfinite(st->offset))
        return mimic_error(MIMIC_EVALUE, "%s stage %d (log): offset must be finite", where, i);
    if (st->kind == MIMIC_ENC_SIGNED_LOG && (!(st->scale > 0) || !isfinite(st->scale)))
        return mimic_error(MIMIC_EVALUE, "%s stage %d (signed_log): scale must be finite and > 0", where, i);
    return MIMIC_OK;
}

static int check_encoder(const char *where, const mimic_encoder *e, int64_t width)
{
    if (!e)
        return MIMIC_OK;
    if (e->nstages < 0 || e->nstages > MAX_STAGES || (e->nstages > 0 && !e->stages))
        return mimic_error(MIMIC_EARG, "%s: nstages must be 0..%d with stages given", where, MAX_STAGES);
    for (int i = 0; i < e->nstages; i++) {
        int rc = check_stage(where, i, &e->stages[i], width);
        if (rc)
            return rc;
    }
    return MIMIC_OK;
}

static double enc1(const mimic_enc_stage *st, int64_t j, double x, bool inverse)
{
    int64_t k = st->n == 1 ? 0 : j;
    switch (st->kind) {
    case MIMIC_ENC_STANDARD:
    case MIMIC_ENC_MINMAX: return inverse ? x * st->b[k] + st->a[k] : (x - st->a[k]) / st->b[k];
    case MIMIC_ENC_LOG: return inverse ? exp(x) - st->offset : log(x + st->offset);
    case MIMIC_ENC_SIGNED_LOG:
        if (inverse)
            return (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0) * expm1(fabs(x)) * st->scale;
        return (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0) * log1p(fabs(x) / st->scale);
    default: return x;
    }
}

static int apply(const char *fn, const mimic_encoder *e, mimic_dtype dt, void *rows, int64_t n, int64_t width,
                 bool inverse)
{
    if (!e || e->nstages == 0 || n == 0)
        return MIMIC_OK;
    if (dt != MIMIC_F32 && dt != MIMIC_F64)
        return mimic_error(MIMIC_EDTYPE, "%s: dtype %s: float32 or float64 only", fn, mimic_dtype_name(dt));
    if (!rows || n < 0 || width <= 0)
        return mimic_error(MIMIC_EARG, "%s: rows is NULL or n/width invalid", fn);
    int rc = check_encoder(fn, e, width);
    if (rc)
        return rc;
    for (int s = 0; s < e->nstages; s++) {
        const mimic_enc_stage *st = &e->stages[inverse ? e->nstages - 1 - s : s];
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < width; j++) {
                int64_t at = r * width + j;
                if (dt == MIMIC_F32)
                    ((float *)rows)[at] = (float)enc1(st, j, ((float *)rows)[at], inverse);
                else
                    ((double *)rows)[at] = enc1(st, j, ((double *)rows)[at], inverse);
            }
    }
    return MIMIC_OK;
}

int mimic_encoder_encode(const mimic_encoder *e, mimic_dtype dtype, void *rows, int64_t n, int64_t width)
{
    return apply("mimic_encoder_encode", e, dtype, rows, n, width, false);
}

int mimic_encoder_decode(const mimic_encoder *e, mimic_dtype dtype, void *rows, int64_t n, int64_t width)
{
    return apply("mimic_encoder_decode", e, dtype, rows, n, width, true);
}

/* ===================== contract ===================== */
/* Names and units are short printable text: they end up in a host's logs and
 * metadata, and a name binds a host variable. */
static bool printable(const char *s, size_t len, bool allow_empty)
{
    if (!s || (!allow_empty && len == 0) || len > MAX_NAME)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int check_vars(const char *which, const mimic_io_var *v, int n, int64_t total)
{
    if (n <= 0 || n > MAX_VARS || !v)
        return mimic_error(MIMIC_EARG, "contract: %s: 1..%d variables are required", which, MAX_VARS);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (!v[i].name || !printable(v[i].name, strlen(v[i].name), false) || strchr(v[i].name, '/'))
            return mimic_error(MIMIC_EARG, "contract: %s %d: the name must be 1..%d printable characters without '/'",
                               which, i, MAX_NAME);
        if (!v[i].units || !printable(v[i].units, strlen(v[i].units), true))
            return mimic_error(MIMIC_EARG, "contract: %s '%s': units must be 0..%d printable characters", which,
                               v[i].name, MAX_NAME);
        if (v[i].size <= 0 || v[i].size > MAX_WIDTH)
            return mimic_error(MIMIC_EARG, "contract: %s '%s': size %lld is not in 1..%d", which, v[i].name,
                               (long long)v[i].size, MAX_WIDTH);
        for (int j = 0; j < i; j++)
            if (strcmp(v[i].name, v[j].name) == 0)
                return mimic_error(MIMIC_EARG, "contract: %s '%s' is named twice", which, v[i].name);
        sum += v[i].size;
    }
    if (sum != total)
        return mimic_error(MIMIC_ESHAPE, "contract: the %s' sizes add up to %lld, the model has %lld", which,
                           (long long)sum, (long long)total);
    return MIMIC_OK;
}

static int check_contract(const mimic_contract *c, int64_t nin, int64_t nout)
{
    if (!c)
        return mimic_error(MIMIC_EARG, "contract: required (named inputs and outputs)");
    int rc = check_vars("inputs", c->inputs, c->ninputs, nin);
    return rc ? rc : check_vars("outputs", c->outputs, c->noutputs, nout);
}

void mimic_contract_list_vars(char *buf, size_t cap, const mimic_io_var *v, int n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && at + 1 < cap; i++) {
        int k = snprintf(buf + at, cap - at, "%s%s [%s] (%lld)", i ? ", " : "", v[i].name, v[i].units,
                         (long long)v[i].size);
        if (k < 0)
            break;
        at += (size_t)k;
    }
    if (at + 1 >= cap && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
}

int mimic_contract_bind(const mimic_contract *c, int which, const char *const *names, const int64_t *sizes, int n)
{
    if (!c || (n > 0 && !names) || n < 0 || (which != 0 && which != 1))
        return mimic_error(MIMIC_EARG, "mimic_contract_bind: bad arguments");
    const char *side = which ? "outputs" : "inputs";
    const mimic_io_var *v = which ? c->outputs : c->inputs;
    int nv = which ? c->noutputs : c->ninputs;
    char list[512];
    mimic_contract_list_vars(list, sizeof list, v, nv);
    for (int i = 0; i < n || i < nv; i++) {
        if (i >= n)
            return mimic_error(MIMIC_EARG, "model %s: '%s' (position %d) is not bound; the model expects: %s", side,
                               v[i].name, i + 1, list);
        if (!names[i])
            return mimic_error(MIMIC_EARG, "model %s: name %d is NULL", side, i + 1);
        if (i >= nv)
            return mimic_error(MIMIC_EARG, "model %s: '%s' (position %d) is not one of the model's; it expects: %s",
                               side, names[i], i + 1, list);
        if (strcmp(names[i], v[i].name) != 0) {
            int at = -1;
            for (int j = 0; j < nv; j++)
                if (strcmp(names[i], v[j].name) == 0)
                    at = j;
            if (at >= 0)
                return mimic_error(MIMIC_EARG, "model %s: '%s' is at position %d, the model has it at %d; it expects: %s",
                                   side, names[i], i + 1, at + 1, list);
            return mimic_error(MIMIC_EARG, "model %s: '%s' (position %d) is not one of the model's; it expects: %s",
                               side, names[i], i + 1, list);
        }
        if (sizes && sizes[i] != v[i].size)
            return mimic_error(MIMIC_EARG, "model %s: '%s' has size %lld, the model expects %lld", side, names[i],
                               (long long)sizes[i], (long long)v[i].size);
    }
    return MIMIC_OK;
}

/* ===================== hash ===================== */
static void hash_encoder(sha256 *s, const mimic_encoder *e)
{
    int n = e ? e->nstages : 0;
    h_u64(s, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        const mimic_enc_stage *st = &e->stages[i];
        h_str(s, enc_names[st->kind]);
        if (has_vectors(st->kind)) {
            h_u64(s, (uint64_t)st->n);
            h_elems(s, MIMIC_F64, st->a, st->n);
            h_elems(s, MIMIC_F64, st->b, st->n);
        } else if (st->kind == MIMIC_ENC_LOG) {
            h_f64(s, st->offset);
        } else if (st->kind == MIMIC_ENC_SIGNED_LOG) {
            h_f64(s, st->scale);
        }
    }
}

static void hash_vars(sha256 *s, const mimic_io_var *v, int n)
{
    h_u64(s, (uint64_t)n);
    for (int i = 0; i < n; i++) {
        h_str(s, v[i].name);
        h_str(s, v[i].units);
        h_u64(s, (uint64_t)v[i].size);
    }
}

/* Assumes everything was checked (save and load check before hashing). */
static int hash_all(const mimic_model *m, const mimic_contract *c, const mimic_encoder *ie, const mimic_encoder *oe,
                    char out[72])
{
    sha256 s;
    sha_init(&s);
    h_str(&s, MIMIC_MODEL_FORMAT);
    h_u64(&s, MIMIC_MODEL_FORMAT_VERSION);
    mimic_dtype dt = mimic_model_dtype(m);
    h_str(&s, mimic_dtype_name(dt));
    h_u64(&s, (uint64_t)mimic_model_nin(m));
    int nl = mimic_model_num_layers(m);
    h_u64(&s, (uint64_t)nl);
    for (int i = 0; i < nl; i++) {
        mimic_layer_info li;
        int rc = mimic_model_layer(m, i, &li);
        if (rc)
            return rc;
        spec sp;
        if (!spec_of(li.type, &sp))
            return mimic_error(MIMIC_EINTERNAL, "model layer %d: type '%s' has no file form", i, li.type);
        h_str(&s, li.type);
        h_u64(&s, (uint64_t)li.in);
        h_u64(&s, (uint64_t)li.out);
        for (int k = 0; k < sp.nattr; k++) {
            h_str(&s, sp.attr[k]);
            h_f64(&s, li.attr[k]);
        }
        if (li.spatial) {
            mimic_spatial g = *li.spatial;
            char an[24][20];
            int64_t *av[24];
            int na = sp_attrs(&sp, &g, an, av);
            for (int k = 0; k < na; k++) {
                h_str(&s, an[k]);
                h_u64(&s, (uint64_t)*av[k]);
            }
            if (sp_flag(&sp)) {
                h_str(&s, sp_flag(&sp));
                h_u64(&s, (uint64_t)(g.circular != 0));
            }
        }
        if (li.recurrent) {
            mimic_recurrent r = *li.recurrent;
            const char *an[3];
            int64_t *av[3];
            int na = rec_attrs(&sp, &r, an, av);
            for (int k = 0; k < na; k++) {
                h_str(&s, an[k]);
                h_u64(&s, (uint64_t)*av[k]);
            }
        }
        for (int k = 0; k < 4; k++) {
            if (!li.weight[k])
                continue;
            h_str(&s, li.weight_name[k]);
            h_u64(&s, (uint64_t)li.weight_rows[k]);
            h_u64(&s, (uint64_t)li.weight_cols[k]);
            h_elems(&s, dt, li.weight[k], li.weight_rows[k] * li.weight_cols[k]);
        }
    }
    hash_encoder(&s, ie);
    hash_encoder(&s, oe);
    hash_vars(&s, c->inputs, c->ninputs);
    hash_vars(&s, c->outputs, c->noutputs);
    unsigned char dg[32];
    sha_final(&s, dg);
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", dg[i]);
    return MIMIC_OK;
}

int mimic_model_hash(const mimic_model *m, const mimic_contract *contract, const mimic_encoder *input_enc,
                     const mimic_encoder *output_enc, char out[72])
{
    if (!m || !out)
        return mimic_error(MIMIC_EARG, "mimic_model_hash: model or out is NULL");
    int rc = check_contract(contract, mimic_model_nin(m), mimic_model_nout(m));
    if (!rc)
        rc = check_encoder("input encoder", input_enc, mimic_model_nin(m));
    if (!rc)
        rc = check_encoder("output encoder", output_enc, mimic_model_nout(m));
    return rc ? rc : hash_all(m, contract, input_enc, output_enc, out);
}

/* ===================== saving ===================== */
static int put_vec(mimic_dict_writer *w, const char *name, mimic_dtype dt, const void *p, int ndim, int64_t r,
                   int64_t c)
{
    int64_t shape[2] = {ndim == 2 ? r : c, c};
    mimic_tensor *t = mimic_wrap((void *)p, ndim, shape, NULL, dt, NULL, NULL);
    if (!t)
        return mimic_errcode();
    int rc = mimic_dict_put_tensor(w, name, t);
    mimic_tensor_free(t);
    return rc;
}

static int put_str(mimic_dict_writer *w, const char *name, const char *s)
{
    return mimic_dict_put_string(w, name, s, strlen(s));
}

static int save_encoder(mimic_dict_writer *w, const char *side, const mimic_encoder *e)
{
    char nm[96];
    int n = e ? e->nstages : 0;
    snprintf(nm, sizeof nm, "encoders/%s/num_stages", side);
    int rc = mimic_dict_put_int(w, nm, n);
    for (int i = 0; rc == 0 && i < n; i++) {
        const mimic_enc_stage *st = &e->stages[i];
        snprintf(nm, sizeof nm, "encoders/%s/%03d/kind", side, i);
        rc = put_str(w, nm, enc_names[st->kind]);
        if (rc == 0 && has_vectors(st->kind)) {
            bool std = st->kind == MIMIC_ENC_STANDARD;
            snprintf(nm, sizeof nm, "encoders/%s/%03d/%s", side, i, std ? "mean" : "min");
            rc = put_vec(w, nm, MIMIC_F64, st->a, 1, 1, st->n);
            snprintf(nm, sizeof nm, "encoders/%s/%03d/%s", side, i, std ? "std" : "range");
            if (rc == 0)
                rc = put_vec(w, nm, MIMIC_F64, st->b, 1, 1, st->n);
        } else if (rc == 0 && st->kind == MIMIC_ENC_LOG) {
            snprintf(nm, sizeof nm, "encoders/%s/%03d/offset", side, i);
            rc = mimic_dict_put_number(w, nm, st->offset);
        } else if (rc == 0 && st->kind == MIMIC_ENC_SIGNED_LOG) {
            snprintf(nm, sizeof nm, "encoders/%s/%03d/scale", side, i);
            rc = mimic_dict_put_number(w, nm, st->scale);
        }
    }
    return rc;
}

static int save_vars(mimic_dict_writer *w, const char *side, const mimic_io_var *v, int n)
{
    char nm[96];
    snprintf(nm, sizeof nm, "contract/%s/num", side);
    int rc = mimic_dict_put_int(w, nm, n);
    for (int i = 0; rc == 0 && i < n; i++) {
        snprintf(nm, sizeof nm, "contract/%s/%03d/name", side, i);
        rc = put_str(w, nm, v[i].name);
        snprintf(nm, sizeof nm, "contract/%s/%03d/units", side, i);
        if (rc == 0)
            rc = put_str(w, nm, v[i].units);
        snprintf(nm, sizeof nm, "contract/%s/%03d/size", side, i);
        if (rc == 0)
            rc = mimic_dict_put_int(w, nm, v[i].size);
    }
    return rc;
}

static bool meta_key_ok(const char *k)
{
    return k && printable(k, strlen(k), false) && !strchr(k, '/') && strcmp(k, ".") != 0 && strcmp(k, "..") != 0;
}

static int check_meta(const mimic_meta *meta)
{
    if (!meta)
        return MIMIC_OK;
    if (meta->n < 0 || meta->n > MAX_META - 2 || (meta->n > 0 && !meta->entries))
        return mimic_error(MIMIC_EARG, "meta: 0..%d entries", MAX_META - 2);
    for (int i = 0; i < meta->n; i++) {
        const mimic_meta_entry *e = &meta->entries[i];
        if (!meta_key_ok(e->key))
            return mimic_error(MIMIC_EARG, "meta: key %d must be 1..%d printable characters without '/'", i, MAX_NAME);
        for (int j = 0; j < i; j++)
            if (strcmp(e->key, meta->entries[j].key) == 0)
                return mimic_error(MIMIC_EARG, "meta: key '%s' is given twice", e->key);
        if (e->kind == MIMIC_META_STRING && (!e->s || strlen(e->s) > MAX_META_STRING))
            return mimic_error(MIMIC_EARG, "meta '%s': the string is NULL or longer than %d bytes", e->key,
                               MAX_META_STRING);
        if (e->kind != MIMIC_META_STRING && e->kind != MIMIC_META_NUMBER && e->kind != MIMIC_META_INT)
            return mimic_error(MIMIC_EARG, "meta '%s': unknown kind %d", e->key, (int)e->kind);
    }
    return MIMIC_OK;
}

static bool meta_has(const mimic_meta *meta, const char *key)
{
    for (int i = 0; meta && i < meta->n; i++)
        if (strcmp(meta->entries[i].key, key) == 0)
            return true;
    return false;
}

static int save_body(mimic_dict_writer *w, const mimic_model *m, const mimic_contract *c, const mimic_encoder *ie,
                     const mimic_encoder *oe, const mimic_meta *meta, const char *hash)
{
    mimic_dtype dt = mimic_model_dtype(m);
    int nl = mimic_model_num_layers(m);
    int rc = put_str(w, "mimic_format", MIMIC_MODEL_FORMAT);
    if (!rc) rc = mimic_dict_put_int(w, "format_version", MIMIC_MODEL_FORMAT_VERSION);
    if (!rc) rc = put_str(w, "dtype", mimic_dtype_name(dt));
    if (!rc) rc = mimic_dict_put_int(w, "nin", mimic_model_nin(m));
    if (!rc) rc = mimic_dict_put_int(w, "nout", mimic_model_nout(m));
    if (!rc) rc = mimic_dict_put_int(w, "num_layers", nl);
    if (!rc) rc = put_str(w, "content_hash", hash);
    if (!rc) rc = mimic_dict_put_group(w, "layers");
    char nm[96];
    for (int i = 0; rc == 0 && i < nl; i++) {
        mimic_layer_info li;
        spec sp;
        rc = mimic_model_layer(m, i, &li);
        if (!rc && !spec_of(li.type, &sp))
            rc = mimic_error(MIMIC_EINTERNAL, "layer %d: type '%s' has no file form", i, li.type);
        snprintf(nm, sizeof nm, "layers/%03d/type", i);
        if (!rc) rc = put_str(w, nm, li.type);
        snprintf(nm, sizeof nm, "layers/%03d/in", i);
        if (!rc) rc = mimic_dict_put_int(w, nm, li.in);
        snprintf(nm, sizeof nm, "layers/%03d/out", i);
        if (!rc) rc = mimic_dict_put_int(w, nm, li.out);
        for (int k = 0; !rc && k < sp.nattr; k++) {
            snprintf(nm, sizeof nm, "layers/%03d/%s", i, sp.attr[k]);
            rc = mimic_dict_put_number(w, nm, li.attr[k]);
        }
        if (!rc && li.spatial) {
            mimic_spatial g = *li.spatial;
            char an[24][20];
            int64_t *av[24];
            int na = sp_attrs(&sp, &g, an, av);
            for (int k = 0; !rc && k < na; k++) {
                snprintf(nm, sizeof nm, "layers/%03d/%.19s", i, an[k]);
                rc = mimic_dict_put_int(w, nm, *av[k]);
            }
            if (!rc && sp_flag(&sp)) {
                snprintf(nm, sizeof nm, "layers/%03d/%s", i, sp_flag(&sp));
                rc = mimic_dict_put_int(w, nm, g.circular != 0);
            }
        }
        if (!rc && li.recurrent) {
            mimic_recurrent r = *li.recurrent;
            const char *an[3];
            int64_t *av[3];
            int na = rec_attrs(&sp, &r, an, av);
            for (int k = 0; !rc && k < na; k++) {
                snprintf(nm, sizeof nm, "layers/%03d/%s", i, an[k]);
                rc = mimic_dict_put_int(w, nm, *av[k]);
            }
        }
        for (int k = 0; !rc && k < 4; k++) {
            if (!li.weight[k])
                continue;
            snprintf(nm, sizeof nm, "layers/%03d/%s", i, li.weight_name[k]);
            bool matrix = ((sp.kind == K_DENSE || sp.kind == K_CONV || sp.kind == K_CONVT) && k == 0) ||
                          (sp.kind == K_RNN && k < 2);
            rc = put_vec(w, nm, dt, li.weight[k], matrix ? 2 : 1, li.weight_rows[k], li.weight_cols[k]);
        }
    }
    if (!rc) rc = save_encoder(w, "input", ie);
    if (!rc) rc = save_encoder(w, "output", oe);
    if (!rc) rc = mimic_dict_put_int(w, "contract/batch_axis", 0);
    if (!rc) rc = save_vars(w, "inputs", c->inputs, c->ninputs);
    if (!rc) rc = save_vars(w, "outputs", c->outputs, c->noutputs);
    if (!rc) rc = mimic_dict_put_group(w, "meta");
    if (!rc && !meta_has(meta, "mimic_version"))
        rc = put_str(w, "meta/mimic_version", MIMIC_VERSION);
    if (!rc && !meta_has(meta, "created")) {
        char buf[32];
        time_t now = time(NULL);
        struct tm tmv;
        if (gmtime_r(&now, &tmv) && strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tmv) > 0)
            rc = put_str(w, "meta/created", buf);
    }
    for (int i = 0; !rc && meta && i < meta->n; i++) {
        const mimic_meta_entry *e = &meta->entries[i];
        snprintf(nm, sizeof nm, "meta/%s", e->key);
        if (e->kind == MIMIC_META_STRING)
            rc = put_str(w, nm, e->s);
        else if (e->kind == MIMIC_META_NUMBER)
            rc = mimic_dict_put_number(w, nm, e->d);
        else
            rc = mimic_dict_put_int(w, nm, e->i);
    }
    return rc;
}

int mimic_model_save(const char *path, const mimic_model *m, const mimic_contract *contract,
                     const mimic_encoder *input_enc, const mimic_encoder *output_enc, const mimic_meta *meta)
{
    if (!path || !m)
        return mimic_error(MIMIC_EARG, "mimic_model_save: path or model is NULL");
    if (mimic_model_num_layers(m) > MAX_LAYERS || mimic_model_nin(m) > MAX_WIDTH)
        return mimic_error(MIMIC_EARG, "mimic_model_save: more than %d layers or a width above %d", MAX_LAYERS,
                           MAX_WIDTH);
    /* A model with an open residual block has no plan, so it has no file form. */
    int depth = 0;
    for (int i = 0; i < mimic_model_num_layers(m); i++) {
        mimic_layer_info li;
        if (mimic_model_layer(m, i, &li))
            return mimic_errcode();
        depth += strcmp(li.type, "residual_begin") == 0;
        depth -= strcmp(li.type, "residual_end") == 0;
        if (depth > MAX_NESTING)
            return mimic_error(MIMIC_EARG, "mimic_model_save: residual blocks nested more than %d deep (the format's limit)",
                               MAX_NESTING);
        if (li.out > MAX_WIDTH)
            return mimic_error(MIMIC_EARG, "mimic_model_save: layer %d: width %lld is above %d", i, (long long)li.out,
                               MAX_WIDTH);
    }
    if (depth != 0)
        return mimic_error(MIMIC_ESTATE, "mimic_model_save: a residual block is still open");
    char hash[72];
    int rc = mimic_model_hash(m, contract, input_enc, output_enc, hash);
    if (!rc)
        rc = check_meta(meta);
    if (rc)
        return rc;
    mimic_dict_writer *w = mimic_dict_create(path);
    if (!w)
        return mimic_errcode();
    rc = save_body(w, m, contract, input_enc, output_enc, meta, hash);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", mimic_errmsg());
        mimic_dict_discard(w);
        return mimic_error(rc, "%s", msg);
    }
    return mimic_dict_commit(w);
}

/* ===================== loading ===================== */
typedef struct loader {
    mimic_dict *d;
    const char *path;
    int64_t count;
    bool *used;           /* per entry: consumed by the spec (pass 1) */
    bool building;        /* pass 2 */
    int64_t total_bytes;
    mimic_dtype dt;
    int64_t nin, nout;
    int nlayers;
    mimic_model *m;
    mimic_model_info *info;
} loader;

/* Index of the entry called name (entries are sorted by strcmp), or -1. */
static int64_t find_idx(const loader *L, const char *name)
{
    int64_t lo = 0, hi = L->count - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(mimic_dict_entry_at(L->d, mid)->name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static int bad(const loader *L, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int bad(const loader *L, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mimic_error(code, "%s: %s", L->path, msg);
}

/* The entry `name` of kind k; marks it used. Missing: NULL, and an error unless optional. */
static const mimic_dict_entry *get(loader *L, const char *name, mimic_dict_kind k, bool optional, int *rc)
{
    int64_t i = find_idx(L, name);
    if (i < 0) {
        if (!optional)
            *rc = bad(L, MIMIC_EIO, "'%s' is missing (a model file of format version %d needs it)", name,
                      MIMIC_MODEL_FORMAT_VERSION);
        return NULL;
    }
    const mimic_dict_entry *e = mimic_dict_entry_at(L->d, i);
    if (L->used)
        L->used[i] = true;
    if (e->kind != k) {
        *rc = bad(L, MIMIC_EIO, "'%s' is %s %s, expected %s %s", name, e->kind == MIMIC_DICT_INT ? "an" : "a",
                  mimic_dict_kind_name(e->kind), k == MIMIC_DICT_INT ? "an" : "a", mimic_dict_kind_name(k));
        return NULL;
    }
    return e;
}

static void mark_group(loader *L, const char *name)
{
    int64_t i = find_idx(L, name);
    if (i >= 0 && L->used && mimic_dict_entry_at(L->d, i)->kind == MIMIC_DICT_GROUP)
        L->used[i] = true;
}

static int get_int(loader *L, const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *e = get(L, name, MIMIC_DICT_INT, false, &rc);
    if (!e)
        return rc;
    if (e->i < lo || e->i > hi)
        return bad(L, MIMIC_EVALUE, "'%s' is %lld, expected %lld..%lld", name, (long long)e->i, (long long)lo,
                   (long long)hi);
    *out = e->i;
    return MIMIC_OK;
}

static int get_num(loader *L, const char *name, double *out)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *e = get(L, name, MIMIC_DICT_NUMBER, false, &rc);
    if (!e)
        return rc;
    if (!isfinite(e->d))
        return bad(L, MIMIC_EVALUE, "'%s' is %g, expected a finite number", name, e->d);
    *out = e->d;
    return MIMIC_OK;
}

/* A short printable string (names, units, types). */
static int get_text(loader *L, const char *name, bool allow_empty, const char **out)
{
    int rc = MIMIC_OK;
    const mimic_dict_entry *e = get(L, name, MIMIC_DICT_STRING, false, &rc);
    if (!e)
        return rc;
    if (!printable(e->s, e->len, allow_empty) || strlen(e->s) != e->len)
        return bad(L, MIMIC_EVALUE, "'%s' must be %d..%d printable characters", name, allow_empty ? 0 : 1, MAX_NAME);
    *out = e->s;
    return MIMIC_OK;
}

/* Checks a tensor entry's dtype and shape from its metadata (no reading);
 * with L->building, reads it. *data gets the tensor (caller frees) or NULL. */
static int get_tensor(loader *L, const char *name, bool optional, mimic_dtype dt, int ndim, int64_t d0, int64_t d1,
                      mimic_tensor **t)
{
    int rc = MIMIC_OK;
    *t = NULL;
    const mimic_dict_entry *e = get(L, name, MIMIC_DICT_TENSOR, optional, &rc);
    if (!e)
        return rc;
    if (e->dtype != dt)
        return bad(L, MIMIC_EDTYPE, "'%s' is %s, expected %s", name, mimic_dtype_name(e->dtype), mimic_dtype_name(dt));
    int64_t want[2] = {d0, d1};
    bool ok = e->ndim == ndim;
    for (int k = 0; ok && k < ndim; k++)
        ok = e->shape[k] == want[k];
    if (!ok) {
        char got[96] = "", exp[48];
        size_t at = 0;
        for (int k = 0; k < e->ndim && at < sizeof got - 24; k++)
            at += (size_t)snprintf(got + at, sizeof got - at, "%s%lld", k ? ", " : "", (long long)e->shape[k]);
        if (ndim == 2)
            snprintf(exp, sizeof exp, "[%lld, %lld]", (long long)d0, (long long)d1);
        else
            snprintf(exp, sizeof exp, "[%lld]", (long long)d0);
        return bad(L, MIMIC_ESHAPE, "'%s' has shape [%s], expected %s", name, got, exp);
    }
    if (!L->building)
        return MIMIC_OK;
    *t = mimic_dict_get_tensor(L->d, name);
    if (!*t)
        return mimic_errcode();
    const void *p = mimic_data(*t);
    int64_t n = mimic_numel(*t);
    for (int64_t i = 0; i < n; i++) {
        double v = dt == MIMIC_F32 ? (double)((const float *)p)[i] : ((const double *)p)[i];
        if (!isfinite(v)) {
            mimic_tensor_free(*t);
            *t = NULL;
            return bad(L, MIMIC_EVALUE, "'%s': element %lld is %g; a model file holds finite values", name,
                       (long long)i, v);
        }
    }
    return MIMIC_OK;
}

/* Adds bytes to the running total; false (error set) past the bound. */
static int account(loader *L, const char *what, int64_t elems, size_t esize)
{
    if (elems > MAX_TENSOR_ELEMS)
        return bad(L, MIMIC_ESHAPE, "%s: %lld elements is above the limit of %lld", what, (long long)elems,
                   (long long)MAX_TENSOR_ELEMS);
    L->total_bytes += elems * (int64_t)esize;
    if (L->total_bytes > MAX_TOTAL_BYTES)
        return bad(L, MIMIC_ESHAPE, "%s: the weights add up to more than %lld bytes", what, (long long)MAX_TOTAL_BYTES);
    return MIMIC_OK;
}

/* A record's weight [rows, cols] and optional bias [nbias] (dense, conv,
 * transposed conv), counted against the size bounds first (the caller
 * checks rows * cols cannot overflow). *w, *b: the tensors when building
 * (caller frees, also on error; initialise them to NULL) or NULL. */
static int get_weight_bias(loader *L, const char *g, int64_t rows, int64_t cols, int64_t nbias, mimic_tensor **w,
                           mimic_tensor **b)
{
    char nm[64];
    int rc = account(L, g, rows * cols + nbias, mimic_dtype_size(L->dt));
    if (rc)
        return rc;
    snprintf(nm, sizeof nm, "%s/weight", g);
    rc = get_tensor(L, nm, false, L->dt, 2, rows, cols, w);
    snprintf(nm, sizeof nm, "%s/bias", g);
    if (!rc)
        rc = get_tensor(L, nm, true, L->dt, 1, nbias, 0, b);
    return rc;
}

/* Reads and checks a spatial record's geometry against its 'in' and 'out'
 * before anything is allocated for it: ranges, divisibility, the window
 * fitting, widths recomputed with overflow checks. */
static int load_geometry(loader *L, const char *g, const char *type, const spec *sp, int64_t in, int64_t out,
                         mimic_spatial *geo, int64_t *wcols)
{
    char an[24][20], nm[64];
    int64_t *av[24];
    int na = sp_attrs(sp, geo, an, av), rc;
    for (int k = 0; k < na; k++) {
        bool pad = strstr(an[k], "padding") != NULL; /* padding_d, output_padding_d may be 0 */
        snprintf(nm, sizeof nm, "%s/%.19s", g, an[k]);
        if ((rc = get_int(L, nm, pad ? 0 : 1, MAX_WIDTH, av[k])))
            return rc;
    }
    if (sp_flag(sp)) {
        int64_t f = 0;
        snprintf(nm, sizeof nm, "%s/%s", g, sp_flag(sp));
        if ((rc = get_int(L, nm, 0, 1, &f)))
            return rc;
        geo->circular = (int)f;
    }
    if (sp->kind == K_GPOOL) {
        if (in % geo->in_channels || out != geo->in_channels)
            return bad(L, MIMIC_ESHAPE, "%s (%s): %lld channels: 'in' (%lld) must be a multiple and 'out' (%lld) equal",
                       g, type, (long long)geo->in_channels, (long long)in, (long long)out);
        return MIMIC_OK;
    }
    geo->ndim = sp->ndim;
    if (sp->kind == K_CONVT) {
        if (geo->in_channels % geo->groups || geo->out_channels % geo->groups)
            return bad(L, MIMIC_EVALUE, "%s (%s): groups %lld must divide in_channels %lld and out_channels %lld", g,
                       type, (long long)geo->groups, (long long)geo->in_channels, (long long)geo->out_channels);
        int64_t vi = geo->in_channels, vo = geo->out_channels, kv = 1;
        for (int d = 0; d < sp->ndim; d++) {
            if (geo->output_padding[d] >= geo->stride[d] && geo->output_padding[d] >= geo->dilation[d])
                return bad(L, MIMIC_EVALUE, "%s (%s): output_padding_%d = %lld must be smaller than stride_%d or "
                           "dilation_%d", g, type, d, (long long)geo->output_padding[d], d, d);
            int64_t o = mimic_spatial_out_transposed(geo, d); /* every term <= 2^40: no overflow */
            if (o < 1)
                return bad(L, MIMIC_ESHAPE, "%s (%s): dim %d: the output size is %lld (padding %lld too large)", g,
                           type, d, (long long)o, (long long)geo->padding[d]);
            if (o > MAX_WIDTH)
                return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry gives more than %d features", g, type, MAX_WIDTH);
            vi *= geo->size[d]; /* running products kept <= 2^20, factors <= 2^20 */
            vo *= o;
            kv *= geo->kernel[d];
            if (vi > MAX_WIDTH || vo > MAX_WIDTH || kv > MAX_TENSOR_ELEMS)
                return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry gives more than %d features or too large a kernel",
                           g, type, MAX_WIDTH);
        }
        if (vi != in || vo != out)
            return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry maps %lld features to %lld, but 'in' is %lld and 'out' %lld",
                       g, type, (long long)vi, (long long)vo, (long long)in, (long long)out);
        *wcols = geo->out_channels / geo->groups * kv;
        if (*wcols > MAX_TENSOR_ELEMS / geo->in_channels)
            return bad(L, MIMIC_ESHAPE, "%s (%s): the weight has more than %lld elements", g, type,
                       (long long)MAX_TENSOR_ELEMS);
        return MIMIC_OK;
    }
    if (sp->kind == K_UPSAMPLE || sp->kind == K_UPLIN) {
        int64_t vi = geo->in_channels, vo = geo->in_channels;
        for (int d = 0; d < sp->ndim; d++) {
            if (geo->stride[d] > 64)
                return bad(L, MIMIC_EVALUE, "%s (%s): scale_%d = %lld, expected 1..64", g, type, d,
                           (long long)geo->stride[d]);
            vi *= geo->size[d]; /* factors <= 2^20, running products kept <= 2^20 */
            vo *= geo->size[d] * geo->stride[d];
            if (vi > MAX_WIDTH || vo > MAX_WIDTH)
                return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry gives more than %d features", g, type, MAX_WIDTH);
            geo->kernel[d] = geo->dilation[d] = 1;
        }
        if (vi != in || vo != out)
            return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry maps %lld features to %lld, but 'in' is %lld and 'out' %lld",
                       g, type, (long long)vi, (long long)vo, (long long)in, (long long)out);
        return MIMIC_OK;
    }
    if (sp->kind != K_CONV)
        geo->out_channels = geo->in_channels, geo->groups = 1;
    if (sp->kind == K_AVGPOOL)
        for (int d = 0; d < 3; d++)
            geo->dilation[d] = 1;
    if (geo->in_channels % geo->groups || geo->out_channels % geo->groups)
        return bad(L, MIMIC_EVALUE, "%s (%s): groups %lld must divide in_channels %lld and out_channels %lld", g, type,
                   (long long)geo->groups, (long long)geo->in_channels, (long long)geo->out_channels);
    int64_t vin = geo->in_channels, vout = geo->out_channels, kv = 1;
    for (int d = 0; d < sp->ndim; d++) {
        if (sp->kind == K_CONV && geo->circular && geo->padding[d] > geo->size[d])
            return bad(L, MIMIC_EVALUE, "%s (%s): circular padding_%d = %lld is larger than size_%d = %lld", g, type, d,
                       (long long)geo->padding[d], d, (long long)geo->size[d]);
        if (sp->kind != K_CONV && 2 * geo->padding[d] > geo->kernel[d])
            return bad(L, MIMIC_EVALUE, "%s (%s): padding_%d = %lld is more than half the kernel %lld", g, type, d,
                       (long long)geo->padding[d], (long long)geo->kernel[d]);
        int64_t o = mimic_spatial_out(geo, d);
        if (o < 1)
            return bad(L, MIMIC_ESHAPE, "%s (%s): dim %d: the window does not fit size %lld with padding %lld", g, type,
                       d, (long long)geo->size[d], (long long)geo->padding[d]);
        /* each factor <= 2^20 and each running product kept <= 2^20 (MAX_WIDTH) below */
        vin *= geo->size[d];
        vout *= o;
        kv *= geo->kernel[d];
        if (vin > MAX_WIDTH || vout > MAX_WIDTH || kv > MAX_TENSOR_ELEMS)
            return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry gives more than %d features or too large a kernel", g,
                       type, MAX_WIDTH);
    }
    if (vin != in || vout != out)
        return bad(L, MIMIC_ESHAPE, "%s (%s): the geometry maps %lld features to %lld, but 'in' is %lld and 'out' %lld",
                   g, type, (long long)vin, (long long)vout, (long long)in, (long long)out);
    *wcols = geo->in_channels / geo->groups * kv; /* <= 2^20 * 2^28 */
    if (sp->kind == K_CONV && *wcols > MAX_TENSOR_ELEMS / geo->out_channels)
        return bad(L, MIMIC_ESHAPE, "%s (%s): the weight has more than %lld elements", g, type,
                   (long long)MAX_TENSOR_ELEMS);
    return MIMIC_OK;
}

static int load_layer(loader *L, int i, int64_t *width, int *depth)
{
    char g[32], nm[64];
    snprintf(g, sizeof g, "layers/%03d", i);
    mark_group(L, g);
    const char *type = NULL;
    snprintf(nm, sizeof nm, "%s/type", g);
    int rc = get_text(L, nm, false, &type);
    if (rc)
        return rc;
    spec sp;
    if (!spec_of(type, &sp))
        return bad(L, MIMIC_EIO, "%s: unknown layer type '%s' at layer index %d (format version %d knows: %s)", g, type,
                   i, MIMIC_MODEL_FORMAT_VERSION, KNOWN_TYPES);
    int64_t in = 0, out = 0;
    snprintf(nm, sizeof nm, "%s/in", g);
    if ((rc = get_int(L, nm, 1, MAX_WIDTH, &in)))
        return rc;
    snprintf(nm, sizeof nm, "%s/out", g);
    if ((rc = get_int(L, nm, 1, MAX_WIDTH, &out)))
        return rc;
    if (in != *width)
        return bad(L, MIMIC_ESHAPE, "%s (%s): 'in' is %lld but the previous layer gives %lld features", g, type,
                   (long long)in, (long long)*width);
    if (sp.kind != K_DENSE && sp.kind < K_CONV && out != in)
        return bad(L, MIMIC_ESHAPE, "%s (%s): 'out' is %lld, expected %lld (the layer keeps the width)", g, type,
                   (long long)out, (long long)in);
    double attr[2] = {0, 0};
    for (int k = 0; k < sp.nattr; k++) {
        snprintf(nm, sizeof nm, "%s/%s", g, sp.attr[k]);
        if ((rc = get_num(L, nm, &attr[k])))
            return rc;
    }
    if (sp.kind == K_ACT && sp.act == MIMIC_ACT_SOFTPLUS && !(attr[0] > 0))
        return bad(L, MIMIC_EVALUE, "%s (softplus): beta must be > 0, got %g", g, attr[0]);
    if (sp.kind == K_LAYERNORM && !(attr[0] >= 0))
        return bad(L, MIMIC_EVALUE, "%s (layernorm): eps must be >= 0, got %g", g, attr[0]);
    mimic_spatial geo;
    memset(&geo, 0, sizeof geo);
    int64_t wcols = 0; /* K_CONV: in/groups * prod kernel */
    if (has_geometry(sp.kind) && (rc = load_geometry(L, g, type, &sp, in, out, &geo, &wcols)))
        return rc;
    mimic_recurrent rec = {.cell = sp.kind == K_RNN ? sp.cell : -1};
    if (sp.kind == K_RNN || sp.kind == K_LAST) {
        const char *an[3];
        int64_t *av[3];
        int na = rec_attrs(&sp, &rec, an, av);
        for (int k = 0; k < na; k++) {
            snprintf(nm, sizeof nm, "%s/%s", g, an[k]);
            if ((rc = get_int(L, nm, 1, MAX_WIDTH, av[k])))
                return rc;
        }
        if (sp.kind == K_LAST)
            rec.input_size = rec.hidden_size;
        /* factors <= 2^20: the products fit */
        if (rec.seq_len * rec.input_size != in || (sp.kind == K_LAST ? 1 : rec.seq_len) * rec.hidden_size != out)
            return bad(L, MIMIC_ESHAPE, "%s (%s): seq_len %lld maps %lld x %lld features to %lld x %lld, but 'in' is "
                       "%lld and 'out' %lld", g, type, (long long)rec.seq_len, (long long)rec.seq_len,
                       (long long)rec.input_size, (long long)(sp.kind == K_LAST ? 1 : rec.seq_len),
                       (long long)rec.hidden_size, (long long)in, (long long)out);
    }
    if (sp.kind == K_FLATTEN && out != in)
        return bad(L, MIMIC_ESHAPE, "%s (flatten): 'out' is %lld, expected %lld (the layer keeps the width)", g,
                   (long long)out, (long long)in);
    if (sp.kind == K_RES_BEGIN && ++*depth > MAX_NESTING)
        return bad(L, MIMIC_EIO, "%s: residual blocks nested more than %d deep", g, MAX_NESTING);
    if (sp.kind == K_RES_END && --*depth < 0)
        return bad(L, MIMIC_EIO, "%s: residual_end without a residual_begin", g);

    mimic_tensor *w0 = NULL, *w1 = NULL;
    size_t es = mimic_dtype_size(L->dt);
    if (sp.kind == K_DENSE) {
        /* in, out <= 2^20 each, so in * out cannot overflow int64. */
        rc = get_weight_bias(L, g, out, in, out, &w0, &w1);
        if (!rc && L->building)
            rc = mimic_model_add_dense(L->m, out, mimic_data(w0), w1 ? mimic_data(w1) : NULL);
    } else if (sp.kind == K_LAYERNORM || sp.kind == K_AFFINE) {
        if ((rc = account(L, g, 2 * in, es)))
            return rc;
        bool optional = sp.kind == K_LAYERNORM;
        snprintf(nm, sizeof nm, "%s/%s", g, sp.w[0]);
        rc = get_tensor(L, nm, optional, L->dt, 1, in, 0, &w0);
        snprintf(nm, sizeof nm, "%s/%s", g, sp.w[1]);
        if (!rc)
            rc = get_tensor(L, nm, optional, L->dt, 1, in, 0, &w1);
        bool have0 = find_idx(L, nm) >= 0;
        snprintf(nm, sizeof nm, "%s/%s", g, sp.w[0]);
        if (!rc && have0 != (find_idx(L, nm) >= 0))
            rc = bad(L, MIMIC_EIO, "%s (layernorm): give both weight and bias, or neither", g);
        if (!rc && L->building)
            rc = sp.kind == K_AFFINE ? mimic_model_add_affine(L->m, mimic_data(w0), mimic_data(w1))
                                     : mimic_model_add_layernorm(L->m, attr[0], w0 ? mimic_data(w0) : NULL,
                                                                 w1 ? mimic_data(w1) : NULL);
    } else if (sp.kind == K_CONV) {
        /* out_channels, wcols <= 2^40 and their product checked in load_geometry */
        rc = get_weight_bias(L, g, geo.out_channels, wcols, geo.out_channels, &w0, &w1);
        if (!rc && L->building)
            rc = mimic_model_add_conv(L->m, &geo, mimic_data(w0), w1 ? mimic_data(w1) : NULL);
    } else if (sp.kind == K_CONVT) {
        /* in_channels <= 2^20, wcols * in_channels <= 2^28 (load_geometry) */
        rc = get_weight_bias(L, g, geo.in_channels, wcols, geo.out_channels, &w0, &w1);
        if (!rc && L->building)
            rc = mimic_model_add_conv_transpose(L->m, &geo, mimic_data(w0), w1 ? mimic_data(w1) : NULL);
    } else if (sp.kind == K_RNN) {
        int64_t GH = (rec.cell == MIMIC_CELL_LSTM ? 4 : rec.cell == MIMIC_CELL_GRU ? 3 : 1) * rec.hidden_size;
        /* GH <= 2^22, input and hidden sizes <= 2^20: each product < 2^43, checked by account */
        if ((rc = account(L, g, GH * rec.input_size, es)) || (rc = account(L, g, GH * rec.hidden_size, es)) ||
            (rc = account(L, g, 2 * GH, es)))
            return rc;
        mimic_tensor *w2 = NULL, *w3 = NULL;
        snprintf(nm, sizeof nm, "%s/weight_ih", g);
        rc = get_tensor(L, nm, false, L->dt, 2, GH, rec.input_size, &w0);
        snprintf(nm, sizeof nm, "%s/weight_hh", g);
        if (!rc)
            rc = get_tensor(L, nm, false, L->dt, 2, GH, rec.hidden_size, &w1);
        snprintf(nm, sizeof nm, "%s/bias_ih", g);
        if (!rc)
            rc = get_tensor(L, nm, true, L->dt, 1, GH, 0, &w2);
        bool have_ih = find_idx(L, nm) >= 0;
        snprintf(nm, sizeof nm, "%s/bias_hh", g);
        if (!rc)
            rc = get_tensor(L, nm, true, L->dt, 1, GH, 0, &w3);
        if (!rc && have_ih != (find_idx(L, nm) >= 0))
            rc = bad(L, MIMIC_EIO, "%s (%s): give both bias_ih and bias_hh, or neither", g, type);
        if (!rc && L->building)
            rc = mimic_model_add_recurrent(L->m, &rec, mimic_data(w0), mimic_data(w1), w2 ? mimic_data(w2) : NULL,
                                           w3 ? mimic_data(w3) : NULL);
        mimic_tensor_free(w2);
        mimic_tensor_free(w3);
    } else if (sp.kind == K_LAST) {
        if (L->building)
            rc = mimic_model_add_last_step(L->m, rec.seq_len);
    } else if (sp.kind == K_UPLIN) {
        if (L->building)
            rc = mimic_model_add_upsample_linear(L->m, &geo);
    } else if (sp.kind == K_MAXPOOL || sp.kind == K_AVGPOOL) {
        if (L->building)
            rc = mimic_model_add_pool(L->m, sp.kind == K_MAXPOOL, &geo);
    } else if (sp.kind == K_GPOOL) {
        if (L->building)
            rc = mimic_model_add_global_pool(L->m, strcmp(type, "global_max_pool") == 0, geo.in_channels);
    } else if (sp.kind == K_FLATTEN) {
        if (L->building)
            rc = mimic_model_add_flatten(L->m);
    } else if (sp.kind == K_UPSAMPLE) {
        if (L->building)
            rc = mimic_model_add_upsample(L->m, &geo);
    } else if (L->building) {
        if (sp.kind == K_ACT)
            rc = mimic_model_add_activation(L->m, (mimic_activation)sp.act, attr[0], attr[1]);
        else if (sp.kind == K_RES_BEGIN)
            rc = mimic_model_begin_residual(L->m);
        else
            rc = mimic_model_end_residual(L->m);
    }
    mimic_tensor_free(w0);
    mimic_tensor_free(w1);
    if (rc)
        return rc;
    *width = out;
    return MIMIC_OK;
}

static int load_encoder(loader *L, const char *side, int64_t width, mimic_encoder *e)
{
    char g[48], nm[96];
    snprintf(g, sizeof g, "encoders/%s", side);
    mark_group(L, g);
    int64_t n = 0;
    snprintf(nm, sizeof nm, "%s/num_stages", g);
    int rc = get_int(L, nm, 0, MAX_STAGES, &n);
    if (rc)
        return rc;
    mimic_enc_stage *stages = NULL;
    if (L->building && n > 0) {
        if (!(stages = mimic_calloc((size_t)n, sizeof *stages)))
            return MIMIC_ENOMEM;
        e->stages = stages;
        e->nstages = (int)n;
    }
    for (int i = 0; i < n; i++) {
        char sg[64];
        snprintf(sg, sizeof sg, "%s/%03d", g, i);
        mark_group(L, sg);
        const char *kind = NULL;
        snprintf(nm, sizeof nm, "%s/kind", sg);
        if ((rc = get_text(L, nm, false, &kind)))
            return rc;
        int k = mimic_enc_kind_parse(kind);
        if (k < 0)
            return bad(L, MIMIC_EIO, "%s: unknown encoder kind '%s' (identity, standard, minmax, log, signed_log)", sg,
                       kind);
        mimic_enc_stage st = {.kind = (mimic_enc_kind)k};
        if (has_vectors(st.kind)) {
            bool std = k == MIMIC_ENC_STANDARD;
            const char *an = std ? "mean" : "min", *bn = std ? "std" : "range";
            snprintf(nm, sizeof nm, "%s/%s", sg, an);
            int64_t ia = find_idx(L, nm);
            const mimic_dict_entry *ea = ia >= 0 ? mimic_dict_entry_at(L->d, ia) : NULL;
            /* 1 or width elements: take the count the file has, then get_tensor checks it. */
            st.n = ea && ea->kind == MIMIC_DICT_TENSOR && ea->ndim == 1 && ea->shape[0] == 1 ? 1 : width;
            if ((rc = account(L, sg, 2 * st.n, sizeof(double))))
                return rc;
            mimic_tensor *ta = NULL, *tb = NULL;
            rc = get_tensor(L, nm, false, MIMIC_F64, 1, st.n, 0, &ta);
            snprintf(nm, sizeof nm, "%s/%s", sg, bn);
            if (!rc)
                rc = get_tensor(L, nm, false, MIMIC_F64, 1, st.n, 0, &tb);
            if (!rc && L->building) {
                double *ab = mimic_malloc(2 * (size_t)st.n * sizeof(double));
                if (!ab)
                    rc = MIMIC_ENOMEM;
                else {
                    memcpy(ab, mimic_data(ta), (size_t)st.n * sizeof(double));
                    memcpy(ab + st.n, mimic_data(tb), (size_t)st.n * sizeof(double));
                    stages[i].a = ab; /* b points into the same block: one free */
                    stages[i].b = ab + st.n;
                    st.a = ab, st.b = ab + st.n;
                }
            }
            mimic_tensor_free(ta);
            mimic_tensor_free(tb);
            if (rc)
                return rc;
            if (L->building && (rc = check_stage(sg, 0, &st, width)))
                return bad(L, rc, "%s", mimic_errmsg());
        } else if (k == MIMIC_ENC_LOG || k == MIMIC_ENC_SIGNED_LOG) {
            snprintf(nm, sizeof nm, "%s/%s", sg, k == MIMIC_ENC_LOG ? "offset" : "scale");
            double v = 0;
            if ((rc = get_num(L, nm, &v)))
                return rc;
            if (k == MIMIC_ENC_LOG)
                st.offset = v;
            else
                st.scale = v;
            if ((rc = check_stage(sg, 0, &st, width)))
                return bad(L, rc, "%s", mimic_errmsg());
        }
        if (L->building) {
            stages[i].kind = st.kind;
            stages[i].n = st.n;
            stages[i].offset = st.offset;
            stages[i].scale = st.scale;
        }
    }
    return MIMIC_OK;
}

static char *dup_s(const char *s)
{
    size_t n = strlen(s);
    char *p = mimic_malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static int load_vars(loader *L, const char *side, int64_t total, mimic_io_var **out, int *nout)
{
    char g[48], nm[96];
    snprintf(g, sizeof g, "contract/%s", side);
    mark_group(L, g);
    int64_t n = 0;
    snprintf(nm, sizeof nm, "%s/num", g);
    int rc = get_int(L, nm, 1, MAX_VARS, &n);
    if (rc)
        return rc;
    mimic_io_var *v = NULL;
    if (L->building) {
        if (!(v = mimic_calloc((size_t)n, sizeof *v)))
            return MIMIC_ENOMEM;
        *out = v;
        *nout = (int)n;
    }
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        char vg[64];
        snprintf(vg, sizeof vg, "%s/%03d", g, i);
        mark_group(L, vg);
        const char *name = NULL, *units = NULL;
        int64_t size = 0;
        snprintf(nm, sizeof nm, "%s/name", vg);
        if ((rc = get_text(L, nm, false, &name)))
            return rc;
        if (strchr(name, '/'))
            return bad(L, MIMIC_EVALUE, "%s: the name '%s' contains '/'", nm, name);
        snprintf(nm, sizeof nm, "%s/units", vg);
        if ((rc = get_text(L, nm, true, &units)))
            return rc;
        snprintf(nm, sizeof nm, "%s/size", vg);
        if ((rc = get_int(L, nm, 1, MAX_WIDTH, &size)))
            return rc;
        sum += size;
        for (int j = 0; j < i; j++) {
            char on[96];
            snprintf(on, sizeof on, "%s/%03d/name", g, j);
            const mimic_dict_entry *oe = mimic_dict_find(L->d, on);
            if (oe && oe->kind == MIMIC_DICT_STRING && strcmp(oe->s, name) == 0)
                return bad(L, MIMIC_EVALUE, "%s: '%s' is named twice", g, name);
        }
        if (L->building) {
            v[i].size = size;
            if (!(v[i].name = dup_s(name)) || !(v[i].units = dup_s(units)))
                return MIMIC_ENOMEM;
        }
    }
    if (sum != total)
        return bad(L, MIMIC_ESHAPE, "%s: the sizes add up to %lld, the model has %lld", g, (long long)sum,
                   (long long)total);
    return MIMIC_OK;
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const mimic_meta_entry *)a)->key, ((const mimic_meta_entry *)b)->key);
}

static int load_meta(loader *L)
{
    mark_group(L, "meta");
    int64_t n = 0;
    for (int64_t i = 0; i < L->count; i++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(L->d, i);
        if (strncmp(e->name, "meta/", 5) != 0)
            continue;
        const char *key = e->name + 5;
        if (!meta_key_ok(key))
            return bad(L, MIMIC_EIO, "'%s': metadata are scalars directly in the group 'meta'", e->name);
        if (e->kind == MIMIC_DICT_STRING) {
            if (e->len > MAX_META_STRING || strlen(e->s) != e->len)
                return bad(L, MIMIC_EVALUE, "'%s': metadata strings are at most %d bytes, without NUL bytes", e->name,
                           MAX_META_STRING);
        } else if (e->kind != MIMIC_DICT_NUMBER && e->kind != MIMIC_DICT_INT) {
            return bad(L, MIMIC_EIO, "'%s' is %s; metadata are strings, numbers or integers", e->name,
                       mimic_dict_kind_name(e->kind));
        }
        if (++n > MAX_META)
            return bad(L, MIMIC_EIO, "more than %d metadata entries", MAX_META);
        if (L->used)
            L->used[i] = true;
        if (L->building) {
            mimic_meta_entry *me = (mimic_meta_entry *)&L->info->meta.entries[L->info->meta.n];
            me->kind = e->kind == MIMIC_DICT_STRING ? MIMIC_META_STRING
                       : e->kind == MIMIC_DICT_NUMBER ? MIMIC_META_NUMBER
                                                      : MIMIC_META_INT;
            me->d = e->d;
            me->i = e->i;
            L->info->meta.n++; /* counted before the strings, so a failure frees what exists */
            if (!(me->key = dup_s(key)) || (me->kind == MIMIC_META_STRING && !(me->s = dup_s(e->s))))
                return MIMIC_ENOMEM;
        }
    }
    if (L->building && L->info->meta.n > 0)
        qsort((void *)L->info->meta.entries, (size_t)L->info->meta.n, sizeof(mimic_meta_entry), cmp_meta);
    return MIMIC_OK;
}

/* One pass over the whole file (see the top of this file). */
static int load_pass(loader *L)
{
    int rc = MIMIC_OK;
    L->total_bytes = 0;
    /* The format tag and version first: an unknown version is reported as
     * such, not as whatever else it does differently. */
    const mimic_dict_entry *e = get(L, "mimic_format", MIMIC_DICT_STRING, true, &rc);
    if (rc)
        return bad(L, MIMIC_EIO, "not a mimic model file ('mimic_format' is not the string '%s')", MIMIC_MODEL_FORMAT);
    if (!e || strcmp(e->s, MIMIC_MODEL_FORMAT) != 0 || e->len != strlen(MIMIC_MODEL_FORMAT))
        return bad(L, MIMIC_EIO, "not a mimic model file (no attribute mimic_format = \"%s\")", MIMIC_MODEL_FORMAT);
    e = get(L, "format_version", MIMIC_DICT_INT, false, &rc);
    if (!e)
        return rc;
    if (e->i != MIMIC_MODEL_FORMAT_VERSION)
        return bad(L, MIMIC_EIO,
                   "model format version %lld is not supported (this mimic %s reads format version %d; "
                   "a newer file needs a newer mimic)",
                   (long long)e->i, MIMIC_VERSION, MIMIC_MODEL_FORMAT_VERSION);
    const char *dts = NULL;
    if ((rc = get_text(L, "dtype", false, &dts)))
        return rc;
    if (strcmp(dts, "float32") == 0)
        L->dt = MIMIC_F32;
    else if (strcmp(dts, "float64") == 0)
        L->dt = MIMIC_F64;
    else
        return bad(L, MIMIC_EDTYPE, "'dtype' is '%s', expected 'float32' or 'float64'", dts);
    int64_t nl = 0;
    if ((rc = get_int(L, "nin", 1, MAX_WIDTH, &L->nin)) || (rc = get_int(L, "nout", 1, MAX_WIDTH, &L->nout)) ||
        (rc = get_int(L, "num_layers", 0, MAX_LAYERS, &nl)))
        return rc;
    L->nlayers = (int)nl;
    const char *hash = NULL;
    if ((rc = get_text(L, "content_hash", false, &hash)))
        return rc;
    if (strlen(hash) != 71 || strncmp(hash, "sha256:", 7) != 0)
        return bad(L, MIMIC_EVALUE, "'content_hash' is not \"sha256:\" and 64 hex digits");
    if (L->building) {
        memcpy(L->info->hash, hash, 72);
        if (!(L->m = mimic_model_new(L->dt, L->nin)))
            return mimic_errcode();
    }
    mark_group(L, "layers");
    int64_t width = L->nin;
    int depth = 0;
    for (int i = 0; i < L->nlayers; i++)
        if ((rc = load_layer(L, i, &width, &depth)))
            return rc;
    if (depth != 0)
        return bad(L, MIMIC_EIO, "a residual block is not closed (%d residual_begin without residual_end)", depth);
    if (width != L->nout)
        return bad(L, MIMIC_ESHAPE, "'nout' is %lld but the layers give %lld features", (long long)L->nout,
                   (long long)width);
    mark_group(L, "encoders");
    mimic_model_info *I = L->info;
    if ((rc = load_encoder(L, "input", L->nin, I ? &I->input_encoder : NULL)) ||
        (rc = load_encoder(L, "output", L->nout, I ? &I->output_encoder : NULL)))
        return rc;
    mark_group(L, "contract");
    int64_t axis = 0;
    if ((rc = get_int(L, "contract/batch_axis", 0, 0, &axis)))
        return rc;
    if ((rc = load_vars(L, "inputs", L->nin, I ? (mimic_io_var **)&I->contract.inputs : NULL,
                        I ? &I->contract.ninputs : NULL)) ||
        (rc = load_vars(L, "outputs", L->nout, I ? (mimic_io_var **)&I->contract.outputs : NULL,
                        I ? &I->contract.noutputs : NULL)))
        return rc;
    return load_meta(L);
}

void mimic_model_info_free(mimic_model_info *info)
{
    if (!info)
        return;
    mimic_encoder *encs[2] = {&info->input_encoder, &info->output_encoder};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < encs[k]->nstages; i++)
            mimic_free((void *)encs[k]->stages[i].a);
        mimic_free((void *)encs[k]->stages);
    }
    for (int i = 0; i < info->contract.ninputs; i++)
        mimic_free((void *)info->contract.inputs[i].name), mimic_free((void *)info->contract.inputs[i].units);
    for (int i = 0; i < info->contract.noutputs; i++)
        mimic_free((void *)info->contract.outputs[i].name), mimic_free((void *)info->contract.outputs[i].units);
    mimic_free((void *)info->contract.inputs);
    mimic_free((void *)info->contract.outputs);
    for (int i = 0; i < info->meta.n; i++)
        mimic_free((void *)info->meta.entries[i].key), mimic_free((void *)info->meta.entries[i].s);
    mimic_free((void *)info->meta.entries);
    mimic_free(info);
}

mimic_model *mimic_model_load(const char *path, mimic_model_info **info_out)
{
    if (info_out)
        *info_out = NULL;
    if (!path) {
        mimic_error(MIMIC_EARG, "mimic_model_load: path is NULL");
        return NULL;
    }
    loader L = {.path = path};
    if (!(L.d = mimic_dict_open(path)))
        return NULL;
    L.count = mimic_dict_count(L.d);
    int rc = MIMIC_OK;
    if (!(L.used = mimic_calloc((size_t)L.count + 1, sizeof(bool))))
        rc = MIMIC_ENOMEM;
    if (!rc)
        rc = load_pass(&L); /* pass 1: check only */
    /* Every entry must be one the spec names: a strict reader is what keeps
     * a version-1 file meaning one thing (extensions need a new version). */
    for (int64_t i = 0; !rc && i < L.count; i++)
        if (!L.used[i])
            rc = bad(&L, MIMIC_EIO, "unexpected entry '%s' (%s) in a format version %d model file",
                     mimic_dict_entry_at(L.d, i)->name, mimic_dict_kind_name(mimic_dict_entry_at(L.d, i)->kind),
                     MIMIC_MODEL_FORMAT_VERSION);
    mimic_free(L.used);
    L.used = NULL;
    if (!rc) {
        L.building = true;
        if (!(L.info = mimic_calloc(1, sizeof *L.info)))
            rc = MIMIC_ENOMEM;
    }
    if (!rc) {
        L.info->format_version = MIMIC_MODEL_FORMAT_VERSION;
        /* pass 1 counted the meta entries (<= MAX_META) */
        if (!(L.info->meta.entries = mimic_calloc(MAX_META, sizeof(mimic_meta_entry))))
            rc = MIMIC_ENOMEM;
    }
    if (!rc)
        rc = load_pass(&L); /* pass 2: read and build */
    if (!rc) {
        char h[72];
        rc = hash_all(L.m, &L.info->contract, &L.info->input_encoder, &L.info->output_encoder, h);
        if (!rc && strcmp(h, L.info->hash) != 0)
            rc = bad(&L, MIMIC_EIO, "content hash mismatch: the file says %s, its contents give %s (modified or "
                     "corrupted)", L.info->hash, h);
    }
    mimic_dict_close(L.d);
    if (rc) {
        if (rc == MIMIC_ENOMEM && mimic_errcode() != MIMIC_ENOMEM)
            mimic_error(MIMIC_ENOMEM, "mimic_model_load: out of memory");
        mimic_model_free(L.m);
        mimic_model_info_free(L.info);
        return NULL;
    }
    if (info_out)
        *info_out = L.info;
    else
        mimic_model_info_free(L.info);
    return L.m;
}
