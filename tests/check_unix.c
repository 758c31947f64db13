/* check_unix.c - Unix domain sockets: unix:/path and unix:@abstract, a stale socket file
 * replaced, a live one "in use" (the library's error, the binary's exit 1), anything that is
 * not a socket left alone, the file removed at exit (and only if it is still ours),
 * --unix-mode, and the peer address as the handler sees it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "familyutil.h"
#include "net.h"
#include "testutil.h"

/* A private temp dir and a socket path in it. */
static void temp_path(char dir[64], char path[128])
{
    snprintf(dir, 64, "/tmp/sockpool-unix-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, 128, "%s/s.sock", dir);
}

/* Connect to a Unix path (abstract if it starts with '@'); returns the fd or -errno. */
static int unix_connect(const char *name)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char spec[160];
    int fd, rc;

    snprintf(spec, sizeof(spec), "unix:%s", name);
    ck_assert_int_eq(net_unix_addr(spec, &ss, &len), 0);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    rc = connect(fd, (struct sockaddr *)&ss, len);
    if (rc < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    ck_assert_int_eq(net_set_timeout(fd, SO_RCVTIMEO, 5), 0);
    return fd;
}

/* Leave a socket file with nothing listening on it: a server killed with SIGKILL. */
static void make_stale(const char *path)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memcpy(un.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    close(fd); /* the file stays, nobody listens: connect is refused */
    ck_assert_int_eq(unix_connect(path), -ECONNREFUSED);
}

static struct sp_server *try_new(const char *spec, unsigned mode, char err[SP_ERRLEN])
{
    struct sp_config c;

    fu_config(&c, SP_MODE_POOL);
    c.host = spec;
    c.unix_mode = mode;
    return sp_server_new(&c, err);
}

START_TEST(stale_file_replaced)
{
    char dir[64], path[128], spec[160], err[SP_ERRLEN] = "";
    struct sp_server *s;

    temp_path(dir, path);
    make_stale(path);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    s = try_new(spec, 0, err);
    ck_assert_msg(s != NULL, "stale socket not replaced: %s", err);
    int fd = unix_connect(path); /* listening (not yet accepting: the backlog takes it) */
    ck_assert_int_ge(fd, 0);
    close(fd);
    sp_server_free(s);
    ck_assert_msg(access(path, F_OK) < 0, "socket file left after sp_server_free");
    rmdir(dir);
}
END_TEST

START_TEST(live_socket_in_use)
{
    char dir[64], path[128], spec[160], err[SP_ERRLEN] = "";
    struct sp_server *a, *b;

    temp_path(dir, path);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    a = try_new(spec, 0, err);
    ck_assert_msg(a != NULL, "%s", err);
    b = try_new(spec, 0, err);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(err, "Address already in use") != NULL, "err: %s", err);
    /* The second attempt left the first one's file alone. */
    ck_assert_int_eq(access(path, F_OK), 0);
    sp_server_free(a);
    ck_assert(access(path, F_OK) < 0);
    rmdir(dir);
}
END_TEST

