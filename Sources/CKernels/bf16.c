#include "ckernels.h"

// bf16 products with fp32 accumulation: C = A · B, A rounded to bf16 as it is read, B packed once
// (weights rounded once at load). The AVX512-BF16 kernel (Zen 4/5, Cooper Lake, Sapphire Rapids
// and later: VDPBF16PS multiplies 16 pairs per instruction, twice the fp32 rate) and the portable
// kernel compute the same sums in the same order: for each output, over k-pairs p = 0, 1, …,
// acc += a[2p+1]·b[2p+1], then acc += a[2p]·b[2p], each product exact in fp32 (8-bit mantissas)
// and each addition rounded to nearest even, as Intel's SDM describes VDPBF16PS. They differ
// where the hardware flushes subnormals (inputs and results), and would by an ulp or so on an
// implementation that rounds the pair's sum once (the test allows for it).

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

void wsss_sbgemm_pack_b(const float *b, ptrdiff_t ldb, int trans_b, ptrdiff_t k, ptrdiff_t n, uint16_t *packed) {
    ptrdiff_t pairs = (k + 1) / 2, panels = (n + PANEL - 1) / PANEL;
    for (ptrdiff_t panel = 0; panel < panels; panel++) {
        uint16_t *out = packed + panel * pairs * PANEL * 2;
        for (ptrdiff_t p = 0; p < pairs; p++) {
            for (ptrdiff_t l = 0; l < PANEL; l++) {
                ptrdiff_t j = panel * PANEL + l;
                for (int h = 0; h < 2; h++) {
                    ptrdiff_t kk = 2 * p + h;
                    float v = 0;
                    if (j < n && kk < k) v = trans_b ? b[j * ldb + kk] : b[kk * ldb + j];
                    out[(p * PANEL + l) * 2 + h] = wsss_bf16_round(v);
                }
            }
        }
    }
}

// One row of A as bf16 pairs (a[2p] low, a[2p+1] high), k padded to even.
static void pack_a_row(const float *a, ptrdiff_t k, uint32_t *pairs) {
    for (ptrdiff_t p = 0; p < (k + 1) / 2; p++) {
        uint16_t lo = wsss_bf16_round(a[2 * p]), hi = 2 * p + 1 < k ? wsss_bf16_round(a[2 * p + 1]) : 0;
        pairs[p] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
}

// Rows i0 … i0+mr-1 of A as bf16 pairs, `step` rows of `pairs` each, zero past the last row of A;
// returns mr.
static int pack_a_rows(const float *a, ptrdiff_t lda, ptrdiff_t m, ptrdiff_t i0, int step, ptrdiff_t k, uint32_t *rows) {
    ptrdiff_t pairs = (k + 1) / 2;
    int mr = m - i0 < step ? (int)(m - i0) : step;
    for (int r = 0; r < step; r++) {
        if (r < mr) pack_a_row(a + (i0 + r) * lda, k, rows + r * pairs);
        else memset(rows + r * pairs, 0, sizeof(uint32_t) * (size_t)pairs);
    }
    return mr;
}

static void sbgemm_portable(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const uint16_t *packed,
                            float beta, float *c, ptrdiff_t ldc) {
    ptrdiff_t pairs = (k + 1) / 2, panels = (n + PANEL - 1) / PANEL;
    uint32_t *row = malloc(sizeof(uint32_t) * (size_t)(pairs > 0 ? pairs : 1));
    for (ptrdiff_t i = 0; i < m; i++) {
        pack_a_row(a + i * lda, k, row);
        for (ptrdiff_t panel = 0; panel < panels; panel++) {
            const uint16_t *bp = packed + panel * pairs * PANEL * 2;
            float acc[PANEL];
            for (int l = 0; l < PANEL; l++) acc[l] = 0;
            for (ptrdiff_t p = 0; p < pairs; p++) {
                float a0 = bf16_value((uint16_t)(row[p] & 0xffff)), a1 = bf16_value((uint16_t)(row[p] >> 16));
                for (int l = 0; l < PANEL; l++) {
                    float b0 = bf16_value(bp[(p * PANEL + l) * 2]), b1 = bf16_value(bp[(p * PANEL + l) * 2 + 1]);
                    acc[l] = acc[l] + a1 * b1;
                    acc[l] = acc[l] + a0 * b0;
                }
            }
            for (int l = 0; l < PANEL; l++) {
                ptrdiff_t j = panel * PANEL + l;
                if (j < n) c[i * ldc + j] = beta == 0 ? acc[l] : beta * c[i * ldc + j] + acc[l];
            }
        }
    }
    free(row);
}

#ifdef WSSS_X86
// Four rows × two panels (32 columns) per step: eight zmm accumulators, two B loads per k-pair.
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void sbgemm_avx512(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const uint16_t *packed,
                          float beta, float *c, ptrdiff_t ldc) {
    enum { MR = 4 };
    ptrdiff_t pairs = (k + 1) / 2, panels = (n + PANEL - 1) / PANEL;
    uint32_t *rows = malloc(sizeof(uint32_t) * (size_t)(MR * (pairs > 0 ? pairs : 1)));
    for (ptrdiff_t i0 = 0; i0 < m; i0 += MR) {
        int mr = pack_a_rows(a, lda, m, i0, MR, k, rows);
        for (ptrdiff_t panel = 0; panel < panels; panel += 2) {
            int two = panel + 1 < panels;
            const uint16_t *b0 = packed + panel * pairs * PANEL * 2;
            const uint16_t *b1 = two ? b0 + pairs * PANEL * 2 : b0;
            __m512 acc[MR][2];
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
            for (ptrdiff_t p = 0; p < pairs; p++) {
                __m512bh v0 = (__m512bh)_mm512_loadu_si512((const void *)(b0 + p * PANEL * 2));
                __m512bh v1 = (__m512bh)_mm512_loadu_si512((const void *)(b1 + p * PANEL * 2));
                for (int r = 0; r < MR; r++) {
                    __m512bh x = (__m512bh)_mm512_set1_epi32((int)rows[r * pairs + p]);
                    acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, v0);
                    acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, v1);
                }
            }
            for (int r = 0; r < mr; r++) {
                for (int h = 0; h < 1 + two; h++) {
                    ptrdiff_t j0 = (panel + h) * PANEL;
                    int width = n - j0 < PANEL ? (int)(n - j0) : PANEL;
                    __mmask16 mask = (__mmask16)((1u << width) - 1u);
                    float *out = c + (i0 + r) * ldc + j0;
                    __m512 v = acc[r][h];
                    if (beta != 0) v = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(mask, out)), v);
                    _mm512_mask_storeu_ps(out, mask, v);
                }
            }
        }
    }
    free(rows);
}
#endif

