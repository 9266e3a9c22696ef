/* Plan-side kernels of the spatial records (conv, pools), included twice by
 * plan.c with T = float / double, like kernels.h. Geometry is always 3-D
 * here: unused leading dims have size, kernel, stride, dilation 1 and
 * padding 0 (mimic_model_add_* pads them that way). They allocate nothing. */

/* col [cg * kvol, nt] = the input patches of output positions [t0, t0 + nt)
 * of channels [c0, c0 + cg) of one sample x [C, S0, S1, S2]. Zero or
 * circular (periodic) padding. */
static void SFX(im2col)(const mimic_spatial *g, const int64_t *osz, const T *x, int64_t c0, int64_t cg, int64_t t0,
                        int64_t nt, T *col)
{
    const int64_t S0 = g->size[0], S1 = g->size[1], S2 = g->size[2], O1 = osz[1], O2 = osz[2];
    const bool circ = g->circular;
    T *row = col;
    for (int64_t c = 0; c < cg; c++) {
        const T *xc = x + (c0 + c) * S0 * S1 * S2;
        for (int64_t kd = 0; kd < g->kernel[0]; kd++)
            for (int64_t kh = 0; kh < g->kernel[1]; kh++)
                for (int64_t kw = 0; kw < g->kernel[2]; kw++, row += nt) {
                    /* walk the tile line by line: (od, oh, ow) advance without divisions */
                    int64_t j = 0, od = t0 / (O1 * O2), oh = t0 / O2 % O1, ow = t0 % O2;
                    while (j < nt) {
                        int64_t seg = O2 - ow < nt - j ? O2 - ow : nt - j; /* the rest of this output line */
                        int64_t id = od * g->stride[0] - g->padding[0] + kd * g->dilation[0];
                        int64_t ih = oh * g->stride[1] - g->padding[1] + kh * g->dilation[1];
                        if (circ) {
                            id = id < 0 ? id + S0 : id >= S0 ? id - S0 : id;
                            ih = ih < 0 ? ih + S1 : ih >= S1 ? ih - S1 : ih;
                        }
                        T *r = row + j;
                        if (id < 0 || id >= S0 || ih < 0 || ih >= S1) {
                            for (int64_t q = 0; q < seg; q++)
                                r[q] = 0;
                        } else {
                            const T *xl = xc + (id * S1 + ih) * S2;
                            int64_t s2 = g->stride[2], iw0 = ow * s2 - g->padding[2] + kw * g->dilation[2];
                            if (circ) {
                                for (int64_t q = 0; q < seg; q++) {
                                    int64_t iw = iw0 + q * s2;
                                    iw = iw < 0 ? iw + S2 : iw >= S2 ? iw - S2 : iw;
                                    r[q] = xl[iw];
                                }
                            } else {
                                /* q in [qa, qb) reads inside the line; zeros around */
                                int64_t qa, qb;
                                if (s2 == 1) /* the common case: no division */
                                    qa = iw0 >= 0 ? 0 : -iw0, qb = S2 - iw0;
                                else
                                    qa = iw0 >= 0 ? 0 : (-iw0 + s2 - 1) / s2,
                                    qb = iw0 > S2 - 1 ? 0 : (S2 - 1 - iw0) / s2 + 1;
                                if (qa > seg) qa = seg;
                                if (qb > seg) qb = seg;
                                if (qb < qa) qb = qa;
                                for (int64_t q = 0; q < qa; q++)
                                    r[q] = 0;
                                if (s2 == 1)
                                    memcpy(r + qa, xl + iw0 + qa, (size_t)(qb - qa) * sizeof(T));
                                else
                                    for (int64_t q = qa; q < qb; q++)
                                        r[q] = xl[iw0 + q * s2];
                                for (int64_t q = qb; q < seg; q++)
                                    r[q] = 0;
                            }
                        }
                        j += seg;
                        ow = 0;
                        if (++oh == O1)
                            oh = 0, od++;
                    }
                }
    }
}

/* Deterministic tile product, for conv (w [M, K] row-major: wsm = K, wsk = 1)
 * and transposed conv (w [K, M] read transposed: wsm = 1, wsk = M):
 * y[m * ldy + j] = sum_k w[m * wsm + k * wsk] x[k * ldx + j] (+ b[m] if b),
 * the sum in k order for every j (independent of nt and of the tiling). */
