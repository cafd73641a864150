// embed.cpp — a C++ program with a model compiled into it: one object and its generated header,
// no file to load at run time.
//
//     rsrc model_dir --emit=obj    -o model.o     // kernels, constants, tokenizer, runtime
//     rsrc model_dir --emit=header -o model.h     // MODEL_VOCAB_SIZE, MODEL_MAX_POSITIONS, ...
//     g++ -std=c++17 embed.cpp model.o -I . -I rsrc/runtime/include -fopenmp -lpcre2-8 -lcjson -lutf8proc -lm -o embed
//     ./embed "The capital of France is" 32
//
// Compiled without --name, the model is the program's default one: rsr_model_open opens it.
#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model.h"

// The header's sizes are constants: checked and used at compile time.
static_assert(MODEL_NUM_HEADS % MODEL_NUM_KV_HEADS == 0, "grouped-query attention needs whole groups");
static_assert(MODEL_NUM_MATRICES == 7 * MODEL_NUM_LAYERS, "seven ternary matrices per layer");

namespace {

struct ModelClose {
    void operator()(rsr_model *m) const { rsr_model_close(m); }
};
struct SessionFree {
    void operator()(rsr_session *s) const { rsr_session_free(s); }
};

// The model with one session: text in, text out.
class Generator {
  public:
    Generator() {
        rsr_model *m = nullptr;
        rsr_status st = rsr_model_open(&m, nullptr);
        model_.reset(m);
        if (st != RSR_OK) throw std::runtime_error(std::string("open: ") + rsr_model_errmsg(m));
        // The object and the header must come from the same compile: say so if they do not.
        rsr_model_info info;
        rsr_model_get_info(m, &info);
        if (info.vocab_size != MODEL_VOCAB_SIZE || info.hidden_size != MODEL_HIDDEN_SIZE)
            throw std::runtime_error("model.h does not describe the linked model.o: generate both from one checkpoint");
        if (rsr_model_tokenizer(m, &tok_) != RSR_OK) throw std::runtime_error(rsr_model_errmsg(m));
        rsr_session *s = nullptr;
        if (rsr_session_create(m, nullptr, &s) != RSR_OK) throw std::runtime_error(rsr_model_errmsg(m));
        session_.reset(s);
        rsr_tokenizer_info tinfo;
        rsr_tokenizer_get_info(tok_, &tinfo);
        stop_ = {MODEL_EOS_TOKEN_ID, tinfo.eos_token_id, tinfo.eot_token_id};
    }

    // Greedy continuation of the prompt, up to `tokens` tokens or an end token.
    std::string generate(const std::string &prompt, int tokens) {
        std::vector<int32_t> ids(MODEL_MAX_POSITIONS);
        int32_t n = 0;
        if (rsr_tokenizer_encode(tok_, prompt.data(), static_cast<ptrdiff_t>(prompt.size()), RSR_ENCODE_ADD_SPECIAL,
                                 ids.data(), MODEL_MAX_POSITIONS, &n) != RSR_OK)
            throw std::runtime_error(rsr_tokenizer_errmsg(tok_));
        eval(ids.data(), n);
        std::string text;
        for (int i = 0; i < tokens; i++) {
            int32_t next = rsr_sample_greedy(logits_.data(), MODEL_VOCAB_SIZE);
            if (next == stop_[0] || next == stop_[1] || next == stop_[2]) break;
            size_t len = 0;
            const char *piece = rsr_tokenizer_token_piece(tok_, next, &len);
            if (!rsr_tokenizer_is_special(tok_, next)) text.append(piece, len);
            eval(&next, 1);
        }
        return text;
    }

  private:
    void eval(const int32_t *ids, int32_t n) {
        if (rsr_session_eval(session_.get(), ids, n, logits_.data()) != RSR_OK)
            throw std::runtime_error(rsr_session_errmsg(session_.get()));
    }

    std::unique_ptr<rsr_model, ModelClose> model_;
    std::unique_ptr<rsr_session, SessionFree> session_;
    rsr_tokenizer *tok_ = nullptr; // owned by the model
    std::array<int32_t, 3> stop_{};
    std::vector<float> logits_ = std::vector<float>(MODEL_VOCAB_SIZE);
};

} // namespace

int main(int argc, char **argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s PROMPT TOKENS\n", argv[0]);
        return 2;
    }
    try {
        Generator g;
        std::string text = g.generate(argv[1], std::atoi(argv[2]));
        if (text.empty() || text.back() != '\n') text += '\n';
        std::fwrite(text.data(), 1, text.size(), stdout);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s (%s, compiled by %s for %s)\n", e.what(), MODEL_ARCHITECTURE, MODEL_COMPILER,
                     MODEL_TARGET);
        return 1;
    }
    return 0;
}
