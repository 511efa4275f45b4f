#!/usr/bin/env bash
# npm's install hook: builds the native/ addon. It links ISA-L (native/src/gunzip.c says why), whose headers come
# from Debian's libisal-dev: installed here with apt when missing and running as root (the README's setup),
# otherwise the build stops and says what to install.
set -euo pipefail
if [ ! -f /usr/include/isa-l/igzip_lib.h ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-native: installing libisal-dev (ISA-L, the unpacker's gzip inflater)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends libisal-dev >/dev/null
  else
    echo "build-native: ISA-L's headers are missing: install libisal-dev (Debian, Ubuntu) or isa-l-devel (Fedora), then run npm install again" >&2
    exit 1
  fi
fi
exec node-gyp rebuild --directory=native
