/* Validation metrics (core/validate/metrics.c): hand-computed values, the
 * degenerate cases the header documents, input checks with their messages,
 * int64/bool/strided inputs, and out-of-memory exits (no leaks under ASan).
 * The comparison with NumPy/SciPy is tests/lua/test_validate.lua. */
#include "check.h"
#include "testutil.h"
#include "mimic/ops.h"
#include "mimic/validate.h"

#include <stdlib.h>

#define F64(...) mk(MIMIC_F64, 1, (int64_t[]){(int64_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double))}, (double[]){__VA_ARGS__})

TEST(test_regression_by_hand)
{
    /* 3 rows x 2 columns */
    mimic_tensor *p = mk(MIMIC_F64, SHAPE_OF(3, 2), (double[]){1, 10, 2, 20, 4, 30});
    mimic_tensor *r = mk(MIMIC_F64, SHAPE_OF(3, 2), (double[]){1, 10, 2, 20, 3, 31});
    CHECK(mimic_val_ncols(r) == 2);
    mimic_val_reg o[2];
    CHECK_OK(mimic_val_regression(p, r, 0.0, o));
    CHECK(o[0].n == 3);
    CHECK_NEAR(o[0].bias, 1.0 / 3, 1e-15);
    CHECK_NEAR(o[0].rmse, sqrt(1.0 / 3), 1e-15);
    CHECK_NEAR(o[0].max_abs, 1, 0);
    CHECK_NEAR(o[0].rel, (1.0 / 3) / 3, 1e-15);
    /* ref column 0 = {1,2,3}: mean 2, SS_tot 2, SS_res 1 */
    CHECK_NEAR(o[0].r2, 0.5, 1e-15);
    CHECK_NEAR(o[0].spearman, 1, 1e-15);
    CHECK_NEAR(o[1].bias, -1.0 / 3, 1e-15);
    mimic_tensor_free(p);
    mimic_tensor_free(r);
}

TEST(test_degenerate_values)
{
    mimic_val_reg o;
    mimic_tensor *c = F64(2, 2, 2), *d = F64(2, 2, 3);
    CHECK_OK(mimic_val_regression(c, c, 0, &o));
    CHECK(o.r2 == 1 && isnan(o.pearson) && isnan(o.spearman));
    CHECK_OK(mimic_val_regression(d, c, 0, &o));
    CHECK(o.r2 == 0); /* constant reference, imperfect prediction */
    mimic_val_moments m;
    CHECK_OK(mimic_val_moments_of(c, &m));
    CHECK(m.var == 0 && isnan(m.skew) && isnan(m.kurt));
    mimic_tensor *one = F64(5);
    CHECK_OK(mimic_val_moments_of(one, &m));
    CHECK(m.n == 1 && m.mean == 5 && isnan(m.var));
    /* chi2: bins empty in both are skipped; identical histograms: p = 1 */
    double chi2, p;
    int dof;
    CHECK_OK(mimic_val_chi2(4, (double[]){0, 3, 0, 7}, (double[]){0, 6, 0, 14}, &chi2, &dof, &p));
    CHECK(dof == 1 && chi2 == 0 && fabs(p - 1) < 1e-15);
    CHECK_OK(mimic_val_chi2(1, (double[]){3}, (double[]){4}, &chi2, &dof, &p));
    CHECK(dof == 0 && p == 1);
    /* chi2 with dof 2, statistic x: p = exp(-x/2). a = {10,20,30}, b = {30,20,10} */
    CHECK_OK(mimic_val_chi2(3, (double[]){10, 20, 30}, (double[]){30, 20, 10}, &chi2, &dof, &p));
    CHECK(dof == 2);
    CHECK_NEAR(chi2, 2 * (400.0 / 40) + 0 + 0, 1e-12); /* (a-b)^2/(a+b) for equal totals */
    CHECK_NEAR(p, exp(-chi2 / 2), 1e-14);
    double js;
    CHECK_OK(mimic_val_js(2, (double[]){1, 0}, (double[]){0, 1}, &js));
    CHECK(js == 1);
    mimic_val_holes h;
    CHECK_OK(mimic_val_holes_count(4, (double[]){1, 2, 0, 1}, (double[]){0, 2, 1, 1}, &h));
    CHECK(h.ref_bins == 3 && h.holes == 1 && h.spurious == 1);
    CHECK_NEAR(h.hole_mass, 0.25, 1e-15);
    CHECK_NEAR(h.spurious_mass, 0.25, 1e-15);
    CHECK(mimic_val_kolmogorov_sf(0) == 1 && mimic_val_kolmogorov_sf(-1) == 1);
    CHECK(mimic_val_kolmogorov_sf(10) < 1e-80 && mimic_val_kolmogorov_sf(10) >= 0);
    mimic_tensor_free(c);
    mimic_tensor_free(d);
    mimic_tensor_free(one);
}