/* A regular file where the socket should go is never removed. */
START_TEST(regular_file_left_alone)
{
    char dir[64], path[128], spec[160], err[SP_ERRLEN] = "";
    int fd;

    temp_path(dir, path);
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    ck_assert_ptr_null(try_new(spec, 0, err));
    ck_assert_msg(strstr(err, "Address already in use") != NULL, "err: %s", err);
    ck_assert_int_eq(access(path, F_OK), 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(unix_mode_applied)
{
    char dir[64], path[128], spec[160], err[SP_ERRLEN] = "";
    struct sp_server *s;
    struct stat sb;

    temp_path(dir, path);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    s = try_new(spec, 0660, err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISSOCK(sb.st_mode));
    ck_assert_uint_eq(sb.st_mode & 07777, 0660);
    sp_server_free(s);
    rmdir(dir);
}
END_TEST

/* A newer server's file at our path is not ours to remove. */
START_TEST(replaced_file_not_removed)
{
    char dir[64], path[128], spec[160], err[SP_ERRLEN] = "";
    struct sp_server *s;

    temp_path(dir, path);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    s = try_new(spec, 0, err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_eq(unlink(path), 0);
    make_stale(path); /* another inode now */
    sp_server_free(s);
    ck_assert_msg(access(path, F_OK) == 0, "removed a socket file that was not its own");
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(abstract_namespace)
{
    char name[64], spec[80], err[SP_ERRLEN] = "", addr[NET_ADDRSTRLEN];
    struct fu_server f;
    struct sp_config c;
    struct sockaddr_storage ss;
    int fd;

    snprintf(name, sizeof(name), "@sockpool-test-%ld", (long)getpid());
    snprintf(spec, sizeof(spec), "unix:%s", name);
    fu_config(&c, SP_MODE_POOL);
    c.host = spec;
    f.s = sp_server_new(&c, err);
    ck_assert_msg(f.s != NULL, "%s", err);
    sp_server_address(f.s, &ss);
    ck_assert_str_eq(net_format_addr((struct sockaddr *)&ss, addr, sizeof(addr)), spec);
    ck_assert_uint_eq(sp_server_port(f.s), 0);
    /* Served through handle_request in this thread. */
    fd = unix_connect(name);
    ck_assert_int_ge(fd, 0);
    tu_send(fd, "abc", 3);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(sp_server_handle_request(f.s, 5000), 0);
    char got[4] = "";
    ck_assert_uint_eq(tu_recv_n(fd, got, 3), 3);
    ck_assert_str_eq(got, "ABC");
    close(fd);
    /* A second server on the same name: in use. */
    ck_assert_ptr_null(try_new(spec, 0, err));
    ck_assert_msg(strstr(err, "Address already in use") != NULL, "err: %s", err);
    sp_server_free(f.s);
    ck_assert_int_eq(unix_connect(name), -ECONNREFUSED);
}
END_TEST

/* The handler's view of a Unix peer: family AF_UNIX, formatted "unix:(unnamed)". */
static int peer_handler(struct sp_request *req, void *user)
{
    char addr[NET_ADDRSTRLEN];

    (void)user;
    net_format_addr((struct sockaddr *)&req->client_address, addr, sizeof(addr));
    return sp_send_all(req, addr, strlen(addr));
}

START_TEST(peer_address_unnamed)
{
    struct fu_server f;
    struct sp_config c;
    char got[64] = "";
    int fd;

    fu_config(&c, SP_MODE_THREAD);
    c.handle = peer_handler;
    fu_start(&f, &c, FU_UNIX);
    fd = fu_connect(&f);
    ck_assert_uint_eq(tu_recv_n(fd, got, 14), 14);
    ck_assert_str_eq(got, "unix:(unnamed)");
    close(fd);
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, NULL);
}
END_TEST

static bool listening_on(void *arg)
{
    int fd = unix_connect(arg);

    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

/* The binary: serves on unix:, refuses a second one on the same path (exit 1), removes the
 * file at exit. (tu_server_start waits for a TCP port in the port file; a Unix socket's is 0,
 * so this waits for the socket to accept instead.) */
START_TEST(binary_unix)
{
    char dir[64], path[128], spec[160], out[256], errb[512];
    const char *second[] = {NULL, "-b", spec, NULL};
    int fd, status;
    pid_t pid;

    temp_path(dir, path);
    snprintf(spec, sizeof(spec), "unix:%s", path);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaks no server */
        execl(tu_server_path(), "sockpool-server", "-b", spec, "--unix-mode", "600", "--quiet",
              (char *)NULL);
        _exit(127);
    }
    ck_assert_msg(tu_wait_for(listening_on, path, 10000), "never listened on %s", path);
    fd = unix_connect(path);
    ck_assert_int_ge(fd, 0);
    fu_exchange(fd, "over a unix socket");
    second[0] = tu_server_path();
    status = tu_run(second, NULL, 0, out, sizeof(out), errb, sizeof(errb), 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "second server: %d %s", status,
                  errb);
    ck_assert_msg(strstr(errb, "in use") != NULL, "stderr: %s", errb);
    close(fd);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    ck_assert_msg(access(path, F_OK) < 0, "socket file left at exit");
    rmdir(dir);
}
END_TEST

/* The client's -H unix:PATH: pipe mode through a Unix socket, byte exact. */
START_TEST(client_over_unix)
{
    struct fu_server f;
    struct sp_config c;
    char spec[160], out[64] = "", err[512] = "";
    int status;

    fu_config(&c, SP_MODE_POOL);
    fu_start(&f, &c, FU_UNIX);
    snprintf(spec, sizeof(spec), "unix:%s", f.path);
    const char *argv[] = {tu_client_path(), "-H", spec, NULL};
    status = tu_run(argv, "over unix\n", 10, out, sizeof(out), err, sizeof(err), 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client: %d %s", status, err);
    ck_assert_str_eq(out, "OVER UNIX\n");
    FU_WAIT_STAT(&f, completed, 1);
    fu_stop(&f, 5000, NULL);
}
END_TEST

START_TEST(bad_unix_specs)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char longp[200], err[SP_ERRLEN];

    ck_assert_int_eq(net_unix_addr("unix:", &ss, &len), -EINVAL);
    ck_assert_int_eq(net_unix_addr("unix:@", &ss, &len), -EINVAL);
    ck_assert_int_eq(net_unix_addr("/tmp/x", &ss, &len), -EINVAL);
    memset(longp, 'a', sizeof(longp));
    memcpy(longp, "unix:/", 6);
    longp[sizeof(longp) - 1] = '\0';
    ck_assert_int_eq(net_unix_addr(longp, &ss, &len), -ENAMETOOLONG);
    ck_assert_ptr_null(try_new(longp, 0, err));
    ck_assert_msg(strstr(err, "too long") != NULL, "err: %s", err);
}
END_TEST

static Suite *unix_suite(void)
{
    Suite *s = suite_create("unix");
    TCase *t = tcase_create("unix");

    tcase_set_timeout(t, 30);
    tcase_add_test(t, stale_file_replaced);
    tcase_add_test(t, live_socket_in_use);
    tcase_add_test(t, regular_file_left_alone);
    tcase_add_test(t, unix_mode_applied);
    tcase_add_test(t, replaced_file_not_removed);
    tcase_add_test(t, abstract_namespace);
    tcase_add_test(t, peer_address_unnamed);
    tcase_add_test(t, binary_unix);
    tcase_add_test(t, client_over_unix);
    tcase_add_test(t, bad_unix_specs);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(unix_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
