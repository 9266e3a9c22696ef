/* The k-distribution container (files, validation) and the reference
 * gas-optics kernel. See rad_kdist.h and docs/radiation-kdist.md. */
#include "mimic/rad_kdist.h"
#include "mimic/io.h"
#include "mimic/rad_rte.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define KDIST_VERSION 1

static int64_t n_major(const mimic_rad_kdist *k)
{
    return (int64_t)k->nband * k->nt * k->nslot * k->neta * k->ngb;
}
static int64_t n_minor(const mimic_rad_kdist *k)
{
    return (int64_t)MIMIC_KDIST_NMINOR * k->nband * k->nt * k->nslot * k->ngb;
}

void mimic_rad_kdist_free(mimic_rad_kdist *k)
{
    if (!k)
        return;
    mimic_free(k->lnp);
    mimic_free(k->tnode);
    mimic_free(k->k_major);
    mimic_free(k->pfrac);
    mimic_free(k->k_minor);
    mimic_free(k->xsec);
    mimic_free(k->nu1);
    mimic_free(k->nu2);
    mimic_free(k->gweight);
    mimic_free(k);
}

/* Allocates the arrays of a kdist whose sizes are set; shared by the builder
 * (declared in kdist_build.c) and the loader. */
int mimic_rad_kdist_alloc_(mimic_rad_kdist *k);
int mimic_rad_kdist_alloc_(mimic_rad_kdist *k)
{
    k->ngpt = k->nband * k->ngb;
    k->nslot = k->np + 1;
    k->lnp = mimic_calloc((size_t)k->np, sizeof(double));
    k->tnode = mimic_calloc((size_t)k->nt, sizeof(double));
    k->k_major = mimic_calloc((size_t)n_major(k), sizeof(float));
    k->pfrac = mimic_calloc((size_t)n_major(k), sizeof(float));
    k->k_minor = mimic_calloc((size_t)n_minor(k), sizeof(float));
    k->xsec = mimic_calloc((size_t)MIMIC_KDIST_NHALO * k->nband, sizeof(float));
    k->nu1 = mimic_calloc((size_t)k->ngpt, sizeof(double));
    k->nu2 = mimic_calloc((size_t)k->ngpt, sizeof(double));
    k->gweight = mimic_calloc((size_t)k->ngpt, sizeof(double));
    if (!k->lnp || !k->tnode || !k->k_major || !k->pfrac || !k->k_minor || !k->xsec || !k->nu1 || !k->nu2 ||
        !k->gweight)
        return MIMIC_ENOMEM;
    return 0;
}

/* Derived fields: g-point limits and the minor masks (which minor tables
 * are not all zero, so the kernel skips them). */
void mimic_rad_kdist_finish_(mimic_rad_kdist *k);
void mimic_rad_kdist_finish_(mimic_rad_kdist *k)
{
    for (int b = 0; b < k->nband; b++)
        for (int g = 0; g < k->ngb; g++) {
            k->nu1[b * k->ngb + g] = k->band_lo[b];
            k->nu2[b * k->ngb + g] = k->band_hi[b];
            k->gweight[b * k->ngb + g] = 1;
        }
    for (int b = 0; b < k->nband; b++)
        for (int part = 0; part < 2; part++) {
            uint16_t mask = 0;
            int s0 = part == 0 ? k->jsplit + 1 : 0, s1 = part == 0 ? k->nslot : k->jsplit + 1;
            for (int m = 0; m < MIMIC_KDIST_NMINOR; m++)
                for (int t = 0; t < k->nt && !(mask & (1u << m)); t++)
                    for (int s = s0; s < s1 && !(mask & (1u << m)); s++) {
                        const float *v = k->k_minor + ((((int64_t)m * k->nband + b) * k->nt + t) * k->nslot + s) * k->ngb;
                        for (int g = 0; g < k->ngb; g++)
                            if (v[g] != 0)
                                mask |= (uint16_t)(1u << m);
                    }
            k->minor_mask[b][part] = mask;
        }
}

/* --- files ------------------------------------------------------------------------ */

