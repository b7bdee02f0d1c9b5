#!/usr/bin/env bash
# Installs the system packages that building imgsim needs and a fresh machine may lack:
# protoc and the protobuf well-known types (LanceDB's Lance crates compile .proto files).
# Debian/Ubuntu (apt-get); elsewhere it says what to install.
set -euo pipefail

have_protobuf() {
    command -v protoc >/dev/null &&
        { [ -f /usr/include/google/protobuf/timestamp.proto ] ||
          [ -f /usr/local/include/google/protobuf/timestamp.proto ]; }
}

if have_protobuf; then
    exit 0
fi
if command -v apt-get >/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing protobuf-compiler and libprotobuf-dev (needed to build LanceDB)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
fi
if ! have_protobuf; then
    echo "imgsim needs protoc and the protobuf well-known types to build:" >&2
    echo "  Debian/Ubuntu: apt-get install protobuf-compiler libprotobuf-dev" >&2
    echo "  macOS: brew install protobuf" >&2
    exit 2
fi
