/* Data files (core/data/h5data.c): files written by h5py (tests/fixtures/
 * gen_h5py.py, committed under tests/fixtures/data/) read right, every stored
 * type and layout, netCDF conventions, row ranges, writing (chunks, gzip,
 * append, attributes) and each error the issue names. Runs from the
 * repository root, as `make test` does. */
#include "check.h"
#include "testutil.h"

#include "mimic/data.h"

#include <stdlib.h>
#include <unistd.h>

#define FIX "tests/fixtures/data/"

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static double el(const mimic_tensor *t, int64_t i, int64_t j)
{
    int64_t idx[2] = {i, j};
    return mimic_get(t, idx);
}

TEST(test_list_and_info)
{
    mimic_h5 *f = mimic_h5_open(FIX "basic.h5");
    CHECK_PTR(f);
    if (!f)
        return;
    int64_t n = mimic_h5_count(f);
    CHECK(n >= 14);
    bool seen = false;
    for (int64_t i = 0; i < n; i++)
        seen |= strcmp(mimic_h5_name(f, i), "grp/i16") == 0;
    CHECK(seen);
    CHECK(mimic_h5_name(f, n) == NULL);
    mimic_h5_info in;
    CHECK_OK(mimic_h5_info_get(f, "gz", &in));
    CHECK(in.ndim == 2 && in.shape[0] == 100 && in.shape[1] == 4);
    CHECK(in.chunked && in.chunk[0] == 10 && in.chunk[1] == 4);
    CHECK(strstr(in.filters, "deflate(6)") && strstr(in.filters, "shuffle"));
    CHECK(strcmp(in.type, "float32") == 0 && in.is_float && !in.big_endian);
    CHECK_OK(mimic_h5_info_get(f, "be", &in));
    CHECK(in.big_endian && strcmp(in.type, "float64") == 0);
    CHECK_OK(mimic_h5_info_get(f, "/grp/i16", &in));
    CHECK(strcmp(in.type, "int16") == 0 && !in.is_float);
    mimic_h5_close(f);
}

TEST(test_read_types)
{
    mimic_h5 *f = mimic_h5_open(FIX "basic.h5");
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    mimic_tensor *x = mimic_h5_read(f, "x", NULL);
    CHECK_PTR(x);
    if (x) {
        CHECK(x->dtype == MIMIC_F32 && x->ndim == 2 && x->shape[0] == 4 && x->shape[1] == 3);
        CHECK(el(x, 2, 1) == 7);
    }
    mimic_tensor_free(x);
    mimic_h5_read_opts o = {.dtype = MIMIC_F64};
    mimic_tensor *be = mimic_h5_read(f, "be", &o);
    CHECK_PTR(be);
    if (be)
        CHECK(be->dtype == MIMIC_F64 && el(be, 1, 2) == 5);
    mimic_tensor_free(be);
    mimic_tensor *i16 = mimic_h5_read(f, "grp/i16", NULL);
    CHECK_PTR(i16);
    if (i16)
        CHECK(el(i16, 0, 0) == -6 && el(i16, 2, 3) == 5);
    mimic_tensor_free(i16);
    o.dtype = MIMIC_I64;
    mimic_tensor *u8 = mimic_h5_read(f, "u8", &o), *i64 = mimic_h5_read(f, "i64", &o), *bei = mimic_h5_read(f, "bei32", &o);
    CHECK_PTR(u8);
    CHECK_PTR(i64);
    CHECK_PTR(bei);
    if (u8 && i64 && bei) {
        CHECK(((int64_t *)mimic_data(u8))[5] == 255);
        CHECK(((int64_t *)mimic_data(i64))[2] == (int64_t)1 << 40);
        CHECK(((int64_t *)mimic_data(bei))[0] == -3);
    }
    /* uint64 beyond INT64_MAX: an error, not a clipped value */
    CHECK_ERR_PTR(mimic_h5_read(f, "u64", &o), MIMIC_EDTYPE, "outside the int64 range");
    mimic_h5_read_opts of = {.dtype = MIMIC_F64};
    mimic_tensor *u64 = mimic_h5_read(f, "u64", &of);
    CHECK(u64 && ((double *)mimic_data(u64))[1] == 0x1p63);
    mimic_tensor_free(u64);
    mimic_tensor_free(u8);
    mimic_tensor_free(i64);
    mimic_tensor_free(bei);
    /* Fortran x(3,4) is stored [4,3]: read as stored, never transposed. */
    mimic_tensor *fo = mimic_h5_read(f, "fortran", NULL);
    CHECK_PTR(fo);
    if (fo)
        CHECK(fo->shape[0] == 4 && fo->shape[1] == 3 && el(fo, 1, 0) == 3 && el(fo, 0, 1) == 1);
    mimic_tensor_free(fo);
    mimic_tensor *gz = mimic_h5_read(f, "gz", NULL);
    CHECK_PTR(gz);
    if (gz)
        CHECK(el(gz, 99, 3) == 399);
    mimic_tensor_free(gz);
    mimic_tensor *sc = mimic_h5_read(f, "scalar", NULL);
    CHECK_PTR(sc);
    if (sc)
        CHECK(sc->ndim == 0 && *(float *)mimic_data(sc) == 3.5f);
    mimic_tensor_free(sc);
    mimic_h5_close(f);
}

