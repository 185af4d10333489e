#include "ckernels.h"

// Winograd F(4x4, 3x3) (Lavin & Gray 2016, interpolation points 0, ±1, ±2, ∞): each 4x4 block of
// outputs from a 6x6 block of inputs with 36 products instead of 144, so a 3x3 convolution's
// sgemm work falls 4× (F(2x2, 3x3): 2.25×). Same layout as the F(2x2, 3x3) kernels in kernels.c:
// element ξ = 6r + s of a transformed 6x6 tile lives ξ·stride floats after its first.
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1⁄24 1⁄12 ⅙; 1⁄24 −1⁄12 ⅙; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
// No multiply-add is fused (FP_CONTRACT off, baseline ISA), so every build rounds alike.

#pragma STDC FP_CONTRACT OFF

#include <stdlib.h>
#include <string.h>

typedef float wsss_v4 __attribute__((vector_size(16)));

// One axis of Bᵀ d (6 values in, 6 out) and of Aᵀ m (6 in, 4 out), written once for a type:
// floats, and vectors of four (lane l: tile b + l), the same operations in the same order.
#define WSSS_AXES(T, input, output)                                                                   \
    static inline void input(const T d[6], T t[6]) {                                                 \
        t[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];                                                      \
        t[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];                                                   \
        t[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];                                                    \
        t[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];                                                    \
        t[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];                                                    \
        t[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];                                                      \
    }                                                                                                 \
    static inline void output(const T m[6], T y[4]) {                                                \
        T p12 = m[1] + m[2], m12 = m[1] - m[2], p34 = m[3] + m[4], m34 = m[3] - m[4];                 \
        y[0] = m[0] + p12 + p34;                                                                      \
        y[1] = m12 + 2.0f * m34;                                                                      \
        y[2] = p12 + 4.0f * p34;                                                                      \
        y[3] = m12 + 8.0f * m34 + m[5];                                                               \
    }
WSSS_AXES(float, input_axis, output_axis)
WSSS_AXES(wsss_v4, input_axis4, output_axis4)

// One axis of G g: 3 values in, 6 out (floats, and vectors of four: lane l is kernel k + l).
#define WSSS_KERNEL_AXIS(T, name)                                                                     \
    static inline void name(const T g[3], T t[6]) {                                                  \
        t[0] = g[0] * 0.25f;                                                                          \
        t[1] = (g[0] + g[1] + g[2]) * (-1.0f / 6.0f);                                                 \
        t[2] = (g[0] - g[1] + g[2]) * (-1.0f / 6.0f);                                                 \
        t[3] = g[0] * (1.0f / 24.0f) + g[1] * (1.0f / 12.0f) + g[2] * (1.0f / 6.0f);                  \
        t[4] = g[0] * (1.0f / 24.0f) - g[1] * (1.0f / 12.0f) + g[2] * (1.0f / 6.0f);                  \
        t[5] = g[2];                                                                                  \
    }
WSSS_KERNEL_AXIS(float, kernel_axis)
WSSS_KERNEL_AXIS(wsss_v4, kernel_axis4)

