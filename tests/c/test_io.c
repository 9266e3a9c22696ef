/* Tensor-dictionary files (core/io/h5dict.c): round trips of every dtype and
 * layout, scalars and groups, atomic replacement, and every kind of bad file.
 * Foreign and malformed files are made with the HDF5 API directly. */
#include "check.h"
#include "testutil.h"

#include "mimic/io.h"

#include <hdf5.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Whole file into a malloc'd buffer. */
static char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

static void spit(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    if (n)
        fwrite(data, 1, n, f);
    fclose(f);
}

/* Number of leftover temporary files in tmpdir. */
static int count_tmp(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static bool same_bits(const mimic_tensor *a, const mimic_tensor *b)
{
    if (!a || !b || a->dtype != b->dtype || a->ndim != b->ndim)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    mimic_tensor *ca = mimic_contiguous((mimic_tensor *)a), *cb = mimic_contiguous((mimic_tensor *)b);
    size_t n = (size_t)mimic_numel(a) * mimic_dtype_size(a->dtype);
    bool same = n == 0 || memcmp(mimic_data(ca), mimic_data(cb), n) == 0;
    mimic_tensor_free(ca);
    mimic_tensor_free(cb);
    return same;
}

/* Writes one tensor under `name` and reads it back. */
static mimic_tensor *round_trip(const char *name, const mimic_tensor *t)
{
    const char *p = tpath("rt.h5");
    mimic_dict_writer *w = mimic_dict_create(p);
    CHECK_PTR(w);
    CHECK_OK(mimic_dict_put_tensor(w, name, t));
    CHECK_OK(mimic_dict_commit(w));
    mimic_dict *d = mimic_dict_open(p);
    CHECK_PTR(d);
    mimic_tensor *r = d ? mimic_dict_get_tensor(d, name) : NULL;
    CHECK_PTR(r);
    mimic_dict_close(d);
    return r;
}

TEST(test_round_trip_every_dtype_and_shape)
{
    mimic_rng rng;
    mimic_rng_init(&rng, 7);
    const mimic_dtype dts[] = {MIMIC_F32, MIMIC_F64, MIMIC_I64, MIMIC_BOOL};
    for (int k = 0; k < 4; k++) {
        mimic_tensor *ts[] = {
            RAND(dts[k], 3, 4), RAND(dts[k], 5), RAND(dts[k], 2, 1, 3, 1, 2, 1, 2, 2), /* 8 dims */
            mimic_scalar(1, dts[k]),                                                  /* 0-dim */
            mimic_zeros(SHAPE_OF(0), dts[k]), mimic_zeros(SHAPE_OF(3, 0, 2), dts[k]), /* 0-size */
        };
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            mimic_tensor *r = round_trip("x", ts[i]);
            CHECK(same_bits(ts[i], r));
            CHECK(r && mimic_is_contiguous(r));
            mimic_tensor_free(r);
            mimic_tensor_free(ts[i]);
        }
    }
    /* Values that must survive exactly: extremes, NaN payloads, -0, denormals. */
    double f64v[] = {-0.0, 5e-324, 1.7976931348623157e308, -INFINITY, NAN, 1.0 / 3};
    mimic_tensor *f = mk(MIMIC_F64, SHAPE_OF(6), f64v);
    mimic_tensor *r = round_trip("f", f);
    CHECK(same_bits(f, r));
    mimic_tensor_free(r);
    mimic_tensor_free(f);
    mimic_tensor *i = mimic_empty(SHAPE_OF(3), MIMIC_I64);
    ((int64_t *)mimic_data(i))[0] = INT64_MIN;
    ((int64_t *)mimic_data(i))[1] = INT64_MAX;
    ((int64_t *)mimic_data(i))[2] = -1;
    r = round_trip("i", i);
    CHECK(same_bits(i, r));
    mimic_tensor_free(r);
    mimic_tensor_free(i);
}

