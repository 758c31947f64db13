/* fuzz.h - helpers shared by the libFuzzer targets: turn the fuzzer's bytes into C strings
 * and argument vectors, and fail loudly when a property does not hold. */
#ifndef SP_FUZZ_H
#define SP_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stop the fuzzer with a message: libFuzzer saves the input that triggered it. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property failed: %s: ", #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A NUL-terminated copy of data[0..size) in a fresh allocation (so ASan sees overreads);
 * the caller frees it. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Split s[0..size) at NUL bytes into at most max - 1 arguments after argv[0] = prog; argv is
 * NULL-terminated. Returns argc. The strings point into s, which must outlive argv. */
static inline int fuzz_argv(char *s, size_t size, const char *prog, char **argv, int max)
{
    int argc = 0;

    argv[argc++] = (char *)prog;
    for (size_t i = 0; i < size && argc < max - 1;) {
        argv[argc++] = s + i;
        i += strlen(s + i) + 1;
    }
    argv[argc] = NULL;
    return argc;
}

#endif
