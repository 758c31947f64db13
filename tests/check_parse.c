/* check_parse.c - strict parsing of numbers, ports, durations and addresses, and the address
 * formatting the log lines and error messages use. */
#include <arpa/inet.h>
#include <check.h>
#include <math.h>
#include <net/if.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "net.h"
#include "parse.h"

/* parse_uint over [0, ULLONG_MAX]: returns the code, the value through *v. */
static int uint_any(const char *s, unsigned long long *v)
{
    return parse_uint(s, 0, ULLONG_MAX, v);
}

START_TEST(uint_valid)
{
    unsigned long long v = 0;

    ck_assert_int_eq(uint_any("0", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(uint_any("42", &v), 0);
    ck_assert_uint_eq(v, 42);
    ck_assert_int_eq(uint_any("007", &v), 0);
    ck_assert_uint_eq(v, 7);
    ck_assert_int_eq(uint_any("18446744073709551615", &v), 0);
    ck_assert_uint_eq(v, ULLONG_MAX);
}
END_TEST

START_TEST(uint_invalid)
{
    static const char *const bad[] = {"",    "-1",  " 1",  "1 ",  "12abc", "+1",  "0x10",
                                      "1e3", "1.0", "abc", "\t1", "1\n",   "--1", "\xd9\xa1"};
    unsigned long long v = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(uint_any(bad[i], &v) == -EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(uint_any(NULL, &v), -EINVAL);
}
END_TEST

START_TEST(uint_range)
{
    unsigned long long v = 0;

    ck_assert_int_eq(uint_any("99999999999999999999", &v), -ERANGE);
    ck_assert_int_eq(uint_any("18446744073709551616", &v), -ERANGE);
    ck_assert_int_eq(parse_uint("0", 1, 10, &v), -ERANGE);
    ck_assert_int_eq(parse_uint("11", 1, 10, &v), -ERANGE);
    ck_assert_int_eq(parse_uint("1", 1, 10, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(parse_uint("10", 1, 10, &v), 0);
    ck_assert_uint_eq(v, 10);
    /* Not a number beats out of range: the message must say which. */
    ck_assert_int_eq(parse_uint("11x", 1, 10, &v), -EINVAL);
}
END_TEST

START_TEST(port)
{
    uint16_t p = 1;

    ck_assert_int_eq(parse_port("0", &p), 0);
    ck_assert_uint_eq(p, 0);
    ck_assert_int_eq(parse_port("8000", &p), 0);
    ck_assert_uint_eq(p, 8000);
    ck_assert_int_eq(parse_port("65535", &p), 0);
    ck_assert_uint_eq(p, 65535);
    ck_assert_int_eq(parse_port("65536", &p), -ERANGE);
    ck_assert_int_eq(parse_port("70000", &p), -ERANGE);
    ck_assert_int_eq(parse_port("abc", &p), -EINVAL);
    ck_assert_int_eq(parse_port("-1", &p), -EINVAL);
    ck_assert_int_eq(parse_port("", &p), -EINVAL);
    ck_assert_int_eq(parse_port("80 ", &p), -EINVAL);
}
END_TEST

START_TEST(seconds_valid)
{
    double d = -1;

    ck_assert_int_eq(parse_seconds("0", 100, &d), 0);
    ck_assert_double_eq(d, 0);
    ck_assert_int_eq(parse_seconds("2", 100, &d), 0);
    ck_assert_double_eq(d, 2);
    ck_assert_int_eq(parse_seconds("0.5", 100, &d), 0);
    ck_assert_double_eq(d, 0.5);
    ck_assert_int_eq(parse_seconds("0.25", 100, &d), 0);
    ck_assert_double_eq(d, 0.25);
    /* A trailing dot is still a plain decimal (strtod and Python's float() agree). */
    ck_assert_int_eq(parse_seconds("1.", 100, &d), 0);
    ck_assert_double_eq(d, 1);
    ck_assert_int_eq(parse_seconds("100", 100, &d), 0);
    ck_assert_double_eq(d, 100);
    ck_assert_int_eq(parse_seconds("31536000", 365.0 * 86400, &d), 0);
    ck_assert_double_eq(d, 31536000);
}
END_TEST

START_TEST(seconds_invalid)
{
    static const char *const bad[] = {"",   "-1",   "1e3",   "inf",      "nan", "INF",
                                      ".5", "1..2", "1.2.3", " 1",       "1 ",  "0x10",
                                      "+1", "1s",   "1,5",   "infinity", "-0",  "0x1p3"};
    double d = 0;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse_seconds(bad[i], 100, &d) == -EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(parse_seconds(NULL, 100, &d), -EINVAL);
}
END_TEST

START_TEST(seconds_range)
{
    char huge[400], tiny[400];
    double d = -1;

    ck_assert_int_eq(parse_seconds("100.5", 100, &d), -ERANGE);
    ck_assert_int_eq(parse_seconds("31536001", 365.0 * 86400, &d), -ERANGE);
    /* Beyond double's range: strtod says ERANGE with HUGE_VAL. */
    memset(huge, '9', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    ck_assert_int_eq(parse_seconds(huge, 100, &d), -ERANGE);
    /* Below double's range: a duration of practically zero, not "above max". */
    memset(tiny, '0', sizeof(tiny) - 1);
    tiny[1] = '.';
    tiny[sizeof(tiny) - 2] = '1';
    tiny[sizeof(tiny) - 1] = '\0';
    ck_assert_int_eq(parse_seconds(tiny, 100, &d), 0);
    ck_assert(d >= 0 && d < 1e-300);
}
END_TEST

START_TEST(addr_ipv4)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    socklen_t len = 0;

    ck_assert_int_eq(parse_addr("127.0.0.1", 8000, &ss, &len), 0);
    ck_assert_int_eq(a4->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(a4->sin_port), 8000);
    ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));

    ck_assert_int_eq(parse_addr("0.0.0.0", 65535, &ss, &len), 0);
    ck_assert_uint_eq(ntohs(a4->sin_port), 65535);
    ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_ANY);

    ck_assert_int_eq(parse_addr("10.1.2.3", 1, &ss, &len), 0);
    ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), 0x0a010203u);
    ck_assert_uint_eq(ntohs(a4->sin_port), 1);
}
END_TEST