static void SFX(gemm_det)(int64_t M, int64_t K, int64_t nt, const T *w, int64_t wsm, int64_t wsk, const T *x,
                          int64_t ldx, const T *b, T *y, int64_t ldy)
{
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
    for (int64_t m = 0; m < M; m++) {
        T *yr = y + m * ldy;
        for (int64_t j = 0; j < nt; j++)
            yr[j] = 0;
        for (int64_t k = 0; k < K; k++) {
            T wv = w[m * wsm + k * wsk];
            const T *xr = x + k * ldx;
            for (int64_t j = 0; j < nt; j++)
                yr[j] += wv * xr[j];
        }
        if (b)
            for (int64_t j = 0; j < nt; j++)
                yr[j] += b[m];
    }
}

/* One sample: max (max) or average pooling of x [C, S...] into y [C, O...].
 * Padding never wins a max; count_include_pad (g->circular) picks the
 * average's divisor: prod k, or the in-bounds count. NaN propagates. */
static void SFX(pool)(const mimic_spatial *g, const int64_t *osz, bool max, const T *x, T *y)
{
    const int64_t S0 = g->size[0], S1 = g->size[1], S2 = g->size[2];
    const T kv = (T)(g->kernel[0] * g->kernel[1] * g->kernel[2]);
    bool dense_win = max && g->padding[0] == 0 && g->padding[1] == 0 && g->padding[2] == 0 && g->dilation[0] == 1 &&
                     g->dilation[1] == 1 && g->dilation[2] == 1;
    if (dense_win) {
        /* the common max pool (no padding, no dilation): every window is in bounds */
        for (int64_t c = 0; c < g->in_channels; c++) {
            const T *xc = x + c * S0 * S1 * S2;
            for (int64_t od = 0; od < osz[0]; od++)
                for (int64_t oh = 0; oh < osz[1]; oh++)
                    for (int64_t ow = 0; ow < osz[2]; ow++) {
                        T acc = -(T)INFINITY;
                        bool nan = false;
                        for (int64_t kd = 0; kd < g->kernel[0]; kd++)
                            for (int64_t kh = 0; kh < g->kernel[1]; kh++) {
                                const T *xl = xc + ((od * g->stride[0] + kd) * S1 + oh * g->stride[1] + kh) * S2 +
                                              ow * g->stride[2];
                                for (int64_t kw = 0; kw < g->kernel[2]; kw++) {
                                    T v = xl[kw];
                                    acc = v > acc ? v : acc;
                                    nan |= v != v;
                                }
                            }
                        *y++ = nan ? (T)NAN : acc;
                    }
        }
        return;
    }
    for (int64_t c = 0; c < g->in_channels; c++) {
        const T *xc = x + c * S0 * S1 * S2;
        for (int64_t od = 0; od < osz[0]; od++)
            for (int64_t oh = 0; oh < osz[1]; oh++)
                for (int64_t ow = 0; ow < osz[2]; ow++) {
                    T acc = max ? -(T)INFINITY : 0;
                    int64_t cnt = 0;
                    for (int64_t kd = 0; kd < g->kernel[0]; kd++) {
                        int64_t id = od * g->stride[0] - g->padding[0] + kd * g->dilation[0];
                        if (id < 0 || id >= S0)
                            continue;
                        for (int64_t kh = 0; kh < g->kernel[1]; kh++) {
                            int64_t ih = oh * g->stride[1] - g->padding[1] + kh * g->dilation[1];
                            if (ih < 0 || ih >= S1)
                                continue;
                            const T *xl = xc + (id * S1 + ih) * S2;
                            for (int64_t kw = 0; kw < g->kernel[2]; kw++) {
                                int64_t iw = ow * g->stride[2] - g->padding[2] + kw * g->dilation[2];
                                if (iw < 0 || iw >= S2)
                                    continue;
                                T v = xl[iw];
                                if (max)
                                    acc = (v > acc || v != v) && acc == acc ? v : acc;
                                else
                                    acc += v;
                                cnt++;
                            }
                        }
                    }
                    if (!max)
                        acc /= g->circular ? kv : (T)cnt;
                    *y++ = acc;
                }
    }
}

/* One sample: nearest upsampling of x [C, S...] by the integer factors
 * g->stride into y [C, O...] (O = S * factor): y[o] = x[o / factor]. */
