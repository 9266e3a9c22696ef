/* Gradient-check cases of convolution and pooling (included by
 * test_autograd.c). One case per registered name; a case covering several
 * variants concatenates their flattened results, so each variant's gradient
 * shows in the total. Inputs include non-contiguous views. 1-D and 3-D forms
 * and second derivatives are in test_conv.c. */

/* The flattened results joined into one 1-D tensor (all consumed; NULL propagates). */
static mimic_tensor *cv_join(int n, mimic_tensor **r)
{
    mimic_tensor *flat[4] = {0};
    bool ok = true;
    for (int i = 0; i < n; i++) {
        flat[i] = r[i] ? mimic_reshape(r[i], 1, (int64_t[]){-1}) : NULL;
        ok = ok && flat[i];
    }
    mimic_tensor *out = ok ? mimic_cat(flat, n, 0) : NULL;
    for (int i = 0; i < n; i++) {
        mimic_tensor_free(flat[i]);
        mimic_tensor_free(r[i]);
    }
    return out;
}

/* A view of t with dims 2 and 3 swapped (t consumed): non-contiguous input. */
static mimic_tensor *cv_T23(mimic_tensor *t)
{
    mimic_tensor *v = mimic_transpose(t, 2, 3);
    mimic_tensor_free(t);
    return v;
}

/* x [2,4,5,6] (a transposed view), w [4,2,3,2] (groups 2), bias [4]:
 * stride/padding/dilation mixed per dim, and circular padding. */
static void make_conv(mimic_tensor **in) { in[0] = cv_T23(AWAY0(2, 4, 6, 5)), in[1] = AWAY0(4, 2, 3, 2), in[2] = AWAY0(4); }
static mimic_tensor *call_conv(mimic_tensor *const *in)
{
    mimic_conv_opts a = {.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2};
    mimic_conv_opts b = {.stride = {1, 2}, .padding = {1, 2}, .groups = 2, .circular = true};
    return cv_join(2, (mimic_tensor *[]){mimic_conv(in[0], in[1], in[2], &a), mimic_conv(in[0], in[1], NULL, &b)});
}

/* u [2,4,3,3], w [4,2,3,3] (groups 2 -> 4 output channels), bias [4]:
 * stride 2, padding 1, output_padding 1; and stride 1 circular. */
static void make_conv_transpose(mimic_tensor **in)
{
    in[0] = AWAY0(2, 4, 3, 3), in[1] = cv_T23(AWAY0(4, 2, 3, 3)), in[2] = AWAY0(4);
}
static mimic_tensor *call_conv_transpose(mimic_tensor *const *in)
{
    mimic_conv_opts a = {.stride = {2, 2}, .padding = {1, 1}, .groups = 2};
    mimic_conv_opts b = {.padding = {1, 1}, .dilation = {1, 2}, .groups = 2, .circular = true};
    return cv_join(2, (mimic_tensor *[]){mimic_conv_transpose(in[0], in[1], in[2], &a, (int64_t[]){1, 0}),
                                         mimic_conv_transpose(in[0], in[1], NULL, &b, NULL)});
}

/* x [2,4,5,5], gy [2,4,3,5]: kernel 3x3, padding (0, 1), groups 2 -> [4,2,3,3]. */
static void make_conv_weight(mimic_tensor **in) { in[0] = AWAY0(2, 4, 5, 5), in[1] = AWAY0(2, 4, 3, 5); }
static mimic_tensor *call_conv_weight(mimic_tensor *const *in)
{
    mimic_conv_opts a = {.padding = {0, 1}, .groups = 2}, b = {.padding = {0, 1}, .groups = 2, .circular = true};
    return cv_join(2, (mimic_tensor *[]){mimic_conv_weight(in[0], in[1], (int64_t[]){3, 3}, &a),
                                         mimic_conv_weight(in[0], in[1], (int64_t[]){3, 3}, &b)});
}

/* A view of x (borrowed) with a new shape: pooling in 1-D and 3-D over the same values. */
static mimic_tensor *cv_view(const mimic_tensor *x, int ndim, const int64_t *shape)
{
    return mimic_reshape((mimic_tensor *)x, ndim, shape);
}
static mimic_tensor *cv_ref(const mimic_tensor *t)
{
    mimic_tensor_retain((mimic_tensor *)t);
    return (mimic_tensor *)t;
}
static mimic_tensor *cv_pool(bool max, mimic_tensor *x, int nsp, const mimic_pool_opts *o)
{
    mimic_tensor *r = x ? (max ? mimic_max_pool(x, nsp, o, NULL) : mimic_avg_pool(x, nsp, o)) : NULL;
    mimic_tensor_free(x);
    return r;
}

/* Distinct values (w.h.p.), so every window has one maximum. 2-D with
 * padding and dilation, 1-D over the flattened planes, 3-D. */
static void make_max_pool(mimic_tensor **in) { in[0] = cv_T23(AWAY0(2, 3, 6, 5)); }
static mimic_tensor *call_max_pool(mimic_tensor *const *in)
{
    mimic_pool_opts a = {.kernel = {2, 3}, .stride = {2, 2}, .padding = {1, 1}};
    mimic_pool_opts b = {.kernel = {4}, .stride = {3}, .padding = {2}, .dilation = {2}};
    mimic_pool_opts c = {.kernel = {2, 2, 3}, .stride = {1, 2, 1}};
    return cv_join(3, (mimic_tensor *[]){cv_pool(true, cv_ref(in[0]), 2, &a),
                                         cv_pool(true, cv_view(in[0], 3, (int64_t[]){2, 3, 30}), 1, &b),
                                         cv_pool(true, cv_view(in[0], 5, (int64_t[]){1, 2, 3, 5, 6}), 3, &c)});
}