START_TEST(addr_ipv6)
{
    static const char *const forms[] = {"::1", "[::1]", "0:0:0:0:0:0:0:1"};
    struct sockaddr_storage ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t len = 0;

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ck_assert_int_eq(parse_addr(forms[i], 4242, &ss, &len), 0);
        ck_assert_int_eq(a6->sin6_family, AF_INET6);
        ck_assert_uint_eq(ntohs(a6->sin6_port), 4242);
        ck_assert_msg(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr), "%s is not ::1", forms[i]);
        ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    }
    ck_assert_int_eq(parse_addr("::", 0, &ss, &len), 0);
    ck_assert(IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr));
    ck_assert_int_eq(parse_addr("::ffff:127.0.0.1", 9, &ss, &len), 0);
    ck_assert_int_eq(a6->sin6_family, AF_INET6);
    ck_assert(IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr));
}
END_TEST

/* Scoped literals name their interface (lo always exists), by name or by index; the zone
 * survives formatting; an unknown interface is refused. */
START_TEST(addr_ipv6_scoped)
{
    static const char *const forms[] = {"fe80::1%lo", "[fe80::1%lo]", "fe80::1%1"};
    struct sockaddr_storage ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t len = 0;
    char buf[NET_ADDRSTRLEN];

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ck_assert_msg(parse_addr(forms[i], 80, &ss, &len) == 0, "%s refused", forms[i]);
        ck_assert(IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr));
        ck_assert_uint_eq(a6->sin6_scope_id, if_nametoindex("lo"));
    }
    ck_assert_str_eq(net_format_addr((struct sockaddr *)&ss, buf, sizeof(buf)), "[fe80::1%lo]:80");
    ck_assert_int_eq(parse_addr("fe80::1%no-such-if0", 80, &ss, &len), -EINVAL);
    ck_assert_int_eq(parse_addr("fe80::1%", 80, &ss, &len), -EINVAL);
    ck_assert_int_eq(parse_addr("127.0.0.1%lo", 80, &ss, &len), -EINVAL);
}
END_TEST

