#include "image_codecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>

static void set_message(char *message, size_t size, const char *text) {
    if (message && size > 0) {
        strncpy(message, text, size - 1);
        message[size - 1] = 0;
    }
}

void wsss_free(void *pointer) { free(pointer); }

/* ---------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char text[JMSG_LENGTH_MAX];
} jpeg_error_state;

static void jpeg_error_exit(j_common_ptr info) {
    jpeg_error_state *state = (jpeg_error_state *)info->err;
    info->err->format_message(info, state->text);
    longjmp(state->jump, 1);
}

// Warnings: a premature end of data is an error (PIL raises "image file is truncated"); other
// warnings (e.g. extraneous bytes) are ignored, as PIL ignores them.
static void jpeg_emit_message(j_common_ptr info, int level) {
    if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_error_state *state = (jpeg_error_state *)info->err;
        info->err->format_message(info, state->text);
        longjmp(state->jump, 1);
    }
}

int wsss_decode_jpeg(const unsigned char *data, size_t size, size_t max_pixels, wsss_image *out, char *message,
                     size_t message_size) {
    struct jpeg_decompress_struct info;
    jpeg_error_state error;
    memset(out, 0, sizeof(*out));
    info.err = jpeg_std_error(&error.base);
    error.base.error_exit = jpeg_error_exit;
    error.base.emit_message = jpeg_emit_message;
    unsigned char *volatile pixels = NULL;
    if (setjmp(error.jump)) {
        set_message(message, message_size, error.text);
        jpeg_destroy_decompress(&info);
        free(pixels);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
        set_message(message, message_size, "CMYK JPEG is not supported");
        jpeg_destroy_decompress(&info);
        return -2;
    }
    // Refuse before allocating: the header's size is all a "decompression bomb" needs.
    if (max_pixels > 0 && (size_t)info.image_width * info.image_height > max_pixels) {
        snprintf(message, message_size, "%ux%u pixels exceed the limit of %zu", (unsigned)info.image_width,
                 (unsigned)info.image_height, max_pixels);
        jpeg_destroy_decompress(&info);
        return -4;
    }
    info.out_color_space = info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    int channels = info.output_components;
    size_t stride = (size_t)info.output_width * channels;
    pixels = malloc(stride * info.output_height);
    if (!pixels) {
        set_message(message, message_size, "out of memory");
        jpeg_destroy_decompress(&info);
        return -3;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = pixels + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    out->width = (int)info.output_width;
    out->height = (int)info.output_height;
    out->channels = channels;
    out->pixels = pixels;
    out->bit_depth = 8;
    jpeg_destroy_decompress(&info);
    return 0;
}

int wsss_encode_jpeg(const unsigned char *pixels, int width, int height, int channels, int quality,
                     unsigned char **out, size_t *out_size, char *message, size_t message_size) {
    struct jpeg_compress_struct info;
    jpeg_error_state error;
    unsigned char *buffer = NULL;
    unsigned long buffer_size = 0;
    info.err = jpeg_std_error(&error.base);
    error.base.error_exit = jpeg_error_exit;
    if (setjmp(error.jump)) {
        set_message(message, message_size, error.text);
        jpeg_destroy_compress(&info);
        free(buffer);
        return -1;
    }
    if (channels != 1 && channels != 3) {
        set_message(message, message_size, "JPEG encoding needs 1 or 3 channels");
        return -2;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, &buffer, &buffer_size);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = channels;
    info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    jpeg_start_compress(&info, TRUE);
    size_t stride = (size_t)width * channels;
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + stride * info.next_scanline);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    *out = buffer;
    *out_size = buffer_size;
    return 0;
}

/* ---------------------------------------------------------------- PNG */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
} png_memory_reader;

typedef struct {
    char text[256];
} png_error_state;

static void png_error_handler(png_structp png, png_const_charp text) {
    png_error_state *state = (png_error_state *)png_get_error_ptr(png);
    snprintf(state->text, sizeof(state->text), "%s", text);
    png_longjmp(png, 1);
}

static void png_warning_handler(png_structp png, png_const_charp text) { (void)png; (void)text; }

static void png_read_memory(png_structp png, png_bytep target, png_size_t length) {
    png_memory_reader *reader = (png_memory_reader *)png_get_io_ptr(png);
    if (reader->offset + length > reader->size) png_error(png, "file is truncated");
    memcpy(target, reader->data + reader->offset, length);
    reader->offset += length;
}