TEST(test_rows)
{
    mimic_h5 *f = mimic_h5_open(FIX "basic.h5");
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    mimic_h5_read_opts o = {.rows = true, .start = 37, .count = 5};
    mimic_tensor *t = mimic_h5_read(f, "gz", &o);
    CHECK_PTR(t);
    if (t)
        CHECK(t->shape[0] == 5 && t->shape[1] == 4 && el(t, 0, 0) == 148 && el(t, 4, 3) == 167);
    mimic_tensor_free(t);
    o.start = 100;
    o.count = 0;
    t = mimic_h5_read(f, "gz", &o);
    CHECK(t && t->shape[0] == 0);
    mimic_tensor_free(t);
    o.start = 98;
    o.count = 5;
    CHECK_ERR_PTR(mimic_h5_read(f, "gz", &o), MIMIC_EARG, "it has 100 rows");
    mimic_h5_close(f);
}

TEST(test_errors)
{
    CHECK_ERR_PTR(mimic_h5_open(FIX "nope.h5"), MIMIC_EIO, "no such file");
    CHECK_ERR_PTR(mimic_h5_open(FIX "classic.nc"), MIMIC_EIO, "nccopy -k nc4");
    CHECK_ERR_PTR(mimic_h5_open("tests/c/check.h"), MIMIC_EIO, "not an HDF5");
    /* truncated: the first half of basic.h5 */
    FILE *in = fopen(FIX "basic.h5", "rb"), *out = fopen(tpath("cut.h5"), "wb");
    char buf[9000];
    size_t got = in ? fread(buf, 1, sizeof buf, in) : 0;
    if (out) {
        fwrite(buf, 1, got, out);
        fclose(out);
    }
    if (in)
        fclose(in);
    mimic_h5 *cut = mimic_h5_open(tpath("cut.h5"));
    if (cut) { /* the superblock may survive: then reading must fail */
        mimic_tensor *t = mimic_h5_read(cut, "gz", NULL);
        CHECK(t == NULL && mimic_errcode() == MIMIC_EIO);
        mimic_tensor_free(t);
        mimic_h5_close(cut);
    } else {
        CHECK(mimic_errcode() == MIMIC_EIO && strstr(mimic_errmsg(), "truncated"));
    }
    mimic_h5 *f = mimic_h5_open(FIX "basic.h5");
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    CHECK_ERR_PTR(mimic_h5_read(f, "nosuch", NULL), MIMIC_EIO, "it has: ");
    CHECK_ERR_PTR(mimic_h5_read(f, "nosuch/deeper", NULL), MIMIC_EIO, "grp/i16");
    CHECK_ERR_PTR(mimic_h5_read(f, "grp", NULL), MIMIC_EIO, "is a group");
    CHECK_ERR_PTR(mimic_h5_read(f, "str", NULL), MIMIC_EDTYPE, "string");
    CHECK_ERR_PTR(mimic_h5_read(f, "lzf", NULL), MIMIC_EIO, "'lzf'");
    mimic_h5_read_opts o = {.check_ndim = true, .ndim = 3};
    CHECK_ERR_PTR(mimic_h5_read(f, "x", &o), MIMIC_ESHAPE, "expected 3");
    o = (mimic_h5_read_opts){.dtype = MIMIC_I64};
    CHECK_ERR_PTR(mimic_h5_read(f, "x", &o), MIMIC_EDTYPE, "as int64");
    o = (mimic_h5_read_opts){.finite = true};
    CHECK_ERR_PTR(mimic_h5_read(f, "nan", &o), MIMIC_EVALUE, "NaN at index [2,1]");
    o.dtype = MIMIC_F64;
    CHECK_ERR_PTR(mimic_h5_read(f, "inf", &o), MIMIC_EVALUE, "-Inf at index [2]");
    o = (mimic_h5_read_opts){.finite = true, .rows = true, .start = 3, .count = 1};
    CHECK_ERR_PTR(mimic_h5_read(f, "nan", &o), MIMIC_EVALUE, "+Inf at index [3,0]");
    mimic_tensor *ok = mimic_h5_read(f, "nan", NULL); /* without finite: fine */
    CHECK_PTR(ok);
    CHECK_ERR(mimic_h5_write(f, "new", ok, NULL), MIMIC_ESTATE, "read-only");
    mimic_tensor_free(ok);
    mimic_h5_close(f);
}