START_TEST(addr_localhost)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    socklen_t len = 0;

    ck_assert_int_eq(parse_addr("localhost", 123, &ss, &len), 0);
    ck_assert_int_eq(a4->sin_family, AF_INET);
    ck_assert_uint_eq(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);
    ck_assert_uint_eq(ntohs(a4->sin_port), 123);
}
END_TEST

START_TEST(addr_invalid)
{
    static const char *const bad[] = {
        "999.1.1.1",    "",           "garbage", "1.2.3",       "1.2.3.4.5",
        "[::1",         "::1]",       "[]",      "[127.0.0.1]", "example.com",
        "127.0.0.1:80", " 127.0.0.1", "::1 ",    ":::1",        "localhost."};
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char longv6[200];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse_addr(bad[i], 80, &ss, &len) == -EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(parse_addr(NULL, 80, &ss, &len), -EINVAL);
    /* A bracketed string longer than any address must be refused, not copied past a buffer. */
    memset(longv6, '1', sizeof(longv6) - 1);
    longv6[0] = '[';
    longv6[sizeof(longv6) - 2] = ']';
    longv6[sizeof(longv6) - 1] = '\0';
    ck_assert_int_eq(parse_addr(longv6, 80, &ss, &len), -EINVAL);
}
END_TEST

START_TEST(format_addr)
{
    struct sockaddr_storage ss;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    socklen_t len;
    char buf[NET_ADDRSTRLEN], small[8 + 4];

    ck_assert_int_eq(parse_addr("127.0.0.1", 8000, &ss, &len), 0);
    ck_assert_str_eq(net_format_addr((struct sockaddr *)&ss, buf, sizeof(buf)), "127.0.0.1:8000");
    ck_assert_uint_eq(net_addr_port((struct sockaddr *)&ss), 8000);
    ck_assert_int_eq(parse_addr("[::1]", 65535, &ss, &len), 0);
    ck_assert_str_eq(net_format_addr((struct sockaddr *)&ss, buf, sizeof(buf)), "[::1]:65535");
    ck_assert_uint_eq(net_addr_port((struct sockaddr *)&ss), 65535);
    ck_assert_int_eq(parse_addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, &ss, &len), 0);
    ck_assert_str_eq(net_format_addr((struct sockaddr *)&ss, buf, sizeof(buf)),
                     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    ck_assert_str_eq(net_format_addr((struct sockaddr *)&un, buf, sizeof(buf)), "unix:(unnamed)");
    ck_assert_uint_eq(net_addr_port((struct sockaddr *)&un), 0);
    /* A short buffer truncates and stays terminated; the bytes after it are untouched. */
    memset(small, 'x', sizeof(small));
    ck_assert_int_eq(parse_addr("127.0.0.1", 8000, &ss, &len), 0);
    net_format_addr((struct sockaddr *)&ss, small, 8);
    ck_assert_str_eq(small, "127.0.0");
    ck_assert_int_eq(memcmp(small + 8, "xxxx", 4), 0);
}
END_TEST