int wsss_decode_png(const unsigned char *data, size_t size, int keep_palette, size_t max_pixels, wsss_image *out,
                    char *message, size_t message_size) {
    memset(out, 0, sizeof(*out));
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_message(message, message_size, "not a PNG file");
        return -2;
    }
    png_error_state error = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, png_error_handler, png_warning_handler);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        set_message(message, message_size, "out of memory");
        return -3;
    }
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        set_message(message, message_size, error.text);
        png_destroy_read_struct(&png, &info, NULL);
        free(pixels);
        free(rows);
        return -1;
    }
    png_memory_reader reader = {data, size, 0};
    png_set_read_fn(png, &reader, png_read_memory);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if (max_pixels > 0 && (size_t)width * height > max_pixels) {
        snprintf(message, message_size, "%ux%u pixels exceed the limit of %zu", (unsigned)width, (unsigned)height, max_pixels);
        png_destroy_read_struct(&png, &info, NULL);
        return -4;
    }
    int color_type = png_get_color_type(png, info), bit_depth = png_get_bit_depth(png, info);
    int palette = color_type == PNG_COLOR_TYPE_PALETTE;
    out->bit_depth = bit_depth;
    if (bit_depth == 16) png_set_strip_16(png);
    if (palette && keep_palette) {
        if (bit_depth < 8) png_set_packing(png);
        png_colorp entries;
        int count = 0;
        if (png_get_PLTE(png, info, &entries, &count)) {
            out->palette_size = count;
            for (int i = 0; i < count && i < 256; i++) {
                out->palette[3 * i] = entries[i].red;
                out->palette[3 * i + 1] = entries[i].green;
                out->palette[3 * i + 2] = entries[i].blue;
            }
        }
        out->is_palette = 1;
    } else {
        if (palette) png_set_palette_to_rgb(png);
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t stride = png_get_rowbytes(png, info);
    pixels = malloc(stride * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + stride * y;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    out->pixels = pixels;
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

typedef struct {
    unsigned char *data;
    size_t size;
    size_t capacity;
} png_memory_writer;

static void png_write_memory(png_structp png, png_bytep source, png_size_t length) {
    png_memory_writer *writer = (png_memory_writer *)png_get_io_ptr(png);
    if (writer->size + length > writer->capacity) {
        size_t capacity = writer->capacity ? writer->capacity * 2 : 65536;
        while (capacity < writer->size + length) capacity *= 2;
        unsigned char *grown = realloc(writer->data, capacity);
        if (!grown) png_error(png, "out of memory");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, source, length);
    writer->size += length;
}

static void png_flush_memory(png_structp png) { (void)png; }

int wsss_encode_png(const unsigned char *pixels, int width, int height, int channels, const unsigned char *palette,
                    int palette_size, unsigned char **out, size_t *out_size, char *message, size_t message_size) {
    png_error_state error = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error, png_error_handler, png_warning_handler);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        set_message(message, message_size, "out of memory");
        return -3;
    }
    png_memory_writer writer = {NULL, 0, 0};
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        set_message(message, message_size, error.text);
        png_destroy_write_struct(&png, &info);
        free(writer.data);
        free(rows);
        return -1;
    }
    int color_type;
    if (palette) {
        color_type = PNG_COLOR_TYPE_PALETTE;
    } else if (channels == 1) {
        color_type = PNG_COLOR_TYPE_GRAY;
    } else if (channels == 3) {
        color_type = PNG_COLOR_TYPE_RGB;
    } else if (channels == 4) {
        color_type = PNG_COLOR_TYPE_RGB_ALPHA;
    } else {
        png_error(png, "PNG encoding needs 1, 3 or 4 channels");
    }
    png_set_write_fn(png, &writer, png_write_memory, png_flush_memory);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color entries[256];
        for (int i = 0; i < palette_size && i < 256; i++) {
            entries[i].red = palette[3 * i];
            entries[i].green = palette[3 * i + 1];
            entries[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, entries, palette_size);
    }
    png_write_info(png, info);
    rows = malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    size_t stride = (size_t)width * (palette ? 1 : channels);
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + stride * y);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    *out = writer.data;
    *out_size = writer.size;
    return 0;
}