TEST(test_netcdf)
{
    mimic_h5 *f = mimic_h5_open(FIX "nc4.nc");
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    mimic_h5_info in;
    CHECK_OK(mimic_h5_info_get(f, "temp", &in));
    CHECK(strcmp(in.dim_names[0], "col") == 0 && strcmp(in.dim_names[1], "lev") == 0);
    CHECK(in.has_fill && in.fill == -32767 && in.scale == 0.5 && in.offset == 200);
    mimic_tensor *t = mimic_h5_read(f, "temp", NULL);
    CHECK_PTR(t);
    if (t) {
        CHECK(t->dtype == MIMIC_F32);
        CHECK(el(t, 0, 1) == 205); /* raw 10 * 0.5 + 200 */
        CHECK(isnan(el(t, 1, 2)));
        CHECK(el(t, 5, 3) == 200 + 230 * 0.5);
    }
    mimic_tensor_free(t);
    mimic_h5_read_opts raw = {.raw = true};
    t = mimic_h5_read(f, "temp", &raw);
    if (t)
        CHECK(el(t, 1, 2) == -32767 && el(t, 0, 1) == 10);
    mimic_tensor_free(t);
    mimic_h5_read_opts fin = {.finite = true};
    CHECK_ERR_PTR(mimic_h5_read(f, "temp", &fin), MIMIC_EVALUE, "index [1,2] (0-based");
    CHECK(strstr(mimic_errmsg(), "_FillValue") != NULL);
    mimic_h5_read_opts rows = {.rows = true, .start = 1, .count = 2};
    mimic_tensor *m = mimic_h5_read_mask(f, "temp", &rows);
    CHECK_PTR(m);
    if (m) {
        CHECK(m->dtype == MIMIC_BOOL && m->shape[0] == 2 && m->shape[1] == 4);
        const uint8_t *mb = mimic_data(m);
        int nset = 0;
        for (int i = 0; i < 8; i++)
            nset += mb[i];
        CHECK(nset == 1 && mb[2] == 1);
    }
    mimic_tensor_free(m);
    m = mimic_h5_read_mask(f, "col", NULL); /* no fill attribute: all false */
    CHECK(m && ((uint8_t *)mimic_data(m))[0] == 0);
    mimic_tensor_free(m);
    t = mimic_h5_read(f, "q", NULL);
    if (t)
        CHECK(isnan(el(t, 0, 0)) && el(t, 0, 1) == 1);
    mimic_tensor_free(t);
    t = mimic_h5_read(f, "sst", NULL); /* missing_value only */
    if (t)
        CHECK(isnan(((float *)mimic_data(t))[1]) && ((float *)mimic_data(t))[2] == 300);
    mimic_tensor_free(t);
    mimic_h5_close(f);

    /* The RFMIP subset: real netCDF-4 data with netCDF's own dimension scales. */
    f = mimic_h5_open(FIX "rfmip.nc");
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    CHECK_OK(mimic_h5_info_get(f, "temp_layer", &in));
    CHECK(in.ndim == 3 && in.shape[0] == 2 && in.shape[1] == 10 && in.shape[2] == 60);
    CHECK(strcmp(in.dim_names[0], "expt") == 0 && strcmp(in.dim_names[1], "site") == 0 &&
          strcmp(in.dim_names[2], "layer") == 0);
    mimic_h5_read_opts o = {.finite = true};
    t = mimic_h5_read(f, "temp_layer", &o);
    CHECK_PTR(t);
    if (t) {
        float *p = mimic_data(t);
        for (int64_t i = 0; i < mimic_numel(t); i++)
            if (!(p[i] > 150 && p[i] < 350)) { /* air temperatures in K */
                CHECK(!"temperature out of range");
                break;
            }
    }
    mimic_tensor_free(t);
    mimic_h5_attr a;
    CHECK_OK(mimic_h5_get_attr(f, "temp_layer", "units", &a));
    CHECK(a.kind == MIMIC_H5_ATTR_STRING && a.str && strcmp(a.str, "K") == 0);
    mimic_free(a.str);
    mimic_h5_close(f);
}

