/* The mimic executable, driven for real: command-line runs through pipes, and
 * REPL sessions through a pseudo-terminal (readline needs a terminal). Every
 * wait has a timeout and the whole binary has a deadline, so a hung REPL fails
 * the test rather than hanging it. The executable is $MIMIC_EXE, else
 * build/bin/mimic (relative to the repository root, where tests/run runs). */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 3000     /* one expected reaction of the executable */
#define BUDGET_MS 13000  /* the whole binary, so it stays under 15 s even when all hang */

static char tmpdir[] = "/tmp/mimic_test_repl_XXXXXX";
static long long deadline_ms;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds a wait may take: WAIT_MS, less once the budget runs out. */
static int wait_limit(void)
{
    long long left = deadline_ms - now_ms();
    return left <= 0 ? 0 : left < WAIT_MS ? (int)left : WAIT_MS;
}

static const char *exe(void)
{
    const char *e = getenv("MIMIC_EXE");
    return e && *e ? e : "build/bin/mimic";
}

static int have_exe(void)
{
    if (access(exe(), X_OK) == 0)
        return 1;
    fprintf(stderr, "mimic executable '%s' not found or not executable: build it with "
                    "`make build/bin/mimic` or point MIMIC_EXE at it\n", exe());
    check_failures++;
    return 0;
}

static void tmp_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void write_file(const char *name, const char *text)
{
    char path[256];
    tmp_path(path, sizeof path, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Waits for pid until the budget allows no more, then kills it. Returns the
 * wait status, or -1 if it had to be killed. */
static int reap(pid_t pid)
{
    int status;
    long long until = now_ms() + wait_limit();
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ms() >= until) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    }
}