TEST(test_non_contiguous_inputs)
{
    mimic_tensor *a = arange2(4, 6, MIMIC_F32), *row = mimic_select(a, 0, 2);
    mimic_tensor *views[] = {
        mimic_transpose(a, 0, 1),
        mimic_slice(a, 1, 1, 6, 2),
        mimic_select(a, 1, 3),
        mimic_expand(row, 2, (int64_t[]){3, 6}), /* stride 0 */
    };
    for (size_t k = 0; k < 4; k++) {
        CHECK(!mimic_is_contiguous(views[k]));
        mimic_tensor *r = round_trip("v/w", views[k]);
        mimic_tensor *c = mimic_clone(views[k]);
        CHECK(same_bits(c, r));
        mimic_tensor_free(c);
        mimic_tensor_free(r);
    }
    for (size_t k = 0; k < 4; k++)
        mimic_tensor_free(views[k]);
    mimic_tensor_free(row);
    mimic_tensor_free(a);
}

TEST(test_scalars_groups_and_listing)
{
    const char *p = tpath("all.h5");
    mimic_dict_writer *w = mimic_dict_create(p);
    mimic_tensor *t = arange2(2, 3, MIMIC_F64);
    CHECK_OK(mimic_dict_put_tensor(w, "model/layers/1/weight", t));
    CHECK_OK(mimic_dict_put_int(w, "epoch", INT64_MIN));
    CHECK_OK(mimic_dict_put_int(w, "model/layers/n", 3));
    CHECK_OK(mimic_dict_put_number(w, "lr", 1e-3));
    CHECK_OK(mimic_dict_put_number(w, "nan", NAN));
    CHECK_OK(mimic_dict_put_bool(w, "flags/yes", true));
    CHECK_OK(mimic_dict_put_bool(w, "flags/no", false));
    CHECK_OK(mimic_dict_put_string(w, "name", "surrogate", 9));
    CHECK_OK(mimic_dict_put_string(w, "empty", "", 0));
    CHECK_OK(mimic_dict_put_string(w, "bytes", "a\0b\0", 4));
    CHECK_OK(mimic_dict_put_group(w, "state"));
    CHECK_OK(mimic_dict_put_group(w, "model")); /* exists already: fine */
    CHECK_OK(mimic_dict_commit(w));
    CHECK(count_tmp() == 0);

    mimic_dict *d = mimic_dict_open(p);
    CHECK_PTR(d);
    if (!d)
        return;
    const char *names[] = {"bytes", "empty", "epoch", "flags", "flags/no", "flags/yes", "lr", "model",
                           "model/layers", "model/layers/1", "model/layers/1/weight", "model/layers/n", "name",
                           "nan", "state"};
    const mimic_dict_kind kinds[] = {MIMIC_DICT_STRING, MIMIC_DICT_STRING, MIMIC_DICT_INT, MIMIC_DICT_GROUP,
                                     MIMIC_DICT_BOOL, MIMIC_DICT_BOOL, MIMIC_DICT_NUMBER, MIMIC_DICT_GROUP,
                                     MIMIC_DICT_GROUP, MIMIC_DICT_GROUP, MIMIC_DICT_TENSOR, MIMIC_DICT_INT,
                                     MIMIC_DICT_STRING, MIMIC_DICT_NUMBER, MIMIC_DICT_GROUP};
    CHECK(mimic_dict_count(d) == 15);
    for (int64_t k = 0; k < mimic_dict_count(d) && k < 15; k++) {
        const mimic_dict_entry *e = mimic_dict_entry_at(d, k);
        CHECK(strcmp(e->name, names[k]) == 0);
        CHECK(e->kind == kinds[k]);
    }
    CHECK(mimic_dict_entry_at(d, 15) == NULL);
    const mimic_dict_entry *e = mimic_dict_find(d, "model/layers/1/weight");
    CHECK(e && e->kind == MIMIC_DICT_TENSOR && e->dtype == MIMIC_F64);
    CHECK(e && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3);
    int64_t iv = 0;
    double dv = 0;
    bool bv = false;
    size_t len = 99;
    CHECK_OK(mimic_dict_get_int(d, "epoch", &iv));
    CHECK(iv == INT64_MIN);
    CHECK_OK(mimic_dict_get_number(d, "lr", &dv));
    CHECK(dv == 1e-3);
    CHECK_OK(mimic_dict_get_number(d, "model/layers/n", &dv)); /* an int reads as a number */
    CHECK(dv == 3);
    CHECK_OK(mimic_dict_get_number(d, "nan", &dv));
    CHECK(dv != dv);
    CHECK_OK(mimic_dict_get_bool(d, "flags/yes", &bv));
    CHECK(bv);
    CHECK_OK(mimic_dict_get_bool(d, "flags/no", &bv));
    CHECK(!bv);
    const char *s = mimic_dict_get_string(d, "name", &len);
    CHECK(s && len == 9 && strcmp(s, "surrogate") == 0);
    s = mimic_dict_get_string(d, "empty", &len);
    CHECK(s && len == 0 && s[0] == '\0');
    s = mimic_dict_get_string(d, "bytes", &len);
    CHECK(s && len == 4 && memcmp(s, "a\0b\0", 4) == 0);
    /* Asking for the wrong kind names both kinds. */
    CHECK_ERR(mimic_dict_get_int(d, "lr", &iv), MIMIC_EDTYPE, "'lr' in '");
    CHECK_ERR(mimic_dict_get_int(d, "lr", &iv), MIMIC_EDTYPE, "is a number, not an int");
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "name"), MIMIC_EDTYPE, "is a string, not a tensor");
    CHECK_ERR_PTR(mimic_dict_get_string(d, "model", NULL), MIMIC_EDTYPE, "is a group, not a string");
    mimic_tensor *r = mimic_dict_get_tensor(d, "model/layers/1/weight");
    CHECK(same_bits(t, r));
    mimic_tensor_free(r);
    /* read_into: any layout; dtype and shape must match. */
    mimic_tensor *dst = mimic_zeros(SHAPE_OF(3, 2), MIMIC_F64), *dt = mimic_transpose(dst, 0, 1);
    CHECK_OK(mimic_dict_read_into(d, "model/layers/1/weight", dt));
    CHECK(same_bits(t, dt));
    mimic_tensor *wrong = mimic_zeros(SHAPE_OF(2, 3), MIMIC_F32), *wrong2 = mimic_zeros(SHAPE_OF(6), MIMIC_F64);
    CHECK_ERR(mimic_dict_read_into(d, "model/layers/1/weight", wrong), MIMIC_EDTYPE,
              "it is float64 [2,3] in the file but the tensor is float32 [2,3]");
    CHECK_ERR(mimic_dict_read_into(d, "model/layers/1/weight", wrong2), MIMIC_ESHAPE,
              "its shape is [2,3] in the file but the tensor's is [6]");
    mimic_tensor_free(wrong);
    mimic_tensor_free(wrong2);
    mimic_tensor_free(dt);
    mimic_tensor_free(dst);
    mimic_dict_close(d);
    mimic_tensor_free(t);
}

