#include "ckernels.h"

// bf16 products with fp32 accumulation: C = A · B, both operands rounded to bf16 as they are
// packed, or B packed once (weights rounded once at load). The AVX512-BF16 kernel (Zen 4/5, Cooper Lake, Sapphire Rapids
// and later: VDPBF16PS multiplies 16 pairs per instruction, twice the fp32 rate) and the portable
// kernel compute the same sums in the same order: for each output, from acc = 0 (or beta·C) over
// k-pairs p = 0, 1, …, acc += a[2p+1]·b[2p+1], then acc += a[2p]·b[2p], each product exact in fp32 (8-bit mantissas)
// and each addition rounded to nearest even, as Intel's SDM describes VDPBF16PS. They differ
// where the hardware flushes subnormals (inputs and results), and would by an ulp or so on an
// implementation that rounds the pair's sum once (the test allows for it; Zen 4 rounds per
// product, bit for bit the portable sums).

#pragma STDC FP_CONTRACT OFF

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define WSSS_X86 1
#endif

// Packed B: panels of 16 columns; within a panel, for each k-pair p, 16 lanes of
// (b[2p][j], b[2p+1][j]) as two bf16 (even k in the low half of the 32-bit lane, as VDPBF16PS
// reads them). k is padded to even with zeros, n to a multiple of 16 with zero columns.
#define PANEL 16

uint16_t wsss_bf16_round(float x) {
    uint32_t bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  // NaN stays a quiet NaN
    bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even (overflow gives inf)
    return (uint16_t)(bits >> 16);
}

static inline float bf16_value(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

void wsss_to_bf16(const float *x, uint16_t *y, ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) y[i] = wsss_bf16_round(x[i]);
}

ptrdiff_t wsss_sbgemm_packed_count(ptrdiff_t k, ptrdiff_t n) {
    ptrdiff_t pairs = (k + 1) / 2, panels = (n + PANEL - 1) / PANEL;
    return panels * pairs * PANEL * 2;
}


// ---------------------------------------------------------------------------------------------
// The blocked product. C[m, n] = beta·C + A·B with A and B fp32 (either stored transposed) or B
// packed once: B is packed per block of KC_PAIRS k-pairs and NC columns into panels of 16
// columns ([pair][16 lanes][2 bf16], the same layout as wsss_sbgemm_pack_b's, whose panels are
// read in place), A per block of MC rows and KC_PAIRS pairs into micro-panels of MR rows (32-bit
// pairs, the broadcast operand: [row][pair] when A is stored row-major, so a row's pairs are one
// contiguous conversion; [pair][row] when A is stored transposed, so a pair's rows are). A
// micro-kernel multiplies one A micro-panel by up to three B panels (MR × 48 outputs in
// registers). Every output is one running sum in k order: it starts at 0 (beta = 0) or beta·C,
// and each later k block starts from what the previous block stored, so the blocking does not
// change a bit; alpha multiplies the sums as the last block stores them. Measured on Zen 4: k
// blocks of 192 values instead of 256 were slower, and the first kernel without blocking (4 × 32
// outputs, A rounded into a copy per product) reached 318 against 342–358 GFLOP/s at 2048³.

enum { MR = 8, KC_PAIRS = 128, MC = 192, NC_PANELS = 96, GROUP = 3 };

// round-to-nearest-even bits of an fp32 value as bf16 (the NaN case as wsss_bf16_round).
static inline uint32_t round_bits(uint32_t bits) {
    uint32_t nan = (bits & 0x7fffffffu) > 0x7f800000u;
    uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
    return nan ? ((bits >> 16) | 0x40u) : rounded;
}

static inline uint32_t pair_of(float lo, float hi) {
    uint32_t l, h;
    memcpy(&l, &lo, 4);
    memcpy(&h, &hi, 4);
    return round_bits(l) | (round_bits(h) << 16);
}

// Element (row, column) of a matrix stored row-major, or transposed.
#define AT(x, ld, trans, row, column) ((trans) ? (x)[(column) * (ld) + (row)] : (x)[(row) * (ld) + (column)])

