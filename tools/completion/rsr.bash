# Bash completion for rsrc, rsr-run, rsr-serve and rsr-mkmodel. The options come from each tool's
# own --help (so they never drift from it), --target's values from `rsrc --list-targets`; models
# and files complete as paths: compiled models (*.so) for rsr-run and rsr-serve, checkpoints
# (directories, *.safetensors, *.gguf, *.json) for rsrc, with or without the bash-completion
# package; the values of options that take one of a few names complete as those names. Installed as
# PREFIX/share/bash-completion/completions/{rsrc,rsr-run,rsr-serve,rsr-mkmodel}; or source it.

_rsr_files() { # $1: an extglob of extensions, or nothing for any file
    if declare -F _filedir >/dev/null; then
        _filedir "$@"
        return
    fi
    # without the bash-completion package: directories, and the files of those extensions
    local IFS=$'\n' f
    COMPREPLY=()
    for f in $(compgen -f -- "$cur"); do
        if [[ -d $f ]]; then
            COMPREPLY+=("$f/")
        elif [[ -z $1 || $f == *.$1 ]]; then
            COMPREPLY+=("$f")
        fi
    done
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]] && compopt -o nospace 2>/dev/null
}

_rsr_words() { # complete $cur from the words given
    local IFS=$' \t\n'
    COMPREPLY=($(compgen -W "$*" -- "$cur"))
}

_rsr_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} tool=${COMP_WORDS[0]}
    local name=${tool##*/}
    if [[ $cur == --*=* ]]; then # --opt=value: complete the value as the option's
        prev=${cur%%=*}
        cur=${cur#*=}
    elif [[ $cur == = ]]; then # '=' splits words (COMP_WORDBREAKS): "--opt" "=" ""
        cur=""
    elif [[ $prev == = && COMP_CWORD -ge 2 ]]; then # "--opt" "=" "val"
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    fi
    case $name:$prev in
    *:--target)
        local targets
        targets=$("$tool" --list-targets 2>/dev/null | awk '{print $1}')
        _rsr_words "$targets native"
        return
        ;;
    *:--print) # comma-separated: the last item completes after the ones given
        local done=${cur%"${cur##*,}"} w words=()
        for w in target model plan kernel gguf; do words+=("$done$w"); done
        _rsr_words "${words[*]}"
        compopt -o nospace 2>/dev/null
        return
        ;;
    *:--emit) _rsr_words so c llvm asm obj header ptx cuda; return ;;
    *:--kv) _rsr_words bf16 f32 f16 q8; return ;;
    *:--attention) _rsr_words auto dense louver; return ;;
    *:--strategy) _rsr_words auto rsr-unrolled rsr-loop i2 lut; return ;;
    *:--prefill) _rsr_words auto i2 rsr; return ;;
    *:--backend) _rsr_words llvm c nvrtc; return ;;
    *:--head) _rsr_words exact int8; return ;;
    *:--device) _rsr_words auto cpu gpu; return ;;
    *:--spec-type) _rsr_words ngram-simple draft draft-mtp none; return ;;
    rsr-mkmodel:--format)
        _rsr_words bitnet-packed bitnet-bf16 llama-packed falcon-e 1bitllm qwen3-grouped qwen3-embed gguf-i2s gguf-tq1 \
            gguf-tq2 gguf-q2 gguf-q1
        return
        ;;
    rsr-mkmodel:--preset) _rsr_words tiny small 2b4t large llama8b llama1b qwen3-0.6b qwen35-27b qwen35-9b qwen35-35b-a3b; return ;;
    rsr-mkmodel:--gguf-arch) _rsr_words bitnet-b1.58 bitnet llama qwen3 gemma3 maple qwen35 qwen35moe; return ;;
    rsr-mkmodel:--gguf-embed) _rsr_words q8_0 q6_k; return ;;
    rsr-mkmodel:--group) _rsr_words 32 64 128; return ;;
    rsr-mkmodel:--dtype) _rsr_words bf16 f16; return ;;
    rsr-mkmodel:--pooling) _rsr_words mean last cls; return ;;
    rsr-run:--chat-template | rsr-serve:--chat-template) _rsr_words model llama3 bitnet llama2; return ;;
    rsr-serve:--reasoning-format) _rsr_words deepseek none; return ;;
    *:-o | *:--output | *:--out | *:--tune-cache | *:--runtime | *:--api-key-file | *:--hf-file | \
        *:--chat-template | *:--chat-template-file | *:--log | *:--logits | *:-f | *:--file)
        _rsr_files
        return
        ;;
    esac
    if [[ $cur == -* ]]; then
        local opts
        opts=$("$tool" --help 2>&1 | grep -oE -- '(^|[ ,/])--?[a-zA-Z][a-zA-Z0-9-]*' | sed 's/^[ ,\/]//' | sort -u)
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    case $name in
    rsr-run | rsr-serve) _rsr_files '@(so)' ;;
    rsrc) _rsr_files '@(safetensors|gguf|json)' ;;
    *) _rsr_files ;;
    esac
}
complete -o filenames -F _rsr_complete rsrc rsr-run rsr-serve rsr-mkmodel
