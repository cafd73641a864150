/*
 * rsr-serve — a compiled model behind an OpenAI-compatible HTTP API, with continuous batching.
 *
 *     rsr-serve model.so --port 8080 --parallel 8
 *     curl localhost:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'
 *
 * HTTP is libmicrohttpd's (a thread per connection, so that a streaming response can wait for
 * its next tokens); JSON is cJSON's. The requests go to one engine (serve_engine.c) that steps
 * every admitted request together through rsr_batch_eval. Endpoints: POST /v1/completions and
 * /v1/chat/completions (streamed as server-sent events with "stream": true), POST /v1/embeddings
 * (on a thread of its own beside the engine: serve_embed.c says why), GET /v1/models,
 * /health, /metrics (Prometheus text), /info (the model and its manifest) and / (a chat page).
 * Errors are OpenAI-shaped JSON: 400 for a request that cannot be served as given (named field),
 * 404 for an unknown path, 413 for a body over --max-body, 503 with Retry-After when the queue is
 * full or the server is stopping. SIGINT, SIGTERM and SIGHUP stop taking requests, let the running
 * ones finish for up to --drain seconds, cancel the rest, and exit 0.
 *
 * This file holds main: the options, the listening socket, the model loaded (while the port
 * answers 503), the engine and the embedder started, and the drain at a signal. The rest is in
 * the files serve_server.h lists (HTTP, completions, prompts, replies, embeddings, the other
 * endpoints, the admission rules). Uses libmicrohttpd (the daemon), the model's API (rsr_dl.h),
 * artifact_pin (--digest) and the chat templates of chat_default.h.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/resource.h>

#include "parse_num.h"
#include "artifact_pin.h"
#include "chat_default.h"
#include "kv_types.h"
#include "serve_server.h"
#ifdef RSR_HAVE_KV_EVENTS
#include "serve_kv_events.h"
#endif

rsr_api api;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rsr-serve: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- main ---- */