// Where pair p of row r of an A micro-panel is: r·row_step + p·pair_step.
static inline ptrdiff_t row_step(int trans, int kcp) { return trans ? 1 : kcp; }
static inline ptrdiff_t pair_step(int trans) { return trans ? MR : 1; }

// Rows i0 … i0+rows-1 and pairs p0 … p0+kcp-1 of A into micro-panels of MR·kcp pairs (layout
// above); rows past `rows` (to a multiple of MR) and the pair past an odd k are zero.
static void pack_a_portable(const float *a, ptrdiff_t lda, int trans, ptrdiff_t k, ptrdiff_t i0, int rows, ptrdiff_t p0,
                            int kcp, uint32_t *out) {
    ptrdiff_t rs = row_step(trans, kcp), ps = pair_step(trans);
    for (int ir = 0; ir < rows; ir += MR) {
        uint32_t *panel = out + (ptrdiff_t)ir * kcp;
        for (int p = 0; p < kcp; p++) {
            ptrdiff_t kk = 2 * (p0 + p);
            for (int r = 0; r < MR; r++) {
                ptrdiff_t i = i0 + ir + r;
                uint32_t v = 0;
                if (ir + r < rows) v = pair_of(AT(a, lda, trans, i, kk), kk + 1 < k ? AT(a, lda, trans, i, kk + 1) : 0.0f);
                panel[r * rs + p * ps] = v;
            }
        }
    }
}

// Columns j0 … j0+columns-1 and pairs p0 … p0+kcp-1 of B into panels of 16: out[panel·kcp·16 +
// p·16 + lane] as 32-bit pairs; columns past `columns` (to a multiple of 16) and the pair past
// an odd k are zero.
static void pack_b_portable(const float *b, ptrdiff_t ldb, int trans, ptrdiff_t k, ptrdiff_t j0, ptrdiff_t columns,
                            ptrdiff_t p0, int kcp, uint32_t *out) {
    ptrdiff_t panels = (columns + PANEL - 1) / PANEL;
    for (ptrdiff_t panel = 0; panel < panels; panel++) {
        uint32_t *o = out + panel * kcp * PANEL;
        for (int p = 0; p < kcp; p++) {
            ptrdiff_t kk = 2 * (p0 + p);
            for (int l = 0; l < PANEL; l++) {
                ptrdiff_t j = panel * PANEL + l;
                uint32_t v = 0;
                if (j < columns) {
                    ptrdiff_t jj = j0 + j;
                    v = pair_of(AT(b, ldb, trans, kk, jj), kk + 1 < k ? AT(b, ldb, trans, kk + 1, jj) : 0.0f);
                }
                o[p * PANEL + l] = v;
            }
        }
    }
}

// How a micro-kernel starts its sums: 0 from zero, 1 from C (a later k block), 2 from beta·C.
typedef void (*micro_kernel)(int kcp, const uint32_t *a, ptrdiff_t rs, ptrdiff_t ps, const uint16_t *b,
                             ptrdiff_t panel_stride, int panels, float *c, ptrdiff_t ldc, int rows, int columns, int start,
                             float beta, float scale);

static void micro_portable(int kcp, const uint32_t *a, ptrdiff_t rs, ptrdiff_t ps, const uint16_t *b,
                           ptrdiff_t panel_stride, int panels, float *c, ptrdiff_t ldc, int rows, int columns, int start,
                           float beta, float scale) {
    for (int r = 0; r < rows; r++) {
        for (int j = 0; j < columns; j++) {
            const uint16_t *bp = b + (j / PANEL) * panel_stride + (j % PANEL) * 2;
            float acc = start == 0 ? 0.0f : (start == 1 ? c[r * ldc + j] : beta * c[r * ldc + j]);
            for (int p = 0; p < kcp; p++) {
                uint32_t pair = a[r * rs + p * ps];
                float a0 = bf16_value((uint16_t)(pair & 0xffff)), a1 = bf16_value((uint16_t)(pair >> 16));
                float b0 = bf16_value(bp[p * PANEL * 2]), b1 = bf16_value(bp[p * PANEL * 2 + 1]);
                acc = acc + a1 * b1;
                acc = acc + a0 * b0;
            }
            c[r * ldc + j] = scale == 1 ? acc : acc * scale;
        }
    }
    (void)panels;
}