/* Sizes: bytes, k (x1024), M (x1048576); nothing else. */
START_TEST(size_suffixes)
{
    static const struct {
        const char *in;
        unsigned long long want;
    } ok[] = {{"64", 64},      {"4k", 4096}, {"4K", 4096},
              {"1M", 1048576}, {"0k", 0},    {"64M", 67108864}};
    static const char *const bad[] = {"", "k", "4m", "4kb", " 4k", "-1k", "4.5k", "1G", "4kk"};
    unsigned long long v = 0;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(parse_size(ok[i].in, 0, UINT64_MAX, &v) == 0, "'%s'", ok[i].in);
        ck_assert_uint_eq(v, ok[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse_size(bad[i], 0, UINT64_MAX, &v) == -EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(parse_size("65M", 1, 64u << 20, &v), -ERANGE);
    ck_assert_int_eq(parse_size("0", 1, 10, &v), -ERANGE);
    ck_assert_int_eq(parse_size("18014398509481984k", 0, UINT64_MAX, &v), -ERANGE);
}
END_TEST

/* Durations: a bare number is seconds; us, ms, s, m. */
START_TEST(duration_units)
{
    static const struct {
        const char *in;
        double want;
    } ok[] = {{"2", 2},   {"0.5", 0.5}, {"250ms", 0.25}, {"2s", 2},
              {"1m", 60}, {"1.5m", 90}, {"100us", 1e-4}, {"0", 0}};
    static const char *const bad[] = {"", "ms", "s", "1h", "1 s", "-1s", "1e3", "2sec", "1ms5"};
    double v = 0;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(parse_duration(ok[i].in, 1e9, &v) == 0, "'%s'", ok[i].in);
        ck_assert_msg(fabs(v - ok[i].want) < 1e-12, "'%s' gave %g", ok[i].in, v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse_duration(bad[i], 1e9, &v) == -EINVAL, "'%s' accepted", bad[i]);
    ck_assert_int_eq(parse_duration("2m", 60, &v), -ERANGE);
}
END_TEST

/* HOST:PORT, [V6]:PORT, [V6], bare V6 (no port), HOST. */
START_TEST(hostport_split)
{
    static const struct {
        const char *in, *host;
        int has_port;
        uint16_t port;
    } ok[] = {{"127.0.0.1:8000", "127.0.0.1", 1, 8000},
              {"[::1]:80", "::1", 1, 80},
              {"[::1]", "::1", 0, 0},
              {"::1", "::1", 0, 0},
              {"localhost:1", "localhost", 1, 1},
              {"127.0.0.1", "127.0.0.1", 0, 0},
              {"fe80::1%lo", "fe80::1%lo", 0, 0}};
    static const char *const bad[] = {"",       ":80",      "[::1",      "[::1]x",
                                      "[::1]:", "1.2.3.4:", "1.2.3.4:x", "[]:80"};
    char host[64];
    uint16_t port = 0;
    int has = 0;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        port = 0;
        ck_assert_msg(parse_hostport(ok[i].in, host, sizeof(host), &port, &has) == 0, "'%s'",
                      ok[i].in);
        ck_assert_str_eq(host, ok[i].host);
        ck_assert_int_eq(has, ok[i].has_port);
        ck_assert_uint_eq(port, ok[i].port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse_hostport(bad[i], host, sizeof(host), &port, &has) < 0, "'%s' accepted",
                      bad[i]);
    ck_assert_int_eq(parse_hostport("1.2.3.4:65536", host, sizeof(host), &port, &has), -ERANGE);
    ck_assert_int_eq(parse_hostport("127.0.0.1:1", host, 4, &port, &has), -EINVAL); /* no room */
}
END_TEST

static Suite *parse_suite(void)
{
    Suite *s = suite_create("parse");
    TCase *num = tcase_create("numbers"), *addr = tcase_create("addresses");

    tcase_set_timeout(num, 10);
    tcase_add_test(num, uint_valid);
    tcase_add_test(num, uint_invalid);
    tcase_add_test(num, uint_range);
    tcase_add_test(num, port);
    tcase_add_test(num, seconds_valid);
    tcase_add_test(num, seconds_invalid);
    tcase_add_test(num, seconds_range);
    tcase_add_test(num, size_suffixes);
    tcase_add_test(num, duration_units);
    suite_add_tcase(s, num);
    tcase_set_timeout(addr, 10);
    tcase_add_test(addr, addr_ipv4);
    tcase_add_test(addr, addr_ipv6);
    tcase_add_test(addr, addr_ipv6_scoped);
    tcase_add_test(addr, addr_localhost);
    tcase_add_test(addr, addr_invalid);
    tcase_add_test(addr, format_addr);
    tcase_add_test(addr, hostport_split);
    suite_add_tcase(s, addr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(parse_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