static void usage(FILE *out) {
    fputs("usage: rsr-serve MODEL.so [options]\n"
          "\n"
          "Serves a model compiled by rsrc over HTTP with OpenAI's API: POST /v1/completions and\n"
          "/v1/chat/completions (\"stream\": true for server-sent events), /v1/embeddings, GET /v1/models,\n"
          "/health, /metrics (Prometheus, with vLLM's names), /info, /slots, and a chat page at /. Requests\n"
          "are stepped together through one batch (continuous batching): each gets the tokens it would\n"
          "get alone.\n"
          "\n"
          "options:\n"
          "  --host ADDR        address to listen on, IPv4 or IPv6 (default 127.0.0.1; 0.0.0.0 or :: for\n"
          "                     every interface)\n"
          "  --port N           TCP port (default 8080; 0: any free port, printed at start)\n"
          "  --parallel N       requests stepped together, 1 to 256 (default 4)\n"
          "  --cache-mem MIB    memory for KV caches beyond one per slot, in MiB (default 0): each keeps\n"
          "                     an ended conversation for prefix reuse, least recently used first out\n"
          "  --cache-dir DIR    KV caches kept on disk: each written to DIR when a request ends in it (a\n"
          "                     thread of its own), read back when the server starts, each for the tenant\n"
          "                     (API key and cache_salt) whose prompt filled it\n"
          "  --slot-save-path DIR  POST /slots/ID?action=save|restore|erase with {\"filename\": \"NAME\"}\n"
          "                     writes a slot's cache to DIR/NAME and reads it back (llama-server's API;\n"
          "                     off without it). GET /slots lists what each slot holds\n"
          "  --ctx-checkpoints N  a model with gated DeltaNet layers (Qwen3.5): copies of a sequence's\n"
          "                     recurrent state kept to go back to, each state_bytes / 2 (rsr-run --info),\n"
          "                     one near the end of each prompt chunk (default 4)\n"
          "  --kv-block-size N  tokens a block of the KV cache, as the KV events and /metrics'\n"
          "                     vllm:cache_config_info count them (default 16)\n"
          "  --kv-events ENDPOINT  publish the KV caches' blocks as vLLM does, for a KV-aware router\n"
          "                     (llm-d): a ZeroMQ PUB socket bound at ENDPOINT (tcp://*:5557; one that\n"
          "                     names a host is connected to), topic kv@POD@MODEL (POD: $POD_IP, else\n"
          "                     $POD_NAME, else the host's name)\n"
          "  --kv-events-replay ENDPOINT  and answer vLLM's replay requests for the last 4096 messages\n"
          "                     on a ZeroMQ ROUTER socket bound there (tcp://*:5558)\n"
          "  --queue N          requests waiting for a slot beyond which a request gets 503 (default 64);\n"
          "                     as many embedding requests may wait for the one being computed\n"
          "  -c, --ctx N        positions of each sequence (default: the model's, at most 4096); the\n"
          "                     KV cache of every slot is allocated at start\n"
          "  --chunk N          prompt tokens one sequence gives a step, 1 to 256 (default 32)\n"
          "  --mask-budget S    seconds of work the masks of one request's grammar or JSON schema may take\n"
          "                     in all (default 10; one token's at most 2): past it the request gets 400\n"
          "  --spec-type T      ngram-simple: a request decoding alone verifies the tokens that followed\n"
          "                     its last 3-4 tokens earlier in its text, several a step (greedy: the same\n"
          "                     tokens; sampled: the same distribution); draft: a draft model's guesses\n"
          "                     (-md); draft-mtp: a Qwen3.5 model's multi-token-prediction layer's; none\n"
          "                     (default)\n"
          "  --draft-max N      the most tokens proposed at once (default 16)\n"
          "  --draft-min N      fewer proposed than this: an ordinary step (default 0)\n"
          "  -md, --model-draft FILE  --spec-type draft: a compiled model of the same vocabulary guesses\n"
          "  --draft-p-min P    the draft guesses while its softmax gives a guess P (default 0.75;\n"
          "                     draft-mtp: 0, its certified greedy guess without the softmax)\n"
          "  --kv T             the KV cache's element type: bf16 (default), f32, f16 or q8 (see rsr-run --help)\n"
          "  -t, --threads N    threads (default: every CPU this process may run on)\n"
          "  --model-id NAME    the model's name in /v1/models and responses (default: the file's name)\n"
          "  -v, --verbose      the request log (a line per request on stderr) also shows probes of /health\n"
          "                     and /metrics and the message of every refusal\n"
          "  --strict-model     refuse a request whose \"model\" names another (default: as llama-server,\n"
          "                     any name gets the one model served)\n"
          "  --chat-template T  model (the checkpoint's own Jinja template), llama3, bitnet or llama2\n"
          "                     (default: the model's own, else the built-in one that fits)\n"
          "  --chat-template-file FILE\n"
          "                     a Jinja chat template to use instead\n"
          "  --reasoning-format F  deepseek (default): a reply's <think>...</think> goes to\n"
          "                     message.reasoning_content (delta.reasoning_content streamed); none: it\n"
          "                     stays in the content. A request's \"reasoning_format\" overrides it\n"
          "  --literal-content  a chat message's text that spells a special token (<|eot_id|> in a tool's\n"
          "                     output) is tokenized as text, not as the control token; the template's\n"
          "                     own markers stay tokens (default: as llama-server and transformers, the\n"
          "                     whole rendering is read with its special tokens)\n"
          "  --max-body SIZE    the largest request body, in bytes (default 1048576)\n"
          "  --drain S          on SIGINT, SIGTERM or SIGHUP, seconds running requests may take to finish\n"
          "                     (default 10)\n"
          "  --digest SHA256    refuse to load MODEL.so unless its SHA-256 is this (rsr-run --digest\n"
          "                     prints it); checked before any of its code runs\n"
          "\n"
          "facing a network (docs/deploy.md):\n"
          "  --api-key KEY      require 'Authorization: Bearer KEY' (401 otherwise); may be repeated\n"
          "  --api-key-file F   the keys, one per line ('#' starts a comment): kept out of `ps`\n"
          "  --auth-probes      /health and /metrics need the key too (default: open, for load balancers\n"
          "                     and Prometheus; the chat page at / is always served and asks for the key)\n"
          "  --allow-host NAME  a name the Host header may carry besides IP addresses and localhost (a\n"
          "                     request naming another host is refused: DNS rebinding); may be repeated;\n"
          "                     '*': any\n"
          "  --cors-origin O    a web origin (https://app.example) whose pages may call the API from a\n"
          "                     browser; may be repeated; '*': any. Other origins are refused (403)\n"
          "  --max-connections N  open connections at most (default 512)\n"
          "  --max-per-client N   open connections from one address at most (default 64; 0: no limit;\n"
          "                     behind a proxy every client has the proxy's address)\n"
          "  --header-timeout S   seconds a connection has to send a request's headers, from connecting\n"
          "                     or from its last reply (default 10)\n"
          "  --body-timeout S     seconds a request has to send its body after its headers (default 30)\n"
          "  -h, --help         this text; --version: the runtime API version this program speaks\n"
          "\n"
          "examples:\n"
          "  rsr-serve model.so --port 8080 --parallel 8\n"
          "  curl -s localhost:8080/v1/chat/completions -d '{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'\n"
          "  rsr-serve model.so --host 0.0.0.0 --api-key-file keys.txt --allow-host llm.example.org\n"
          "\n"
          "signals: SIGINT, SIGTERM or SIGHUP stop taking requests (503 from then on) and let running\n"
          "ones finish (--drain), their replies sent in full, then exit.\n"
          "exit status: 0 after a clean stop; 1 when the model cannot be served (the reason on stderr).\n"
          "See docs/deploy.md (PREFIX/share/doc/rsrc/docs/deploy.md when installed).\n",
          out);
}

static long number_arg(const char *opt, const char *v, long lo, long hi) {
    long n;
    if (!parse_long_in(v, lo, hi, &n)) die("%s: '%s' is not an integer in [%ld, %ld]", opt, v, lo, hi);
    return n;
}

static double fraction_arg(const char *opt, const char *v) {
    double x;
    if (!parse_double_in(v, 0, 1, &x)) die("%s: '%s' is not a number in [0, 1]", opt, v);
    return x;
}

