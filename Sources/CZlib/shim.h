// zlib, for crc32 of zip entries (TorchCheckpoint checks every entry it reads against the CRC its
// central directory records, as unzip does).
#include <zlib.h>
