// PNG and JPEG decoding/encoding in memory. libpng and libjpeg report errors by longjmp, which
// Swift cannot do, so their calls live here: every function returns 0 on success or a negative
// code, with a one-line message in `message` (capacity `message_size`).
#ifndef WSSS_IMAGE_CODECS_H
#define WSSS_IMAGE_CODECS_H

#include <stddef.h>

typedef struct {
    int width;
    int height;
    /// 1 (grey or palette indices), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    int channels;
    /// 1 when `pixels` holds palette indices (PNG colour type 3 decoded with keep_palette).
    int is_palette;
    /// Palette entries (RGB triples) when is_palette.
    int palette_size;
    unsigned char palette[256 * 3];
    /// width * height * channels bytes, row-major; free with wsss_free.
    unsigned char *pixels;
    /// Bits per sample in the file (PNG: 1, 2, 4, 8 or 16; JPEG: 8), before any conversion.
    int bit_depth;
} wsss_image;

/// Decodes a JPEG to RGB (or 1-channel grey for greyscale JPEGs), as libjpeg's defaults
/// (islow DCT, fancy upsampling) — what PIL does. A truncated file is an error. An image of more
/// than max_pixels pixels (0: no limit) is refused with -4 before anything is allocated.
int wsss_decode_jpeg(const unsigned char *data, size_t size, size_t max_pixels, wsss_image *out, char *message,
                     size_t message_size);

/// Decodes a PNG to 8-bit samples (16-bit is reduced to its high byte, as PIL). Palette images
/// keep their indices when keep_palette is 1, else expand to RGB(A). Sub-byte greys are
/// expanded to 8 bits; a tRNS chunk becomes an alpha channel. max_pixels as for JPEG.
int wsss_decode_png(const unsigned char *data, size_t size, int keep_palette, size_t max_pixels, wsss_image *out,
                    char *message, size_t message_size);

/// Encodes 8-bit pixels (channels 1, 3 or 4; or palette indices when palette != NULL, with
/// palette_size RGB entries) as PNG into a malloc'd buffer (*out, *out_size; free with wsss_free).
int wsss_encode_png(const unsigned char *pixels, int width, int height, int channels, const unsigned char *palette,
                    int palette_size, unsigned char **out, size_t *out_size, char *message, size_t message_size);

/// Encodes RGB (channels 3) or grey (channels 1) pixels as a baseline JPEG of the given quality.
int wsss_encode_jpeg(const unsigned char *pixels, int width, int height, int channels, int quality,
                     unsigned char **out, size_t *out_size, char *message, size_t message_size);

void wsss_free(void *pointer);

#endif
