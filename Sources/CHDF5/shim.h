// HDF5's type and property constants are macros over library globals, which Swift does not
// import (and Swift 6 rejects as not concurrency-safe); these inline functions expose them.
#include <hdf5.h>
#include <string.h>

static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }
static inline hid_t chdf5_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_link_create_plist(void) { return H5P_LINK_CREATE; }
static inline hid_t chdf5_dataset_create_plist(void) { return H5P_DATASET_CREATE; }
static inline hid_t chdf5_file_access_plist(void) { return H5P_FILE_ACCESS; }
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_acc_rdwr(void) { return H5F_ACC_RDWR; }
static inline unsigned chdf5_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline hid_t chdf5_space_all(void) { return H5S_ALL; }
static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }

/// Silences HDF5's automatic error printing; errors are reported through return codes instead.
static inline void chdf5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// libhdf5 1.10's exit handler (H5_term_library) closes files still open at exit and crashes
/// (SIGSEGV in H5F__close_cb) on a file whose flush failed, e.g. on a full disk. HDF5File closes
/// every file itself, so it opts out of that handler. Must run before any other HDF5 call;
/// returns a negative value when the library was already initialised.
static inline herr_t chdf5_skip_exit_handler(void) { return H5dont_atexit(); }

static herr_t chdf5_find_os_reason(unsigned n, const H5E_error2_t *err, void *client) {
    (void)n;
    char **found = (char **)client;
    if (*found == NULL && err->desc != NULL && strstr(err->desc, "error message = '") != NULL) *found = (char *)err->desc;
    return 0;
}

/// Copies the OS reason libhdf5's POSIX driver records on this thread's error stack after a
/// failed call ("error message = 'No space left on device'") into `buffer`; returns 1 when found.
static inline int chdf5_os_reason(char *buffer, size_t length) {
    char *found = NULL;
    if (length == 0 || H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, chdf5_find_os_reason, &found) < 0 || found == NULL) return 0;
    const char *start = strstr(found, "error message = '") + 17;
    const char *end = strchr(start, '\'');
    size_t count = end ? (size_t)(end - start) : strlen(start);
    if (count >= length) count = length - 1;
    memcpy(buffer, start, count);
    buffer[count] = 0;
    return 1;
}
