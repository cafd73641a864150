# Bash completion for rsrc, rsr-run, rsr-serve and rsr-mkmodel. The options come from each tool's
# own --help (so they never drift from it), --target's values from `rsrc --list-targets`; models
# and files complete as paths: compiled models (*.so) for rsr-run and rsr-serve, checkpoints
# (directories, *.safetensors, *.gguf, *.json) for rsrc. Installed as
# PREFIX/share/bash-completion/completions/{rsrc,rsr-run,rsr-serve,rsr-mkmodel}; or source it.

_rsr_files() { # $1: an extglob of extensions, or nothing for any file
    if declare -F _filedir >/dev/null; then
        _filedir "$@"
    else
        local IFS=$'\n'
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

_rsr_complete() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} tool=${COMP_WORDS[0]}
    local name=${tool##*/}
    if [[ $cur == --*=* ]]; then # --opt=value: complete the value as the option's
        prev=${cur%%=*}
        cur=${cur#*=}
    fi
    case $prev in
    --target)
        local targets
        targets=$("$tool" --list-targets 2>/dev/null | awk '{print $1}')
        COMPREPLY=($(compgen -W "$targets native" -- "$cur"))
        return
        ;;
    --emit) COMPREPLY=($(compgen -W "so c llvm asm obj header ptx cuda" -- "$cur")); return ;;
    --kv) COMPREPLY=($(compgen -W "bf16 f32 f16 q8" -- "$cur")); return ;;
    --attention) COMPREPLY=($(compgen -W "auto dense louver" -- "$cur")); return ;;
    --strategy) COMPREPLY=($(compgen -W "auto rsr-unrolled rsr-loop i2 lut" -- "$cur")); return ;;
    --prefill) COMPREPLY=($(compgen -W "auto i2 rsr" -- "$cur")); return ;;
    --backend) COMPREPLY=($(compgen -W "llvm c nvrtc" -- "$cur")); return ;;
    -o | --output | --out | --tune-cache | --runtime | --api-key-file | --hf-file | --chat-template | --log)
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
