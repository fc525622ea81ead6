// How much of a file range sits in the page cache, via mmap + mincore, which Node's fs does not
// expose. resident(fd, offset, length) -> [resident pages, pages] of the range, or null when the
// kernel cannot tell (the caller then reads as if nothing were cached). The mapping is never
// touched, so asking reads no data and faults no page in.
#define _GNU_SOURCE
#include <node_api.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static napi_value null_value(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

static napi_value pair(napi_env env, double a, double b) {
  napi_value arr, x, y;
  napi_create_array_with_length(env, 2, &arr);
  napi_create_double(env, a, &x);
  napi_create_double(env, b, &y);
  napi_set_element(env, arr, 0, x);
  napi_set_element(env, arr, 1, y);
  return arr;
}

static napi_value resident(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  int32_t fd;
  double offset_d, length_d;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 3 || napi_get_value_int32(env, args[0], &fd) != napi_ok ||
      napi_get_value_double(env, args[1], &offset_d) != napi_ok || napi_get_value_double(env, args[2], &length_d) != napi_ok || offset_d < 0 || length_d <= 0) {
    napi_throw_type_error(env, NULL, "resident(fd, offset, length) expects three numbers, length > 0");
    return NULL;
  }
  long page = sysconf(_SC_PAGESIZE);
  off_t start = (off_t)offset_d / page * page; // mmap wants a page-aligned offset
  size_t len = (size_t)((off_t)offset_d + (off_t)length_d - start);
  size_t pages = (len + page - 1) / page;
  void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, start);
  if (map == MAP_FAILED) return null_value(env);
  unsigned char *vec = malloc(pages);
  int ok = vec != NULL && mincore(map, len, vec) == 0;
  munmap(map, len);
  if (!ok) {
    free(vec);
    return null_value(env);
  }
  size_t in = 0;
  for (size_t i = 0; i < pages; i++) in += vec[i] & 1;
  free(vec);
  return pair(env, (double)in, (double)pages);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "resident", NAPI_AUTO_LENGTH, resident, NULL, &fn);
  napi_set_named_property(env, exports, "resident", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