static void SFX(upsample)(const mimic_spatial *g, const int64_t *osz, const T *x, T *y)
{
    const int64_t S0 = g->size[0], S1 = g->size[1], S2 = g->size[2];
    for (int64_t c = 0; c < g->in_channels; c++) {
        const T *xc = x + c * S0 * S1 * S2;
        for (int64_t od = 0; od < osz[0]; od++)
            for (int64_t oh = 0; oh < osz[1]; oh++) {
                const T *xl = xc + ((od / g->stride[0]) * S1 + oh / g->stride[1]) * S2;
                for (int64_t ow = 0; ow < osz[2]; ow++)
                    *y++ = xl[ow / g->stride[2]];
            }
    }
}

/* One sample: x [C, S] -> y [C], the mean or max over S. */
static void SFX(global_pool)(int64_t C, int64_t S, bool max, const T *x, T *y)
{
    for (int64_t c = 0; c < C; c++) {
        const T *xc = x + c * S;
        T acc = max ? -(T)INFINITY : 0;
        for (int64_t s = 0; s < S; s++) {
            if (max)
                acc = (xc[s] > acc || xc[s] != xc[s]) && acc == acc ? xc[s] : acc;
            else
                acc += xc[s];
        }
        y[c] = max ? acc : acc / (T)S;
    }
}

/* Transposed conv, one group of one sample: y [ocg, O...] += the columns
 * col [ocg * kvol, nt] of input positions [t0, t0 + nt) scattered to their
 * output positions o = i stride - padding + k dilation (col2im). */
static void SFX(col2im_t)(const mimic_spatial *g, const int64_t *osz, const T *col, int64_t ocg, int64_t t0,
                          int64_t nt, T *y)
{
    const int64_t S1 = g->size[1], S2 = g->size[2], O0 = osz[0], O1 = osz[1], O2 = osz[2];
    const T *row = col;
    for (int64_t oc = 0; oc < ocg; oc++) {
        T *yc = y + oc * O0 * O1 * O2;
        for (int64_t kd = 0; kd < g->kernel[0]; kd++)
            for (int64_t kh = 0; kh < g->kernel[1]; kh++)
                for (int64_t kw = 0; kw < g->kernel[2]; kw++, row += nt) {
                    int64_t id = t0 / (S1 * S2), ih = t0 / S2 % S1, iw = t0 % S2;
                    const int64_t dd = kd * g->dilation[0] - g->padding[0], dh = kh * g->dilation[1] - g->padding[1],
                                  dw = kw * g->dilation[2] - g->padding[2];
                    for (int64_t j = 0; j < nt; j++) {
                        int64_t od = id * g->stride[0] + dd, oh = ih * g->stride[1] + dh, ow = iw * g->stride[2] + dw;
                        if (od >= 0 && od < O0 && oh >= 0 && oh < O1 && ow >= 0 && ow < O2)
                            yc[(od * O1 + oh) * O2 + ow] += row[j];
                        if (++iw == S2) {
                            iw = 0;
                            if (++ih == S1)
                                ih = 0, id++;
                        }
                    }
                }
    }
}

/* One sample: linear upsampling of x [C, S...] into y [C, O...] with the
 * taps tp[axis][o] (two inputs and weights per output coordinate), summed
 * in double as core/ops/conv.c does. */
static void SFX(upsample_linear)(const mimic_spatial *g, const int64_t *osz, const uptap *const *tp, const T *x, T *y)
{
    const int64_t S1 = g->size[1], S2 = g->size[2], lin = g->size[0] * S1 * S2;
    for (int64_t c = 0; c < g->in_channels; c++) {
        const T *xc = x + c * lin;
        for (int64_t o0 = 0; o0 < osz[0]; o0++)
            for (int64_t o1 = 0; o1 < osz[1]; o1++)
                for (int64_t o2 = 0; o2 < osz[2]; o2++) {
                    const uptap *a = &tp[0][o0], *b = &tp[1][o1], *e = &tp[2][o2];
                    double acc = 0;
                    for (int t0 = 0; t0 < 2; t0++)
                        for (int t1 = 0; t1 < 2; t1++)
                            for (int t2 = 0; t2 < 2; t2++) {
                                double wv = a->w[t0] * b->w[t1] * e->w[t2];
                                if (wv == 0)
                                    continue;
                                acc += wv * (double)xc[(a->i[t0] * S1 + b->i[t1]) * S2 + e->i[t2]];
                            }
                    *y++ = (T)acc;
                }
    }
}