/* A growing list of option values (keys, hosts, origins). */
typedef struct strlist {
    const char **v;
    int n;
} strlist;

static void strlist_add(strlist *l, const char *s) {
    const char **grown = realloc(l->v, sizeof *l->v * (size_t)(l->n + 1));
    if (!grown) die("out of memory");
    l->v = grown, l->v[l->n++] = s;
}

/* --api-key-file: one key a line; blank lines and '#' comments skipped. */
static void read_keys(const char *path, strlist *keys) {
    FILE *f = fopen(path, "r");
    if (!f) die("--api-key-file %s: %s", path, strerror(errno));
    char line[1024];
    int before = keys->n;
    while (fgets(line, sizeof line, f)) {
        char *k = line, *end;
        while (*k == ' ' || *k == '\t') k++;
        for (end = k + strlen(k); end > k && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '); end--) {}
        *end = 0;
        if (!*k || *k == '#') continue;
        char *copy = strdup(k);
        if (!copy) die("out of memory");
        strlist_add(keys, copy);
    }
    fclose(f);
    if (keys->n == before) die("--api-key-file %s: no key in it (one a line)", path);
}

/* --host: an IPv4 or IPv6 address (or a name that resolves to one) into addr; whether it is a
 * loopback address. */
static socklen_t listen_address(const char *host, long port, struct sockaddr_storage *addr, bool *v6) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char service[16];
    snprintf(service, sizeof service, "%ld", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) die("--host: '%s' is not an address to listen on: %s", host, gai_strerror(rc));
    socklen_t len = res->ai_addrlen;
    memcpy(addr, res->ai_addr, len);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return len;
}

/* Room for the connections' sockets and the guard's duplicates of them. */
/* The connections the HTTP library takes beyond --max-connections: the guard counts the limits and
 * tells a connection over them 503 (serve_guard.c), which it can only do to one the library took;
 * past this margin too the library closes new connections without a word. */
#define REFUSAL_ROOM 256

static void raise_file_limit(long connections) {
    struct rlimit rl;
    rlim_t need = (rlim_t)(2 * connections + 256);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        die("--max-connections %ld needs %lu open files; this process may have %lu (ulimit -n)", connections,
            (unsigned long)need, (unsigned long)rl.rlim_cur);
}

typedef struct serve_args {
    const char *host, *model_path, *digest, *model_id, *chat_template, *chat_template_file;
    bool strict_model, verbose;
    long port, slots, queue, ctx, chunk, threads, drain, max_conn, per_client, cache_mib, mask_budget;
    int spec;                  /* --spec-type: 0 none, 1 ngram-simple, 2 draft, 3 draft-mtp */
    long draft_max, draft_min; /* --draft-max, --draft-min */
    const char *draft_path;    /* -md, --model-draft */
    const char *slot_save_path, *cache_dir;
    long checkpoints;                  /* --ctx-checkpoints */
    long kv_block;                     /* --kv-block-size */
    const char *kv_events, *kv_replay; /* --kv-events ENDPOINT, --kv-events-replay ENDPOINT */
    double draft_p_min;                /* --draft-p-min */
    int kv, reasoning_format, literal_content;
    size_t max_body;
    strlist keys, hosts, origins;
    serve_guard_params gp;
} serve_args;

/* --spec-type: 0 for none, 1 for ngram-simple, 2 for draft, 3 for draft-mtp. */
static int spec_type_arg(const char *name) {
    static const char *const names[] = {"none", "ngram-simple", "draft", "draft-mtp"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) return i;
    die("--spec-type: '%s' is not one rsr-serve has (ngram-simple, draft, draft-mtp, none)", name);
}

