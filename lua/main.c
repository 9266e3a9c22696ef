/* mimic — the executable. Runs scripts the way lua5.4 does (arg table, `...`,
 * -e, -i, stdin) with the mimic module preloaded and set as a global, and at a
 * terminal offers a REPL in the spirit of Torch7's `th`: expressions print
 * their values, readline editing, persistent history, and Tab completion of
 * globals, nested fields and methods (including those of tensors). */
#include "lmimic.h"
#include "mimic/base.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#define PROGNAME "mimic"
#define HISTORY_MAX 1000

/* Weak, so that a build against MKL or reference BLAS (BLAS_LIBS=...), which
 * lack this OpenBLAS extension, still links; -v then just says "BLAS". */
extern char *openblas_get_config(void) __attribute__((weak));

/* Process-wide state a main program needs and nothing else: neither a signal
 * handler nor readline's callbacks (completion, line handler) take a user
 * pointer, so they reach the interpreter and their results through these. */
static lua_State *global_L;                   /* for the SIGINT hook and completion */
static volatile sig_atomic_t got_sigint;      /* Ctrl-C while at the prompt */
static volatile sig_atomic_t got_sigwinch;    /* terminal resized while at the prompt */
static char *line_result;                     /* the line readline's callback delivered */
static int line_ready;                        /* ...and whether it did (NULL = end of input) */

/* ---- messages ----------------------------------------------------------- */

static void print_version(void)
{
    const char *blas = openblas_get_config ? openblas_get_config() : "BLAS";
    printf("%s %s (%s, %s)\n", PROGNAME, MIMIC_VERSION, LUA_RELEASE, blas);
    fflush(stdout);
}

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options] [script [args...]]\n"
            "Options:\n"
            "  -e code        run the Lua chunk 'code'\n"
            "  -i             enter the REPL after running the script or -e\n"
            "  -v, --version  print the version and exit (unless a script, -e or -i follows)\n"
            "  -h, --help     print this help and exit\n"
            "  --             stop handling options\n"
            "  -              run the script read from stdin; stop handling options\n"
            "       %s convert IN OUT   ONNX <-> mimic model file, verified (docs/interop.md)\n"
            "With no script and no -e, %s starts the REPL when stdin is a terminal\n"
            "and otherwise runs stdin as a script. The script's arguments are in the\n"
            "global table 'arg' (arg[0] is the script) and in '...'.\n",
            PROGNAME, PROGNAME, PROGNAME);
    fflush(f);
}

static void message(const char *msg)
{
    fprintf(stderr, "%s: %s\n", PROGNAME, msg);
    fflush(stderr);
}

/* Prints the error on top of the stack, if status says there is one. */
static int report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        message(msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

/* ---- Ctrl-C ------------------------------------------------------------- */

static void set_handler(int sig, void (*handler)(int), struct sigaction *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read must return EINTR */
    sigaction(sig, &sa, old);
}

/* Lua code cannot be stopped from a signal handler directly; a hook that
 * fires at the next instruction raises the error in the interpreter's own
 * context instead (the technique of lua.c). */
static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

static void on_sigint_running(int sig)
{
    /* A second Ctrl-C kills the process: the way out of a long C call
     * (a big matmul) that never returns to Lua to see the hook. */
    set_handler(sig, SIG_DFL, NULL);
    lua_sethook(global_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void on_sigint_prompt(int sig)
{
    (void)sig;
    got_sigint = 1;
}

static void on_sigwinch(int sig)
{
    (void)sig;
    got_sigwinch = 1;
}

/* Calls the function below narg arguments in protected mode, with a
 * traceback on error and Ctrl-C turned into an "interrupted!" error. */
static int docall(lua_State *L, int narg, int nres)
{
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, lmimic_msghandler);
    lua_insert(L, base);
    global_L = L;
    struct sigaction old;
    set_handler(SIGINT, on_sigint_running, &old);
    int status = lua_pcall(L, narg, nres, base);
    sigaction(SIGINT, &old, NULL);
    /* A Ctrl-C that came as the chunk ended must not hit the next one. */
    if (lua_gethook(L) == interrupt_hook)
        lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    return status;
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return report(L, status);
}

/* ---- setup: module, search paths, arg ----------------------------------- */

/* Lets pure-Lua parts of mimic (lua/mimic/NAME.lua) be found next to the
 * executable: the share/ directory of the install prefix, and the source
 * tree's lua/ when running build/bin/mimic from a checkout. */
static void set_paths(lua_State *L)
{
    char bin[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 1);
    if (n <= 0)
        return;
    bin[n] = '\0';
    lmimic_add_paths(L, bin, 1);
}

static void open_mimic(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_mimic);
    lua_setfield(L, -2, "mimic");
    lua_pop(L, 1);
    luaL_requiref(L, "mimic", luaopen_mimic, 1); /* also package.loaded.mimic */
    lua_pop(L, 1);
}

/* arg[0] is the script, arg[1..] its arguments, arg[-k] the interpreter and
 * options before it: the layout of lua5.4. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    int narg = script ? argc - script - 1 : 0;
    lua_createtable(L, narg, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int push_script_args(lua_State *L)
{
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
        luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    int i;
    for (i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    return n;
}

static int run_script(lua_State *L, char **argv, int script)
{
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0)
        fname = NULL; /* luaL_loadfile reads stdin */
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = push_script_args(L);
        status = docall(L, n, LUA_MULTRET);
    }
    return report(L, status);
}