// U = G g Gᵀ for `count` kernels, U_ξ[k] at u + ξ·u_stride + k. Four kernels at a time in the
// lanes of a vector, so each of the 36 outputs is written four floats at once (one float per
// output and kernel, 36 streams apart, was 5% of an R101 inference); the same operations in the
// same order as one kernel at a time, so the same bits.
void wsss_winograd4_kernels(const float *w, ptrdiff_t kernel_stride, ptrdiff_t count, int rotate, float *u,
                            ptrdiff_t u_stride) {
    ptrdiff_t k = 0;
    for (; k + 4 <= count; k += 4) {
        const float *g0 = w + k * kernel_stride, *g1 = g0 + kernel_stride, *g2 = g1 + kernel_stride,
                    *g3 = g2 + kernel_stride;
        wsss_v4 a[9];
        for (int t = 0; t < 9; t++) {
            int i = rotate ? 8 - t : t;
            a[t] = (wsss_v4){g0[i], g1[i], g2[i], g3[i]};
        }
        wsss_v4 t[6][3];
        for (int c = 0; c < 3; c++) {
            wsss_v4 column[3] = {a[c], a[3 + c], a[6 + c]}, out[6];
            kernel_axis4(column, out);
            for (int r = 0; r < 6; r++) t[r][c] = out[r];
        }
        for (int r = 0; r < 6; r++) {
            wsss_v4 out[6];
            kernel_axis4(t[r], out);
            for (int s = 0; s < 6; s++) memcpy(u + (6 * r + s) * u_stride + k, &out[s], sizeof(wsss_v4));
        }
    }
    for (; k < count; k++) {
        const float *g = w + k * kernel_stride;
        float a[9];
        for (int t = 0; t < 9; t++) a[t] = g[rotate ? 8 - t : t];
        float t[6][3];  // G g: rows of the 6x3
        for (int c = 0; c < 3; c++) {
            float column[3] = {a[c], a[3 + c], a[6 + c]}, out[6];
            kernel_axis(column, out);
            for (int r = 0; r < 6; r++) t[r][c] = out[r];
        }
        for (int r = 0; r < 6; r++) {
            float out[6];
            kernel_axis(t[r], out);
            for (int s = 0; s < 6; s++) u[(6 * r + s) * u_stride + k] = out[s];
        }
    }
}

// Bᵀ applied down the columns first, for a whole row of tiles at once: t_u[x] for every column
// x is a contiguous loop the compiler vectorises (each column is shared by overlapping tiles);
// then Bᵀ along the row for four tiles at a time, lane l holding tile b + l (its six columns
// gathered from t, stored as four consecutive tiles of each of the 36 outputs). The same
// operations in the same order as transforming each 6x6 block on its own, so the same bits.
void wsss_winograd4_input(const float *image, ptrdiff_t width, const float *zeros, const ptrdiff_t *row_inputs,
                          ptrdiff_t row_tiles, const ptrdiff_t *col_inputs, ptrdiff_t col_tiles, float *out,
                          ptrdiff_t stride) {
    // Six rows of t, each with a zero after its last column, and each tile's column indices into
    // them (columns outside the image read that zero).
    ptrdiff_t span = width + 1;
    float *t = malloc(sizeof(float) * 6 * (size_t)span);
    ptrdiff_t *columns = malloc(sizeof(ptrdiff_t) * 6 * (size_t)(col_tiles > 0 ? col_tiles : 1));
    if (t == NULL || columns == NULL) abort();
    for (int u = 0; u < 6; u++) t[u * span + width] = 0.0f;
    for (ptrdiff_t i = 0; i < 6 * col_tiles; i++) columns[i] = col_inputs[i] < 0 ? width : col_inputs[i];
    for (ptrdiff_t a = 0; a < row_tiles; a++) {
        const float *r[6];
        for (int u = 0; u < 6; u++) {
            ptrdiff_t i = row_inputs[6 * a + u];
            r[u] = i < 0 ? zeros : image + i * width;
        }
        float *restrict t0 = t, *restrict t1 = t + span, *restrict t2 = t + 2 * span, *restrict t3 = t + 3 * span,
                        *restrict t4 = t + 4 * span, *restrict t5 = t + 5 * span;
        const float *restrict r0 = r[0], *restrict r1 = r[1], *restrict r2 = r[2], *restrict r3 = r[3],
                              *restrict r4 = r[4], *restrict r5 = r[5];
        for (ptrdiff_t x = 0; x < width; x++) {
            float d[6] = {r0[x], r1[x], r2[x], r3[x], r4[x], r5[x]}, res[6];
            input_axis(d, res);
            t0[x] = res[0]; t1[x] = res[1]; t2[x] = res[2]; t3[x] = res[3]; t4[x] = res[4]; t5[x] = res[5];
        }
        float *o = out + a * col_tiles;
        ptrdiff_t b = 0;
        for (; b + 4 <= col_tiles; b += 4) {
            const ptrdiff_t *q = columns + 6 * b;
            for (int u = 0; u < 6; u++) {
                const float *row = t + u * span;
                wsss_v4 d[6];
                for (int v = 0; v < 6; v++) d[v] = (wsss_v4){row[q[v]], row[q[6 + v]], row[q[12 + v]], row[q[18 + v]]};
                wsss_v4 res[6];
                input_axis4(d, res);
                float *p = o + 6 * u * stride + b;
                for (int v = 0; v < 6; v++) memcpy(p + v * stride, &res[v], sizeof res[v]);
            }
        }
        for (; b < col_tiles; b++) {
            const ptrdiff_t *q = columns + 6 * b;
            for (int u = 0; u < 6; u++) {
                const float *row = t + u * span;
                float d[6], res[6];
                for (int v = 0; v < 6; v++) d[v] = row[q[v]];
                input_axis(d, res);
                float *p = o + 6 * u * stride + b;
                for (int v = 0; v < 6; v++) p[v * stride] = res[v];
            }
        }
    }
    free(columns);
    free(t);
}