static int exit_code(int status)
{
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- command-line runs ------------------------------------------------------ */

struct run {
    int code; /* exit code; -1 if killed or crashed */
    char out[16384], err[16384];
};

/* Runs mimic with args (NULL-terminated, after argv[0]) and input on stdin.
 * If interrupt_after is given, the run gets a SIGINT (Ctrl-C) once its stdout
 * shows that text. */
static void run_ex(struct run *r, const char *input, const char *const *args, const char *interrupt_after)
{
    memset(r, 0, sizeof *r);
    r->code = -1;
    const char *argv[16] = {exe()};
    int argc = 1;
    for (; args[argc - 1] && argc < 15; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;

    int in[2], out[2], err[2];
    if (pipe(in) || pipe(out) || pipe(err)) {
        fprintf(stderr, "pipe: %s\n", strerror(errno));
        check_failures++;
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        for (int fd = 3; fd < 64; fd++)
            close(fd);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (input) /* small: fits the pipe buffer, so no deadlock with our reads */
        (void)!write(in[1], input, strlen(input));
    close(in[1]);

    struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    char *bufs[2] = {r->out, r->err};
    size_t lens[2] = {0, 0};
    int open_fds = 2;
    long long until = now_ms() + wait_limit();
    while (open_fds > 0 && now_ms() < until) {
        if (poll(fds, 2, (int)(until - now_ms())) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents)
                continue;
            ssize_t n = read(fds[i].fd, bufs[i] + lens[i], sizeof r->out - 1 - lens[i]);
            if (n > 0) {
                lens[i] += (size_t)n;
                bufs[i][lens[i]] = '\0';
                if (i == 0 && interrupt_after && strstr(r->out, interrupt_after)) {
                    kill(pid, SIGINT);
                    interrupt_after = NULL;
                }
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    if (open_fds > 0)
        fprintf(stderr, "mimic %s did not finish in time\n", argv[1] ? argv[1] : "");
    r->code = exit_code(reap(pid));
}

static void run(struct run *r, const char *input, const char *const *args)
{
    run_ex(r, input, args, NULL);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

TEST(test_version)
{
    if (!have_exe())
        return;
    struct run r;
    run(&r, NULL, ARGS("-v"));
    CHECK(r.code == 0);
    CHECK(strncmp(r.out, "mimic " MIMIC_VERSION " (Lua 5.4", strlen("mimic " MIMIC_VERSION " (Lua 5.4")) == 0);
    run(&r, NULL, ARGS("--version"));
    CHECK(r.code == 0 && strstr(r.out, MIMIC_VERSION));
}

TEST(test_usage)
{
    if (!have_exe())
        return;
    struct run r;
    run(&r, NULL, ARGS("-h"));
    CHECK(r.code == 0 && strstr(r.out, "usage: mimic") && r.err[0] == '\0');
    run(&r, NULL, ARGS("--bogus"));
    CHECK(r.code == 1 && r.out[0] == '\0');
    CHECK(strstr(r.err, "'--bogus'") && strstr(r.err, "usage: mimic"));
    run(&r, NULL, ARGS("-e"));
    CHECK(r.code == 1 && strstr(r.err, "'-e' needs an argument"));
}

TEST(test_eval_option)
{
    if (!have_exe())
        return;
    struct run r;
    run(&r, NULL, ARGS("-e", "print(1+1)"));
    CHECK(r.code == 0 && strcmp(r.out, "2\n") == 0);
    run(&r, NULL, ARGS("-e", "x = 20", "-e", "print(x + 22)"));
    CHECK(r.code == 0 && strcmp(r.out, "42\n") == 0);
    run(&r, NULL, ARGS("-e", "error('b' .. 'oom')"));
    CHECK(r.code == 1 && strncmp(r.err, "mimic: (command line):1: boom", 29) == 0);
    run(&r, NULL, ARGS("-e", "x ="));
    CHECK(r.code == 1 && strstr(r.err, "mimic: (command line):1:"));
}

TEST(test_mimic_preloaded)
{
    if (!have_exe())
        return;
    struct run r;
    run(&r, NULL, ARGS("-e", "print(type(mimic), require('mimic') == mimic, package.preload.mimic ~= nil)"));
    CHECK(r.code == 0 && strcmp(r.out, "table\ttrue\ttrue\n") == 0);
    /* Pure-Lua parts of mimic are searched next to the executable. */
    run(&r, NULL, ARGS("-e", "print(package.path)"));
    CHECK(r.code == 0 && strstr(r.out, "/share/lua/5.4/?.lua;"));
}

TEST(test_script_args)
{
    if (!have_exe())
        return;
    char script[256];
    tmp_path(script, sizeof script, "args.lua");
    write_file("args.lua", "print(arg[0], #arg, arg[1], arg[2], arg[-1])\n"
                           "print(select('#', ...), ...)\n");
    struct run r;
    run(&r, NULL, ARGS(script, "a b", "-e"));
    char want[1024];
    snprintf(want, sizeof want, "%s\t2\ta b\t-e\t%s\n2\ta b\t-e\n", script, exe());
    CHECK(r.code == 0 && strcmp(r.out, want) == 0);
    if (strcmp(r.out, want) != 0)
        fprintf(stderr, "got:\n%swanted:\n%s", r.out, want);
    /* Options before the script get negative indices, like lua5.4. */
    run(&r, NULL, ARGS("-e", "", script));
    snprintf(want, sizeof want, "%s\t0\tnil\tnil\t\n0\n", script);
    CHECK(r.code == 0 && strcmp(r.out, want) == 0);
}

TEST(test_script_error)
{
    if (!have_exe())
        return;
    char script[256];
    tmp_path(script, sizeof script, "fail.lua");
    write_file("fail.lua", "local function f() error('b' .. 'oom') end\nprint('before')\nf()\nprint('after')\n");
    struct run r;
    run(&r, NULL, ARGS(script));
    CHECK(r.code == 1 && strcmp(r.out, "before\n") == 0);
    CHECK(strncmp(r.err, "mimic: ", 7) == 0 && strstr(r.err, "fail.lua:1: boom"));
    CHECK(strstr(r.err, "stack traceback:") && strstr(r.err, "in local 'f'"));
    write_file("syntax.lua", "x = = 1\n");
    tmp_path(script, sizeof script, "syntax.lua");
    run(&r, NULL, ARGS(script));
    CHECK(r.code == 1 && strstr(r.err, "mimic: ") && strstr(r.err, "syntax.lua:1:"));
    run(&r, NULL, ARGS("/nonexistent/x.lua"));
    CHECK(r.code == 1 && strstr(r.err, "mimic: cannot open /nonexistent/x.lua"));
    /* os.exit's code passes through. */
    run(&r, NULL, ARGS("-e", "os.exit(3)"));
    CHECK(r.code == 3);
}

/* Ctrl-C stops a running script with a Lua error, like lua5.4. */
TEST(test_script_interrupt)
{
    if (!have_exe())
        return;
    struct run r;
    run_ex(&r, NULL, ARGS("-e", "local function spin() io.write('sp', 'in\\n') io.flush() while true do end end spin()"),
           "spin\n");
    CHECK(r.code == 1 && strncmp(r.err, "mimic: (command line):1: interrupted!", 37) == 0);
    CHECK(strstr(r.err, "in local 'spin'") != NULL);
}

TEST(test_stdin_script)
{
    if (!have_exe())
        return;
    struct run r;
    run(&r, "print(6 * 7, ...)\n", ARGS("-", "x", "y"));
    CHECK(r.code == 0 && strcmp(r.out, "42\tx\ty\n") == 0);
    /* Bare mimic without a terminal runs stdin like `lua -`. */
    run(&r, "local s = 0\nfor i = 1, 4 do s = s + i end\nprint(s)\n", ARGS(NULL));
    CHECK(r.code == 0 && strcmp(r.out, "10\n") == 0);
    run(&r, "error('b' .. 'oom')\n", ARGS(NULL));
    CHECK(r.code == 1 && strncmp(r.err, "mimic: stdin:1: boom", 20) == 0);
}

/* -i without a terminal: prompts and printed values, like `lua -i < file`. */
TEST(test_interactive_without_tty)
{
    if (!have_exe())
        return;
    struct run r;
    run(&r, "1 + 2\nfor i = 1, 2 do\nio.write(i, ';')\nend\n", ARGS("-e", "x = 5", "-i"));
    CHECK(r.code == 0 && strstr(r.out, "> 3\n> >> >> 1;2;> \n") != NULL);
    if (!strstr(r.out, "> 3\n"))
        fprintf(stderr, "got: %s\n", r.out);
}

/* ---- REPL sessions in a pseudo-terminal ------------------------------------- */

struct session {
    pid_t pid;
    int fd;
    int dead;    /* an expectation failed: later ones fail at once */
    size_t len;  /* bytes in buf */
    size_t mark; /* everything before was matched already */
    char buf[1 << 16];
};

static int session_start(struct session *s, const char *history_file)
{
    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->fd = -1;
    if (!have_exe()) {
        s->dead = 1;
        return 0;
    }
    /* A terminal without capabilities keeps the output plain (no escapes to
     * parse); a private HOME and INPUTRC keep the user's readline settings
     * and history out of the test. */
    setenv("TERM", "dumb", 1);
    setenv("MIMIC_HISTORY", history_file, 1);
    setenv("HOME", tmpdir, 1);
    setenv("INPUTRC", "/dev/null", 1);
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    s->pid = forkpty(&s->fd, NULL, NULL, &ws);
    if (s->pid < 0) {
        fprintf(stderr, "forkpty: %s\n", strerror(errno));
        check_failures++;
        s->dead = 1;
        return 0;
    }
    if (s->pid == 0) {
        execl(exe(), exe(), (char *)NULL);
        _exit(127);
    }
    return 1;
}

static void show_tail(const struct session *s)
{
    fprintf(stderr, "    output since the last match: \"");
    for (size_t i = s->mark; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->buf[i];
        if (ch == '\n')
            fputs("\\n", stderr);
        else if (ch == '\r')
            fputs("\\r", stderr);
        else if (ch < 32 || ch == 127)
            fprintf(stderr, "\\x%02x", ch);
        else
            fputc(ch, stderr);
    }
    fputs("\"\n", stderr);
}

/* Reads until `want` appears after the mark; the mark moves past it. */
#define EXPECT(s, want) expect_(s, want, __LINE__)
static int expect_(struct session *s, const char *want, int line)
{
    if (s->dead)
        return 0;
    long long until = now_ms() + wait_limit();
    for (;;) {
        s->buf[s->len] = '\0';
        char *hit = strstr(s->buf + s->mark, want);
        if (hit) {
            s->mark = (size_t)(hit - s->buf) + strlen(want);
            return 1;
        }
        long long left = until - now_ms();
        struct pollfd p = {s->fd, POLLIN, 0};
        ssize_t n = -1;
        if (left > 0 && poll(&p, 1, (int)left) > 0)
            n = read(s->fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
        if (n > 0) {
            s->len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR && left > 0)
            continue;
        fprintf(stderr, "%s:%d: the REPL did not print \"%s\" %s\n", __FILE__, line, want,
                left > 0 ? "before exiting" : "in time");
        show_tail(s);
        check_failures++;
        s->dead = 1;
        return 0;
    }
}

static void type(struct session *s, const char *keys)
{
    if (s->dead)
        return;
    size_t len = strlen(keys);
    while (len > 0) {
        ssize_t n = write(s->fd, keys, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        keys += n;
        len -= (size_t)n;
    }
}

/* Types Ctrl-D at an empty prompt and returns the exit code (-1 if it had to
 * be killed). Always reaps the child and closes the terminal. */
static int session_end(struct session *s)
{
    if (s->pid <= 0)
        return -1;
    if (s->dead) { /* already failed: do not spend the time budget on it */
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        close(s->fd);
        s->pid = -1;
        return -1;
    }
    type(s, "\x04");
    /* Drain the terminal so the child never blocks writing to it. */
    long long until = now_ms() + wait_limit();
    char sink[4096];
    struct pollfd p = {s->fd, POLLIN, 0};
    while (now_ms() < until && poll(&p, 1, 50) >= 0) {
        if ((p.revents & POLLIN) && read(s->fd, sink, sizeof sink) <= 0)
            break;
        if (p.revents & (POLLHUP | POLLERR))
            break;
        if (waitpid(s->pid, NULL, WNOHANG | WNOWAIT) == s->pid)
            break;
    }
    int code = exit_code(reap(s->pid));
    close(s->fd);
    s->pid = -1;
    return code;
}

/* Starts a session and waits for the first prompt, after the version banner.
 * Returns 0 (the failure already reported) if there is no executable. */
static int session_open(struct session *s, const char *history_file)
{
    char hist[256];
    tmp_path(hist, sizeof hist, "history");
    if (!session_start(s, history_file ? history_file : hist))
        return 0;
    (void)(EXPECT(s, "mimic " MIMIC_VERSION) && EXPECT(s, "> "));
    return 1;
}

static struct session sess; /* 64 KiB: not on the stack */

TEST(test_repl_expression)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "1+2\r");
    EXPECT(s, "\n3\r\n> ");
    type(s, "'a', nil, 2.5, {} ~= nil\r"); /* several results, tab-separated */
    EXPECT(s, "a\tnil\t2.5\ttrue\r\n> ");
    type(s, "=10*10\r");
    EXPECT(s, "100\r\n> ");
    type(s, "print('x' .. 'y')\r"); /* a call returning nothing prints only its output */
    EXPECT(s, "xy\r\n> ");
    CHECK(session_end(s) == 0);
}

/* Types a line and returns what the REPL printed for it, before the next prompt. */
static void capture(struct session *s, const char *line, char *out, size_t size)
{
    char echo[256];
    out[0] = '\0';
    snprintf(echo, sizeof echo, "%s\r\n", line);
    type(s, line);
    type(s, "\r");
    EXPECT(s, echo);
    size_t from = s->mark;
    if (EXPECT(s, "\r\n> ") && s->mark - 4 - from < size) {
        memcpy(out, s->buf + from, s->mark - 4 - from);
        out[s->mark - 4 - from] = '\0';
    }
}

TEST(test_repl_tensor)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "x = mimic.zeros(2,2)\r");
    EXPECT(s, "> ");
    /* The REPL shows a tensor exactly as its __tostring does. */
    char shown[4096], printed[4096];
    capture(s, "x", shown, sizeof shown);
    capture(s, "print(tostring(x))", printed, sizeof printed);
    CHECK(strstr(shown, "mimic.Tensor") && strchr(shown, '0'));
    CHECK(strcmp(shown, printed) == 0);
    /* Several results are tab-separated. */
    capture(s, "x:numel(), x", shown, sizeof shown);
    CHECK(strncmp(shown, "4\t", 2) == 0 && strstr(shown, printed));
    CHECK(session_end(s) == 0);
}

TEST(test_repl_multiline)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "for i = 1, 3 do\r");
    EXPECT(s, ">> ");
    type(s, "io.write(i * 11, ' ')\r");
    EXPECT(s, ">> ");
    type(s, "end\r");
    EXPECT(s, "11 22 33 > ");
    type(s, "function f(a)\r");
    EXPECT(s, ">> ");
    type(s, "return a * 2\r");
    EXPECT(s, ">> ");
    type(s, "end\r");
    EXPECT(s, "> ");
    type(s, "f(21)\r");
    EXPECT(s, "42\r\n> ");
    type(s, "t = {\r");
    EXPECT(s, ">> ");
    type(s, "n = 7 }\r");
    EXPECT(s, "> ");
    type(s, "t.n * 6\r");
    EXPECT(s, "42\r\n> ");
    CHECK(session_end(s) == 0);
}

/* Each completion is checked twice: Tab must echo exactly the inserted text,
 * and the completed line must then run. */
TEST(test_repl_complete_globals)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "mimic.zer\t"); /* a function: "(" appended */
    EXPECT(s, "os(");
    type(s, "2,3)\r");
    EXPECT(s, "[2,3]");
    EXPECT(s, "> ");
    type(s, "string.fo\t"); /* nested table */
    EXPECT(s, "rmat(");
    type(s, "'%d', 6*7)\r");
    EXPECT(s, "42\r\n> ");
    type(s, "strin\t"); /* a table: "." appended, not a space */
    EXPECT(s, "g.");
    type(s, "rep('ab', 2)\r");
    EXPECT(s, "abab\r\n> ");
    type(s, "retur\t"); /* a keyword: a space */
    EXPECT(s, "n ");
    type(s, "6*7\r");
    EXPECT(s, "42\r\n> ");
    type(s, "math.hug\t"); /* a number: nothing */
    EXPECT(s, "e");
    type(s, " > 1\r");
    EXPECT(s, "true\r\n> ");
    type(s, "mimic.\t\t"); /* the list shows field names without "mimic." */
    EXPECT(s, "zeros");
    EXPECT(s, "> mimic.");
    type(s, "\x15");
    CHECK(session_end(s) == 0);
}