TEST(test_bad_names_and_conflicts)
{
    const char *p = tpath("names.h5");
    const char *bad[] = {"", "a//b", "/a", "a/", ".", "a/../b"};
    mimic_tensor *t = mimic_scalar(1, MIMIC_F32);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        mimic_dict_writer *w = mimic_dict_create(p);
        CHECK_ERR(mimic_dict_put_tensor(w, bad[k], t), MIMIC_EARG, "name");
        /* The writer is spoiled now: commit fails and leaves nothing behind. */
        CHECK_ERR(mimic_dict_commit(w), MIMIC_ESTATE, "an earlier write failed");
        CHECK(!exists(p));
    }
    struct { const char *first, *second, *msg; } conflicts[] = {
        {"a", "a/b", "'a' is a tensor, so it cannot hold 'a/b'"},
        {"s", "s/b", "'s' is a scalar, so it cannot hold 's/b'"},
        {"a", "a", "'a' is written twice"},
        {"g/x", "g/x", "'g/x' is written twice"},
        {"s", "s", "'s' is written twice"},
    };
    for (size_t k = 0; k < sizeof conflicts / sizeof conflicts[0]; k++) {
        mimic_dict_writer *w = mimic_dict_create(p);
        if (conflicts[k].first[0] == 's')
            CHECK_OK(mimic_dict_put_number(w, conflicts[k].first, 1));
        else
            CHECK_OK(mimic_dict_put_tensor(w, conflicts[k].first, t));
        if (conflicts[k].second[0] == 's')
            CHECK_ERR(mimic_dict_put_number(w, conflicts[k].second, 2), MIMIC_EARG, conflicts[k].msg);
        else
            CHECK_ERR(mimic_dict_put_tensor(w, conflicts[k].second, t), MIMIC_EARG, conflicts[k].msg);
        CHECK_ERR(mimic_dict_put_int(w, "later", 1), MIMIC_ESTATE, "an earlier write to");
        mimic_dict_discard(w);
    }
    CHECK(count_tmp() == 0);
    CHECK(!exists(p));
    mimic_tensor_free(t);
}