TEST(test_write_roundtrip)
{
    const char *p = tpath("w.h5");
    mimic_h5 *f = mimic_h5_create(p);
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    mimic_tensor *a = mimic_arange(0, 60, 1, MIMIC_F32);
    mimic_tensor *a2 = mimic_view(a, SHAPE_OF(20, 3));
    mimic_tensor *at2 = mimic_transpose(a2, 0, 1); /* non-contiguous */
    mimic_h5_write_opts o = {.gzip = 4, .shuffle = true, .nchunk = 2, .chunk = {5, 3}, .extendable = true};
    CHECK_OK(mimic_h5_write(f, "samples/x", a2, &o));
    CHECK_OK(mimic_h5_write(f, "xt", at2, NULL));
    CHECK_OK(mimic_h5_append(f, "samples/x", a2));
    CHECK_ERR(mimic_h5_append(f, "samples/x", at2), MIMIC_ESHAPE, "dims after the first");
    CHECK_ERR(mimic_h5_append(f, "xt", at2), MIMIC_ESTATE, "extendable");
    CHECK_ERR(mimic_h5_write(f, "xt", at2, NULL), MIMIC_EARG, "exists already");
    mimic_tensor *huge = mimic_full(SHAPE_OF(2), 1e300, MIMIC_F64);
    CHECK_OK(mimic_h5_write(f, "huge", huge, NULL));
    CHECK_ERR_PTR(mimic_h5_read(f, "huge", NULL), MIMIC_EDTYPE, "outside the float32 range; read it as float64");
    mimic_tensor_free(huge);
    CHECK_OK(mimic_h5_set_attr_string(f, "samples/x", "units", "m s-1"));
    CHECK_OK(mimic_h5_set_attr_number(f, "", "nsim", 7));
    CHECK(mimic_h5_count(f) == 3);
    CHECK_OK(mimic_h5_close(f));
    f = mimic_h5_open(p);
    if (!f)
        goto done;
    mimic_h5_info in;
    CHECK_OK(mimic_h5_info_get(f, "samples/x", &in));
    CHECK(in.shape[0] == 40 && in.chunk[0] == 5 && in.dims_unlimited && strstr(in.filters, "deflate(4)"));
    mimic_tensor *r = mimic_h5_read(f, "samples/x", NULL), *rt = mimic_h5_read(f, "xt", NULL);
    if (r && rt) {
        CHECK(el(r, 21, 2) == 5 && el(r, 19, 0) == 57);
        CHECK(rt->shape[0] == 3 && rt->shape[1] == 20 && el(rt, 2, 19) == 59);
    }
    mimic_h5_attr aa;
    CHECK_OK(mimic_h5_get_attr(f, "", "nsim", &aa));
    CHECK(aa.kind == MIMIC_H5_ATTR_NUMBER && aa.number == 7);
    CHECK_OK(mimic_h5_get_attr(f, "samples/x", "missing", &aa));
    CHECK(aa.kind == MIMIC_H5_ATTR_NONE);
    char *names = mimic_h5_attr_names(f, "samples/x");
    CHECK(names && strcmp(names, "units") == 0);
    mimic_free(names);
    CHECK_ERR(mimic_h5_write(f, "z", r, NULL), MIMIC_ESTATE, "read-only");
    mimic_tensor_free(r);
    mimic_tensor_free(rt);
    mimic_h5_close(f);
done:
    mimic_tensor_free(at2);
    mimic_tensor_free(a2);
    mimic_tensor_free(a);
    unlink(p);
}

/* Every allocation failure on the read path fails cleanly (ASan: no leak). */
TEST(test_oom_read)
{
    mimic_allocator al = {count_alloc, count_realloc, plain_free, NULL};
    mimic_h5 *f = mimic_h5_open(FIX "nc4.nc");
    if (!f) {
        CHECK_PTR(f);
        return;
    }
    mimic_set_allocator(&al);
    int ok = 0, nomem = 0;
    for (long k = 0; k < 40; k++) {
        alloc_fail_next(k);
        mimic_tensor *t = mimic_h5_read(f, "temp", NULL);
        oom_tally(t != NULL, &ok, &nomem);
        mimic_tensor_free(t);
    }
    alloc_fail_none();
    mimic_set_allocator(NULL);
    CHECK(ok + nomem == 40 && ok > 0);
    mimic_h5_close(f);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mimic_test_data_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(test_list_and_info);
    RUN(test_read_types);
    RUN(test_rows);
    RUN(test_errors);
    RUN(test_netcdf);
    RUN(test_write_roundtrip);
    RUN(test_oom_read);
    rmdir(tmpdir);
    return check_failed_tests ? 1 : 0;
}