/* ---- options ------------------------------------------------------------ */

struct options {
    int script;       /* index of the script in argv, 0 if none */
    int has_e, has_i, has_v, has_h;
    const char *bad;  /* the offending argument, if any */
    int bad_missing;  /* bad is an option that lacks its argument */
};

static void parse_options(char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            o->script = i;
            return;
        }
        if (strcmp(a, "--") == 0) {
            o->script = argv[i + 1] ? i + 1 : 0;
            return;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            o->has_h = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            o->has_v = 1;
        } else if (strcmp(a, "-i") == 0) {
            o->has_i = o->has_v = 1; /* the REPL opens with the version line */
        } else if (strncmp(a, "-e", 2) == 0) {
            o->has_e = 1;
            if (a[2] == '\0' && argv[++i] == NULL) {
                o->bad = a;
                o->bad_missing = 1;
                return;
            }
        } else {
            o->bad = a;
            return;
        }
    }
}

/* Runs the -e chunks in command-line order. */
static int run_e_options(lua_State *L, char **argv, int end)
{
    for (int i = 1; i < end; i++) {
        if (strncmp(argv[i], "-e", 2) != 0)
            continue;
        const char *code = argv[i][2] ? argv[i] + 2 : argv[++i];
        int status = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
        if (dochunk(L, status) != LUA_OK)
            return 0;
    }
    return 1;
}

/* ---- REPL: reading lines ------------------------------------------------ */

enum { LINE_OK, LINE_EOF, LINE_CANCEL };

static void on_line(char *line)
{
    line_result = line;
    line_ready = 1;
    rl_callback_handler_remove();
}

/* Reads a line with readline's callback interface rather than readline():
 * that lets Ctrl-C at the prompt drop the line (and any unfinished chunk) and
 * show a fresh prompt, instead of killing the process. SIGINT is blocked
 * except inside pselect, so a Ctrl-C can never slip in between the check of
 * the flag and the wait. */
static int tty_read_line(const char *prompt, char **line)
{
    sigset_t block, old, wait_mask;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, &old);
    wait_mask = old;
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGWINCH);

    int fd = fileno(rl_instream ? rl_instream : stdin);
    int result = LINE_OK;
    line_result = NULL;
    line_ready = 0;
    got_sigint = 0; /* a Ctrl-C pressed between chunks is stale */
    rl_callback_handler_install(prompt, on_line);
    while (!line_ready) {
        if (got_sigint) {
            got_sigint = 0;
            rl_free_line_state();
            rl_callback_sigcleanup();
            rl_echo_signal_char(SIGINT);
            rl_cleanup_after_signal();
            rl_callback_handler_remove();
            fputc('\n', rl_outstream ? rl_outstream : stdout);
            result = LINE_CANCEL;
            break;
        }
        if (got_sigwinch) {
            got_sigwinch = 0;
            rl_resize_terminal();
        }
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(fd, &fds);
        if (pselect(fd + 1, &fds, NULL, NULL, NULL, &wait_mask) < 0) {
            if (errno == EINTR)
                continue;
            rl_callback_handler_remove();
            result = LINE_EOF;
            break;
        }
        rl_callback_read_char();
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (result == LINE_OK && line_result == NULL) {
        fputc('\n', rl_outstream ? rl_outstream : stdout); /* Ctrl-D: leave the shell prompt on its own line */
        result = LINE_EOF;
    }
    *line = result == LINE_OK ? line_result : NULL;
    return result;
}