// Four tiles at a time (lane l: tile b + l, read as consecutive floats of each of the 36
// inputs), then each lane's 4x4 block written out; the same operations in the same order as
// one tile at a time.
void wsss_winograd4_output(const float *m, ptrdiff_t stride, const ptrdiff_t *row_outputs, ptrdiff_t row_tiles,
                           const ptrdiff_t *col_outputs, ptrdiff_t col_tiles, float *image, ptrdiff_t width,
                           int accumulate) {
    for (ptrdiff_t a = 0; a < row_tiles; a++) {
        const float *p = m + a * col_tiles;
        ptrdiff_t b = 0;
        for (; b + 4 <= col_tiles; b += 4) {
            wsss_v4 s[4][6];  // Aᵀ M, column by column
            for (int v = 0; v < 6; v++) {
                wsss_v4 c[6], res[4];
                for (int u = 0; u < 6; u++) memcpy(&c[u], p + (6 * u + v) * stride + b, sizeof c[u]);
                output_axis4(c, res);
                for (int k = 0; k < 4; k++) s[k][v] = res[k];
            }
            for (int k = 0; k < 4; k++) {
                ptrdiff_t row = row_outputs[4 * a + k];
                if (row < 0) continue;
                wsss_v4 res[4];
                output_axis4(s[k], res);
                float *y = image + row * width;
                for (int lane = 0; lane < 4; lane++) {
                    const ptrdiff_t *q = col_outputs + 4 * (b + lane);
                    for (int l = 0; l < 4; l++) {
                        if (q[l] < 0) continue;
                        if (accumulate) y[q[l]] += res[l][lane];
                        else y[q[l]] = res[l][lane];
                    }
                }
            }
        }
        for (; b < col_tiles; b++) {
            float s[4][6];  // Aᵀ M, column by column
            for (int v = 0; v < 6; v++) {
                float column[6], res[4];
                for (int u = 0; u < 6; u++) column[u] = p[(6 * u + v) * stride + b];
                output_axis(column, res);
                for (int k = 0; k < 4; k++) s[k][v] = res[k];
            }
            const ptrdiff_t *c = col_outputs + 4 * b;
            for (int k = 0; k < 4; k++) {
                ptrdiff_t row = row_outputs[4 * a + k];
                if (row < 0) continue;
                float res[4];
                output_axis(s[k], res);
                float *y = image + row * width;
                for (int l = 0; l < 4; l++) {
                    if (c[l] < 0) continue;
                    if (accumulate) y[c[l]] += res[l];
                    else y[c[l]] = res[l];
                }
            }
        }
    }
}