/* Writes the "old" file: one tensor "v" of n float64 values i. */
static void write_old(const char *p, int64_t n)
{
    mimic_tensor *t = mimic_arange(0, (double)n, 1, MIMIC_F64);
    mimic_dict_writer *w = mimic_dict_create(p);
    CHECK_OK(mimic_dict_put_tensor(w, "v", t));
    CHECK_OK(mimic_dict_put_string(w, "what", "old", 3));
    CHECK_OK(mimic_dict_commit(w));
    mimic_tensor_free(t);
}

TEST(test_atomic_replace)
{
    const char *p = tpath("ckpt.h5");
    write_old(p, 10);
    size_t n0;
    char *old = slurp(p, &n0);

    /* 1. A spoiled writer: commit fails, the old file is byte-identical. */
    mimic_dict_writer *w = mimic_dict_create(p);
    CHECK(count_tmp() == 1); /* writing goes to the temporary file, never to p */
    mimic_tensor *t = mimic_zeros(SHAPE_OF(1000), MIMIC_F32);
    CHECK_OK(mimic_dict_put_tensor(w, "v", t));
    CHECK_ERR(mimic_dict_put_tensor(w, "v", t), MIMIC_EARG, "written twice");
    CHECK_ERR(mimic_dict_commit(w), MIMIC_ESTATE, "was left unchanged");
    size_t n1;
    char *now = slurp(p, &n1);
    CHECK(n1 == n0 && memcmp(old, now, n0) == 0);
    free(now);
    CHECK(count_tmp() == 0);

    /* 2. Discarding. */
    w = mimic_dict_create(p);
    CHECK_OK(mimic_dict_put_tensor(w, "v", t));
    mimic_dict_discard(w);
    now = slurp(p, &n1);
    CHECK(n1 == n0 && memcmp(old, now, n0) == 0);
    free(now);
    CHECK(count_tmp() == 0);

    /* 3. A real I/O failure in the middle of writing: the file-size limit
     * makes write() fail with EFBIG, as a full disk would with ENOSPC. */
    struct rlimit saved, lim;
    getrlimit(RLIMIT_FSIZE, &saved);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    mimic_tensor *big = mimic_zeros(SHAPE_OF(1 << 18), MIMIC_F64); /* 2 MB */
    lim = saved;
    lim.rlim_cur = 64 * 1024;
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    w = mimic_dict_create(p);
    int rc = w ? mimic_dict_put_tensor(w, "big", big) : -1;
    int rc2 = w ? mimic_dict_commit(w) : -1;
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, oldsig);
    CHECK(rc != MIMIC_OK || rc2 != MIMIC_OK);
    CHECK(mimic_errcode() == MIMIC_EIO || mimic_errcode() == MIMIC_ESTATE);
    now = slurp(p, &n1);
    CHECK(n1 == n0 && memcmp(old, now, n0) == 0);
    free(now);
    CHECK(count_tmp() == 0);
    mimic_tensor_free(big);

    /* 4. A directory that does not exist: nothing is created. */
    CHECK_ERR_PTR(mimic_dict_create(tpath("nodir/x.h5")), MIMIC_EIO, "cannot write '");
    CHECK(strstr(mimic_errmsg(), "No such file or directory") != NULL);

    /* 5. A successful replace. */
    w = mimic_dict_create(p);
    CHECK_OK(mimic_dict_put_tensor(w, "v", t));
    CHECK_OK(mimic_dict_commit(w));
    mimic_dict *d = mimic_dict_open(p);
    CHECK(d && mimic_dict_count(d) == 1 && mimic_dict_find(d, "v")->shape[0] == 1000);
    mimic_dict_close(d);
    CHECK(count_tmp() == 0);
    free(old);
    mimic_tensor_free(t);
}

