/* The Lua binding of mimic: shared declarations of the C files in lua/.
 *
 * Conventions every binding file follows:
 *  - The Lua API is 1-based (dims, element indices, index tensors in and out);
 *    the conversion to the core's 0-based world happens here and only here.
 *  - A userdata box is created before the mimic object it will own (the
 *    liolib pattern): if anything raises afterwards, __gc releases the object,
 *    so no C path leaks on a Lua error.
 *  - Core failures are raised with lmimic_error(), which carries
 *    mimic_errmsg() unchanged; argument problems use luaL_argerror style.
 */
#ifndef LMIMIC_H
#define LMIMIC_H

#include <lauxlib.h>
#include <lua.h>

#include "mimic/model.h"
#include "mimic/rng.h"
#include "mimic/tensor.h"

#define LMIMIC_TENSOR "mimic.Tensor"
#define LMIMIC_GENERATOR "mimic.Generator"

/* Opens the module: `require "mimic"`, and preloaded by the mimic executable. */
int luaopen_mimic(lua_State *L);

/* --- errors ------------------------------------------------------------------ */
/* Raises a Lua error carrying mimic_errmsg() (prefixed with the Lua caller's
 * position, like luaL_error). Never returns. */
int lmimic_error(lua_State *L);
/* Ends an in-place function on its status rc: raises lmimic_error() on a
 * failure, else returns argument 1 (the tensor changed) so calls chain. */
int lmimic_return_self(lua_State *L, int rc);

/* --- tensors ----------------------------------------------------------------- */
/* Pushes an empty tensor box (metatable set, owning nothing) and returns the
 * slot the caller stores its new reference in. Create the box first, then the
 * tensor: `*lmimic_newtensor(L) = mimic_x(...)`, then check for NULL with
 * lmimic_checkresult(). */
mimic_tensor **lmimic_newtensor(lua_State *L);
/* After `*slot = mimic_x(...)`: raises lmimic_error() if the slot is NULL. */
void lmimic_checkresult(lua_State *L, mimic_tensor *const *slot);
/* Pushes t as a Tensor, taking ownership of that reference. NULL raises
 * lmimic_error(). If Lua cannot allocate the box, t is released before the
 * memory error propagates. */
void lmimic_pushtensor(lua_State *L, mimic_tensor *t);
/* The tensor at arg (borrowed; the userdata keeps it alive while it is on the
 * stack). Raises "bad argument #arg to 'f' (mimic.Tensor expected, got X)". */
mimic_tensor *lmimic_checktensor(lua_State *L, int arg);
/* The tensor at arg, or NULL if the value is not a Tensor. Raises only for a
 * closed tensor. */
mimic_tensor *lmimic_totensor(lua_State *L, int arg);

/* A Lua number or boolean as a 0-dim tensor that lives on the C stack: passing
 * a plain number to an op costs no allocation and cannot leak on an error. Do
 * not copy the struct after lmimic_toscalar (its storage points into it).
 * Valid only for the duration of the core call it is passed to (see
 * `retained` below for ops that record autograd nodes). */
typedef struct lmimic_scalar {
    mimic_storage storage;
    mimic_tensor t;
    union { float f; double d; int64_t i; uint8_t b; } v;
} lmimic_scalar;
/* Fills sc from the number/boolean at idx as dtype dt and returns &sc->t, or
 * returns NULL (touching nothing) if the value is neither. With `retained`
 * (the op may record an autograd node that keeps its inputs beyond the call)
 * the scalar is a heap tensor boxed on the Lua stack instead (one value pushed). */
mimic_tensor *lmimic_toscalar(lua_State *L, int idx, mimic_dtype dt, lmimic_scalar *sc, bool retained);
/* The number/boolean at idx as a double (booleans are 1/0); argerror otherwise. */
double lmimic_checkvalue(lua_State *L, int idx);

/* --- arguments --------------------------------------------------------------- */
/* A 1-based dim at arg (negative: from the end) against ndim dims, as a 0-based
 * dim. A 0-dim tensor accepts 1 and -1, as the core does. */
int lmimic_checkdim(lua_State *L, int arg, int ndim);
/* Same for an optional dim: returns def (already 0-based) when arg is nil/none. */
int lmimic_optdim(lua_State *L, int arg, int ndim, int def);
/* Converts a 1-based dim value (not an argument) as lmimic_checkdim does;
 * errors name `fn`. */
int lmimic_dim(lua_State *L, const char *fn, lua_Integer dim, int ndim);
/* A shape given either as a table at arg ({2,3}) or as integers from arg on
 * (2, 3). Stores up to MIMIC_MAX_DIMS sizes, returns the number of dims, and
 * sets *next to the first argument after the shape. Sizes may be -1 only if
 * allow_neg (view/reshape/expand). */
int lmimic_checkshape(lua_State *L, int arg, int64_t *shape, int *next, int allow_neg);
/* A dtype name at arg ("float32", "float64", "int64", "bool" and the aliases
 * of mimic_dtype_parse), or def when arg is nil/none. */
