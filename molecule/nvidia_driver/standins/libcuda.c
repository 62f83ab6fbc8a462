/* STAND-IN for libcuda.so.1, the CUDA driver API (dummy libnvidia-compute-* packages, molecule
 * scenario nvidia_driver). It answers the calls of ansible/roles/nvidia_driver/files/
 * cuda_probe.py from the state the other stand-ins keep, with the error codes of the real
 * driver (cuda.h, molecule/README.md):
 *   no module loaded, or it found no usable GPU   -> 100 CUDA_ERROR_NO_DEVICE
 *   loaded module != this library's version       -> 803 CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
 *   NVSwitch system without fabric manager running
 *   at the loaded driver's version                -> 802 CUDA_ERROR_SYSTEM_NOT_READY
 * Built on the controller by prepare.yml: cc -shared -fPIC -o libcuda.so.1 libcuda.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int initialised;

/* NVIDIA_STANDIN_ROOT prefixes every path (the Python tests use a temporary folder). */
static FILE *open_state(const char *path) {
  char full[512];
  const char *root = getenv("NVIDIA_STANDIN_ROOT");
  snprintf(full, sizeof full, "%s%s", root ? root : "", path);
  return fopen(full, "r");
}

static int read_line(const char *path, char *buf, int len) {
  FILE *f = open_state(path);
  if (!f) return 0;
  if (!fgets(buf, len, f)) buf[0] = 0;
  fclose(f);
  buf[strcspn(buf, "\n")] = 0;
  return buf[0] != 0;
}

/* The GPUs of /etc/nvidia-standin/gpus ("<slot> <device id> <name>"): count, or the name of one. */
static int gpu(int index, char *name, int len) {
  char line[256];
  int n = 0;
  FILE *f = open_state("/etc/nvidia-standin/gpus");
  if (!f) return 0;
  while (fgets(line, sizeof line, f)) {
    char slot[64], id[16];
    int off = 0;
    if (sscanf(line, "%63s %15s %n", slot, id, &off) < 2) continue;
    if (n == index && name) {
      snprintf(name, len, "%s", line + off);
      name[strcspn(name, "\n")] = 0;
    }
    n++;
  }
  fclose(f);
  return n;
}

int cuInit(unsigned int flags) {
  char loaded[64], library[64], fabric[64], probe[8], switches[64];
  (void)flags;
  if (!read_line("/run/nvidia-standin/loaded-version", loaded, sizeof loaded)) return 100;
  if (read_line("/run/nvidia-standin/probe-failed", probe, sizeof probe)) return 100;
  if (gpu(-1, NULL, 0) == 0) return 100;
  if (!read_line("/usr/lib/nvidia-standin/library-version", library, sizeof library)) return 999;
  if (strcmp(loaded, library) != 0) return 803;
  if (read_line("/etc/nvidia-standin/fabric", switches, sizeof switches) &&
      (!read_line("/run/nvidia-standin/fabric-manager", fabric, sizeof fabric) ||
       strcmp(fabric, loaded) != 0))
    return 802;
  initialised = 1;
  return 0;
}

int cuDriverGetVersion(int *version) {
  char library[64];
  int major = 0;
  if (!read_line("/usr/lib/nvidia-standin/library-version", library, sizeof library)) return 999;
  sscanf(library, "%d", &major);
  /* The CUDA version each branch supports, as nvidia-smi prints it. */
  *version = major >= 580 ? 13000 : major >= 570 ? 12080 : major >= 535 ? 12020 : 11040;
  return 0;
}

int cuDeviceGetCount(int *count) {
  if (!initialised) return 3; /* CUDA_ERROR_NOT_INITIALIZED */
  *count = gpu(-1, NULL, 0);
  return 0;
}

int cuDeviceGet(int *device, int ordinal) {
  if (!initialised) return 3;
  if (ordinal < 0 || ordinal >= gpu(-1, NULL, 0)) return 101; /* CUDA_ERROR_INVALID_DEVICE */
  *device = ordinal;
  return 0;
}

int cuDeviceGetName(char *name, int len, int device) {
  if (!initialised) return 3;
  if (device < 0 || device >= gpu(device, name, len)) return 101;
  return 0;
}

static int context;

int cuDevicePrimaryCtxRetain(void **ctx, int device) {
  if (!initialised) return 3;
  if (device < 0 || device >= gpu(-1, NULL, 0)) return 101;
  *ctx = &context;
  return 0;
}

int cuDevicePrimaryCtxRelease(int device) {
  if (!initialised) return 3;
  return device < 0 || device >= gpu(-1, NULL, 0) ? 101 : 0;
}

int cuGetErrorName(int error, const char **name) {
  switch (error) {
    case 0: *name = "CUDA_SUCCESS"; return 0;
    case 3: *name = "CUDA_ERROR_NOT_INITIALIZED"; return 0;
    case 100: *name = "CUDA_ERROR_NO_DEVICE"; return 0;
    case 101: *name = "CUDA_ERROR_INVALID_DEVICE"; return 0;
    case 802: *name = "CUDA_ERROR_SYSTEM_NOT_READY"; return 0;
    case 803: *name = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"; return 0;
    case 999: *name = "CUDA_ERROR_UNKNOWN"; return 0;
    default: *name = 0; return 1; /* CUDA_ERROR_INVALID_VALUE */
  }
}

int cuGetErrorString(int error, const char **text) {
  switch (error) {
    case 0: *text = "no error"; return 0;
    case 3: *text = "initialization error"; return 0;
    case 100: *text = "no CUDA-capable device is detected"; return 0;
    case 101: *text = "invalid device ordinal"; return 0;
    case 802: *text = "system not yet initialized"; return 0;
    case 803: *text = "system has unsupported display driver / cuda driver combination"; return 0;
    case 999: *text = "unknown error"; return 0;
    default: *text = 0; return 1;
  }
}
