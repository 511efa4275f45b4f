#!/usr/bin/env bash
# npm's install hook: builds the native/ addon. It links two system libraries, whose headers come from Debian
# packages: ISA-L (libisal-dev, the gzip inflater; native/src/gunzip.c says why) and libzstd (libzstd-dev, the zstd
# decoder; native/src/unzstd.c says why). Missing ones are installed here with apt when running as root (the
# README's setup); otherwise the build stops and says what to install.
set -euo pipefail
missing=()
[ -f /usr/include/isa-l/igzip_lib.h ] || missing+=(libisal-dev)
[ -f /usr/include/zstd.h ] || missing+=(libzstd-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "build-native: installing ${missing[*]} (the unpacker's gzip and zstd decoders)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "build-native: headers missing: install ${missing[*]} (Debian, Ubuntu; on Fedora isa-l-devel, libzstd-devel), then run npm install again" >&2
    exit 1
  fi
fi
exec node-gyp rebuild --directory=native