TEST(test_binned_and_histograms)
{
    /* values [3 rows, 2 cols], one coordinate per row */
    mimic_tensor *v = mk(MIMIC_F64, SHAPE_OF(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    mimic_tensor *c = F64(0.5, 1.5, 2.0); /* 2.0 is the last edge: in the last bin */
    int64_t count[2];
    double mean[2], q[4];
    CHECK_OK(mimic_val_binned_quantiles(v, c, 2, (double[]){0, 1, 2}, 2, (double[]){0, 1}, count, mean, q));
    CHECK(count[0] == 2 && count[1] == 4);
    CHECK(mean[0] == 1.5 && mean[1] == 4.5);
    CHECK(q[0] == 1 && q[1] == 2 && q[2] == 3 && q[3] == 6);
    double h[2];
    int64_t out;
    mimic_tensor *x = F64(-1, 0, 0.99, 1, 2, 3);
    CHECK_OK(mimic_val_histogram(x, 2, (double[]){0, 1, 2}, h, &out));
    CHECK(h[0] == 2 && h[1] == 2 && out == 2);
    double h2[4];
    mimic_tensor *y = F64(0, 0, 1, 1, 1, 0);
    CHECK_OK(mimic_val_histogram2d(x, y, 2, (double[]){0, 1, 2}, 2, (double[]){0, 0.5, 1}, h2, &out));
    CHECK(h2[0] == 1 && h2[1] == 1 && h2[2] == 0 && h2[3] == 2 && out == 2); /* y = 1 is the closed last edge */
    mimic_tensor_free(v);
    mimic_tensor_free(c);
    mimic_tensor_free(x);
    mimic_tensor_free(y);
}

TEST(test_other_dtypes_and_views)
{
    /* int64 labels, bool labels, a transposed float32 input */
    mimic_tensor *p = mk(MIMIC_I64, SHAPE_OF(4), (double[]){0, 1, 1, 2});
    mimic_tensor *t = mk(MIMIC_I64, SHAPE_OF(4), (double[]){0, 1, 2, 2});
    int64_t cm[9];
    CHECK_OK(mimic_val_confusion(p, t, 3, cm));
    CHECK(cm[0] == 1 && cm[4] == 1 && cm[7] == 1 && cm[8] == 1);
    mimic_val_class s;
    double pr[3], rc[3], f1[3];
    CHECK_OK(mimic_val_class_scores(3, cm, &s, pr, rc, f1));
    CHECK_NEAR(s.accuracy, 0.75, 0);
    CHECK_NEAR(s.balanced_accuracy, (1 + 1 + 0.5) / 3, 1e-15);
    CHECK_NEAR(pr[1], 0.5, 0);
    mimic_tensor *score = F64(0.1, 0.4, 0.35, 0.8);
    mimic_tensor *lab = mk(MIMIC_BOOL, SHAPE_OF(4), (double[]){0, 0, 1, 1});
    double auc, *fpr, *tpr, *thr;
    int64_t np_;
    CHECK_OK(mimic_val_roc(score, lab, &auc, &np_, &fpr, &tpr, &thr));
    CHECK_NEAR(auc, 0.75, 1e-15);
    CHECK(np_ == 5 && isinf(thr[0]) && fpr[4] == 1 && tpr[4] == 1);
    mimic_free(fpr);
    mimic_free(tpr);
    mimic_free(thr);
    mimic_tensor *m = mk(MIMIC_F32, SHAPE_OF(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    mimic_tensor *mt = mimic_transpose(m, 0, 1); /* [3,2]: columns {1,2,3}, {4,5,6} */
    mimic_val_moments mo[2];
    CHECK_OK(mimic_val_moments_of(mt, mo));
    CHECK(mo[0].mean == 2 && mo[1].mean == 5 && mo[1].var == 1);
    mimic_tensor_free(p);
    mimic_tensor_free(t);
    mimic_tensor_free(score);
    mimic_tensor_free(lab);
    mimic_tensor_free(m);
    mimic_tensor_free(mt);
}

TEST(test_conservation)
{
    mimic_tensor *b = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2, 0, 0});
    mimic_tensor *a = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2.5, 0.1, 0});
    mimic_val_conservation o;
    CHECK_OK(mimic_val_conservation_check(b, a, NULL, &o));
    CHECK_NEAR(o.global_rel, 0.6 / 3, 1e-15);
    CHECK_NEAR(o.max_row_rel, 0.5 / 3, 1e-15);
    CHECK_NEAR(o.mean_row_rel, (0.5 / 3 + 0.1) / 2, 1e-15); /* row 2 sums to 0 before: absolute residual */
    mimic_tensor *w = F64(2, 0);
    CHECK_OK(mimic_val_conservation_check(b, a, w, &o));
    CHECK_NEAR(o.global_rel, 0.2 / 2, 1e-15);
    mimic_tensor *w3 = F64(1, 1, 1);
    CHECK_ERR(mimic_val_conservation_check(b, a, w3, &o), MIMIC_ESHAPE, "one per column");
    mimic_tensor_free(b);
    mimic_tensor_free(a);
    mimic_tensor_free(w);
    mimic_tensor_free(w3);
}

