/*
 * test_spec_gate.c — the n-gram draft's gate (common/spec_gate.h) on simulated decoding: a step
 * of 10 ms, a drafted row of 5 (c = 0.5), drafts of one token whose acceptance follows a fixed
 * pattern. The gate must let drafts through before it has measured anything and while they are
 * taken more often than c (90%), hold nearly all back while they are not (20%), open again
 * once the held drafts' guesses start matching the plain steps' tokens (a text that starts to
 * repeat), which it learns only from those guesses, and after one slow verification shut it, let
 * a probe through now and then to find rows cheap again.
 */
#include <stdbool.h>

#include "expect.h"
#include "spec_gate.h"

/* n opportunities to draft one token, taken when taken(i), a drafted row costing row seconds;
 * returns the drafts held back. */
static long run_rows(spec_gate *g, int n, bool (*taken)(int), double row) {
    const long held0 = g->held;
    for (int i = 0; i < n; i++) {
        const int32_t guess = 7, actual = taken(i) ? 7 : 8;
        if (spec_gate_open(g, guess))
            spec_gate_verified(g, 0.010 + row, 1, taken(i) ? 1 : 0);
        else
            spec_gate_plain(g, 0.010, actual);
        spec_gate_plain(g, 0.010, 3); /* a plain step between drafts (no guess pending: timing only) */
    }
    return g->held - held0;
}
static long run(spec_gate *g, int n, bool (*taken)(int)) { return run_rows(g, n, taken, 0.005); }

static bool one_in_five(int i) { return i % 5 == 0; }
static bool nine_in_ten(int i) { return i % 10 != 0; }
static bool always(int i) { return (void)i, true; }

int main(void) {
    spec_gate g;
    spec_gate_init(&g, true);
    EXPECT(spec_gate_open(&g, 1), "a gate that has measured nothing holds a draft back");
    spec_gate_init(&g, false); /* sampled, or a draft model's guesses: every draft goes through */
    long held = run(&g, 200, one_in_five);
    EXPECT(held == 0 && g.step_s == 0, "a gate made off held %ld drafts back", held);
    spec_gate_init(&g, true);
    held = run(&g, 200, nine_in_ten);
    EXPECT(held == 0, "90%% taken at c = 0.5: %ld of 200 drafts held back", held);
    spec_gate_init(&g, true);
    held = run(&g, 200, one_in_five);
    EXPECT(held >= 180, "20%% taken at c = 0.5: only %ld of 200 drafts held back", held);
    EXPECT(spec_gate_alpha(&g) < 0.35, "20%% taken: the gate estimates %.2f", spec_gate_alpha(&g));
    held = run(&g, 40, always); /* the same gate, now on text that repeats */
    EXPECT(held <= 20, "guesses all taken after 20%%: %ld of 40 drafts still held back", held);
    held = run(&g, 100, always);
    EXPECT(held == 0, "guesses all taken: %ld of the next 100 drafts held back", held);
    /* one slow first verification (a row 5 steps long) shuts the gate; its probes find rows cheap
     * again (half a step) and open it for drafts taken 90% of the time */
    spec_gate_init(&g, true);
    spec_gate_plain(&g, 0.010, 3);
    run_rows(&g, 1, always, 0.050);
    held = run(&g, 300, nine_in_ten);
    EXPECT(held >= 20 && held < 150, "after one slow verification: %ld of 300 drafts held back", held);
    held = run(&g, 100, nine_in_ten);
    EXPECT(held == 0, "after the probes: %ld of 100 drafts held back", held);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures != 0;
}