/* rsr-serve's long options */
enum {
    O_HOST = 256,
    O_PORT,
    O_PARALLEL,
    O_CACHE_MEM,
    O_QUEUE,
    O_CHUNK,
    O_MASK_BUDGET,
    O_SPEC_TYPE,
    O_DRAFT_MAX,
    O_DRAFT_MIN,
    O_DRAFT_P_MIN,
    O_MODEL_ID,
    O_STRICT_MODEL,
    O_TEMPLATE,
    O_TEMPLATE_FILE,
    O_REASONING,
    O_LITERAL,
    O_MAX_BODY,
    O_DRAIN,
    O_KV,
    O_KEY,
    O_KEY_FILE,
    O_AUTH_PROBES,
    O_ALLOW_HOST,
    O_CORS,
    O_MAX_CONN,
    O_PER_CLIENT,
    O_HEADER_TO,
    O_BODY_TO,
    O_DIGEST,
    O_SLOT_SAVE,
    O_CACHE_DIR,
    O_CHECKPOINTS,
    O_KV_BLOCK,
    O_KV_EVENTS,
    O_KV_REPLAY,
    O_VERSION
};
static const struct option serve_longs[] = {
    {"host", required_argument, 0, O_HOST},
    {"port", required_argument, 0, O_PORT},
    {"parallel", required_argument, 0, O_PARALLEL},
    {"cache-mem", required_argument, 0, O_CACHE_MEM},
    {"queue", required_argument, 0, O_QUEUE},
    {"ctx", required_argument, 0, 'c'},
    {"ctx-size", required_argument, 0, 'c'},
    {"chunk", required_argument, 0, O_CHUNK},
    {"mask-budget", required_argument, 0, O_MASK_BUDGET},
    {"spec-type", required_argument, 0, O_SPEC_TYPE},
    {"draft-max", required_argument, 0, O_DRAFT_MAX},
    {"draft-min", required_argument, 0, O_DRAFT_MIN},
    {"draft-p-min", required_argument, 0, O_DRAFT_P_MIN},
    {"model-draft", required_argument, 0, 'D'},
    {"kv", required_argument, 0, O_KV},
    {"threads", required_argument, 0, 't'},
    {"model-id", required_argument, 0, O_MODEL_ID},
    {"strict-model", no_argument, 0, O_STRICT_MODEL},
    {"chat-template", required_argument, 0, O_TEMPLATE},
    {"chat-template-file", required_argument, 0, O_TEMPLATE_FILE},
    {"reasoning-format", required_argument, 0, O_REASONING},
    {"literal-content", no_argument, 0, O_LITERAL},
    {"max-body", required_argument, 0, O_MAX_BODY},
    {"drain", required_argument, 0, O_DRAIN},
    {"api-key", required_argument, 0, O_KEY},
    {"api-key-file", required_argument, 0, O_KEY_FILE},
    {"auth-probes", no_argument, 0, O_AUTH_PROBES},
    {"allow-host", required_argument, 0, O_ALLOW_HOST},
    {"cors-origin", required_argument, 0, O_CORS},
    {"max-connections", required_argument, 0, O_MAX_CONN},
    {"max-per-client", required_argument, 0, O_PER_CLIENT},
    {"header-timeout", required_argument, 0, O_HEADER_TO},
    {"body-timeout", required_argument, 0, O_BODY_TO},
    {"digest", required_argument, 0, O_DIGEST},
    {"slot-save-path", required_argument, 0, O_SLOT_SAVE},
    {"cache-dir", required_argument, 0, O_CACHE_DIR},
    {"ctx-checkpoints", required_argument, 0, O_CHECKPOINTS},
    {"kv-block-size", required_argument, 0, O_KV_BLOCK},
    {"kv-events", required_argument, 0, O_KV_EVENTS},
    {"kv-events-replay", required_argument, 0, O_KV_REPLAY},
    {"version", no_argument, 0, O_VERSION},
    {"help", no_argument, 0, 'h'},
    {"verbose", no_argument, 0, 'v'},
    {"model", required_argument, 0, 'm'},
    {0, 0, 0, 0},
};