#ifdef WSSS_X86
// The portable sums on AVX2+FMA (CPUs without bf16 arithmetic): each product of two bf16 values
// is exact in fp32, so fma(a, b, acc) rounds exactly as acc + a·b does — the same bits as the
// portable kernel at fp32 FMA speed (bf16 gives no speed here; it lets the kernel's route be
// checked on any machine). Four rows × 16 columns at a time.
__attribute__((target("avx2,fma")))
static void micro_avx2(int kcp, const uint32_t *a, ptrdiff_t rs, ptrdiff_t ps, const uint16_t *b,
                       ptrdiff_t panel_stride, int panels, float *c, ptrdiff_t ldc, int rows, int columns, int start,
                       float beta, float scale) {
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    for (int panel = 0; panel < panels; panel++) {
        const uint16_t *bp = b + panel * panel_stride;
        int width = columns - panel * PANEL < PANEL ? columns - panel * PANEL : PANEL;
        for (int r0 = 0; r0 < rows; r0 += 4) {
            __m256 acc[4][2];
            for (int r = 0; r < 4; r++) {
                float lanes[PANEL] = {0};
                if (start != 0 && r0 + r < rows) {
                    const float *row = c + (r0 + r) * ldc + panel * PANEL;
                    for (int l = 0; l < width; l++) lanes[l] = start == 1 ? row[l] : beta * row[l];
                }
                acc[r][0] = _mm256_loadu_ps(lanes);
                acc[r][1] = _mm256_loadu_ps(lanes + 8);
            }
            for (int p = 0; p < kcp; p++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(bp + p * PANEL * 2));
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(bp + p * PANEL * 2 + 16));
                __m256 even0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
                __m256 odd0 = _mm256_castsi256_ps(_mm256_and_si256(w0, high));
                __m256 even1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
                __m256 odd1 = _mm256_castsi256_ps(_mm256_and_si256(w1, high));
                for (int r = 0; r < 4; r++) {
                    uint32_t pair = a[(r0 + r) * rs + p * ps];
                    uint32_t lo = pair << 16, hi = pair & 0xffff0000u;
                    float a0, a1;
                    memcpy(&a0, &lo, 4);
                    memcpy(&a1, &hi, 4);
                    __m256 x0 = _mm256_set1_ps(a0), x1 = _mm256_set1_ps(a1);
                    acc[r][0] = _mm256_fmadd_ps(x0, even0, _mm256_fmadd_ps(x1, odd0, acc[r][0]));
                    acc[r][1] = _mm256_fmadd_ps(x0, even1, _mm256_fmadd_ps(x1, odd1, acc[r][1]));
                }
            }
            for (int r = 0; r < 4 && r0 + r < rows; r++) {
                float lanes[PANEL];
                _mm256_storeu_ps(lanes, acc[r][0]);
                _mm256_storeu_ps(lanes + 8, acc[r][1]);
                if (scale != 1)
                    for (int l = 0; l < PANEL; l++) lanes[l] *= scale;
                memcpy(c + (r0 + r) * ldc + panel * PANEL, lanes, sizeof(float) * (size_t)width);
            }
        }
    }
}

// Masks of the first `count` lanes (0 … 16, clamped).
static inline __mmask16 first_lanes(ptrdiff_t count) {
    return count >= 16 ? (__mmask16)0xffff : (count <= 0 ? (__mmask16)0 : (__mmask16)((1u << count) - 1u));
}