/* Runs f with stderr sent to a file; returns how many bytes it printed. */
static long stderr_bytes_during(void (*f)(void))
{
    fflush(stderr);
    int saved = dup(2);
    int fd = open(tpath("stderr.txt"), O_CREAT | O_TRUNC | O_RDWR, 0600);
    dup2(fd, 2);
    f();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = lseek(fd, 0, SEEK_END);
    if (n > 0) { /* show what was printed */
        char buf[2048];
        ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
        buf[k > 0 ? k : 0] = '\0';
        fprintf(stderr, "printed to stderr:\n%s\n", buf);
    }
    close(fd);
    return n;
}

static void bad_file_errors(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s", tpath("good.h5")); /* tpath's buffers rotate */
    write_old(p, 20000); /* 160 kB of data */
    size_t n;
    char *bytes = slurp(p, &n);

    CHECK_ERR_PTR(mimic_dict_open(tpath("missing.h5")), MIMIC_EIO, "missing.h5': no such file");
    CHECK_ERR_PTR(mimic_dict_open(tmpdir), MIMIC_EIO, "it is a directory");

    spit(tpath("empty.h5"), "", 0);
    CHECK_ERR_PTR(mimic_dict_open(tpath("empty.h5")), MIMIC_EIO, "not an HDF5 file (0 bytes");

    char garbage[4096];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(i * 7 + 3);
    spit(tpath("garbage.h5"), garbage, sizeof garbage);
    CHECK_ERR_PTR(mimic_dict_open(tpath("garbage.h5")), MIMIC_EIO, "not an HDF5 file (4096 bytes");

    /* Cut anywhere after the signature: truncated (or, with the superblock
     * itself cut, corrupt). */
    spit(tpath("half.h5"), bytes, n / 2);
    CHECK_ERR_PTR(mimic_dict_open(tpath("half.h5")), MIMIC_EIO, "the file is truncated");
    spit(tpath("cut.h5"), bytes, n - 1);
    CHECK_ERR_PTR(mimic_dict_open(tpath("cut.h5")), MIMIC_EIO, "the file is truncated");
    spit(tpath("head.h5"), bytes, 20);
    CHECK_ERR_PTR(mimic_dict_open(tpath("head.h5")), MIMIC_EIO, "cannot open '");

    /* A valid signature followed by garbage. */
    memcpy(garbage, bytes, 8);
    spit(tpath("sig.h5"), garbage, sizeof garbage);
    CHECK_ERR_PTR(mimic_dict_open(tpath("sig.h5")), MIMIC_EIO, "corrupt HDF5 file");

    /* Missing entries list what exists. */
    mimic_dict *d = mimic_dict_open(p);
    CHECK_PTR(d);
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "w"), MIMIC_EIO, "has no entry 'w'; it has: v, what");
    mimic_dict_close(d);
    free(bytes);
}

TEST(test_bad_files)
{
    /* HDF5 prints its error stack by default; mimic keeps it quiet. */
    CHECK(stderr_bytes_during(bad_file_errors) == 0);
    H5E_auto2_t func = NULL;
    void *data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    CHECK(func != NULL); /* the host's setting is restored */
}

TEST(test_missing_entry_list_is_bounded)
{
    const char *p = tpath("many.h5");
    mimic_dict_writer *w = mimic_dict_create(p);
    char name[64];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "group_%03d/a_rather_long_parameter_name", i);
        CHECK_OK(mimic_dict_put_int(w, name, i));
    }
    CHECK_OK(mimic_dict_commit(w));
    mimic_dict *d = mimic_dict_open(p);
    CHECK_ERR_PTR(mimic_dict_lookup(d, "nope"), MIMIC_EIO, "group_000/a_rather_long_parameter_name, group_001/");
    CHECK(strstr(mimic_errmsg(), " more)") != NULL);
    mimic_dict_close(d);
    w = mimic_dict_create(p);
    CHECK_OK(mimic_dict_commit(w));
    d = mimic_dict_open(p);
    CHECK(mimic_dict_count(d) == 0);
    CHECK_ERR_PTR(mimic_dict_lookup(d, "x"), MIMIC_EIO, "the file holds no entries");
    mimic_dict_close(d);
}

