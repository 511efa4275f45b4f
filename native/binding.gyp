{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["src/addon.c", "src/errors.c", "src/paths.c", "src/xattr.c", "src/mount.c", "src/btrfs.c", "src/quota.c", "src/filewriter.c", "src/memory.c", "src/gunzip.c", "src/unzstd.c", "src/sha256.c"],
      "libraries": ["-lisal", "-lzstd"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