static int put(mimic_dict_writer *w, const char *name, void *data, mimic_dtype dt, int ndim, const int64_t *shape)
{
    mimic_tensor *t = mimic_wrap(data, ndim, shape, NULL, dt, NULL, NULL);
    if (!t)
        return mimic_errcode();
    int rc = mimic_dict_put_tensor(w, name, t);
    mimic_tensor_free(t);
    return rc;
}

int mimic_rad_kdist_save(const mimic_rad_kdist *k, const char *path, const char *prov)
{
    if (!k || !path)
        return mimic_error(MIMIC_EARG, "kdist_save: k and path must not be NULL");
    mimic_dict_writer *w = mimic_dict_create(path);
    if (!w)
        return mimic_errcode();
    int64_t key[MIMIC_KDIST_MAX_BAND * 4];
    for (int b = 0; b < k->nband; b++)
        for (int i = 0; i < 4; i++)
            key[b * 4 + i] = k->key[b][i / 2][i % 2];
    double rref[MIMIC_KDIST_MAX_BAND * 2], blo[MIMIC_KDIST_MAX_BAND], bhi[MIMIC_KDIST_MAX_BAND];
    for (int b = 0; b < k->nband; b++) {
        rref[2 * b] = k->r_ref[b][0], rref[2 * b + 1] = k->r_ref[b][1];
        blo[b] = k->band_lo[b], bhi[b] = k->band_hi[b];
    }
    double gb[MIMIC_KDIST_MAX_GB + 1];
    memcpy(gb, k->gbound, sizeof gb);
    int64_t nb = k->nband, s_np = k->np, s_nt = k->nt, s_gb = k->ngb + 1;
    int64_t s_key[3] = {nb, 2, 2}, s_rref[2] = {nb, 2};
    int64_t s_major[5] = {nb, k->nt, k->nslot, k->neta, k->ngb};
    int64_t s_minor[5] = {MIMIC_KDIST_NMINOR, nb, k->nt, k->nslot, k->ngb};
    int64_t s_xsec[2] = {MIMIC_KDIST_NHALO, nb};
    int rc = mimic_dict_put_int(w, "version", KDIST_VERSION);
    if (!rc) rc = mimic_dict_put_int(w, "jsplit", k->jsplit);
    if (!rc) rc = put(w, "lnp", k->lnp, MIMIC_F64, 1, &s_np);
    if (!rc) rc = put(w, "tnode", k->tnode, MIMIC_F64, 1, &s_nt);
    if (!rc) rc = put(w, "gbound", gb, MIMIC_F64, 1, &s_gb);
    if (!rc) rc = put(w, "band_lo", blo, MIMIC_F64, 1, &nb);
    if (!rc) rc = put(w, "band_hi", bhi, MIMIC_F64, 1, &nb);
    if (!rc) rc = put(w, "key", key, MIMIC_I64, 3, s_key);
    if (!rc) rc = put(w, "r_ref", rref, MIMIC_F64, 2, s_rref);
    if (!rc) rc = put(w, "k_major", k->k_major, MIMIC_F32, 5, s_major);
    if (!rc) rc = put(w, "pfrac", k->pfrac, MIMIC_F32, 5, s_major);
    if (!rc) rc = put(w, "k_minor", k->k_minor, MIMIC_F32, 5, s_minor);
    if (!rc) rc = put(w, "xsec", k->xsec, MIMIC_F32, 2, s_xsec);
    if (!rc && prov) rc = mimic_dict_put_string(w, "provenance", prov, strlen(prov));
    /* each "key=value" line also as its own attribute meta/<key> */
    for (const char *s = prov; !rc && s && *s;) {
        const char *e = strchr(s, '\n'), *eq = strchr(s, '=');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (eq && eq < s + len && eq > s && eq - s < 64) {
            char name[80];
            snprintf(name, sizeof name, "meta/%.*s", (int)(eq - s), s);
            int ok = 1;
            for (char *c = name + 5; *c; c++)
                ok &= (*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'));
            if (ok)
                rc = mimic_dict_put_string(w, name, eq + 1, len - (size_t)(eq - s) - 1);
        }
        s = e ? e + 1 : NULL;
    }
    if (rc) {
        mimic_dict_discard(w);
        return rc;
    }
    return mimic_dict_commit(w);
}

/* Reads tensor `name` of dtype dt and rank ndim with dims checked against
 * want[] (-1: any, returned in got[]) into a new buffer the caller frees. */
static void *get(mimic_dict *d, const char *path, const char *name, mimic_dtype dt, int ndim, const int64_t *want,
                 int64_t *got)
{
    const mimic_dict_entry *e = mimic_dict_lookup(d, name);
    if (!e)
        return NULL;
    if (e->kind != MIMIC_DICT_TENSOR || e->dtype != dt || e->ndim != ndim) {
        mimic_error(MIMIC_EIO, "kdist_load: %s: entry \"%s\" must be a %s tensor of rank %d; the file is not a "
                    "k-distribution written by mimic_rad_kdist_save (rebuild it)", path, name,
                    dt == MIMIC_F32 ? "float32" : dt == MIMIC_F64 ? "float64" : "int64", ndim);
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (want && want[i] >= 0 && e->shape[i] != want[i]) {
            mimic_error(MIMIC_EIO, "kdist_load: %s: entry \"%s\" has dimension %d of size %lld, expected %lld "
                        "(wrong shape: the file is inconsistent; rebuild it)", path, name, i,
                        (long long)e->shape[i], (long long)want[i]);
            return NULL;
        }
        if (got)
            got[i] = e->shape[i];
        n *= e->shape[i];
    }
    if (n > ((int64_t)1 << 31)) {
        mimic_error(MIMIC_EIO, "kdist_load: %s: entry \"%s\" is too large", path, name);
        return NULL;
    }
    mimic_tensor *t = mimic_dict_get_tensor(d, name);
    if (!t)
        return NULL;
    size_t bytes = (size_t)n * mimic_dtype_size(dt);
    void *buf = mimic_malloc(bytes ? bytes : 1);
    if (buf)
        memcpy(buf, mimic_data(t), bytes);
    mimic_tensor_free(t);
    return buf;
}

static int check_finite(const char *path, const char *name, const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!(v[i] >= 0) || !isfinite(v[i]))
            return mimic_error(MIMIC_EVALUE, "kdist_load: %s: %s[%lld] = %g; table values must be finite and >= 0 "
                               "(corrupt file: rebuild it)", path, name, (long long)i, (double)v[i]);
    return 0;
}