static void parse_args(int argc, char **argv, serve_args *a) {
    *a = (serve_args){.host = "127.0.0.1",
                      .port = 8080,
                      .slots = 4,
                      .queue = 64,
                      .chunk = 32,
                      .drain = 10,
                      .mask_budget = 10,
                      .checkpoints = 4,
                      .kv_block = 16,
                      .max_conn = 512,
                      .per_client = 64,
                      .kv = RSR_KV_DEFAULT,
                      .reasoning_format = SERVE_REASONING_DEEPSEEK,
                      .max_body = 1 << 20,
                      .gp = {.header_timeout = 10, .body_timeout = 30}};
    opterr = 0;
    int c;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) /* llama.cpp's spelling, which getopt would split */
        if (!strcmp(argv[i], "-md")) argv[i] = "--model-draft";
    bool spec_given = false;
    while ((c = getopt_long(argc, argv, ":c:t:m:hv", serve_longs, NULL)) != -1) {
        switch (c) {
        case O_HOST: a->host = optarg; break;
        case O_PORT: a->port = number_arg("--port", optarg, 0, 65535); break;
        case O_PARALLEL: a->slots = number_arg("--parallel", optarg, 1, RSR_BATCH_MAX); break;
        case O_CACHE_MEM: a->cache_mib = number_arg("--cache-mem", optarg, 0, 1L << 24); break;
        case O_QUEUE: a->queue = number_arg("--queue", optarg, 0, 1 << 20); break;
        case 'c': a->ctx = number_arg("--ctx", optarg, 2, INT32_MAX); break;
        case O_CHUNK: a->chunk = number_arg("--chunk", optarg, 1, RSR_BATCH_MAX); break;
        case O_MASK_BUDGET: a->mask_budget = number_arg("--mask-budget", optarg, 1, 3600); break;
        case O_SPEC_TYPE: a->spec = spec_type_arg(optarg), spec_given = true; break;
        case O_DRAFT_MAX: a->draft_max = number_arg("--draft-max", optarg, 1, 256); break;
        case O_DRAFT_MIN: a->draft_min = number_arg("--draft-min", optarg, 0, 256); break;
        case O_DRAFT_P_MIN: a->draft_p_min = 1 + fraction_arg("--draft-p-min", optarg); break;
        case 'D': a->draft_path = optarg; break;
        case O_KV:
            if ((a->kv = kv_type_parse(optarg)) < 0) die("--kv: '%s' is not one of f32, bf16, f16, q8", optarg);
            break;
        case 't': a->threads = number_arg("--threads", optarg, 0, 1024); break;
        case 'm': a->model_path = optarg; break;
        case O_MODEL_ID: a->model_id = optarg; break;
        case O_STRICT_MODEL: a->strict_model = true; break;
        case O_TEMPLATE: a->chat_template = optarg; break;
        case O_TEMPLATE_FILE: a->chat_template_file = optarg; break;
        case O_LITERAL: a->literal_content = 1; break;
        case O_REASONING:
            if (!strcmp(optarg, "none"))
                a->reasoning_format = SERVE_REASONING_NONE;
            else if (!strcmp(optarg, "deepseek") || !strcmp(optarg, "auto"))
                a->reasoning_format = SERVE_REASONING_DEEPSEEK;
            else
                die("--reasoning-format: '%s' is not one of deepseek, none", optarg);
            break;
        case O_MAX_BODY: a->max_body = (size_t)number_arg("--max-body", optarg, 16, 1L << 30); break;
        case O_DRAIN: a->drain = number_arg("--drain", optarg, 0, 3600); break;
        case O_KEY:
            if (!*optarg) die("--api-key: an empty key");
            strlist_add(&a->keys, optarg);
            break;
        case O_KEY_FILE: read_keys(optarg, &a->keys); break;
        case O_AUTH_PROBES: a->gp.auth_probes = true; break;
        case O_ALLOW_HOST: strlist_add(&a->hosts, optarg); break;
        case O_CORS: strlist_add(&a->origins, optarg); break;
        case O_MAX_CONN: a->max_conn = number_arg("--max-connections", optarg, 1, 1 << 16); break;
        case O_PER_CLIENT: a->per_client = number_arg("--max-per-client", optarg, 0, 1 << 16); break;
        case O_HEADER_TO: a->gp.header_timeout = (double)number_arg("--header-timeout", optarg, 1, 3600); break;
        case O_BODY_TO: a->gp.body_timeout = (double)number_arg("--body-timeout", optarg, 1, 3600); break;
        case O_DIGEST:
            if (!artifact_digest_valid(optarg)) die("--digest: '%s' is not a SHA-256 (64 hexadecimal digits)", optarg);
            a->digest = optarg;
            break;
        case O_SLOT_SAVE: a->slot_save_path = optarg; break;
        case O_CACHE_DIR: a->cache_dir = optarg; break;
        case O_CHECKPOINTS: a->checkpoints = number_arg("--ctx-checkpoints", optarg, 1, RSR_CHECKPOINTS_MAX); break;
        case O_KV_BLOCK: a->kv_block = number_arg("--kv-block-size", optarg, 1, 4096); break;
        case O_KV_EVENTS:
#ifndef RSR_HAVE_KV_EVENTS
            die("--kv-events: this rsr-serve was built without ZeroMQ and msgpack (Debian's libzmq3-dev and "
                "libmsgpack-dev: install them and build again)");
#endif
            a->kv_events = optarg;
            break;
        case O_KV_REPLAY: a->kv_replay = optarg; break;
        case O_VERSION: printf("rsr-serve %s, rsr API version %d\n", RSR_PROJECT_VERSION, RSR_API_VERSION); exit(0);
        case 'h': usage(stdout); exit(0);
        case 'v': a->verbose = true; break;
        case ':': die("option '%s' needs a value (see --help)", argv[optind - 1]);
        default: die("unknown option '%s' (see --help)", argv[optind - 1]);
        }
    }
    if (!a->model_path && optind == argc - 1)
        a->model_path = argv[optind];
    else if (optind != argc)
        die("exactly one MODEL.so expected (see --help)");
    if (a->kv_replay && !a->kv_events)
        die("--kv-events-replay %s: it replays --kv-events: give that too", a->kv_replay);
    if (!a->model_path) die("no MODEL.so given (rsr-serve MODEL.so [options]; --help for the options)");
    if (!spec_given && a->draft_path) a->spec = 2; /* -md alone: the draft model's speculation */
    if (a->spec == 2 && !a->draft_path) die("--spec-type draft: name the draft model with -md FILE");
    if (a->draft_path && a->spec != 2)
        die("-md %s: a draft model is for --spec-type draft, not %s", a->draft_path,
            a->spec == 3 ? "draft-mtp"
            : a->spec    ? "ngram-simple"
                         : "none");
    if (a->max_conn < a->slots + 8)
        die("--max-connections %ld leaves no room beside --parallel %ld (at least %ld)", a->max_conn, a->slots,
            a->slots + 8);
    a->gp.keys = a->keys.v, a->gp.n_keys = a->keys.n;
    a->gp.hosts = a->hosts.v, a->gp.n_hosts = a->hosts.n;
    a->gp.origins = a->origins.v, a->gp.n_origins = a->origins.n;
    a->gp.max_connections = a->max_conn, a->gp.per_client = a->per_client;
}