/* Without a terminal (mimic -i < file): plain lines, prompts still shown as
 * lua5.4 does, so a transcript reads like a session. */
static int plain_read_line(const char *prompt, char **line)
{
    fputs(prompt, stdout);
    fflush(stdout);
    size_t cap = 0;
    *line = NULL;
    ssize_t n = getline(line, &cap, stdin);
    if (n < 0) {
        free(*line);
        *line = NULL;
        fputc('\n', stdout); /* end the last prompt's line */
        fflush(stdout);
        if (got_sigint) {
            got_sigint = 0;
            clearerr(stdin);
            return LINE_CANCEL;
        }
        return LINE_EOF;
    }
    if (n > 0 && (*line)[n - 1] == '\n')
        (*line)[n - 1] = '\0';
    return LINE_OK;
}

struct repl {
    int tty;
    char history[PATH_MAX]; /* "" = no history file */
};

/* Pushes the next line; a first line "=expr" means "return expr" (Lua 5.1 and
 * th habit). */
static int push_line(lua_State *L, const struct repl *r, int first)
{
    const char *prompt = first ? "> " : ">> ";
    char *line;
    int st = r->tty ? tty_read_line(prompt, &line) : plain_read_line(prompt, &line);
    if (st != LINE_OK)
        return st;
    if (first && line[0] == '=')
        lua_pushfstring(L, "return %s", line + 1);
    else
        lua_pushstring(L, line);
    free(line);
    return LINE_OK;
}

static void save_history(const struct repl *r, const char *chunk)
{
    if (!r->tty || chunk[0] == '\0')
        return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, chunk) == 0)
        return;
    add_history(chunk);
    if (r->history[0])
        (void)append_history(1, r->history); /* a read-only home must not stop the session */
}

static int incomplete(lua_State *L, int status)
{
    static const char mark[] = "<eof>";
    size_t len;
    const char *msg;
    if (status != LUA_ERRSYNTAX || (msg = lua_tolstring(L, -1, &len)) == NULL)
        return 0;
    return len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}

enum { CHUNK_EOF = -1, CHUNK_CANCEL = -2 };

/* Reads one chunk: first as an expression ("return <line>"), so values are
 * printed; else as statements, reading continuation lines while the parser
 * reports an unfinished chunk. Leaves the compiled function or the error
 * message on the stack and returns the load status, or CHUNK_*. */
static int read_chunk(lua_State *L, const struct repl *r)
{
    lua_settop(L, 0);
    int st = push_line(L, r, 1);
    if (st != LINE_OK)
        return st == LINE_EOF ? CHUNK_EOF : CHUNK_CANCEL;

    const char *line = lua_tostring(L, 1);
    const char *ret = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
    if (status == LUA_OK) {
        lua_remove(L, -2);
        save_history(r, line);
        lua_remove(L, 1);
        return LUA_OK;
    }
    lua_pop(L, 2);

    for (;;) {
        size_t len;
        line = lua_tolstring(L, 1, &len);
        status = luaL_loadbuffer(L, line, len, "=stdin");
        if (!incomplete(L, status)) {
            save_history(r, line);
            lua_remove(L, 1);
            return status;
        }
        lua_pop(L, 1);
        st = push_line(L, r, 0);
        if (st == LINE_CANCEL) {
            lua_settop(L, 0);
            return CHUNK_CANCEL;
        }
        if (st == LINE_EOF) { /* report the unfinished chunk, then stop */
            status = luaL_loadbuffer(L, line, len, "=stdin");
            lua_remove(L, 1);
            return status;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

/* Prints a chunk's results tab-separated, through __tostring (tensors). */
static int print_values(lua_State *L)
{
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);
        if (i > 1)
            fputc('\t', stdout);
        fwrite(s, 1, len, stdout);
        lua_pop(L, 1);
    }
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* ---- REPL: completion --------------------------------------------------- */

static const char *const lua_keywords[] = {
    "and",   "break", "do",     "else", "elseif", "end",   "false", "for",  "function", "goto", "if",
    "in",    "local", "nil",    "not",  "or",     "repeat", "return", "then", "true",     "until", "while",
};

struct completion {
    const char *text; /* the word being completed, e.g. "mimic.ze" or "t:su" */
    char **matches;   /* malloc'd: readline frees what we hand it */
    int n, cap;
    int last_type;    /* Lua type of the single match, or -2 for a keyword */
};

static int is_keyword(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof lua_keywords / sizeof *lua_keywords; i++)
        if (strlen(lua_keywords[i]) == len && memcmp(lua_keywords[i], s, len) == 0)
            return 1;
    return 0;
}

static int is_identifier(const char *s, size_t len)
{
    if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!(ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')))
            return 0;
    }
    return !is_keyword(s, len);
}

static void add_match(lua_State *L, struct completion *c, const char *head, size_t headlen,
                      const char *name, size_t len, int type)
{
    for (int i = 0; i < c->n; i++) /* a method may be both in a table and its __index */
        if (strlen(c->matches[i]) == headlen + len && memcmp(c->matches[i] + headlen, name, len) == 0)
            return;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        char **m = realloc(c->matches, (size_t)cap * sizeof *m);
        if (m == NULL)
            luaL_error(L, "out of memory");
        c->matches = m;
        c->cap = cap;
    }
    char *s = malloc(headlen + len + 1);
    if (s == NULL)
        luaL_error(L, "out of memory");
    memcpy(s, head, headlen);
    memcpy(s + headlen, name, len);
    s[headlen + len] = '\0';
    c->matches[c->n++] = s;
    c->last_type = type;
}