TEST(test_errors)
{
    mimic_val_reg o[2];
    mimic_tensor *nan2 = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2, 3, NAN});
    mimic_tensor *ok2 = mk(MIMIC_F64, SHAPE_OF(2, 2), (double[]){1, 2, 3, 4});
    CHECK_ERR(mimic_val_regression(ok2, nan2, 0, o), MIMIC_EVALUE, "ref has NaN at row 1, column 1");
    CHECK_ERR(mimic_val_regression(nan2, ok2, 0, o), MIMIC_EVALUE, "validate_regression: pred has NaN");
    mimic_tensor *inf1 = F64(1, INFINITY);
    CHECK_ERR(mimic_val_ks(inf1, inf1, NULL, NULL), MIMIC_EVALUE, "a has an infinity at element 1");
    mimic_tensor *v3 = F64(1, 2, 3);
    CHECK_ERR(mimic_val_regression(v3, ok2, 0, o), MIMIC_ESHAPE, "pred [3] and ref [2,2]");
    CHECK_ERR(mimic_val_regression(ok2, ok2, -1, o), MIMIC_EARG, "rel_floor");
    CHECK_ERR(mimic_val_regression(NULL, ok2, 0, o), MIMIC_EARG, "pred is NULL");
    mimic_tensor *empty = mimic_zeros(1, (int64_t[]){0}, MIMIC_F64);
    CHECK_ERR(mimic_val_regression(empty, empty, 0, o), MIMIC_ESHAPE, "no samples");
    CHECK_ERR(mimic_val_wasserstein(empty, v3, NULL), MIMIC_ESHAPE, "a is empty");
    double h[2];
    CHECK_ERR(mimic_val_histogram(v3, 2, (double[]){0, 2, 1}, h, NULL), MIMIC_EARG, "strictly increasing");
    CHECK_ERR(mimic_val_histogram(v3, 1, (double[]){0, NAN}, h, NULL), MIMIC_EARG, "finite");
    CHECK_ERR(mimic_val_chi2(2, (double[]){0, 0}, (double[]){1, 1}, NULL, NULL, NULL), MIMIC_EVALUE, "a is empty");
    CHECK_ERR(mimic_val_chi2(2, (double[]){-1, 1}, (double[]){1, 1}, NULL, NULL, NULL), MIMIC_EVALUE, "bin 0");
    int64_t cnt[1];
    double mean[1], q[1];
    CHECK_ERR(mimic_val_binned_quantiles(v3, ok2, 1, (double[]){0, 1}, 1, (double[]){0.5}, cnt, mean, q),
              MIMIC_ESHAPE, "coord has 4 elements");
    CHECK_ERR(mimic_val_binned_quantiles(v3, v3, 1, (double[]){0, 1}, 1, (double[]){95}, cnt, mean, q), MIMIC_EARG,
              "probability in [0, 1]");
    int64_t cm[4];
    mimic_tensor *frac = F64(0.5, 1);
    CHECK_ERR(mimic_val_confusion(frac, frac, 2, cm), MIMIC_EVALUE, "labels are integers in 0..1");
    double auc, *f, *t, *th;
    int64_t n;
    mimic_tensor *ones = F64(1, 1);
    CHECK_ERR(mimic_val_roc(frac, ones, &auc, &n, &f, &t, &th), MIMIC_EVALUE, "both classes");
    CHECK(f == NULL && t == NULL && th == NULL);
    double mp[2], fp[2];
    int64_t c2[2];
    mimic_tensor *big = F64(0.5, 1.5);
    CHECK_ERR(mimic_val_calibration(big, ones, 2, c2, mp, fp, NULL), MIMIC_EVALUE, "outside [0, 1]");
    mimic_tensor *lbl = mimic_ones(1, (int64_t[]){3}, MIMIC_F64);
    CHECK_ERR(mimic_val_calibration(big, lbl, 2, c2, mp, fp, NULL), MIMIC_ESHAPE, "label 3");
    mimic_tensor_free(nan2);
    mimic_tensor_free(ok2);
    mimic_tensor_free(inf1);
    mimic_tensor_free(v3);
    mimic_tensor_free(empty);
    mimic_tensor_free(frac);
    mimic_tensor_free(ones);
    mimic_tensor_free(big);
    mimic_tensor_free(lbl);
}