mimic_rad_kdist *mimic_rad_kdist_load(const char *path)
{
    if (!path) {
        mimic_error(MIMIC_EARG, "kdist_load: path is NULL");
        return NULL;
    }
    mimic_dict *d = mimic_dict_open(path);
    if (!d)
        return NULL;
    mimic_rad_kdist *k = mimic_calloc(1, sizeof *k);
    double *blo = NULL, *bhi = NULL, *gb = NULL, *rref = NULL, *lnp = NULL, *tn = NULL;
    int64_t *key = NULL;
    int64_t ver = 0, js = 0, sh[5];
    int rc = k ? 0 : MIMIC_ENOMEM;
    if (!rc) rc = mimic_dict_get_int(d, "version", &ver);
    if (!rc && ver != KDIST_VERSION)
        rc = mimic_error(MIMIC_EIO, "kdist_load: %s: version %lld, this build reads version %d", path,
                         (long long)ver, KDIST_VERSION);
    if (!rc) rc = mimic_dict_get_int(d, "jsplit", &js);
    if (!rc && !(blo = get(d, path, "band_lo", MIMIC_F64, 1, NULL, sh))) rc = mimic_errcode();
    if (!rc && (sh[0] < 1 || sh[0] > MIMIC_KDIST_MAX_BAND))
        rc = mimic_error(MIMIC_EIO, "kdist_load: %s: %lld bands, expected 1..%d", path, (long long)sh[0],
                         MIMIC_KDIST_MAX_BAND);
    int64_t nb = rc ? 0 : sh[0];
    if (!rc && !(bhi = get(d, path, "band_hi", MIMIC_F64, 1, &nb, NULL))) rc = mimic_errcode();
    if (!rc && !(gb = get(d, path, "gbound", MIMIC_F64, 1, NULL, sh))) rc = mimic_errcode();
    if (!rc && (sh[0] < 2 || sh[0] > MIMIC_KDIST_MAX_GB + 1))
        rc = mimic_error(MIMIC_EIO, "kdist_load: %s: %lld g boundaries, expected 2..%d", path, (long long)sh[0],
                         MIMIC_KDIST_MAX_GB + 1);
    int64_t ngb = rc ? 0 : sh[0] - 1;
    if (!rc && !(lnp = get(d, path, "lnp", MIMIC_F64, 1, NULL, sh))) rc = mimic_errcode();
    int64_t np = rc ? 0 : sh[0];
    if (!rc && !(tn = get(d, path, "tnode", MIMIC_F64, 1, NULL, sh))) rc = mimic_errcode();
    int64_t nt = rc ? 0 : sh[0];
    if (!rc && (np < 3 || np > 1000 || nt < 2 || nt > 1000 || js < 1 || js > np - 2))
        rc = mimic_error(MIMIC_EIO, "kdist_load: %s: %lld pressures, %lld temperatures, split node %lld: need >= 3 "
                         "pressures, >= 2 temperatures, 0 < split < np - 1", path, (long long)np, (long long)nt,
                         (long long)js);
    int64_t s_key[3] = {nb, 2, 2}, s_rref[2] = {nb, 2};
    if (!rc && !(key = get(d, path, "key", MIMIC_I64, 3, s_key, NULL))) rc = mimic_errcode();
    if (!rc && !(rref = get(d, path, "r_ref", MIMIC_F64, 2, s_rref, NULL))) rc = mimic_errcode();
    if (!rc) {
        const mimic_dict_entry *e = mimic_dict_lookup(d, "k_major");
        if (!e)
            rc = mimic_errcode();
        else if (e->ndim != 5)
            rc = mimic_error(MIMIC_EIO, "kdist_load: %s: k_major must have rank 5 (got %d)", path, e->ndim);
        else
            sh[3] = e->shape[3];
    }
    if (!rc && (sh[3] < 2 || sh[3] > 1000))
        rc = mimic_error(MIMIC_EIO, "kdist_load: %s: %lld eta nodes, expected >= 2", path, (long long)sh[3]);
    if (!rc) {
        k->nband = (int)nb, k->ngb = (int)ngb, k->np = (int)np, k->nt = (int)nt, k->neta = (int)sh[3];
        k->jsplit = (int)js;
        rc = mimic_rad_kdist_alloc_(k);
    }
    if (!rc) {
        int64_t s_major[5] = {nb, nt, np + 1, k->neta, ngb}, s_minor[5] = {MIMIC_KDIST_NMINOR, nb, nt, np + 1, ngb};
        int64_t s_xsec[2] = {MIMIC_KDIST_NHALO, nb};
        float *v;
        if (!(v = get(d, path, "k_major", MIMIC_F32, 5, s_major, NULL))) rc = mimic_errcode();
        else mimic_free(k->k_major), k->k_major = v;
        if (!rc && !(v = get(d, path, "pfrac", MIMIC_F32, 5, s_major, NULL))) rc = mimic_errcode();
        else if (!rc) mimic_free(k->pfrac), k->pfrac = v;
        if (!rc && !(v = get(d, path, "k_minor", MIMIC_F32, 5, s_minor, NULL))) rc = mimic_errcode();
        else if (!rc) mimic_free(k->k_minor), k->k_minor = v;
        if (!rc && !(v = get(d, path, "xsec", MIMIC_F32, 2, s_xsec, NULL))) rc = mimic_errcode();
        else if (!rc) mimic_free(k->xsec), k->xsec = v;
    }
    /* Values. */
    if (!rc) {
        memcpy(k->lnp, lnp, (size_t)np * sizeof *lnp);
        memcpy(k->tnode, tn, (size_t)nt * sizeof *tn);
        for (int i = 0; i + 1 < np && !rc; i++)
            if (!(lnp[i + 1] > lnp[i]) || !isfinite(lnp[i + 1]) || !isfinite(lnp[i]))
                rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: lnp must be finite and increasing (node %d)", path, i);
        double dt = nt > 1 ? tn[1] - tn[0] : 0;
        for (int i = 0; i + 1 < nt && !rc; i++)
            if (!(tn[0] > 0) || !(fabs(tn[i + 1] - tn[i] - dt) <= 1e-9 * tn[i]) || !(dt > 0))
                rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: tnode must be > 0, increasing and uniform (node %d)",
                                 path, i);
        if (!rc && !(gb[0] == 0 && gb[ngb] == 1))
            rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: gbound must run from 0 to 1", path);
        for (int i = 0; i < ngb && !rc; i++)
            if (!(gb[i + 1] > gb[i]))
                rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: gbound must be increasing (at %d)", path, i);
        for (int b = 0; b < nb && !rc; b++) {
            if (!(blo[b] >= 0 && bhi[b] > blo[b] && isfinite(bhi[b])))
                rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: band %d limits %g..%g are not valid", path, b, blo[b],
                                 bhi[b]);
            for (int i = 0; i < 4 && !rc; i++)
                if (key[b * 4 + i] < 0 || key[b * 4 + i] > MIMIC_GAS_N2O)
                    rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: key species %lld of band %d is not a line gas",
                                     path, (long long)key[b * 4 + i], b);
            for (int i = 0; i < 2 && !rc; i++)
                if (!(rref[2 * b + i] > 0) || !isfinite(rref[2 * b + i]))
                    rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: r_ref of band %d must be finite and > 0", path, b);
        }
        if (!rc) {
            for (int i = 0; i <= ngb; i++)
                k->gbound[i] = gb[i];
            for (int b = 0; b < nb; b++) {
                k->band_lo[b] = blo[b], k->band_hi[b] = bhi[b];
                k->r_ref[b][0] = rref[2 * b], k->r_ref[b][1] = rref[2 * b + 1];
                for (int i = 0; i < 4; i++)
                    k->key[b][i / 2][i % 2] = (int)key[b * 4 + i];
            }
            k->p_split = exp(lnp[js]);
        }
    }
    if (!rc) rc = check_finite(path, "k_major", k->k_major, n_major(k));
    if (!rc) rc = check_finite(path, "pfrac", k->pfrac, n_major(k));
    if (!rc) rc = check_finite(path, "k_minor", k->k_minor, n_minor(k));
    if (!rc) rc = check_finite(path, "xsec", k->xsec, (int64_t)MIMIC_KDIST_NHALO * k->nband);
    /* Planck fractions sum to 1 per band at every node (float rounding). */
    for (int64_t r = 0; !rc && r < n_major(k) / k->ngb; r++) {
        double s = 0;
        for (int g = 0; g < k->ngb; g++)
            s += k->pfrac[r * k->ngb + g];
        if (!(fabs(s - 1) <= 1e-5))
            rc = mimic_error(MIMIC_EVALUE, "kdist_load: %s: Planck fractions of table row %lld sum to %.9g, not 1 "
                             "(corrupt file: rebuild it)", path, (long long)r, s);
    }
    if (!rc)
        mimic_rad_kdist_finish_(k);
    mimic_free(blo), mimic_free(bhi), mimic_free(gb), mimic_free(rref), mimic_free(lnp), mimic_free(tn);
    mimic_free(key);
    mimic_dict_close(d);
    if (rc) {
        mimic_rad_kdist_free(k);
        return NULL;
    }
    return k;
}