/* g [2,3,3,3] unpooled to [2,3,5,6] at the maxima of fixed values
 * sin(1.37 i) under overlapping windows (kernel 3, stride 2, padding 1),
 * so some positions collect several gradients. */
static void make_max_pool_backward(mimic_tensor **in) { in[0] = AWAY0(2, 3, 3, 3); }
static mimic_tensor *call_max_pool_backward(mimic_tensor *const *in)
{
    const int64_t shape[4] = {2, 3, 5, 6};
    mimic_tensor *a = mimic_arange(0, 180, 1, MIMIC_F64), *s = mimic_scalar(1.37, MIMIC_F64);
    mimic_tensor *m = mimic_binary(MIMIC_MUL, a, s), *v = mimic_unary(MIMIC_SIN, m);
    mimic_tensor *x = mimic_reshape(v, 4, shape), *idx = NULL;
    mimic_pool_opts o = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    mimic_tensor *p = mimic_max_pool(x, 2, &o, &idx);
    mimic_tensor *r = idx ? mimic_max_pool_backward(in[0], idx, shape, 2) : NULL;
    mimic_tensor *fr[] = {a, s, m, v, x, idx, p};
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++)
        mimic_tensor_free(fr[i]);
    return r;
}

static void make_avg_pool(mimic_tensor **in) { in[0] = cv_T23(AWAY0(2, 3, 6, 5)); }
static mimic_tensor *call_avg_pool(mimic_tensor *const *in)
{
    mimic_pool_opts a = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    mimic_pool_opts b = {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 1}, .exclude_pad = true};
    mimic_pool_opts c = {.kernel = {4}, .padding = {2}};
    return cv_join(3, (mimic_tensor *[]){cv_pool(false, cv_ref(in[0]), 2, &a), cv_pool(false, cv_ref(in[0]), 2, &b),
                                         cv_pool(false, cv_view(in[0], 3, (int64_t[]){2, 3, 30}), 1, &c)});
}

/* g [2,3,3,3] back to [2,3,5,6] (kernel 3, stride 2, padding 1), with and without the padding counted. */
static void make_avg_pool_backward(mimic_tensor **in) { in[0] = AWAY0(2, 3, 3, 3); }
static mimic_tensor *call_avg_pool_backward(mimic_tensor *const *in)
{
    mimic_pool_opts a = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
    mimic_pool_opts b = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .exclude_pad = true};
    const int64_t shape[4] = {2, 3, 5, 6};
    return cv_join(2, (mimic_tensor *[]){mimic_avg_pool_backward(in[0], shape, 2, &a),
                                         mimic_avg_pool_backward(in[0], shape, 2, &b)});
}

/* x [2,2,3,4] (a transposed view): nearest x2, bilinear to [5,7] from
 * half-pixel centres and with align_corners, and down to [2,3]. */
static void make_upsample(mimic_tensor **in) { in[0] = cv_T23(AWAY0(2, 2, 4, 3)); }
static mimic_tensor *call_upsample(mimic_tensor *const *in)
{
    const mimic_tensor *x = in[0];
    return cv_join(4, (mimic_tensor *[]){mimic_upsample(x, 2, (int64_t[]){6, 8}, MIMIC_UPSAMPLE_NEAREST, false),
                                         mimic_upsample(x, 2, (int64_t[]){5, 7}, MIMIC_UPSAMPLE_LINEAR, false),
                                         mimic_upsample(x, 2, (int64_t[]){5, 7}, MIMIC_UPSAMPLE_LINEAR, true),
                                         mimic_upsample(x, 2, (int64_t[]){2, 3}, MIMIC_UPSAMPLE_LINEAR, false)});
}

/* g [2,2,5,7] back to [2,2,3,4] (linear) and g's 1-D view [4,5,7] to [4,5,3] (nearest). */
static void make_upsample_backward(mimic_tensor **in) { in[0] = AWAY0(2, 2, 5, 7); }
static mimic_tensor *call_upsample_backward(mimic_tensor *const *in)
{
    mimic_tensor *v = cv_view(in[0], 3, (int64_t[]){4, 5, 7});
    mimic_tensor *r = v ? mimic_upsample_backward(v, (int64_t[]){4, 5, 3}, 1, MIMIC_UPSAMPLE_NEAREST, false) : NULL;
    mimic_tensor_free(v);
    return cv_join(2, (mimic_tensor *[]){mimic_upsample_backward(in[0], (int64_t[]){2, 2, 3, 4}, 2,
                                                                 MIMIC_UPSAMPLE_LINEAR, false), r});
}

static const gcase cases_conv[] = {
    CASE(conv), CASE(conv_transpose), CASE(conv_weight), CASE(max_pool), CASE(max_pool_backward), CASE(avg_pool), CASE(avg_pool_backward), CASE(upsample),
    CASE(upsample_backward),
    {NULL, NULL, NULL},
};