/* Opens the model (its digest checked first when one is given) into sv; dies with the reason. */
static void open_model(server *sv, const serve_args *a) {
    char err[1024], path[64];
    const char *load = a->model_path;
    if (a->digest) {
        if (artifact_pin(a->model_path, a->digest, path, sizeof path, err, sizeof err) != 0) die("%s", err);
        load = path; /* the descriptor whose bytes were hashed */
    }
    struct stat st;
    double t0 = serve_now();
    if (stat(a->model_path, &st) == 0 && S_ISREG(st.st_mode)) /* else loading says what it is */
        fprintf(stderr, "rsr-serve: loading %s (%.0f MiB)\n", a->model_path, (double)st.st_size / (1 << 20));
    if (rsr_api_load(&api, load, err, sizeof err) != 0) die("%s", err);
    rsr_model_params mp = {.num_threads = (int32_t)a->threads, .device = RSR_DEVICE_CPU};
    if (api.model_open(&sv->m, &mp) != RSR_OK) die("%s", api.model_errmsg(sv->m));
    api.model_get_info(sv->m, &sv->info);
    if (a->spec == 3 && !sv->info.mtp_layers)
        die("--spec-type draft-mtp: %s has no multi-token-prediction layer (rsrc compiles one from a Qwen3.5 GGUF "
            "that carries blk.N.nextn.* tensors; rsrc's note says why it left one out)",
            a->model_path);
    fprintf(stderr, "rsr-serve: loaded in %.1f s\n", serve_now() - t0);
    if (api.model_tokenizer(sv->m, &sv->tok) != RSR_OK) {
        sv->tok = NULL;
        fprintf(stderr,
                "rsr-serve: note: %s has no tokenizer: requests must give token ids (/v1/completions' prompt, "
                "/v1/embeddings' input), and replies give theirs; chat, /tokenize, /detokenize and /apply-template "
                "are refused\n",
                a->model_path);
    }
}

/* SIGINT/SIGTERM/SIGHUP: new requests get 503 while the running ones finish (up to --drain
 * seconds) and their replies go out in full (a few seconds more at most); then the connections
 * close. SIGHUP (a closed terminal, or a supervisor's reload) drains too: there is nothing to
 * reload in place, and its default action would cut every stream without an end. */
static void drain_and_stop(server *sv, struct MHD_Daemon *d, int sig, long drain) {
    fprintf(stderr, "rsr-serve: %s: finishing running requests (up to %ld s), taking no new ones\n",
            sig == SIGINT   ? "SIGINT"
            : sig == SIGHUP ? "SIGHUP"
                            : "SIGTERM",
            drain);
    double until = serve_now() + (double)drain;
    serve_engine_drain(sv->e, (double)drain);
    if (sv->cache_dir >= 0) slots_writer_stop(sv); /* the caches the last requests filled, written */
    embedder_drain(sv->emb, until);                /* the embeddings' the same deadline */
    for (int i = 0; i < 50 && __atomic_load_n(&sv->in_flight, __ATOMIC_SEQ_CST) > 0; i++) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(d);
    serve_guard_stop(sv->guard);
    http_guard = NULL;
    embedder_free(sv->emb);
    serve_engine_free(sv->e);
#ifdef RSR_HAVE_KV_EVENTS
    kv_events_stop(sv->events);
#endif
    api.model_close(sv->m);
    fprintf(stderr, "rsr-serve: stopped\n");
}

/* How the template shows tools, from its rendering of a conversation offered one probe tool (a
 * template that refuses it, or a built-in one, shows none: the generic format). */
static void detect_tool_format(server *sv) {
    static const char probe[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"rsr_probe_tool\",\"description\":\"a probe\",\"parameters\":{\"type\":"
        "\"object\",\"properties\":{}}}}],\"add_generation_prompt\":true}";
    static const char plain[] =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"add_generation_prompt\":true}";
    char text[16384];
    size_t len = 0;
    sv->tool_format = SERVE_TOOL_GENERIC;
    int32_t marker = api.tokenizer_token_id(sv->tok, "<tool_call>");
    sv->tool_marker_text = marker < 0 || !api.tokenizer_is_special(sv->tok, marker);
    rsr_status st = api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, plain, strlen(plain), text,
                                                           sizeof text, &len);
    if (st != RSR_OK && st != RSR_ERR_BUFFER_TOO_SMALL) {
        /* said at start, not first on a client's screen: chat requests will get this 400 */
        fprintf(stderr,
                "rsr-serve: warning: chat is off (/v1/chat/completions and the chat page answer 400): %s; "
                "give one with --chat-template-file FILE (completions, embeddings and the rest work)\n",
                api.tokenizer_errmsg(sv->tok));
        return;
    }
    if (api.tokenizer_apply_chat_template_json(sv->tok, sv->chat_template, probe, strlen(probe), text, sizeof text,
                                               &len) == RSR_OK)
        sv->tool_format = serve_tool_format_of(text, "rsr_probe_tool");
    if (sv->tool_format == SERVE_TOOL_GENERIC)
        fprintf(stderr, "rsr-serve: tool calls in the generic format: the chat template shows no tools, so a "
                        "request's tools are described in a system message and a call is read as JSON\n");
    else
        fprintf(stderr, "rsr-serve: tool calls in the %s format (the chat template's)\n",
                serve_tool_format_name(sv->tool_format));
}

/* What the loading thread needs, and what main needs back from it. */
typedef struct loader {
    server *sv;
    serve_args *a;
    pthread_t main;
    long ctx, spare;
} loader;