#ifdef WSSS_X86
// The portable sums on AVX2+FMA (CPUs without bf16 arithmetic): each product of two bf16 values
// is exact in fp32, so fma(a, b, acc) rounds exactly as acc + a·b does — the same bits as the
// portable kernel, at fp32 FMA speed (bf16 gives no speed here; it lets `--precision bf16` be
// checked on any machine). Four rows × 16 columns per step.
__attribute__((target("avx2,fma")))
static void sbgemm_avx2(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const uint16_t *packed,
                        float beta, float *c, ptrdiff_t ldc) {
    enum { MR = 4 };
    ptrdiff_t pairs = (k + 1) / 2, panels = (n + PANEL - 1) / PANEL;
    uint32_t *rows = malloc(sizeof(uint32_t) * (size_t)(MR * (pairs > 0 ? pairs : 1)));
    const __m256i high = _mm256_set1_epi32((int)0xffff0000u);
    for (ptrdiff_t i0 = 0; i0 < m; i0 += MR) {
        int mr = pack_a_rows(a, lda, m, i0, MR, k, rows);
        for (ptrdiff_t panel = 0; panel < panels; panel++) {
            const uint16_t *bp = packed + panel * pairs * PANEL * 2;
            __m256 acc[MR][2];
            for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
            for (ptrdiff_t p = 0; p < pairs; p++) {
                __m256i w0 = _mm256_loadu_si256((const __m256i *)(bp + p * PANEL * 2));
                __m256i w1 = _mm256_loadu_si256((const __m256i *)(bp + p * PANEL * 2 + 16));
                __m256 even0 = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
                __m256 odd0 = _mm256_castsi256_ps(_mm256_and_si256(w0, high));
                __m256 even1 = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
                __m256 odd1 = _mm256_castsi256_ps(_mm256_and_si256(w1, high));
                for (int r = 0; r < MR; r++) {
                    uint32_t pair = rows[r * pairs + p];
                    uint32_t lo = pair << 16, hi = pair & 0xffff0000u;
                    float a0, a1;
                    memcpy(&a0, &lo, 4);
                    memcpy(&a1, &hi, 4);
                    __m256 x0 = _mm256_set1_ps(a0), x1 = _mm256_set1_ps(a1);
                    acc[r][0] = _mm256_fmadd_ps(x0, even0, _mm256_fmadd_ps(x1, odd0, acc[r][0]));
                    acc[r][1] = _mm256_fmadd_ps(x0, even1, _mm256_fmadd_ps(x1, odd1, acc[r][1]));
                }
            }
            for (int r = 0; r < mr; r++) {
                float lanes[PANEL];
                _mm256_storeu_ps(lanes, acc[r][0]);
                _mm256_storeu_ps(lanes + 8, acc[r][1]);
                for (int l = 0; l < PANEL; l++) {
                    ptrdiff_t j = panel * PANEL + l;
                    if (j < n) {
                        float *out = c + (i0 + r) * ldc + j;
                        *out = beta == 0 ? lanes[l] : beta * *out + lanes[l];
                    }
                }
            }
        }
    }
    free(rows);
}
#endif

// -1: not decided yet; 0: portable; 1: AVX512-BF16.
static int use_bf16 = -1;

int wsss_bf16_supported(void) {
#ifdef WSSS_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
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

void wsss_sbgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const uint16_t *packed_b, float beta,
                 float *c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return;
#ifdef WSSS_X86
    if (wsss_sbgemm_uses_hardware()) {
        sbgemm_avx512(m, n, k, a, lda, packed_b, beta, c, ldc);
        return;
    }
#endif
#ifdef WSSS_X86
    if (wsss_kernels_use_fma()) {
        sbgemm_avx2(m, n, k, a, lda, packed_b, beta, c, ldc);
        return;
    }
#endif
    sbgemm_portable(m, n, k, a, lda, packed_b, beta, c, ldc);
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