/* --- the reference kernel ------------------------------------------------------------ */

/* Interval index i of x in the increasing nodes v[lo..hi] (lo <= i < hi) and
 * the weight of node i + 1, clamped to [0, 1]. */
static inline int locate(const double *v, int lo, int hi, double x, double *f)
{
    int a = lo, b = hi;
    while (b - a > 1) {
        int m = (a + b) / 2;
        if (v[m] <= x)
            a = m;
        else
            b = m;
    }
    double w = (x - v[a]) / (v[a + 1] - v[a]);
    *f = w < 0 ? 0 : w > 1 ? 1 : w;
    return a;
}

static void layer_optics(const mimic_rad_kdist *k, const mimic_rad_layer *L, double *restrict tau,
                         double *restrict pf)
{
    const int ngb = k->ngb, neta = k->neta, nslot = k->nslot, nt = k->nt;
    const int part = L->p < k->p_split ? 1 : 0;
    double fp, ft;
    int jp = part ? locate(k->lnp, 0, k->jsplit, log(L->p), &fp) : locate(k->lnp, k->jsplit, k->np - 1, log(L->p), &fp);
    int slot = jp + (part ? 0 : 1);
    double dt = k->tnode[1] - k->tnode[0], xt = (L->t - k->tnode[0]) / dt;
    int jt = (int)floor(xt);
    jt = jt < 0 ? 0 : jt > nt - 2 ? nt - 2 : jt;
    ft = xt - jt;
    ft = ft < 0 ? 0 : ft > 1 ? 1 : ft;
    const double col = L->col_dry;
    const double x_h2o = L->vmr[MIMIC_GAS_H2O] / (1 + L->vmr[MIMIC_GAS_H2O]);
    /* Columns of the minor absorbers (the H2O self continuum scales with the
     * H2O mole fraction as well) and of the halocarbons. */
    double cmin[MIMIC_KDIST_NMINOR];
    for (int m = 0; m < MIMIC_GAS_N2 + 1; m++)
        cmin[m] = L->vmr[m] * col;
    cmin[MIMIC_KDIST_MINOR_H2O_SELF] = cmin[MIMIC_GAS_H2O] * x_h2o;
    const int64_t sT = (int64_t)nslot * neta * ngb, sP = (int64_t)neta * ngb;
    const int64_t mT = (int64_t)nslot * ngb, mB = (int64_t)nt * mT;
    for (int b = 0; b < k->nband; b++) {
        double *restrict tb = tau + (int64_t)b * ngb, *restrict pb = pf + (int64_t)b * ngb;
        const int s1 = k->key[b][part][0], s2 = k->key[b][part][1];
        const double rr = k->r_ref[b][part];
        double c1 = L->vmr[s1] * col, c2 = L->vmr[s2] * col, cmix = c1 + rr * c2;
        double eta = cmix > 0 ? c1 / cmix : 0;
        double xe = eta * (neta - 1);
        int je = (int)xe;
        je = je > neta - 2 ? neta - 2 : je;
        double fe = xe - je;
        /* the eight corner weights, (1 - f) for node j, f for node j + 1 */
        double w[8];
        for (int c = 0; c < 8; c++)
            w[c] = ((c & 4) ? ft : 1 - ft) * ((c & 2) ? fp : 1 - fp) * ((c & 1) ? fe : 1 - fe);
        const int64_t base = (((int64_t)b * nt + jt) * nslot + slot) * sP + (int64_t)je * ngb;
        const float *K = k->k_major + base, *F = k->pfrac + base;
        double halo = 0;
        for (int h = 0; h < MIMIC_KDIST_NHALO; h++)
            halo += L->vmr[MIMIC_GAS_CCL4 + h] * col * k->xsec[h * k->nband + b];
        /* interpolation in float (the table's precision; node weights 0 and
           1 are exact), scaling by the columns in double */
        float wf[8];
        for (int c = 0; c < 8; c++)
            wf[c] = (float)w[c];
        const float *K0 = K, *K1 = K + ngb, *K2 = K + sP, *K3 = K + sP + ngb, *K4 = K + sT, *K5 = K + sT + ngb,
                    *K6 = K + sT + sP, *K7 = K + sT + sP + ngb;
        const float *F0 = F, *F1 = F + ngb, *F2 = F + sP, *F3 = F + sP + ngb, *F4 = F + sT, *F5 = F + sT + ngb,
                    *F6 = F + sT + sP, *F7 = F + sT + sP + ngb;
        float kb[MIMIC_KDIST_MAX_GB], fb[MIMIC_KDIST_MAX_GB];
#pragma omp simd
        for (int g = 0; g < ngb; g++) {
            kb[g] = wf[0] * K0[g] + wf[1] * K1[g] + wf[2] * K2[g] + wf[3] * K3[g] + wf[4] * K4[g] + wf[5] * K5[g] +
                    wf[6] * K6[g] + wf[7] * K7[g];
            fb[g] = wf[0] * F0[g] + wf[1] * F1[g] + wf[2] * F2[g] + wf[3] * F3[g] + wf[4] * F4[g] + wf[5] * F5[g] +
                    wf[6] * F6[g] + wf[7] * F7[g];
        }
#pragma omp simd
        for (int g = 0; g < ngb; g++) {
            tb[g] = halo + cmix * (double)kb[g];
            pb[g] = fb[g];
        }
        unsigned mask = k->minor_mask[b][part];
        const float a00 = (float)((1 - ft) * (1 - fp)), a01 = (float)((1 - ft) * fp), a10 = (float)(ft * (1 - fp)),
                    a11 = (float)(ft * fp);
        for (int m = 0; mask; m++, mask >>= 1) {
            if (!(mask & 1) || cmin[m] == 0)
                continue;
            const float *M = k->k_minor + m * k->nband * mB + (int64_t)b * mB + (int64_t)jt * mT + (int64_t)slot * ngb;
            const float *M1 = M + ngb, *M2 = M + mT, *M3 = M + mT + ngb;
            const double cm = cmin[m];
#pragma omp simd
            for (int g = 0; g < ngb; g++)
                tb[g] += cm * (double)(a00 * M[g] + a01 * M1[g] + a10 * M2[g] + a11 * M3[g]);
        }
    }
}

