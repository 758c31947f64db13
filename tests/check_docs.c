/* check_docs.c - every C code block of README.md and docs/NAME.md is compiled against the library
 * (libsockpool.a and server/sockpool.h, what a user has) and, if it is a program, run: a
 * documented example that no longer builds or no longer does what its page says fails here.
 *
 * A block is a fence whose info string is "c". The HTML comment on the line before it (it
 * does not show on a rendered page) says what to do with it; without one, a block with a
 * main() that calls sp_server_serve_forever or sp_server_handle_request is a server, another
 * with a main() a program, and one without main() declarations:
 *
 *   <!-- doc-test: server [send="hello\n"] [expect="HELLO\n"] [udp] [signal=TERM] -->
 *       run with its sp_server_new wrapped (-Wl,--wrap) so that it binds port 0 and writes a
 *       port file; send `send`, read the reply (`expect`, or at least one byte), half-close,
 *       stop it with the signal: it must exit 0 (a graceful stop)
 *   <!-- doc-test: program [stdout="text"] [exit=N] -->
 *       run with no input: exit status N (0), stdout containing `stdout` if given
 *   <!-- doc-test: compile -->       a whole program, built but not run
 *   <!-- doc-test: decls -->         top-level declarations, linked with an empty main
 *   <!-- doc-test: fragment [before="struct sp_config c;"] -->
 *       statements, placed in a function body after `before`
 *
 * Every kind is linked, so a name the library does not export fails too. decls and fragments
 * get the usual headers and sockpool.h in front. Compiler messages point into the .md file
 * (#line). Built by tests/docs.mk, which passes the compiler and flags of the build. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net.h"
#include "parse.h"
#include "testutil.h"

#ifndef DOCS_CC
#define DOCS_CC "cc"
#endif
#ifndef DOCS_CFLAGS
#define DOCS_CFLAGS "-std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra -Werror -Iserver"
#endif
#ifndef DOCS_LIB
#define DOCS_LIB "build/libsockpool.a"
#endif
#ifndef DOCS_LDFLAGS
#define DOCS_LDFLAGS "-pthread"
#endif
#ifndef DOCS_ROOT
#define DOCS_ROOT "."
#endif

#define MAX_BLOCKS 256
#define MAX_OPT 1024

enum kind { K_SERVER, K_PROGRAM, K_COMPILE, K_DECLS, K_FRAGMENT };

static const char *const kind_names[] = {"server", "program", "compile", "decls", "fragment"};

struct block {
    char file[256]; /* relative to the repository's root */
    int line;       /* of the block's first line of code */
    enum kind kind;
    char send[MAX_OPT], expect[MAX_OPT], stdout_has[MAX_OPT], before[MAX_OPT];
    bool udp, has_expect;
    int exit_status, signal;
    char *code;
};

static struct block blocks[MAX_BLOCKS];
static int nblocks;

/* ---- the marker ---- */

/* Copy the quoted value at *p (after key=") into out, decoding \n \t \\ \"; advance *p. */
static void quoted(const char **p, char *out, size_t cap)
{
    size_t n = 0;
    const char *s = *p;

    while (*s != '\0' && *s != '"') {
        char ch = *s++;
        if (ch == '\\' && *s != '\0') {
            ch = *s++;
            ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch == 'r' ? '\r' : ch;
        }
        if (n + 1 < cap)
            out[n++] = ch;
    }
    out[n] = '\0';
    *p = *s == '"' ? s + 1 : s;
}

/* Read "KIND key=value ..." (the marker's text after "doc-test:") into b. Returns false for an
 * unknown kind or option, so that a typo fails instead of being ignored. */
