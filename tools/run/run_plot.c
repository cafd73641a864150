/*
 * run_plot.c — a bar chart of `rsr-run --bench -p LENGTHS` as SVG (-o svg, --plot FILE.svg).
 *
 * One panel per kind of test (prompt ppN, decode tgN, both ppN+tgM: their rates differ tenfold, so
 * each gets its own scale); in a panel, a group of bars per test, a bar per thread count, each the
 * mean tok/s of the rounds with a whisker of ± one standard deviation and its value above it. The
 * title names the model, the target and the CPU, so a chart read alone says what it measured. The
 * SVG is plain (no script, no external fonts or styles): a browser, an image viewer or a Markdown
 * page shows it as it is.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rsr-run.h"

static const char *const colors[] = {"#3366cc", "#ee8a22", "#2a9d55", "#c23b3b", "#8052b8", "#4a9bb0", "#b3863a"};

/* text with &, <, > and quotes as SVG writes them */
static void esc(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

/* 1, 2 or 5 times a power of ten at or above v/5: five gridlines or fewer up to the top */
static double nice_step(double v) {
    double raw = v / 5, p = pow(10, floor(log10(raw > 0 ? raw : 1)));
    return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

static void cpu_name(char *buf, size_t cap) {
    snprintf(buf, cap, "this CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon) continue;
        colon += strspn(colon + 1, " \t") + 1;
        colon[strcspn(colon, "\n")] = 0;
        snprintf(buf, cap, "%s", colon);
        break;
    }
    if (f) fclose(f);
}

static int kind_of(const plot_bar *b) { return b->prompt && b->decode ? 2 : b->decode ? 1 : 0; }

/* the index of s in list[0..n), appending it when absent */
static int index_of(const char **list, int *n, const char *s) {
    for (int i = 0; i < *n; i++)
        if (!strcmp(list[i], s)) return i;
    list[*n] = s;
    return (*n)++;
}

void bench_svg(FILE *f, const plot_bar *bars, int n, const char *model, const char *target, int rounds) {
    static const char *const kind_names[] = {"prompt (prefill), tok/s", "decode, tok/s", "prompt + decode, tok/s"};
    enum { W = 820, LEFT = 70, RIGHT = 20, PANEL = 250, TOP = 64 };
    int panels = 0, kind_panel[3] = {-1, -1, -1};
    for (int i = 0; i < n; i++)
        if (kind_panel[kind_of(&bars[i])] < 0) kind_panel[kind_of(&bars[i])] = 0;
    for (int k = 0; k < 3; k++)
        if (kind_panel[k] >= 0) kind_panel[k] = panels++;
    const char *threads_label[32];
    char tl[32][16];
    int nthreads = 0;
    for (int i = 0; i < n && nthreads < 32; i++) { /* a new label takes slot nthreads; a seen one leaves it free */
        snprintf(tl[nthreads], sizeof tl[nthreads], "%d thread%s", bars[i].threads, bars[i].threads == 1 ? "" : "s");
        index_of(threads_label, &nthreads, tl[nthreads]);
    }
    const int H = TOP + panels * (PANEL + 40) + 30;
    char cpu[160];
    cpu_name(cpu, sizeof cpu);
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    fprintf(
        f,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
        "font-family=\"DejaVu Sans, Arial, sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
        W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"26\" font-size=\"17\" font-weight=\"bold\">rsr-run --bench: ", LEFT);
    esc(f, base);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"46\" font-size=\"12\" fill=\"#444\">target ", LEFT);
    esc(f, target);
    fputs(", ", f);
    esc(f, cpu);
    fprintf(f, "; mean of %d round%s, whiskers ± 1 sd</text>\n", rounds, rounds == 1 ? "" : "s");
    for (int k = 0; k < 3; k++) {
        if (kind_panel[k] < 0) continue;
        const int y0 = TOP + kind_panel[k] * (PANEL + 40) + 20, plot_h = PANEL - 40;
        const char *tests[32];
        int ntests = 0;
        double top = 0;
        for (int i = 0; i < n; i++)
            if (kind_of(&bars[i]) == k) {
                if (ntests < 32) index_of(tests, &ntests, bars[i].test);
                top = fmax(top, bars[i].mean + bars[i].sd);
            }
        const double step = nice_step(top > 0 ? top : 1), ymax = step * ceil((top > 0 ? top : 1) / step);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">%s</text>\n", LEFT, y0 - 6,
                kind_names[k]);
        for (double v = 0; v <= ymax + step / 2; v += step) {
            double y = y0 + plot_h - plot_h * v / ymax;
            fprintf(f,
                    "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n"
                    "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">%g</text>\n",
                    LEFT, W - RIGHT, y, y, v == 0 ? "#888" : "#e4e4e4", LEFT - 6, y + 4, v);
        }
        const double group_w = (double)(W - LEFT - RIGHT) / (ntests ? ntests : 1);
        const double bar_w = fmin(48, group_w * 0.8 / (nthreads ? nthreads : 1));
        for (int g = 0; g < ntests; g++) {
            double gx = LEFT + g * group_w + (group_w - bar_w * nthreads) / 2;
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">", LEFT + (g + 0.5) * group_w,
                    y0 + plot_h + 16);
            esc(f, tests[g]);
            fputs("</text>\n", f);
            for (int i = 0; i < n; i++) {
                if (kind_of(&bars[i]) != k || strcmp(bars[i].test, tests[g])) continue;
                char label[16];
                snprintf(label, sizeof label, "%d thread%s", bars[i].threads, bars[i].threads == 1 ? "" : "s");
                int s = 0;
                while (s < nthreads && strcmp(threads_label[s], label)) s++;
                double x = gx + s * bar_w, h = plot_h * bars[i].mean / ymax, y = y0 + plot_h - h;
                double lo = y0 + plot_h - plot_h * fmax(0, bars[i].mean - bars[i].sd) / ymax;
                double hi = y0 + plot_h - plot_h * (bars[i].mean + bars[i].sd) / ymax;
                fprintf(f,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s, %s: "
                        "%.2f ± %.2f tok/s</title></rect>\n",
                        x + 1, y, bar_w - 2, h, colors[s % 7], bars[i].test, label, bars[i].mean, bars[i].sd);
                fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>\n", x + bar_w / 2,
                        x + bar_w / 2, lo, hi);
                fprintf(
                    f,
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" fill=\"#222\">%.*f</text>\n",
                    x + bar_w / 2, hi - 4, bars[i].mean < 100 ? 1 : 0, bars[i].mean);
            }
        }
    }
    for (int s = 0; s < nthreads; s++) { /* the legend, at the foot */
        int x = LEFT + s * 110;
        fprintf(f,
                "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" "
                "font-size=\"12\">%s</text>\n",
                x, H - 28, colors[s % 7], x + 16, H - 17, threads_label[s]);
    }
    fputs("</svg>\n", f);
}