/* Adds the identifier keys of the table at idx that start with word. Keys of
 * a metatable that serves as its own method table skip metamethods. */
static void scan_table(lua_State *L, int idx, struct completion *c, const char *head, size_t headlen,
                       const char *word, int methods_only, int skip_meta)
{
    size_t wlen = strlen(word);
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING) { /* lua_tolstring on a number key would break lua_next */
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            int type = lua_type(L, -1);
            if (klen >= wlen && memcmp(k, word, wlen) == 0 && is_identifier(k, klen) &&
                (!methods_only || type == LUA_TFUNCTION) && !(skip_meta && k[0] == '_' && k[1] == '_'))
                add_match(L, c, head, headlen, k, klen, type);
        }
        lua_pop(L, 1);
    }
}

/* Replaces the value on top of the stack by the next place its fields come
 * from: its metatable's __index table; for an __index function, the
 * metatable itself (where C bindings commonly keep methods) and then nothing
 * more. Pushes nil when there is none. *own_methods tells which case. Only
 * tables are followed: completion must never run user code. */
static void next_method_table(lua_State *L, int *own_methods)
{
    *own_methods = 0;
    if (!lua_getmetatable(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return;
    }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_replace(L, -3);
        lua_pop(L, 1);
    } else if (lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        lua_replace(L, -2);
        *own_methods = 1;
    } else {
        lua_pop(L, 3);
        lua_pushnil(L);
    }
}

/* value = value[name], looking through __index tables only. */
static void lookup(lua_State *L, const char *name, size_t len)
{
    for (int depth = 0; depth < 16 && !lua_isnil(L, -1); depth++) {
        int own_methods = 0;
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_pushlstring(L, name, len);
            lua_rawget(L, -2);
            if (!lua_isnil(L, -1)) {
                lua_remove(L, -2);
                return;
            }
            lua_pop(L, 1);
        }
        next_method_table(L, &own_methods);
        if (own_methods) {
            lua_pushlstring(L, name, len);
            lua_rawget(L, -2);
            lua_remove(L, -2);
            return;
        }
    }
    lua_pop(L, 1);
    lua_pushnil(L);
}

/* Fills the completion; runs under lua_pcall so that an error (memory) can
 * never longjmp through readline. */
