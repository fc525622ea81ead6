{
  "targets": [
    {
      "target_name": "sparse_extents",
      "sources": ["src/platform/local/native/sparse_extents.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