// MR rows × NP panels of 16 on AVX512-BF16: 8 × NP accumulators, NP panel loads and MR
// broadcasts per k-pair.
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
BF16_TARGET static inline __attribute__((always_inline)) void micro_bf16_np(
    const int np, int kcp, const uint32_t *a, ptrdiff_t rs, ptrdiff_t ps, const uint16_t *b, ptrdiff_t panel_stride,
    float *c, ptrdiff_t ldc, int rows, int columns, int start, float beta, float scale) {
    __m512 acc[MR][GROUP];
    __mmask16 masks[GROUP];
    for (int h = 0; h < np; h++) masks[h] = first_lanes(columns - h * PANEL);
    const __m512 betas = _mm512_set1_ps(beta);
    for (int r = 0; r < MR; r++) {
        for (int h = 0; h < np; h++) {
            if (start == 0 || r >= rows) {
                acc[r][h] = _mm512_setzero_ps();
            } else {
                __m512 v = _mm512_maskz_loadu_ps(masks[h], c + r * ldc + h * PANEL);
                acc[r][h] = start == 1 ? v : _mm512_mul_ps(betas, v);
            }
        }
    }
    for (int p = 0; p < kcp; p++) {
        __m512bh w[GROUP];
        for (int h = 0; h < np; h++) w[h] = (__m512bh)_mm512_loadu_si512((const void *)(b + h * panel_stride + p * PANEL * 2));
        for (int r = 0; r < MR; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[r * rs + p * ps]);
            for (int h = 0; h < np; h++) acc[r][h] = _mm512_dpbf16_ps(acc[r][h], x, w[h]);
        }
    }
    if (scale != 1) {
        const __m512 factor = _mm512_set1_ps(scale);
        for (int r = 0; r < MR; r++)
            for (int h = 0; h < np; h++) acc[r][h] = _mm512_mul_ps(acc[r][h], factor);
    }
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        for (int h = 0; h < np; h++) _mm512_mask_storeu_ps(c + r * ldc + h * PANEL, masks[h], acc[r][h]);
    }
}

BF16_TARGET static void micro_bf16(int kcp, const uint32_t *a, ptrdiff_t rs, ptrdiff_t ps, const uint16_t *b,
                                   ptrdiff_t panel_stride, int panels, float *c, ptrdiff_t ldc, int rows, int columns,
                                   int start, float beta, float scale) {
    switch (panels) {
    case 3: micro_bf16_np(3, kcp, a, rs, ps, b, panel_stride, c, ldc, rows, columns, start, beta, scale); break;
    case 2: micro_bf16_np(2, kcp, a, rs, ps, b, panel_stride, c, ldc, rows, columns, start, beta, scale); break;
    default: micro_bf16_np(1, kcp, a, rs, ps, b, panel_stride, c, ldc, rows, columns, start, beta, scale); break;
    }
}

// Packing with the CPU's conversion (VCVTNE2PS2BF16 rounds to nearest even as wsss_bf16_round
// does; it reads subnormal inputs as zero, which VDPBF16PS would do with them anyway).

// 16 consecutive pairs of a row (32 floats) as 16 32-bit pairs, in order.
BF16_TARGET static inline __m512i row_pairs_16(const float *x) {
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

// A 16 × 16 block of 32-bit values, rows[l][q] → out[q·16 + l]: pairs within each 128-bit lane,
// then quads, then 128-bit lanes across rows.
BF16_TARGET static inline void transpose_16x16(const __m512i rows[16], uint32_t *out) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(rows[i], rows[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(rows[i], rows[i + 1]);
    }
    // u[4g + j]: rows 4g … 4g+3 at elements j, j+4, j+8, j+12 (one per 128-bit lane).
    for (int g = 0; g < 4; g++) {
        __m512i lo0 = t[4 * g], hi0 = t[4 * g + 1], lo1 = t[4 * g + 2], hi1 = t[4 * g + 3];
        u[4 * g + 0] = _mm512_unpacklo_epi64(lo0, lo1);
        u[4 * g + 1] = _mm512_unpackhi_epi64(lo0, lo1);
        u[4 * g + 2] = _mm512_unpacklo_epi64(hi0, hi1);
        u[4 * g + 3] = _mm512_unpackhi_epi64(hi0, hi1);
    }
    for (int j = 0; j < 4; j++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), x1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xDD);
        __m512i y0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88), y1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xDD);
        _mm512_storeu_si512((void *)(out + (j + 0) * 16), _mm512_shuffle_i32x4(x0, y0, 0x88));
        _mm512_storeu_si512((void *)(out + (j + 8) * 16), _mm512_shuffle_i32x4(x0, y0, 0xDD));
        _mm512_storeu_si512((void *)(out + (j + 4) * 16), _mm512_shuffle_i32x4(x1, y1, 0x88));
        _mm512_storeu_si512((void *)(out + (j + 12) * 16), _mm512_shuffle_i32x4(x1, y1, 0xDD));
    }
}