static int complete_protected(lua_State *L)
{
    struct completion *c = lua_touserdata(L, 1);
    const char *text = c->text;
    const char *sep = NULL;
    for (const char *p = text; *p; p++)
        if (*p == '.' || *p == ':')
            sep = p;

    lua_pushglobaltable(L);
    if (sep == NULL) {
        scan_table(L, -1, c, "", 0, text, 0, 0);
        size_t tlen = strlen(text);
        for (size_t i = 0; i < sizeof lua_keywords / sizeof *lua_keywords; i++)
            if (strncmp(lua_keywords[i], text, tlen) == 0)
                add_match(L, c, "", 0, lua_keywords[i], strlen(lua_keywords[i]), -2);
        return 0;
    }
    for (const char *seg = text; seg < sep;) { /* walk a.b.c up to the last separator */
        const char *end = seg;
        while (end < sep && *end != '.' && *end != ':')
            end++;
        if ((end < sep && *end == ':') || !is_identifier(seg, (size_t)(end - seg)))
            return 0; /* "a:b.c" or "1.5" has nothing to complete */
        lookup(L, seg, (size_t)(end - seg));
        if (lua_isnil(L, -1))
            return 0;
        seg = end + 1;
    }
    int methods_only = *sep == ':';
    size_t headlen = (size_t)(sep + 1 - text);
    for (int depth = 0; depth < 16 && !lua_isnil(L, -1); depth++) {
        int own_methods = 0;
        if (lua_type(L, -1) == LUA_TTABLE)
            scan_table(L, -1, c, text, headlen, sep + 1, methods_only, 0);
        next_method_table(L, &own_methods);
        if (own_methods) {
            scan_table(L, -1, c, text, headlen, sep + 1, methods_only, 1);
            break;
        }
    }
    return 0;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    lua_State *L = global_L;
    struct completion c = {text, NULL, 0, 0, 0};
    int top = lua_gettop(L);
    lua_pushcfunction(L, complete_protected);
    lua_pushlightuserdata(L, &c);
    int status = lua_pcall(L, 1, 0, 0);
    lua_settop(L, top);
    char **out = NULL;
    if (status == LUA_OK && c.n > 0)
        out = malloc((size_t)(c.n + 2) * sizeof *out);
    if (out == NULL) {
        for (int i = 0; i < c.n; i++)
            free(c.matches[i]);
        free(c.matches);
        return NULL;
    }
    if (c.n == 1) {
        out[0] = c.matches[0];
        out[1] = NULL;
        /* Tables invite a field, functions a call, keywords a space. */
        rl_completion_append_character = c.last_type == LUA_TTABLE      ? '.'
                                          : c.last_type == LUA_TFUNCTION ? '('
                                          : c.last_type == -2            ? ' '
                                                                         : '\0';
    } else {
        size_t common = strlen(c.matches[0]);
        for (int i = 1; i < c.n; i++) {
            size_t k = 0;
            while (k < common && c.matches[i][k] == c.matches[0][k])
                k++;
            common = k;
        }
        out[0] = malloc(common + 1);
        if (out[0] == NULL) {
            for (int i = 0; i < c.n; i++)
                free(c.matches[i]);
            free(c.matches);
            free(out);
            return NULL;
        }
        memcpy(out[0], c.matches[0], common);
        out[0][common] = '\0';
        memcpy(out + 1, c.matches, (size_t)c.n * sizeof *out);
        out[c.n + 1] = NULL;
    }
    free(c.matches);
    return out;
}

/* Lists "zeros  zeros_like" rather than "mimic.zeros  mimic.zeros_like". */
static void display_matches(char **matches, int n, int max_len)
{
    size_t cut = 0;
    for (const char *p = matches[1]; *p; p++)
        if (*p == '.' || *p == ':')
            cut = (size_t)(p - matches[1]) + 1;
    char **shown = malloc((size_t)(n + 2) * sizeof *shown);
    if (shown == NULL)
        return;
    for (int i = 0; i <= n; i++)
        shown[i] = matches[i] + (strlen(matches[i]) >= cut ? cut : strlen(matches[i]));
    shown[n + 1] = NULL;
    rl_display_match_list(shown, n, max_len - (int)cut);
    rl_forced_update_display();
    free(shown);
}

/* ---- REPL: the loop ----------------------------------------------------- */

static void history_open(struct repl *r)
{
    const char *path = getenv("MIMIC_HISTORY");
    const char *home = getenv("HOME");
    r->history[0] = '\0';
    if (path != NULL)
        snprintf(r->history, sizeof r->history, "%s", path); /* "" turns history files off */
    else if (home != NULL && home[0] != '\0')
        snprintf(r->history, sizeof r->history, "%s/.mimic_history", home);
    using_history();
    stifle_history(HISTORY_MAX);
    /* Chunks span lines: timestamps delimit entries so they reload whole. */
    history_comment_char = '#';
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    if (r->history[0] == '\0')
        return;
    int fd = open(r->history, O_RDWR | O_CREAT | O_APPEND, 0600); /* append_history needs it to exist */
    if (fd >= 0) {
        /* A file not written by us (no timestamps) would otherwise load as
         * one giant entry: read it line by line instead. */
        char head[2] = "";
        if (read(fd, head, 2) == 2 && !(head[0] == '#' && head[1] >= '0' && head[1] <= '9'))
            history_multiline_entries = 0;
        close(fd);
    }
    (void)read_history(r->history);
    history_multiline_entries = 1;
}

