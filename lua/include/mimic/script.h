/* mimic — Lua scripts called from a host program (libmimic_lua, mimic-lua.pc).
 *
 * For what a compiled model file cannot express: a host opens a Lua script it
 * chose (its own code, not a model file: loading a script runs it) in a
 * private interpreter, then calls the script's global functions on its
 * arrays. `require "mimic"` works inside without LUA_CPATH (the module is
 * built in), and mimic's pure-Lua modules (mimic.nn, ...) are found next to
 * the library: PREFIX/share/lua/5.4 for an installed libmimic_lua.so or an
 * executable in PREFIX/bin, the source tree's lua/ for binaries under a
 * checkout's build/; elsewhere put them on LUA_PATH.
 *
 * Arrays. Input k reaches the function as a mimic Tensor of shape
 * [n, in[k].size] over the host's memory (no copy; the strides of the
 * mimic_array, as in mimic/embed.h: any layout, float32 or float64). The
 * function must not write into it (in-place ops would change the host's
 * array) and the tensor is only valid during the call: afterwards the
 * interpreter's handles to it are closed, and should the script have kept a
 * view of it, that view gets a private copy (keep data with :clone()). The
 * function returns exactly nout tensors, tensor k of shape [n, out[k].size]
 * and a floating dtype; they are converted and copied into the host's output
 * arrays, which need an element of their own per sample and feature (no zero
 * strides: MIMIC_EARG). NaN in the results is not an error.
 *
 * Errors. Every function returns MIMIC_OK or a negative status:
 *   MIMIC_EIO     the script file is missing or unreadable
 *   MIMIC_EVALUE  a syntax error, or an error raised while the script ran
 *                 (message and Lua traceback)
 *   MIMIC_EARG    NULL/closed handle, unknown function, bad arrays
 *   MIMIC_ESHAPE  wrong number of results, or a result of the wrong shape
 *   MIMIC_EDTYPE  a result that is not a float tensor
 *   MIMIC_ENOMEM  out of memory (in Lua or in mimic)
 * mimic_script_error(s) is the message of the handle's last failed call.
 * A Lua error never unwinds into the host: everything runs in protected mode,
 * and os.exit raises an error instead of ending the host's process.
 *
 * Threads. A handle (one lua_State) is used by one thread at a time; separate
 * handles are independent.
 *
 * Ownership. mimic_script_open returns a handle the caller releases with
 * mimic_script_close(&s), which sets s to NULL; a call with a NULL handle is
 * MIMIC_EARG. Arrays are borrowed for the duration of the call.
 */
#ifndef MIMIC_SCRIPT_H
#define MIMIC_SCRIPT_H

#include "mimic/embed.h"

typedef struct mimic_script mimic_script;

/* Creates an interpreter (standard libraries, mimic preloaded) and runs the
 * script at path. On failure *out is NULL and mimic_script_error(NULL) gives
 * the message. */
int mimic_script_open(const char *path, mimic_script **out);

/* Calls the script's global function fn(in_1, ..., in_nin) on samples
 * 0..n-1 and stores its nout results in out[0..nout-1]. */
int mimic_script_call(mimic_script *s, const char *fn, int nin, const mimic_array *in, int nout,
                      mimic_array *out, int64_t n);

/* The handle's last error ("" if none); s == NULL: the calling thread's
 * (mimic_errmsg(), e.g. why mimic_script_open failed). Valid until the next
 * call on the handle. */
const char *mimic_script_error(const mimic_script *s);

/* Closes the interpreter and sets *s = NULL. NULL or *s == NULL is fine. */
int mimic_script_close(mimic_script **s);

#endif