/* A file written by another tool, with things mimic reads and things it cannot. */
static void write_foreign(const char *p)
{
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t s1 = H5Screate_simple(1, (hsize_t[]){4}, NULL), sc = H5Screate(H5S_SCALAR);
    int32_t i32[4] = {1, 2, 3, 4};
    hid_t ds = H5Dcreate2(f, "int32", H5T_STD_I32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, i32);
    H5Dclose(ds);
    hsize_t dims9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 2};
    hid_t s9 = H5Screate_simple(9, dims9, NULL);
    ds = H5Dcreate2(f, "rank9", H5T_IEEE_F32LE, s9, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float f2[2] = {1, 2};
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, f2);
    H5Dclose(ds);
    /* Big-endian float64: read with conversion. */
    ds = H5Dcreate2(f, "be", H5T_IEEE_F64BE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    double d4[4] = {0.5, -1, 2, 1e300};
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, d4);
    H5Dclose(ds);
    /* Never written: no storage. */
    ds = H5Dcreate2(f, "unwritten", H5T_IEEE_F32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    /* A bool enum with a bad value. */
    hid_t be = H5Tenum_create(H5T_NATIVE_INT8);
    int8_t v = 0;
    H5Tenum_insert(be, "FALSE", &v);
    v = 1;
    H5Tenum_insert(be, "TRUE", &v);
    ds = H5Dcreate2(f, "badbool", be, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int8_t bb[4] = {0, 1, 7, 0};
    H5Dwrite(ds, be, H5S_ALL, H5S_ALL, H5P_DEFAULT, bb);
    H5Dclose(ds);
    H5Tclose(be);
    /* Attributes: a variable-length string (h5py's default), a uint8, a
     * float32, an array, a space-padded fixed string. */
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    hid_t a = H5Acreate2(root, "vlen", vs, sc, H5P_DEFAULT, H5P_DEFAULT);
    const char *str = "hello";
    H5Awrite(a, vs, &str);
    H5Aclose(a);
    H5Tclose(vs);
    a = H5Acreate2(root, "u8", H5T_STD_U8LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    uint8_t u8 = 200;
    H5Awrite(a, H5T_NATIVE_UINT8, &u8);
    H5Aclose(a);
    a = H5Acreate2(root, "f32", H5T_IEEE_F32LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    float fv = 0.25f;
    H5Awrite(a, H5T_NATIVE_FLOAT, &fv);
    H5Aclose(a);
    a = H5Acreate2(root, "arr", H5T_STD_I32LE, s1, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, i32);
    H5Aclose(a);
    hid_t fs = H5Tcopy(H5T_C_S1);
    H5Tset_size(fs, 8);
    H5Tset_strpad(fs, H5T_STR_SPACEPAD);
    a = H5Acreate2(root, "fortran", fs, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, fs, "abc     ");
    H5Aclose(a);
    H5Tclose(fs);
    H5Lcreate_soft("/be", root, "soft", H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(root);
    H5Sclose(s9);
    H5Sclose(s1);
    H5Sclose(sc);
    H5Fclose(f);
}

TEST(test_foreign_and_unsupported_contents)
{
    const char *p = tpath("foreign.h5");
    write_foreign(p);
    mimic_dict *d = mimic_dict_open(p);
    CHECK_PTR(d);
    if (!d)
        return;
    const mimic_dict_entry *e = mimic_dict_find(d, "int32");
    CHECK(e && e->kind == MIMIC_DICT_UNSUPPORTED && strcmp(e->reason, "int32 dataset") == 0);
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "int32"), MIMIC_EDTYPE,
                  "'int32' in '");
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "int32"), MIMIC_EDTYPE,
                  "is an unsupported int32 dataset; mimic reads float32, float64, int64 and bool tensors");
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "rank9"), MIMIC_EDTYPE, "9-dim dataset (mimic tensors have at most 8 dims)");
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "soft"), MIMIC_EDTYPE, "unsupported soft link");
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "unwritten"), MIMIC_EIO, "holds no data");
    CHECK_ERR_PTR(mimic_dict_get_tensor(d, "badbool"), MIMIC_EIO, "corrupt bool data (element 2");
    CHECK_ERR(mimic_dict_get_int(d, "arr", &(int64_t){0}), MIMIC_EDTYPE, "4-element int32 array attribute");
    mimic_tensor *be = mimic_dict_get_tensor(d, "be");
    CHECK(be && be->dtype == MIMIC_F64 && at(be, 3) == 1e300 && at(be, 0) == 0.5);
    mimic_tensor_free(be);
    size_t len;
    const char *s = mimic_dict_get_string(d, "vlen", &len);
    CHECK(s && len == 5 && strcmp(s, "hello") == 0);
    s = mimic_dict_get_string(d, "fortran", &len);
    CHECK(s && len == 3 && strcmp(s, "abc") == 0);
    int64_t iv = 0;
    double dv = 0;
    CHECK_OK(mimic_dict_get_int(d, "u8", &iv));
    CHECK(iv == 200);
    CHECK_OK(mimic_dict_get_number(d, "f32", &dv));
    CHECK(dv == 0.25);
    mimic_dict_close(d);
}