static void history_close(const struct repl *r)
{
    /* Rewriting from memory (at most HISTORY_MAX entries) bounds the file
     * that append_history grew during the session. */
    if (r->history[0])
        (void)write_history(r->history);
    clear_history();
}

static void repl(lua_State *L)
{
    struct repl r;
    memset(&r, 0, sizeof r);
    r.tty = isatty(STDIN_FILENO);
    global_L = L;
    if (r.tty) {
        rl_readline_name = PROGNAME;          /* for $if mimic in ~/.inputrc */
        rl_change_environment = 0;            /* keep LINES/COLUMNS out of os.getenv */
        rl_catch_signals = 0;                 /* SIGINT is ours: see tty_read_line */
        rl_catch_sigwinch = 0;
        rl_attempted_completion_function = complete;
        rl_completion_display_matches_hook = display_matches;
        rl_completer_word_break_characters = " \t\n\"'`\\<>=;+-*/%^~#&|(){}[],";
        /* Otherwise a quote before the word (print('mimic.ze) replaces the
         * '(' or '.' we append with a closing quote. */
        rl_basic_quote_characters = "";
        history_open(&r);
    }
    struct sigaction old_int, old_winch;
    set_handler(SIGINT, on_sigint_prompt, &old_int);
    set_handler(SIGWINCH, on_sigwinch, &old_winch);

    for (;;) {
        int status = read_chunk(L, &r);
        if (status == CHUNK_EOF)
            break;
        if (status == CHUNK_CANCEL)
            continue;
        if (status == LUA_OK)
            status = docall(L, 0, LUA_MULTRET);
        if (status == LUA_OK && lua_gettop(L) > 0) {
            luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
            lua_pushcfunction(L, print_values);
            lua_insert(L, 1);
            status = docall(L, lua_gettop(L) - 1, 0);
        }
        report(L, status);
    }
    lua_settop(L, 0);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGWINCH, &old_winch, NULL);
    if (r.tty)
        history_close(&r);
}

/* ---- main --------------------------------------------------------------- */

/* `mimic convert IN OUT`: ONNX <-> mimic model file, verified on sample
 * inputs (mimic.onnx.convert, lua/lonnx.c; docs/interop.md). */
static int convert_command(lua_State *L, int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s convert IN.onnx OUT.h5    (ONNX -> mimic model file)\n"
                        "       %s convert IN.h5 OUT.onnx    (mimic model file -> ONNX)\n", PROGNAME, PROGNAME);
        return 0;
    }
    luaL_openlibs(L);
    set_paths(L);
    open_mimic(L);
    static const char chunk[] = "local a, b = ...; local r = mimic.onnx.convert(a, b)\n"
                                "if r.max_diff and not (r.max_diff <= 1e-4 * math.max(1, r.max_ref)) then\n"
                                "  error('convert: the converted model does not reproduce the source', 0) end";
    if (luaL_loadbuffer(L, chunk, sizeof chunk - 1, "=convert") != LUA_OK)
        return report(L, LUA_ERRSYNTAX), 0;
    lua_pushstring(L, argv[2]);
    lua_pushstring(L, argv[3]);
    /* Errors here are about the files, not the code: no traceback. */
    if (report(L, lua_pcall(L, 2, 0, 0)) != LUA_OK)
        return 0;
    lua_pushboolean(L, 1);
    return 1;
}

static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    struct options o;
    luaL_checkversion(L);
    if (argc >= 2 && strcmp(argv[1], "convert") == 0)
        return convert_command(L, argc, argv);
    parse_options(argv, &o);
    if (o.bad) {
        fprintf(stderr, o.bad_missing ? "%s: '%s' needs an argument\n" : "%s: unrecognized option '%s'\n",
                PROGNAME, o.bad);
        print_usage(stderr);
        return 0;
    }
    if (o.has_h) {
        print_usage(stdout);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (o.has_v)
        print_version();
    luaL_openlibs(L);
    set_paths(L);
    open_mimic(L);
    create_arg_table(L, argv, argc, o.script);
    if (!run_e_options(L, argv, o.script ? o.script : argc))
        return 0;
    if (o.script && run_script(L, argv, o.script) != LUA_OK)
        return 0;
    if (o.has_i) {
        repl(L);
    } else if (!o.script && !o.has_e && !o.has_v) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            repl(L);
        } else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK) {
            return 0;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        message("cannot create the Lua state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    report(L, status);
    lua_close(L);
    return status == LUA_OK && ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
