#!/usr/bin/env bash
# Installs the system packages that building imgsim needs and a fresh machine may lack:
# - protoc and the protobuf well-known types (LanceDB's Lance crates compile .proto files);
# - libheif-dev and pkg-config, for HEIC/HEIF/AVIF (the default `heif` feature; a build with
#   `--no-default-features` does without, and says so per file);
# - libturbojpeg0-dev, for JPEG through libjpeg-turbo, PIL's decoder (the default `turbojpeg`
#   feature; without it the pure-Rust decoder reads JPEGs, within a level or two of PIL).
# Debian/Ubuntu (apt-get); elsewhere it says what to install.
set -euo pipefail

have_protobuf() {
    command -v protoc >/dev/null &&
        { [ -f /usr/include/google/protobuf/timestamp.proto ] ||
          [ -f /usr/local/include/google/protobuf/timestamp.proto ]; }
}

have_libheif() {
    command -v pkg-config >/dev/null && pkg-config --exists libheif
}

have_turbojpeg() {
    command -v pkg-config >/dev/null && pkg-config --exists 'libturbojpeg >= 2.0'
}

missing=()
have_protobuf || missing+=(protobuf-compiler libprotobuf-dev)
have_libheif || missing+=(pkg-config libheif-dev)
have_turbojpeg || missing+=(pkg-config libturbojpeg0-dev)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if command -v apt-get >/dev/null; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing ${missing[*]} (needed to build imgsim)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
status=0
if ! have_protobuf; then
    echo "imgsim needs protoc and the protobuf well-known types to build:" >&2
    echo "  Debian/Ubuntu: apt-get install protobuf-compiler libprotobuf-dev" >&2
    echo "  macOS: brew install protobuf" >&2
    status=2
fi
if ! have_libheif; then
    echo "imgsim reads HEIC/AVIF through libheif (or build with --no-default-features):" >&2
    echo "  Debian/Ubuntu: apt-get install pkg-config libheif-dev" >&2
    echo "  macOS: brew install libheif pkg-config" >&2
    status=2
fi
if ! have_turbojpeg; then
    echo "imgsim reads JPEGs through libjpeg-turbo 2.0 or later (or build with --no-default-features --features heif):" >&2
    echo "  Debian/Ubuntu: apt-get install pkg-config libturbojpeg0-dev" >&2
    echo "  macOS: brew install jpeg-turbo pkg-config" >&2
    status=2
fi
exit $status