/* The model, its engine and the embeddings' thread, made while the port already answers (503,
 * /health "loading"); main is told by SIGUSR1. A failure ends the process with its message. */
static void *load(void *arg) {
    loader *L = arg;
    server *sv = L->sv;
    serve_args *a = L->a;
    open_model(sv, a);
    if (a->ctx > sv->info.max_positions)
        die("--ctx %ld: the model holds at most %d positions", a->ctx, sv->info.max_positions);
    long ctx = L->ctx = a->ctx ? a->ctx : sv->info.max_positions < 4096 ? sv->info.max_positions : 4096;
    char why[512];
    if (!sv->tok && (a->chat_template || a->chat_template_file))
        die("%s: the model has no tokenizer to chat with",
            a->chat_template ? "--chat-template" : "--chat-template-file");
    if (a->chat_template_file && !chat_template_file(&api, sv->tok, a->chat_template_file, why, sizeof why))
        die("%s", why);
    if (a->chat_template_file) sv->chat_template = "model";
    if (!sv->chat_template && sv->tok)
        sv->chat_template = chat_template_for(&api, sv->tok, &sv->info); /* as rsr-run --chat */
    sv->reasoning_format = a->reasoning_format;
    sv->literal_content = a->literal_content;
    if (sv->tok) detect_tool_format(sv);
    /* --cache-mem: whole sessions' KV caches (K and V of every layer that has them, KV head and
     * position; the MTP layer's with draft-mtp) and recurrent states */
    double per_cache = 2.0 * (sv->info.num_kv_layers + (a->spec == 3)) * sv->info.num_kv_heads * (double)ctx *
                           (double)rsr_kv_row_bytes(a->kv, sv->info.head_dim) +
                       (double)sv->info.state_bytes / 2 * (double)(1 + a->checkpoints); /* the state and its copies */
    long spare = (long)((double)a->cache_mib * 1048576.0 / per_cache);
    if (spare > 4096) spare = 4096;
    if (a->cache_mib && !spare)
        fprintf(stderr, "rsr-serve: warning: --cache-mem %ld MiB holds no KV cache of %.0f MiB (%ld positions)\n",
                a->cache_mib, per_cache / 1048576.0, ctx);
    L->spare = spare;
    serve_engine_params ep = {
        .slots = (int32_t)a->slots,
        .spare = (int32_t)spare,
        .queue = (int32_t)a->queue,
        .ctx = (int32_t)ctx,
        .chunk = (int32_t)a->chunk,
        .session = {.kv_type = a->kv,
                    .attention = RSR_ATTENTION_AUTO,
                    .checkpoints = (int32_t)a->checkpoints,
                    .mtp = a->spec == 3},
        .mask_budget = (double)a->mask_budget,
        .spec = a->spec != 0,
        .draft_max = (int32_t)a->draft_max,
        .draft_min = (int32_t)a->draft_min,
        .draft_path = a->spec == 2 ? a->draft_path : NULL,
        .mtp = a->spec == 3,
        .draft_p_min = a->draft_p_min > 0 ? (float)(a->draft_p_min - 1)
                       : a->spec == 3     ? 0.0f
                                          : 0.75f,
        .draft_threads = (int32_t)a->threads,
    };
    char err[1024];
#ifdef RSR_HAVE_KV_EVENTS
    static serve_cache_events events;
    if (a->kv_events) {
        char topic[512], host[256] = "";
        const char *pod = getenv("POD_IP"); /* how llm-d's pod discovery names a pod; else its name */
        if (!pod || !*pod) pod = getenv("POD_NAME");
        if (!pod || !*pod) pod = gethostname(host, sizeof host - 1) == 0 ? host : "rsr-serve";
        snprintf(topic, sizeof topic, "kv@%s@%s", pod, sv->model_id);
        sv->events = kv_events_start(a->kv_events, a->kv_replay, topic, (int32_t)a->kv_block,
                                     (int32_t)(a->slots + spare), (int32_t)ctx, err, sizeof err);
        if (!sv->events) die("%s", err);
        events = (serve_cache_events){sv->events, kv_events_keep, kv_events_grow, kv_events_flush, kv_events_clear};
        ep.events = &events;
    }
#endif
    if (!(sv->e = serve_engine_start(sv->m, sv->tok, &ep, err, sizeof err))) die("%s", err);
    if (sv->cache_dir >= 0) {
        slots_restore_caches(sv);
        if (!slots_writer_start(sv)) die("--cache-dir: cannot start the thread that writes the caches");
    }
    rsr_session_params esp = ep.session; /* the slots' cache type: the vectors rsr-run --embed gives */
    esp.max_positions = (int32_t)ctx;
    if (!(sv->emb = embedder_start(sv->m, &esp, sv->info.hidden_size, sv->info.vocab_size, (int32_t)a->queue)))
        die("cannot start the embeddings' thread");
    sv->started = (long)time(NULL);
    __atomic_store_n(&sv->ready, true, __ATOMIC_RELEASE);
    serve_events_resync(sv->e); /* --kv-events: what --cache-dir restored, for routers that came since */
    pthread_kill(L->main, SIGUSR1);
    return NULL;
}

