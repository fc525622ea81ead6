{
  "targets": [
    {
      "target_name": "sparse_extents",
      "sources": ["src/platform/disk-io/native/sparse_extents.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "page_cache",
      "sources": ["src/platform/disk-io/native/page_cache.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
