/* expect.h — the unit tests' one assertion: counts checks, reports each failure with its place
 * and lets the test go on; each test's main prints "N passed, N failed" from the two counters. */
#ifndef RSR_TEST_EXPECT_H
#define RSR_TEST_EXPECT_H

#include <stdio.h>

static int failures, checks;
#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        checks++;                                                                                                      \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
        }                                                                                                              \
    } while (0)

#endif