/* The listening socket, bound before the model loads: a port in use fails at once, with one message. */
static int bind_listener(const serve_args *a, const struct sockaddr_storage *addr, socklen_t len, bool v6) {
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) die("cannot open a socket: %s", strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)addr, len) != 0)
        die("cannot listen on %s port %ld: %s%s", a->host, a->port, strerror(errno),
            errno == EADDRINUSE ? " (another server holds it: stop it, or give --port)" : "");
    if (listen(fd, 128) != 0) die("cannot listen on %s port %ld: %s", a->host, a->port, strerror(errno));
    return fd;
}

int main(int argc, char **argv) {
    serve_args a;
    parse_args(argc, argv, &a);
    struct sockaddr_storage addr;
    bool v6;
    socklen_t addr_len = listen_address(a.host, a.port, &addr, &v6);
    raise_file_limit(a.max_conn + REFUSAL_ROOM);
    server sv = {.max_body = a.max_body,
                 .model_id = a.model_id,
                 .strict_model = a.strict_model,
                 .verbose = a.verbose,
                 .chat_template = a.chat_template,
                 .save_dir = -1,
                 .kv_block = (int)a.kv_block,
                 .cache_dir = -1};
    char dir_err[1024];
    if (a.slot_save_path &&
        (sv.save_dir = slots_dir_open(a.slot_save_path, "--slot-save-path", dir_err, sizeof dir_err)) < 0)
        die("%s", dir_err);
    if (a.cache_dir && (sv.cache_dir = slots_dir_open(a.cache_dir, "--cache-dir", dir_err, sizeof dir_err)) < 0)
        die("%s", dir_err);
    struct stat d1, d2; /* a client's slot file must never be taken for a cache's, nor the other way */
    if (sv.save_dir >= 0 && sv.cache_dir >= 0 && fstat(sv.save_dir, &d1) == 0 && fstat(sv.cache_dir, &d2) == 0 &&
        d1.st_dev == d2.st_dev && d1.st_ino == d2.st_ino)
        die("--slot-save-path %s and --cache-dir %s are the same directory: give each its own", a.slot_save_path,
            a.cache_dir);
    if (!sv.model_id) {
        const char *slash = strrchr(a.model_path, '/');
        sv.model_id = slash ? slash + 1 : a.model_path;
    }
    strlist_add(&a.hosts, a.host); /* --host may be a name */
    a.gp.hosts = a.hosts.v, a.gp.n_hosts = a.hosts.n;

    /* the signals go to sigwait below, not to a thread of the server's (they inherit the mask);
     * SIGUSR1: the model is loaded */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT), sigaddset(&stop, SIGTERM), sigaddset(&stop, SIGHUP), sigaddset(&stop, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = bind_listener(&a, &addr, addr_len, v6);
    if (!(http_guard = sv.guard = serve_guard_start(&a.gp))) die("cannot start the connections' guard");
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, http_handle, &sv, MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_NOTIFY_COMPLETED,
        http_completed, &sv, MHD_OPTION_NOTIFY_CONNECTION, http_connection_event, &sv, MHD_OPTION_UNESCAPE_CALLBACK,
        http_unescape, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)(a.max_conn + REFUSAL_ROOM),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)a.gp.body_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (!d) die("cannot serve on %s port %ld: %s", a.host, a.port, strerror(errno));
    const union MHD_DaemonInfo *bound = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = bound ? bound->port : (unsigned)a.port;

    fprintf(stderr, "rsr-serve: http://%s%s%s:%u/ answers 503 until the model is loaded (GET /health)\n", v6 ? "[" : "",
            a.host, v6 ? "]" : "", port);
    fflush(stderr);
    loader L = {.sv = &sv, .a = &a, .main = pthread_self()};
    pthread_t loading;
    if (pthread_create(&loading, NULL, load, &L) != 0) die("cannot start loading the model");
    int sig = 0;
    while (sigwait(&stop, &sig) == 0 && sig == SIGUSR1 && !__atomic_load_n(&sv.ready, __ATOMIC_ACQUIRE)) {}
    if (sig != SIGUSR1) { /* stopped while the model loads: nothing runs yet to finish */
        fprintf(stderr, "rsr-serve: %s while loading the model: stopped\n", strsignal(sig));
        _exit(0);
    }
    pthread_join(loading, NULL);
    fprintf(stderr,
            "rsr-serve: listening on http://%s%s%s:%u/ (model %s, %ld slot%s of %ld positions, %ld spare KV cache%s, "
            "queue %ld, %d thread%s, %s, pid %ld)\n",
            v6 ? "[" : "", a.host, v6 ? "]" : "", port, sv.model_id, a.slots, a.slots == 1 ? "" : "s", L.ctx, L.spare,
            L.spare == 1 ? "" : "s", a.queue, sv.info.num_threads, sv.info.num_threads == 1 ? "" : "s",
            a.keys.n ? "API key required" : "no API key", (long)getpid());
    fflush(stderr);
    do sigwait(&stop, &sig);
    while (sig == SIGUSR1);
    drain_and_stop(&sv, d, sig, a.drain);
    return 0;
}