/* Every allocation of each metric fails in turn: each must fail cleanly with
 * ENOMEM (ASan checks for leaks), then succeed with memory back. */
TEST(test_out_of_memory)
{
    mimic_tensor *p = mk(MIMIC_F64, SHAPE_OF(4, 2), (double[]){1, 2, 3, 4, 5, 6, 7, 9});
    mimic_tensor *r = mk(MIMIC_F64, SHAPE_OF(4, 2), (double[]){1, 2, 3, 5, 5, 6, 7, 8});
    mimic_tensor *lab = F64(0, 1, 0, 1, 1, 0, 1, 0);
    use_counting_allocator();
    for (int which = 0; which < 5; which++) {
        int successes = 0, failures = 0;
        for (long k = 0; k < 40 && successes == 0; k++) {
            alloc_fail_next(k);
            mimic_val_reg o[2];
            int64_t cnt[2], np_;
            double mean[2], q[2], auc, *f, *t, *th;
            mimic_val_conservation cons;
            int rc;
            switch (which) {
            case 0: rc = mimic_val_regression(p, r, 0, o); break;
            case 1: rc = mimic_val_binned_quantiles(p, r, 2, (double[]){0, 5, 10}, 1, (double[]){0.5}, cnt, mean, q); break;
            case 2:
                rc = mimic_val_roc(p, lab, &auc, &np_, &f, &t, &th);
                if (rc == 0) {
                    mimic_free(f);
                    mimic_free(t);
                    mimic_free(th);
                }
                break;
            case 3: rc = mimic_val_conservation_check(p, r, NULL, &cons); break;
            default: rc = mimic_val_ks(p, r, &auc, NULL); break;
            }
            oom_tally(rc == 0, &successes, &failures);
            alloc_fail_none();
        }
        CHECK(successes == 1 && failures >= 1);
    }
    mimic_set_allocator(NULL);
    mimic_tensor_free(p);
    mimic_tensor_free(r);
    mimic_tensor_free(lab);
}

int main(void)
{
    RUN(test_regression_by_hand);
    RUN(test_degenerate_values);
    RUN(test_binned_and_histograms);
    RUN(test_other_dtypes_and_views);
    RUN(test_conservation);
    RUN(test_errors);
    RUN(test_out_of_memory);
    return CHECK_DONE();
}