// 16 consecutive pairs from x with only the first `count` floats present (zeros after: the pair
// past an odd k, or a row's end).
BF16_TARGET static inline __m512i row_pairs_16_masked(const float *x, ptrdiff_t count) {
    __m512 lo = _mm512_maskz_loadu_ps(first_lanes(count), x), hi = _mm512_maskz_loadu_ps(first_lanes(count - 16), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// Every case on the vector path: columns past `columns`, the pair past an odd k and short
// blocks are masked loads of zeros, as pack_b_portable writes them.
BF16_TARGET static void pack_b_bf16(const float *b, ptrdiff_t ldb, int trans, ptrdiff_t k, ptrdiff_t j0, ptrdiff_t columns,
                                    ptrdiff_t p0, int kcp, uint32_t *out) {
    ptrdiff_t panels = (columns + PANEL - 1) / PANEL;
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                                6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (ptrdiff_t panel = 0; panel < panels; panel++) {
        uint32_t *o = out + panel * kcp * PANEL;
        ptrdiff_t jj = j0 + panel * PANEL, width = columns - panel * PANEL < PANEL ? columns - panel * PANEL : PANEL;
        if (!trans) {
            __mmask16 mask = first_lanes(width);
            for (int p = 0; p < kcp; p++) {
                ptrdiff_t kk = 2 * (p0 + p);
                const float *row = b + kk * ldb + jj;
                __m512 lo = _mm512_maskz_loadu_ps(mask, row);
                __m512 hi = kk + 1 < k ? _mm512_maskz_loadu_ps(mask, row + ldb) : _mm512_setzero_ps();
                __m512i both = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
                _mm512_storeu_si512((void *)(o + p * PANEL), _mm512_permutexvar_epi16(interleave, both));
            }
        } else {
            // Lane l reads row jj + l of the stored [n, k]: 16 pairs of 16 rows at a time,
            // transposed in registers.
            for (int p = 0; p < kcp; p += 16) {
                ptrdiff_t start = 2 * (p0 + p), present = k - start;
                __m512i rows[PANEL];
                for (int l = 0; l < PANEL; l++) {
                    const float *x = b + (jj + l) * ldb + start;
                    if (l >= width) rows[l] = _mm512_setzero_si512();
                    else if (present >= 32) rows[l] = row_pairs_16(x);
                    else rows[l] = row_pairs_16_masked(x, present);
                }
                if (p + 16 <= kcp) {
                    transpose_16x16(rows, o + p * PANEL);
                } else {
                    uint32_t block[PANEL * 16];
                    transpose_16x16(rows, block);
                    memcpy(o + p * PANEL, block, sizeof(uint32_t) * (size_t)(kcp - p) * PANEL);
                }
            }
        }
    }
}

BF16_TARGET static void pack_a_bf16(const float *a, ptrdiff_t lda, int trans, ptrdiff_t k, ptrdiff_t i0, int rows,
                                    ptrdiff_t p0, int kcp, uint32_t *out) {
    const __m256i order = _mm256_set_epi16(15, 7, 14, 6, 13, 5, 12, 4, 11, 3, 10, 2, 9, 1, 8, 0);
    for (int ir = 0; ir < rows; ir += MR) {
        uint32_t *panel = out + (ptrdiff_t)ir * kcp;
        int present_rows = rows - ir < MR ? rows - ir : MR;
        if (trans) {
            // A stored [k, m]: a pair's MR rows are contiguous in the two k rows.
            __mmask8 mask = (__mmask8)((1u << present_rows) - 1u);
            for (int p = 0; p < kcp; p++) {
                ptrdiff_t kk = 2 * (p0 + p);
                const float *lo = a + kk * lda + i0 + ir;
                __m256 l = _mm256_maskz_loadu_ps(mask, lo);
                __m256 h = kk + 1 < k ? _mm256_maskz_loadu_ps(mask, lo + lda) : _mm256_setzero_ps();
                __m512 both = _mm512_insertf32x8(_mm512_castps256_ps512(l), h, 1);
                // 16 bf16: rows' lo values then their hi values; interleave into 8 pairs.
                __m256i bf = (__m256i)_mm512_cvtneps_pbh(both);
                _mm256_storeu_si256((__m256i *)(panel + p * MR), _mm256_permutexvar_epi16(order, bf));
            }
        } else {
            // [row][pair]: each row's pairs are one contiguous conversion; rows past the last are zero.
            ptrdiff_t start = 2 * p0, present = k - start;
            for (int r = 0; r < MR; r++) {
                uint32_t *o = panel + (ptrdiff_t)r * kcp;
                if (r >= present_rows) {
                    memset(o, 0, sizeof(uint32_t) * (size_t)kcp);
                    continue;
                }
                const float *row = a + (i0 + ir + r) * lda + start;
                for (int p = 0; p < kcp; p += 16) {
                    ptrdiff_t left = present - 2 * p;
                    __m512i v = left >= 32 ? row_pairs_16(row + 2 * p) : row_pairs_16_masked(row + 2 * p, left);
                    _mm512_mask_storeu_epi32(o + p, first_lanes(kcp - p), v);
                }
            }
        }
    }
}
#endif

typedef void (*pack_a_fn)(const float *, ptrdiff_t, int, ptrdiff_t, ptrdiff_t, int, ptrdiff_t, int, uint32_t *);
typedef void (*pack_b_fn)(const float *, ptrdiff_t, int, ptrdiff_t, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, uint32_t *);

// This thread's packing buffers (64-byte aligned), grown on demand and kept.
static _Thread_local uint32_t *a_buffer, *b_buffer;

static uint32_t *buffer(uint32_t **slot, size_t words) {
    if (!*slot) *slot = aligned_alloc(64, ((words * 4 + 63) / 64) * 64);
    return *slot;
}

struct operands {
    micro_kernel micro;
    pack_a_fn pack_a;
    pack_b_fn pack_b;
};

static struct operands choose(void) {
    struct operands o = {micro_portable, pack_a_portable, pack_b_portable};
#ifdef WSSS_X86
    if (wsss_sbgemm_uses_hardware()) {
        o.micro = micro_bf16;
        o.pack_a = pack_a_bf16;
        o.pack_b = pack_b_bf16;
    } else if (wsss_kernels_use_fma()) {
        o.micro = micro_avx2;
    }
#endif
    return o;
}

// The k-block loop over A and B, B either fp32 (b != NULL, packed here per block) or packed once
// (packed != NULL, read in place).
static void blocked(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a, ptrdiff_t lda,
                    const float *b, ptrdiff_t ldb, const uint16_t *packed, float beta, float *c, ptrdiff_t ldc) {
    if (k <= 0) {
        // No products: C = beta·C, as sgemm.
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0 : alpha * beta * c[i * ldc + j];
        return;
    }
    struct operands ops = choose();
    ptrdiff_t pairs = (k + 1) / 2, panels = (n + PANEL - 1) / PANEL;
    uint32_t *pa = buffer(&a_buffer, (size_t)MC * KC_PAIRS);
    uint32_t *pb = packed ? NULL : buffer(&b_buffer, (size_t)NC_PANELS * PANEL * KC_PAIRS);
    // Packed here, B goes by NC_PANELS panels (the buffer's size); packed once, it is read in
    // place and A is packed once per k block.
    ptrdiff_t nc = packed ? panels : NC_PANELS;
    for (ptrdiff_t q0 = 0; q0 < panels; q0 += nc) {
        ptrdiff_t q1 = q0 + nc < panels ? q0 + nc : panels;
        ptrdiff_t j0 = q0 * PANEL, columns = (q1 * PANEL < n ? q1 * PANEL : n) - j0;
        for (ptrdiff_t p0 = 0; p0 < pairs; p0 += KC_PAIRS) {
            int kcp = (int)(pairs - p0 < KC_PAIRS ? pairs - p0 : KC_PAIRS);
            int start = p0 > 0 ? 1 : (beta == 0 ? 0 : (beta == 1 ? 1 : 2));
            float scale = p0 + kcp == pairs ? alpha : 1;  // alpha on the finished sums
            const uint16_t *bblock;
            ptrdiff_t panel_stride;
            if (packed) {
                bblock = packed + (q0 * pairs + p0) * PANEL * 2;
                panel_stride = pairs * PANEL * 2;
            } else {
                ops.pack_b(b, ldb, trans_b, k, j0, columns, p0, kcp, pb);
                bblock = (const uint16_t *)pb;
                panel_stride = (ptrdiff_t)kcp * PANEL * 2;
            }
            for (ptrdiff_t i0 = 0; i0 < m; i0 += MC) {
                int rows = (int)(m - i0 < MC ? m - i0 : MC);
                ops.pack_a(a, lda, trans_a, k, i0, rows, p0, kcp, pa);
                for (ptrdiff_t g = 0; g < q1 - q0; g += GROUP) {
                    int np = (int)(q1 - q0 - g < GROUP ? q1 - q0 - g : GROUP);
                    ptrdiff_t jg = g * PANEL;
                    int width = (int)(columns - jg < np * PANEL ? columns - jg : np * PANEL);
                    for (int ir = 0; ir < rows; ir += MR) {
                        ops.micro(kcp, pa + (ptrdiff_t)ir * kcp, row_step(trans_a, kcp), pair_step(trans_a),
                                  bblock + g * panel_stride, panel_stride, np, c + (i0 + ir) * ldc + j0 + jg, ldc,
                                  rows - ir < MR ? rows - ir : MR, width, start, beta, scale);
                    }
                }
            }
        }
    }
}

// -1: not decided yet; 0: portable; 1: AVX512-BF16.
static int use_bf16 = -1;

int wsss_bf16_supported(void) {
#ifdef WSSS_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

int wsss_sbgemm_uses_hardware(void) {
    if (use_bf16 < 0) use_bf16 = wsss_bf16_supported();
    return use_bf16;
}

void wsss_sbgemm_set_hardware(int value) {
    use_bf16 = -1;
    if (value >= 0 && (value == 0 || wsss_bf16_supported())) use_bf16 = value;
}

void wsss_sbgemm_pack_b(const float *b, ptrdiff_t ldb, int trans_b, ptrdiff_t k, ptrdiff_t n, uint16_t *packed) {
    // The whole of B as one k block: panels [pair][16 lanes] of 32-bit pairs (even k low), the
    // layout `blocked` reads in place.
    choose().pack_b(b, ldb, trans_b, k, 0, n, 0, (int)((k + 1) / 2), (uint32_t *)(void *)packed);
}

void wsss_sbgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const uint16_t *packed_b, float beta,
                 float *c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return;
    blocked(0, 0, m, n, k, 1, a, lda, NULL, 0, packed_b, beta, c, ldc);
}

void wsss_sbgemm_full(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a,
                      ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return;
    blocked(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, NULL, beta, c, ldc);
}

void wsss_round_to_bf16_rows(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t columns, float *y) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const uint32_t *in = (const uint32_t *)(const void *)(x + r * ldx);
        uint32_t *out = (uint32_t *)(void *)(y + r * columns);
        for (ptrdiff_t j = 0; j < columns; j++) {
            uint32_t bits = in[j];
            // As wsss_bf16_round, kept as an fp32 value (the low 16 bits cleared); vectorises.
            uint32_t nan = (bits & 0x7fffffffu) > 0x7f800000u;
            uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
            out[j] = nan ? ((bits | 0x00400000u) & 0xffff0000u) : rounded;
        }
    }
}

static _Thread_local int product_arithmetic = 0;

int wsss_product_arithmetic(void) { return product_arithmetic; }

void wsss_set_product_arithmetic(int value) { product_arithmetic = value; }