TEST(test_repl_complete_methods)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "t = mimic.zeros(2,3)\r");
    EXPECT(s, "> ");
    type(s, "t:nume\t"); /* a tensor method */
    EXPECT(s, "l(");
    type(s, ")\r");
    EXPECT(s, "6\r\n> ");
    type(s, "t:su\t\t"); /* ambiguous: the second Tab lists sub, sub_, sum */
    EXPECT(s, "sum");
    EXPECT(s, "> t:su");
    type(s, "m\t):item() == 0\r");
    EXPECT(s, "true\r\n> ");
    /* After ':' only functions (frobnum is not one, so frob is unique), from
     * the value's __index table. */
    type(s, "obj = setmetatable({}, {__index = {frob = function() return 6*7 end, frobnum = 1}})\r");
    EXPECT(s, "> ");
    type(s, "obj:fro\t");
    EXPECT(s, "b(");
    type(s, ")\r");
    EXPECT(s, "42\r\n> ");
    type(s, "obj.frobn\t");
    EXPECT(s, "um");
    type(s, " + 1\r");
    EXPECT(s, "2\r\n> ");
    /* Strings have methods too: their metatable's __index is `string`. */
    type(s, "str = 'abc'\r");
    EXPECT(s, "> ");
    type(s, "str:upp\t");
    EXPECT(s, "er(");
    type(s, ")\r");
    EXPECT(s, "ABC\r\n> ");
    CHECK(session_end(s) == 0);
}

