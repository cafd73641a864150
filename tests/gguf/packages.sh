# packages.sh — sourced: the npm packages of upstream llama.cpp that the GGUF references use.
packages="node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1"