static bool parse_marker(const char *m, struct block *b, char *why, size_t cap)
{
    const char *p = m + strspn(m, " ");
    size_t len = strcspn(p, " -");
    bool known = false;

    for (int k = 0; k <= K_FRAGMENT; k++)
        if (strlen(kind_names[k]) == len && strncmp(p, kind_names[k], len) == 0) {
            b->kind = (enum kind)k;
            known = true;
        }
    if (!known) {
        snprintf(why, cap, "unknown doc-test kind '%.*s'", (int)len, p);
        return false;
    }
    for (p += len; *(p += strspn(p, " ")) != '\0' && strncmp(p, "-->", 3) != 0;) {
        if (strncmp(p, "send=\"", 6) == 0) {
            p += 6;
            quoted(&p, b->send, sizeof(b->send));
        } else if (strncmp(p, "expect=\"", 8) == 0) {
            p += 8;
            quoted(&p, b->expect, sizeof(b->expect));
            b->has_expect = true;
        } else if (strncmp(p, "stdout=\"", 8) == 0) {
            p += 8;
            quoted(&p, b->stdout_has, sizeof(b->stdout_has));
        } else if (strncmp(p, "before=\"", 8) == 0) {
            p += 8;
            quoted(&p, b->before, sizeof(b->before));
        } else if (strncmp(p, "udp", 3) == 0 && (p[3] == ' ' || p[3] == '-')) {
            b->udp = true;
            p += 3;
        } else if (sscanf(p, "exit=%d", &b->exit_status) == 1) {
            p += strcspn(p, " ");
        } else if (strncmp(p, "signal=", 7) == 0) {
            p += 7;
            b->signal = strncmp(p, "INT", 3) == 0    ? SIGINT
                        : strncmp(p, "QUIT", 4) == 0 ? SIGQUIT
                                                     : SIGTERM;
            p += strcspn(p, " ");
        } else {
            snprintf(why, cap, "unknown doc-test option '%.*s'", (int)strcspn(p, " "), p);
            return false;
        }
    }
    return true;
}

/* The kind of a block that has no marker. */
static enum kind guess_kind(const char *code)
{
    if (strstr(code, "main(") == NULL)
        return K_DECLS;
    if (strstr(code, "sp_server_serve_forever") != NULL ||
        strstr(code, "sp_server_handle_request") != NULL)
        return K_SERVER;
    return K_PROGRAM;
}

/* ---- extraction ---- */

static void add_block(const char *file, int line, const char *marker, char *code, char *why,
                      size_t cap)
{
    struct block *b;

    if (nblocks == MAX_BLOCKS) {
        free(code);
        return;
    }
    b = &blocks[nblocks++];
    memset(b, 0, sizeof(*b));
    snprintf(b->file, sizeof(b->file), "%s", file);
    b->line = line;
    b->code = code;
    b->signal = SIGTERM;
    snprintf(b->send, sizeof(b->send), "hello\n");
    if (marker != NULL) {
        if (!parse_marker(marker, b, why, cap))
            b->kind = K_COMPILE; /* reported by the test of this block */
    } else {
        b->kind = guess_kind(code);
    }
}

/* Append line to the growing buffer *buf. */
static void append(char **buf, size_t *len, size_t *cap, const char *line)
{
    size_t n = strlen(line);

    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        if (*buf == NULL)
            abort(); /* read before any test runs: no Check assertion here */
    }
    memcpy(*buf + *len, line, n + 1);
    *len += n;
}

/* Problems found while reading the pages (a bad marker), reported by the block's test. */
static char marker_errors[MAX_BLOCKS][160];

/* Collect the C blocks of one Markdown file. A fence is ``` at the start of a line; inside
 * another language's fence nothing is taken. */
static void scan_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char line[4096], marker[512] = "", *code = NULL;
    size_t len = 0, cap = 0;
    int lineno = 0, start = 0;
    bool in_c = false, in_other = false, have_marker = false;

    if (f == NULL) {
        fprintf(stderr, "check_docs: %s: %s\n", path, strerror(errno));
        exit(EXIT_FAILURE);
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        bool fence = strncmp(line, "```", 3) == 0;
        if (in_c && fence) {
            char why[160] = "";
            int idx = nblocks;
            add_block(path, start, have_marker ? marker : NULL, code ? code : strdup(""), why,
                      sizeof(why));
            if (idx < MAX_BLOCKS)
                snprintf(marker_errors[idx], sizeof(marker_errors[idx]), "%s", why);
            code = NULL;
            len = cap = 0;
            in_c = have_marker = false;
        } else if (in_c) {
            append(&code, &len, &cap, line);
        } else if (in_other && fence) {
            in_other = false;
        } else if (fence) {
            char info[64] = "";
            sscanf(line + 3, "%63s", info);
            in_c = strcmp(info, "c") == 0 || strcmp(info, "C") == 0;
            in_other = !in_c;
            start = lineno + 1;
            if (!in_c)
                have_marker = false;
        } else if (!in_other && line[strspn(line, " \t\r\n")] != '\0') {
            /* Only a comment that opens the line: a page may quote the syntax in a table. */
            const char *m = line + strspn(line, " \t");
            have_marker = strncmp(m, "<!-- doc-test:", 14) == 0;
            if (have_marker)
                snprintf(marker, sizeof(marker), "%s", m + strlen("<!-- doc-test:"));
        }
    }
    fclose(f);
    free(code); /* an unclosed fence */
}