TEST(test_repl_error_and_interrupt)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "error('bo' .. 'om')\r");
    EXPECT(s, "mimic: stdin:1: boom");
    EXPECT(s, "> ");
    type(s, "6*7\r");
    EXPECT(s, "42\r\n> ");
    type(s, "x = = 1\r"); /* a syntax error is reported, not continued */
    EXPECT(s, "mimic: stdin:1:");
    EXPECT(s, "> ");
    /* Ctrl-C stops running code with an error; the session goes on. */
    type(s, "io.write('sp' .. 'in\\n') while true do end\r");
    EXPECT(s, "spin");
    type(s, "\x03");
    EXPECT(s, "interrupted!");
    EXPECT(s, "> ");
    /* Ctrl-C at a continuation prompt drops the unfinished chunk. */
    type(s, "for i = 1, 2 do\r");
    EXPECT(s, ">> ");
    type(s, "\x03");
    EXPECT(s, "> ");
    type(s, "6*8\r");
    EXPECT(s, "48\r\n> ");
    CHECK(session_end(s) == 0);
}

TEST(test_repl_history)
{
    char hist[256];
    tmp_path(hist, sizeof hist, "history");
    unlink(hist);
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "1+2\r");
    EXPECT(s, "3\r\n> ");
    type(s, "function g()\r");
    EXPECT(s, ">> ");
    type(s, "return 41 end\r");
    EXPECT(s, "> ");
    CHECK(session_end(s) == 0);

    FILE *f = fopen(hist, "r");
    char text[4096] = "";
    if (f) {
        text[fread(text, 1, sizeof text - 1, f)] = '\0';
        fclose(f);
    }
    CHECK(f != NULL);
    CHECK(strstr(text, "1+2\n") && strstr(text, "function g()\nreturn 41 end\n"));

    /* A new session recalls the multi-line chunk whole (Ctrl-P), then 1+2. */
    if (!session_open(s, NULL))
        return;
    type(s, "\x10\r");
    EXPECT(s, "> ");
    type(s, "g() + 1\r");
    EXPECT(s, "42\r\n> ");
    type(s, "\x10\x10\x10\r"); /* g() + 1, the chunk, 1+2 */
    EXPECT(s, "3\r\n> ");
    CHECK(session_end(s) == 0);

    /* An unwritable history file is ignored. */
    if (!session_open(s, "/nonexistent/dir/history"))
        return;
    type(s, "1+1\r");
    EXPECT(s, "2\r\n> ");
    CHECK(session_end(s) == 0);
}

TEST(test_repl_ctrl_d)
{
    struct session *s = &sess;
    if (!session_open(s, NULL))
        return;
    type(s, "x = 1\r");
    EXPECT(s, "> ");
    CHECK(session_end(s) == 0);
}

int main(void)
{
    deadline_ms = now_ms() + BUDGET_MS;
    signal(SIGPIPE, SIG_IGN); /* a child that exits without reading its stdin */
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_version);
    RUN(test_usage);
    RUN(test_eval_option);
    RUN(test_mimic_preloaded);
    RUN(test_script_args);
    RUN(test_script_error);
    RUN(test_script_interrupt);
    RUN(test_stdin_script);
    RUN(test_interactive_without_tty);
    RUN(test_repl_expression);
    RUN(test_repl_tensor);
    RUN(test_repl_multiline);
    RUN(test_repl_complete_globals);
    RUN(test_repl_complete_methods);
    RUN(test_repl_error_and_interrupt);
    RUN(test_repl_history);
    RUN(test_repl_ctrl_d);

    const char *files[] = {"args.lua", "fail.lua", "syntax.lua", "history", ".inputrc"};
    char path[256];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        tmp_path(path, sizeof path, files[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return CHECK_DONE();
}