int mimic_rad_gas_optics(const mimic_rad_kdist *k, const mimic_rad_layer *lay, int64_t nlay, double *tau,
                         double *planck_frac)
{
    if (!k || (nlay > 0 && (!lay || !tau || !planck_frac)))
        return mimic_error(MIMIC_EARG, "gas_optics: k, lay, tau and planck_frac must not be NULL");
    if (nlay < 0)
        return mimic_error(MIMIC_EARG, "gas_optics: nlay must be >= 0 (got %lld)", (long long)nlay);
    for (int64_t l = 0; l < nlay; l++) {
        const mimic_rad_layer *L = lay + l;
        if (!(L->p > 0) || !isfinite(L->p) || !(L->t > 0) || !isfinite(L->t))
            return mimic_error(MIMIC_EVALUE, "gas_optics: layer %lld has p = %g Pa, T = %g K; both must be finite "
                               "and > 0", (long long)l, L->p, L->t);
        if (!(L->col_dry >= 0) || !isfinite(L->col_dry))
            return mimic_error(MIMIC_EVALUE, "gas_optics: layer %lld has col_dry = %g; it must be finite and >= 0 "
                               "(molecules cm^-2)", (long long)l, L->col_dry);
        for (int g = 0; g < MIMIC_NGAS; g++)
            if (!(L->vmr[g] >= 0) || !isfinite(L->vmr[g]))
                return mimic_error(MIMIC_EVALUE, "gas_optics: layer %lld: vmr of %s is %g; mixing ratios must be "
                                   "finite and >= 0", (long long)l, mimic_rad_gas_name((mimic_rad_gas)g), L->vmr[g]);
    }
    const int64_t ngpt = k->ngpt;
#pragma omp parallel for schedule(static) if (nlay >= 64)
    for (int64_t l = 0; l < nlay; l++)
        layer_optics(k, lay + l, tau + l * ngpt, planck_frac + l * ngpt);
    return 0;
}

static int optics_cb(void *ud, const mimic_rad_layer *lay, int nlay, double *tau, double *planck_frac)
{
    return mimic_rad_gas_optics((const mimic_rad_kdist *)ud, lay, nlay, tau, planck_frac);
}

void mimic_rad_kdist_optics(const mimic_rad_kdist *k, struct mimic_rad_optics *opt)
{
    opt->ngpt = k->ngpt;
    opt->nu1 = k->nu1;
    opt->nu2 = k->nu2;
    opt->weight = NULL;
    opt->fn = optics_cb;
    opt->ud = (void *)(uintptr_t)k;
}