mimic_dtype lmimic_optdtype(lua_State *L, int arg, mimic_dtype def);
/* A 1-based element index i along a dim of `size`, negative from the end, as a
 * 0-based index; raises "fn: index i is out of range for dim d of size n". */
int64_t lmimic_index(lua_State *L, const char *fn, lua_Integer i, int64_t size, int dim0);

/* --- models (lua/lplan.c) ---------------------------------------------------- */
/* Builds a model of nin inputs and dtype dt from the layer records at
 * idx_records (the flat list plan.records makes in lua/mimic/plan.lua; see
 * lua/lplan.c). Weights are converted to dt and copied. Pushes a box that owns
 * the model (its __gc frees it) and returns the model; raises on a bad record,
 * with messages that start with `what` ("compile", "save"). */
mimic_model *lmimic_build_model(lua_State *L, int idx_records, lua_Integer nin, mimic_dtype dt, const char *what);
/* Frees the model of the box at idx (pushed by lmimic_build_model) now. */
void lmimic_free_model(lua_State *L, int idx);

/* --- generators -------------------------------------------------------------- */
mimic_rng *lmimic_checkgenerator(lua_State *L, int arg);
/* The Lua state's default generator (kept in the registry, not a C global). */
mimic_rng *lmimic_defaultgenerator(lua_State *L);

/* --- search paths (lua/host.c) ------------------------------------------------ */
/* Prepends to package.path where mimic's pure-Lua modules live relative to a
 * binary (absolute path) in PREFIX/bin or PREFIX/lib: PREFIX/share/lua/5.4,
 * and the checkout's lua/ when PREFIX is its build/ (or build/asan/). With
 * cpath, also PREFIX/lib/lua/5.4/?.so. Used by main.c and mimic/script.h. */
void lmimic_add_paths(lua_State *L, const char *binary, int cpath);
/* Message handler of every protected call of the executable and of a host's
 * scripts: the error object as a string (via __tostring when it has one) with
 * a traceback appended. */
int lmimic_msghandler(lua_State *L);

/* --- registration (each file adds its functions) ------------------------------ */
/* mod and methods are absolute stack indices of the module table and of the
 * Tensor metatable, which is also the methods table (extensions add methods
 * with luaL_getmetatable(L, LMIMIC_TENSOR) + luaL_setfuncs). lmimic_open_tensor
 * installs the metamethods and creates the Generator metatable; it runs first. */
void lmimic_open_tensor(lua_State *L, int mod, int methods);
void lmimic_open_ops(lua_State *L, int mod, int methods);
/* Autograd methods, grad mode, and the t.grad property: string keys that are
 * not methods are looked up in the metatable's __getters / __setters tables
 * (function(t) / function(t, v)), which any file may add to. */
void lmimic_open_autograd(lua_State *L, int mod, int methods);
/* mimic.flatten_parameters / flat_attach_grads (lua/loptim.c), for mimic.optim. */
void lmimic_open_optim(lua_State *L, int mod, int methods);
/* mimic.save / mimic.load (tensor-dictionary files) and mimic.isatty (lua/lio.c). */
void lmimic_open_io(lua_State *L, int mod, int methods);
/* mimic._validate: the C metrics behind mimic.validate (lua/lvalidate.c). */
void lmimic_open_validate(lua_State *L, int mod, int methods);
/* mimic.h5open / mimic.h5create: HDF5/netCDF-4 data files (lua/ldata.c), for mimic.data. */
void lmimic_open_data(lua_State *L, int mod, int methods);
/* mimic.compile_layers and the Plan type: compiled inference (lua/lplan.c). */
void lmimic_open_plan(lua_State *L, int mod, int methods);
/* mimic.load_model, mimic._save_model / _load_model: model files (lua/lmodelfile.c). */
void lmimic_open_modelfile(lua_State *L, int mod, int methods);
/* mimic._spectra: spectra and divergence of periodic fields (lua/lspectra.c; links
 * libmimic_solvers, hence FFTW), for mimic.validate. */
void lmimic_open_spectra(lua_State *L, int mod, int methods);
/* mimic.radiation: Planck integrals, the longwave solver, the line-by-line
 * model (lua/lradiation.c; libmimic_solvers). */
void lmimic_open_radiation(lua_State *L, int mod, int methods);
/* mimic.conv1d/2d/3d, pooling, upsampling (lua/lconv.c). */
void lmimic_open_conv(lua_State *L, int mod, int methods);
/* mimic.rnn_layer: one RNN/LSTM/GRU layer over a sequence (lua/lrnn.c). */
void lmimic_open_rnn(lua_State *L, int mod, int methods);
/* mimic.embed (host-API handles), mimic.guard, mimic.profiler (lua/lembed.c). */
void lmimic_open_embed(lua_State *L, int mod, int methods);
/* Compiled training steps for built-in MLPs (lua/ltrainstep.c). */
void lmimic_open_trainstep(lua_State *L, int mod, int methods);
/* mimic.onnx: ONNX import/export/convert (lua/lonnx.c; libmimic_interop, weakly). */
void lmimic_open_onnx(lua_State *L, int mod, int methods);

#endif
