// Allocated extents of a file via lseek(SEEK_DATA/SEEK_HOLE), which Node's fs does not expose.
// extents(fd, size) -> [offset, length, offset, length, ...] of the ranges that may hold data,
// or null when the filesystem cannot tell (then the caller reads everything).
#define _GNU_SOURCE
#include <node_api.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static napi_value extents(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 2) {
    napi_throw_type_error(env, NULL, "extents(fd, size) expects two numbers");
    return NULL;
  }
  int32_t fd;
  double size_d;
  if (napi_get_value_int32(env, args[0], &fd) != napi_ok || napi_get_value_double(env, args[1], &size_d) != napi_ok || size_d < 0) {
    napi_throw_type_error(env, NULL, "extents(fd, size) expects two numbers");
    return NULL;
  }
  off_t size = (off_t)size_d;
  size_t cap = 256, n = 0;
  double *v = malloc(cap * sizeof(double));
  if (!v) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  off_t pos = 0;
  while (pos < size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break; // no data after pos
      free(v);
      napi_get_null(env, &result); // EINVAL etc.: the filesystem does not support it
      return result;
    }
    if (data >= size) break;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0 || hole > size) hole = size;
    if (n + 2 > cap) {
      cap *= 2;
      double *grown = realloc(v, cap * sizeof(double));
      if (!grown) {
        free(v);
        napi_throw_error(env, NULL, "out of memory");
        return NULL;
      }
      v = grown;
    }
    v[n++] = (double)data;
    v[n++] = (double)(hole - data);
    pos = hole;
  }
  napi_create_array_with_length(env, n, &result);
  for (size_t i = 0; i < n; i++) {
    napi_value num;
    napi_create_double(env, v[i], &num);
    napi_set_element(env, result, (uint32_t)i, num);
  }
  free(v);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "extents", NAPI_AUTO_LENGTH, extents, NULL, &fn);
  napi_set_named_property(env, exports, "extents", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