TEST(test_link_cycle_is_an_error)
{
    const char *p = tpath("cycle.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Lcreate_hard(f, "/g", g, "again", H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    CHECK_ERR_PTR(mimic_dict_open(p), MIMIC_EIO, "(a cycle of links?)");
}

/* Out of memory anywhere while writing or reading: a clean error, no leak
 * (ASan), and the target file either the old one or the new one. */
TEST(test_out_of_memory)
{
    const char *p = tpath("oom.h5");
    write_old(p, 5);
    mimic_tensor *t = arange2(3, 4, MIMIC_F32), *v = mimic_transpose(t, 0, 1);
    int ok = 0, fails = 0;
    for (int budget = 0; budget < 200; budget++) {
        use_budget_allocator(budget);
        mimic_dict_writer *w = mimic_dict_create(p);
        bool done = w && mimic_dict_put_tensor(w, "a/b", v) == MIMIC_OK && mimic_dict_put_string(w, "s", "x", 1) == MIMIC_OK;
        done = w && (done ? mimic_dict_commit(w) == MIMIC_OK : (mimic_dict_discard(w), false));
        mimic_dict *d = done ? mimic_dict_open(p) : NULL;
        mimic_tensor *r = d ? mimic_dict_get_tensor(d, "a/b") : NULL;
        bool all = r != NULL;
        int code = mimic_errcode();
        mimic_tensor_free(r);
        mimic_dict_close(d);
        mimic_set_allocator(NULL);
        if (all) {
            ok++;
            break;
        }
        fails += code == MIMIC_ENOMEM;
        CHECK(code == MIMIC_ENOMEM);
        CHECK(count_tmp() == 0);
        mimic_dict *chk = mimic_dict_open(p);
        CHECK_PTR(chk);
        mimic_dict_close(chk);
    }
    CHECK(ok == 1 && fails > 5);
    mimic_tensor_free(v);
    mimic_tensor_free(t);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "%s/mimic_test_io_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_round_trip_every_dtype_and_shape);
    RUN(test_non_contiguous_inputs);
    RUN(test_scalars_groups_and_listing);
    RUN(test_bad_names_and_conflicts);
    RUN(test_atomic_replace);
    RUN(test_bad_files);
    RUN(test_missing_entry_list_is_bounded);
    RUN(test_foreign_and_unsupported_contents);
    RUN(test_link_cycle_is_an_error);
    RUN(test_out_of_memory);
    /* Remove the directory and what the tests left in it. */
    DIR *dir = opendir(tmpdir);
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        if (e->d_name[0] != '.')
            unlink(tpath(e->d_name));
    if (dir)
        closedir(dir);
    rmdir(tmpdir);
    return CHECK_DONE();
}