/* README.md and every docs/NAME.md, in that order. */
static void scan_all(void)
{
    glob_t g;

    scan_file(DOCS_ROOT "/README.md");
    if (glob(DOCS_ROOT "/docs/*.md", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            scan_file(g.gl_pathv[i]);
        globfree(&g);
    }
}

/* ---- building ---- */

/* Headers in front of decls and fragments: what such snippets assume. */
static const char prelude[] = "#include <errno.h>\n#include <pthread.h>\n#include <signal.h>\n"
                              "#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>\n"
                              "#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n"
                              "#include <sys/socket.h>\n#include <sockpool.h>\n";

/* Linked into servers: sp_server_new binds port 0 and writes the port to $SP_DOC_PORT_FILE
 * (by rename: a reader sees all of it or nothing) once the socket listens. */
static const char wrap_src[] =
    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <sockpool.h>\n"
    "struct sp_server *__real_sp_server_new(const struct sp_config *, char *);\n"
    "struct sp_server *__wrap_sp_server_new(const struct sp_config *, char *);\n"
    "struct sp_server *__wrap_sp_server_new(const struct sp_config *c, char *err)\n"
    "{\n"
    "    const char *path = getenv(\"SP_DOC_PORT_FILE\");\n"
    "    struct sp_config copy = *c;\n"
    "    char tmp[4200];\n"
    "    if (path == NULL || (c->host != NULL && strncmp(c->host, \"unix:\", 5) == 0))\n"
    "        return __real_sp_server_new(c, err);\n"
    "    copy.port = 0;\n"
    "    struct sp_server *s = __real_sp_server_new(&copy, err);\n"
    "    if (s == NULL)\n"
    "        return NULL;\n"
    "    snprintf(tmp, sizeof(tmp), \"%s.tmp\", path);\n"
    "    FILE *f = fopen(tmp, \"w\");\n"
    "    if (f == NULL || fprintf(f, \"%u\\n\", sp_server_port(s)) < 0 || fclose(f) != 0 ||\n"
    "        rename(tmp, path) != 0)\n"
    "        abort();\n"
    "    return s;\n"
    "}\n";

static void write_file(const char *path, const char *a, const char *b, const char *c)
{
    FILE *f = fopen(path, "we");

    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_int_ge(fputs(a, f), 0);
    ck_assert_int_ge(fputs(b, f), 0);
    ck_assert_int_ge(fputs(c, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* The source the compiler sees for b, into dir/block.c. */
static void write_source(const struct block *b, const char *dir)
{
    char path[128], head[2048], tail[256] = "";

    snprintf(path, sizeof(path), "%s/block.c", dir);
    if (b->kind == K_FRAGMENT) {
        snprintf(head, sizeof(head),
                 "%svoid doc_fragment(void);\nvoid doc_fragment(void)\n{\n%s\n#line %d \"%s\"\n",
                 prelude, b->before, b->line, b->file);
        snprintf(tail, sizeof(tail), "}\nint main(void)\n{\n    return 0;\n}\n");
    } else if (b->kind == K_DECLS) {
        snprintf(head, sizeof(head), "%s#line %d \"%s\"\n", prelude, b->line, b->file);
        snprintf(tail, sizeof(tail), "int main(void)\n{\n    return 0;\n}\n");
    } else {
        snprintf(head, sizeof(head), "#line %d \"%s\"\n", b->line, b->file);
    }
    write_file(path, head, b->code, tail);
}

/* Compile and link dir/block.c into dir/prog. Returns the wait status; the compiler's
 * messages in msg. */
static int build(const struct block *b, const char *dir, char *msg, size_t cap)
{
    char cmd[4096], out[256];
    bool server = b->kind == K_SERVER;
    const char *relaxed = b->kind == K_FRAGMENT || b->kind == K_DECLS
                              ? " -Wno-unused-function -Wno-unused-variable"
                                " -Wno-unused-but-set-variable"
                              : "";

    if (server) {
        char wrap[128];
        snprintf(wrap, sizeof(wrap), "%s/wrap.c", dir);
        write_file(wrap, wrap_src, "", "");
    }
    snprintf(cmd, sizeof(cmd), "exec %s %s%s -o %s/prog %s/block.c %s%s%s %s %s -lm", DOCS_CC,
             DOCS_CFLAGS, relaxed, dir, dir, server ? dir : "", server ? "/wrap.c" : "",
             server ? " -Wl,--wrap=sp_server_new" : "", DOCS_LIB, DOCS_LDFLAGS);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return tu_run(argv, "", 0, out, sizeof(out), msg, cap, 120000);
}

/* ---- running ---- */

/* Talk to a TCP server block: send, read the reply, half-close, expect EOF. */
static void talk_tcp(const struct block *b, uint16_t port)
{
    int fd = tu_connect(port);
    char reply[MAX_OPT] = "";
    size_t want = b->has_expect ? strlen(b->expect) : 1;

    tu_send(fd, b->send, strlen(b->send));
    size_t got = tu_recv_n(fd, reply, want);
    ck_assert_msg(got == want, "%s:%d: the server answered %zu bytes ('%.*s'), %zu expected",
                  b->file, b->line, got, (int)got, reply, want);
    if (b->has_expect)
        ck_assert_msg(memcmp(reply, b->expect, want) == 0, "%s:%d: reply '%s', expected '%s'",
                      b->file, b->line, reply, b->expect);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    /* Anything left of a reply longer than expected, then the server's close. */
    while (recv(fd, reply, sizeof(reply), 0) > 0)
        ;
    close(fd);
}

/* Talk to a UDP server block: one datagram, one reply. */
static void talk_udp(const struct block *b, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char reply[MAX_OPT + 1] = "";
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    ck_assert_int_eq(parse_addr("127.0.0.1", port, &ss, &len), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(send(fd, b->send, strlen(b->send), 0), (ssize_t)strlen(b->send));
    ssize_t n = recv(fd, reply, MAX_OPT, 0);
    ck_assert_msg(n > 0, "%s:%d: no reply datagram within 5 s", b->file, b->line);
    if (b->has_expect)
        ck_assert_msg((size_t)n == strlen(b->expect) && memcmp(reply, b->expect, (size_t)n) == 0,
                      "%s:%d: reply '%.*s', expected '%s'", b->file, b->line, (int)n, reply,
                      b->expect);
    close(fd);
}

static void run_server(const struct block *b, const char *dir)
{
    char prog[128], portfile[128], env[160];
    struct tu_spawn_opts o = {.env = env, .port_file = portfile};
    struct tu_proc p;

    snprintf(prog, sizeof(prog), "%s/prog", dir);
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    snprintf(env, sizeof(env), "SP_DOC_PORT_FILE=%s", portfile);
    tu_proc_start_opts(&p, prog, NULL, &o);
    unlink(portfile);
    if (b->udp)
        talk_udp(b, p.port);
    else
        talk_tcp(b, p.port);
    int st = tu_proc_stop(&p, b->signal, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "%s:%d: the server did not exit 0 after %s (status %d): %s", b->file, b->line,
                  strsignal(b->signal), st, p.errlog);
}

static void run_program(const struct block *b, const char *dir)
{
    char prog[128], out[8192], err[8192];

    snprintf(prog, sizeof(prog), "%s/prog", dir);
    const char *argv[] = {prog, NULL};
    int st = tu_run(argv, "", 0, out, sizeof(out), err, sizeof(err), 10000);
    ck_assert_msg(st != -1, "%s:%d: still running after 10 s", b->file, b->line);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == b->exit_status,
                  "%s:%d: status %d, exit %d expected; stderr: %s", b->file, b->line, st,
                  b->exit_status, err);
    ck_assert_msg(strstr(out, b->stdout_has) != NULL, "%s:%d: stdout lacks '%s': %s", b->file,
                  b->line, b->stdout_has, out);
}

/* Remove dir and the files a block's test leaves in it. */
static void cleanup(const char *dir)
{
    static const char *const names[] = {"block.c", "wrap.c", "prog", "port", "port.tmp"};
    char path[160];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* Build (and run) block b in a fresh temp dir. */
static void test_one(const struct block *b, const char *marker_error)
{
    char dir[64] = "/tmp/sockpool-doc-XXXXXX", msg[8192];

    ck_assert_msg(marker_error == NULL || marker_error[0] == '\0', "%s:%d: %s", b->file,
                  b->line - 1, marker_error);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_source(b, dir);
    int st = build(b, dir, msg, sizeof(msg));
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        cleanup(dir);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "%s:%d: the %s block does not build:\n%s", b->file, b->line, kind_names[b->kind],
                  msg);
    if (b->kind == K_SERVER)
        run_server(b, dir);
    else if (b->kind == K_PROGRAM)
        run_program(b, dir);
    cleanup(dir);
}

START_TEST(doc_block)
{
    ck_assert_int_lt(_i, nblocks);
    test_one(&blocks[_i], marker_errors[_i]);
}
END_TEST

/* The README's library teaser is there and is run as a server. */
START_TEST(readme_has_a_server_block)
{
    bool found = false;

    for (int i = 0; i < nblocks; i++)
        found |= strcmp(blocks[i].file, DOCS_ROOT "/README.md") == 0 && blocks[i].kind == K_SERVER;
    ck_assert_msg(found, "README.md has no C block run as a server (the library teaser)");
}
END_TEST

/* The harness itself: a block that does not compile, or a server that answers wrong, fails. */
START_TEST(harness_catches_a_broken_block)
{
    struct block b = {.file = "synthetic.md", .line = 1, .kind = K_DECLS};
    char dir[64] = "/tmp/sockpool-doc-XXXXXX", msg[8192];

    b.code = "static int f(void) { return undeclared_name; }\n";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    write_source(&b, dir);
    int st = build(&b, dir, msg, sizeof(msg));
    cleanup(dir);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) != 0, "a broken block built");
    ck_assert_msg(strstr(msg, "synthetic.md:1") != NULL, "messages do not point at the page: %s",
                  msg);
}
END_TEST

START_TEST(markers_are_parsed_strictly)
{
    struct block b = {0};
    char why[160] = "";

    ck_assert(parse_marker(" server send=\"a b\\n\" expect=\"A B\\n\" udp signal=INT -->", &b, why,
                           sizeof(why)));
    ck_assert_int_eq(b.kind, K_SERVER);
    ck_assert_str_eq(b.send, "a b\n");
    ck_assert_str_eq(b.expect, "A B\n");
    ck_assert(b.udp && b.has_expect && b.signal == SIGINT);
    ck_assert(!parse_marker(" sever -->", &b, why, sizeof(why)));
    ck_assert(!parse_marker(" program stdot=\"x\" -->", &b, why, sizeof(why)));
    ck_assert_int_eq(guess_kind("int main(void) { sp_server_serve_forever(s, e); }"), K_SERVER);
    ck_assert_int_eq(guess_kind("int main(void) { return 0; }"), K_PROGRAM);
    ck_assert_int_eq(guess_kind("static int f(void);"), K_DECLS);
}
END_TEST

static Suite *docs_suite(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("blocks");
    TCase *self = tcase_create("harness");

    /* Compiling under a sanitizer is slow; each block is its own forked test. */
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, doc_block, 0, nblocks);
    tcase_add_test(tc, readme_has_a_server_block);
    tcase_set_timeout(self, 120);
    tcase_add_test(self, harness_catches_a_broken_block);
    tcase_add_test(self, markers_are_parsed_strictly);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, self);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    scan_all();
    sr = srunner_create(docs_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
