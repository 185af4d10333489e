#include "ckernels.h"

// The tails must not be contracted into fmas in one version and not the other.
#pragma STDC FP_CONTRACT OFF

#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define WSSS_X86 1
#endif

// Both versions keep the same lanes and accumulation order: lane l of accumulator a gets
// fma(d, d, a[l]) for elements i ≡ l (mod 16), i < 16·⌊count/16⌋, likewise b for i ≡ l + 8;
// then s = Σ_l (a[l] + b[l]) in lane order, and the tail adds d·d one by one (not fused, as
// the Swift fallback did).

static float sum_sq_dev_portable(const float *p, ptrdiff_t count, float mu) {
    float a[8] = {0}, b[8] = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        for (int l = 0; l < 8; l++) {
            float d0 = p[i + l] - mu, d1 = p[i + 8 + l] - mu;
            a[l] = fmaf(d0, d0, a[l]);
            b[l] = fmaf(d1, d1, b[l]);
        }
    }
    float s = 0;
    for (int l = 0; l < 8; l++) s += a[l] + b[l];
    for (; i < count; i++) { float d = p[i] - mu; s += d * d; }
    return s;
}

static void sum_dot_portable(const float *dy, const float *x, ptrdiff_t count, float mu, float *sum, float *dot) {
    float a[8] = {0}, b[8] = {0};
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        for (int l = 0; l < 8; l++) {
            float g = dy[i + l];
            a[l] += g;
            b[l] = fmaf(g, x[i + l] - mu, b[l]);
        }
    }
    float sa = 0, sb = 0;
    for (int l = 0; l < 8; l++) { sa += a[l]; sb += b[l]; }
    for (; i < count; i++) { sa += dy[i]; sb += dy[i] * (x[i] - mu); }
    *sum = sa;
    *dot = sb;
}

#ifdef WSSS_X86
__attribute__((target("avx2,fma")))
static float sum_sq_dev_fma(const float *p, ptrdiff_t count, float mu) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps(), m = _mm256_set1_ps(mu);
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), m), d1 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), m);
        a = _mm256_fmadd_ps(d0, d0, a);
        b = _mm256_fmadd_ps(d1, d1, b);
    }
    float la[8], lb[8];
    _mm256_storeu_ps(la, a);
    _mm256_storeu_ps(lb, b);
    float s = 0;
    for (int l = 0; l < 8; l++) s += la[l] + lb[l];
    for (; i < count; i++) { float d = p[i] - mu; s += d * d; }
    return s;
}

__attribute__((target("avx2,fma")))
static void sum_dot_fma(const float *dy, const float *x, ptrdiff_t count, float mu, float *sum, float *dot) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps(), m = _mm256_set1_ps(mu);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = _mm256_loadu_ps(dy + i);
        a = _mm256_add_ps(a, g);
        b = _mm256_fmadd_ps(g, _mm256_sub_ps(_mm256_loadu_ps(x + i), m), b);
    }
    float la[8], lb[8];
    _mm256_storeu_ps(la, a);
    _mm256_storeu_ps(lb, b);
    float sa = 0, sb = 0;
    for (int l = 0; l < 8; l++) { sa += la[l]; sb += lb[l]; }
    for (; i < count; i++) { sa += dy[i]; sb += dy[i] * (x[i] - mu); }
    *sum = sa;
    *dot = sb;
}
#endif

// -1: not decided yet; decided once (a benign race: every thread computes the same value).
static int use_fma = -1;

int wsss_kernels_use_fma(void) {
    if (use_fma < 0) {
#ifdef WSSS_X86
        __builtin_cpu_init();
        use_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        use_fma = 0;
#endif
    }
    return use_fma;
}

void wsss_kernels_set_use_fma(int value) {
    use_fma = -1;
    if (value >= 0 && (value == 0 || wsss_kernels_use_fma())) use_fma = value;
}

float wsss_sum_squared_deviations(const float *p, ptrdiff_t count, float mu) {
#ifdef WSSS_X86
    if (wsss_kernels_use_fma()) return sum_sq_dev_fma(p, count, mu);
#endif
    return sum_sq_dev_portable(p, count, mu);
}

void wsss_sum_and_centered_dot(const float *dy, const float *x, ptrdiff_t count, float mu, float *sum, float *dot) {
#ifdef WSSS_X86
    if (wsss_kernels_use_fma()) { sum_dot_fma(dy, x, count, mu, sum, dot); return; }
#endif
    sum_dot_portable(dy, x, count, mu, sum, dot);
}

// Winograd F(2x2, 3x3) kernel transform U = G g Gᵀ, G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1], for
// `count` 3x3 kernels: kernel k is the 9 floats at w + k·kernel_stride (rotated by 180° when
// `rotate`), and element ξ = 4r + s of its U goes to u[ξ·u_stride + k]. Written as a loop over k
// so the compiler vectorises it; only additions and halvings, so every build rounds alike.
void wsss_winograd_kernels(const float *w, ptrdiff_t kernel_stride, ptrdiff_t count, int rotate, float *u,
                           ptrdiff_t u_stride) {
    for (ptrdiff_t k = 0; k < count; k++) {
        const float *g = w + k * kernel_stride;
        float a[9];
        for (int t = 0; t < 9; t++) a[t] = g[rotate ? 8 - t : t];
        float t[4][3];
        for (int c = 0; c < 3; c++) {
            t[0][c] = a[c];
            t[1][c] = (a[c] + a[3 + c] + a[6 + c]) * 0.5f;
            t[2][c] = (a[c] - a[3 + c] + a[6 + c]) * 0.5f;
            t[3][c] = a[6 + c];
        }
        for (int r = 0; r < 4; r++) {
            float *o = u + 4 * r * u_stride + k;
            o[0] = t[r][0];
            o[u_stride] = (t[r][0] + t[r][1] + t[r][2]) * 0.5f;
            o[2 * u_stride] = (t[r][0] - t[r][1] + t[r][2]) * 0.5f;
            o[3 * u_stride] = t[r][2];
        }
    }
}

// Winograd F(2x2, 3x3) input transform V = Bᵀ d B, Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],
// of every tile of one image plane. Tile (a, b) reads rows row_inputs[4a + u] and columns
// col_inputs[4b + v] (−1: outside the image, read as 0); element ξ of its V goes to
// out[ξ·stride + a·col_tiles + b]. Rows outside read `zeros` (a row of `width` zeros), so only
// the few tiles at the left and right edges need per-column checks.
void wsss_winograd_input(const float *image, ptrdiff_t width, const float *zeros, const ptrdiff_t *row_inputs,
                         ptrdiff_t row_tiles, const ptrdiff_t *col_inputs, ptrdiff_t col_tiles, float *out,
                         ptrdiff_t stride) {
    for (ptrdiff_t a = 0; a < row_tiles; a++) {
        const float *r[4];
        for (int u = 0; u < 4; u++) {
            ptrdiff_t i = row_inputs[4 * a + u];
            r[u] = i < 0 ? zeros : image + i * width;
        }
        float *o = out + a * col_tiles;
        for (ptrdiff_t b = 0; b < col_tiles; b++) {
            const ptrdiff_t *q = col_inputs + 4 * b;
            float d[4][4];
            if (q[0] >= 0 && q[3] >= 0) {
                for (int u = 0; u < 4; u++)
                    for (int v = 0; v < 4; v++) d[u][v] = r[u][q[v]];
            } else {
                for (int u = 0; u < 4; u++)
                    for (int v = 0; v < 4; v++) d[u][v] = q[v] < 0 ? 0.0f : r[u][q[v]];
            }
            float t[4][4];
            for (int v = 0; v < 4; v++) {
                t[0][v] = d[0][v] - d[2][v];
                t[1][v] = d[1][v] + d[2][v];
                t[2][v] = d[2][v] - d[1][v];
                t[3][v] = d[1][v] - d[3][v];
            }
            for (int u = 0; u < 4; u++) {
                float *p = o + 4 * u * stride + b;
                p[0] = t[u][0] - t[u][2];
                p[stride] = t[u][1] + t[u][2];
                p[2 * stride] = t[u][2] - t[u][1];
                p[3 * stride] = t[u][1] - t[u][3];
            }
        }
    }
}

// Winograd F(2x2, 3x3) output transform Y = Aᵀ M A, Aᵀ = [1 1 1 0; 0 1 −1 −1], of every tile of
// one output plane: M's element ξ of tile (a, b) is m[ξ·stride + a·col_tiles + b]; the 2x2 block
// goes to rows row_outputs[2a + s] and columns col_outputs[2b + s] (−1: past the end, skipped),
// added to `image` when `accumulate`, else stored.
void wsss_winograd_output(const float *m, ptrdiff_t stride, const ptrdiff_t *row_outputs, ptrdiff_t row_tiles,
                          const ptrdiff_t *col_outputs, ptrdiff_t col_tiles, float *image, ptrdiff_t width,
                          int accumulate) {
    for (ptrdiff_t a = 0; a < row_tiles; a++) {
        ptrdiff_t o0 = row_outputs[2 * a], o1 = row_outputs[2 * a + 1];
        const float *p = m + a * col_tiles;
        for (ptrdiff_t b = 0; b < col_tiles; b++) {
            float s[2][4];
            for (int v = 0; v < 4; v++) {
                float m0 = p[(0 + v) * stride + b], m1 = p[(4 + v) * stride + b];
                float m2 = p[(8 + v) * stride + b], m3 = p[(12 + v) * stride + b];
                s[0][v] = m0 + m1 + m2;
                s[1][v] = m1 - m2 - m3;
            }
            ptrdiff_t c0 = col_outputs[2 * b], c1 = col_outputs[2 * b + 1];
            for (int k = 0; k < 2; k++) {
                ptrdiff_t row = k == 0 ? o0 : o1;
                if (row < 0) continue;
                float *y = image + row * width;
                float y0 = s[k][0] + s[k][1] + s[k][2], y1 = s[k][1] - s[k][2] - s[k][3];
                if (accumulate) {
                    y[c0] += y0;
                    if (c1 >= 0) y[c1] += y1;
                } else {
                    y[c0] = y0;
                    if (c1 >= 0) y[c1] = y1;
                }
            }
        }
    }
}

// GELU, y = x·Φ(x), Φ(x) = ½·erfc(−x/√2): Numerical Recipes' erfcc Chebyshev fit (§6.2,
// fractional error < 1.2e-7) on z = |x|/√2, e^u by Cody–Waite reduction and a Taylor series to
// r⁶ (2^n built in the exponent bits), every multiply-add fused. The AVX2 version does the same
// operations on eight lanes (_mm256_fmadd_ps is fmaf lane by lane), so both give the same bits.

static const float gelu_erfc[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                    -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f};
static const float exp_taylor[7] = {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
#define WSSS_MAGIC 12582912.0f  // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
#define WSSS_LOG2E 1.44269504f
#define WSSS_LN2_HI 0.693145751953125f
#define WSSS_LN2_LO 1.428606765330187e-6f
#define WSSS_SQRT_HALF 0.70710678f

static float exp_portable(float x) {
    if (x < -87.3f) x = -87.3f;
    float shifted = fmaf(x, WSSS_LOG2E, WSSS_MAGIC);
    float n = shifted - WSSS_MAGIC;
    float r = fmaf(-n, WSSS_LN2_HI, x);
    r = fmaf(-n, WSSS_LN2_LO, r);
    float p = exp_taylor[0];
    for (int k = 1; k < 7; k++) p = fmaf(p, r, exp_taylor[k]);
    union { float f; int i; } s = {shifted}, m = {WSSS_MAGIC}, scale;
    scale.i = (s.i - m.i + 127) << 23;
    return p * scale.f;
}

static float gelu_one(float x) {
    float z = (x < 0 ? -x : x) * WSSS_SQRT_HALF;
    float t = 1.0f / fmaf(0.5f, z, 1.0f);
    float p = gelu_erfc[0];
    for (int k = 1; k < 10; k++) p = fmaf(p, t, gelu_erfc[k]);
    float tail = 0.5f * t * exp_portable(fmaf(-z, z, p));  // ½·erfc(|x|/√2) = Φ(−|x|)
    return x * (x > 0 ? 1.0f - tail : tail);
}

static void gelu_portable(const float *x, float *y, ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) y[i] = gelu_one(x[i]);
}

#ifdef WSSS_X86
__attribute__((target("avx2,fma")))
static __m256 exp_fma(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 magic = _mm256_set1_ps(WSSS_MAGIC);
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(WSSS_LOG2E), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(WSSS_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(WSSS_LN2_LO), r);
    __m256 p = _mm256_set1_ps(exp_taylor[0]);
    for (int k = 1; k < 7; k++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_taylor[k]));
    __m256i bits = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(magic));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(p, scale);
}

__attribute__((target("avx2,fma")))
static void gelu_fma(const float *x, float *y, ptrdiff_t count) {
    ptrdiff_t i = 0;
    const __m256 sign = _mm256_set1_ps(-0.0f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(WSSS_SQRT_HALF));
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(half, z, one));
        __m256 p = _mm256_set1_ps(gelu_erfc[0]);
        for (int k = 1; k < 10; k++) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(gelu_erfc[k]));
        __m256 tail = _mm256_mul_ps(_mm256_mul_ps(half, t), exp_fma(_mm256_fnmadd_ps(z, z, p)));
        __m256 positive = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
        __m256 phi = _mm256_blendv_ps(tail, _mm256_sub_ps(one, tail), positive);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(v, phi));
    }
    for (; i < count; i++) y[i] = gelu_one(x[i]);
}
#endif

#ifdef WSSS_X86
// exp_fma and gelu_fma on sixteen lanes (AVX-512F): the same operations element by element, so
// the same bits; the last partial vector through masked loads and stores.
__attribute__((target("avx512f")))
static __m512 exp_avx512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
    __m512 magic = _mm512_set1_ps(WSSS_MAGIC);
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(WSSS_LOG2E), magic);
    __m512 n = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(WSSS_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(WSSS_LN2_LO), r);
    __m512 p = _mm512_set1_ps(exp_taylor[0]);
    for (int k = 1; k < 7; k++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(exp_taylor[k]));
    __m512i bits = _mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_castps_si512(magic));
    __m512 scale = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(p, scale);
}

__attribute__((target("avx512f")))
static void gelu_avx512(const float *x, float *y, ptrdiff_t count) {
    const __m512 sign = _mm512_set1_ps(-0.0f), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (ptrdiff_t i = 0; i < count; i += 16) {
        __mmask16 lanes = count - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (count - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
        __m512 magnitude = _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_castps_si512(sign), _mm512_castps_si512(v)));
        __m512 z = _mm512_mul_ps(magnitude, _mm512_set1_ps(WSSS_SQRT_HALF));
        __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(half, z, one));
        __m512 p = _mm512_set1_ps(gelu_erfc[0]);
        for (int k = 1; k < 10; k++) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(gelu_erfc[k]));
        __m512 tail = _mm512_mul_ps(_mm512_mul_ps(half, t), exp_avx512(_mm512_fnmadd_ps(z, z, p)));
        __mmask16 positive = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        __m512 phi = _mm512_mask_blend_ps(positive, tail, _mm512_sub_ps(one, tail));
        _mm512_mask_storeu_ps(y + i, lanes, _mm512_mul_ps(v, phi));
    }
}
#endif

// -1: not decided yet; 0 or 1 (AVX-512F, used only where the FMA build is).
static int use_avx512 = -1;

int wsss_kernels_use_avx512(void) {
    if (use_avx512 < 0) {
#ifdef WSSS_X86
        __builtin_cpu_init();
        use_avx512 = __builtin_cpu_supports("avx512f");
#else
        use_avx512 = 0;
#endif
    }
    return use_avx512;
}

void wsss_kernels_set_use_avx512(int value) {
    use_avx512 = -1;
    if (value >= 0 && (value == 0 || wsss_kernels_use_avx512())) use_avx512 = value;
}

void wsss_gelu(const float *x, float *y, ptrdiff_t count) {
#ifdef WSSS_X86
    if (wsss_kernels_use_fma()) {
        if (wsss_kernels_use_avx512()) gelu_avx512(x, y, count);
        else gelu_fma(x, y, count);
        return;
    }
#endif
    gelu_portable(x, y, count);
}

// Layer norm of one contiguous row: the mean from sixteen lanes (two accumulators of eight, lane
// l of a holding the elements i ≡ l (mod 16), b those ≡ l + 8, summed in lane order, then the
// tail in order), the variance from `wsss_sum_squared_deviations`, then y = (x − μ)·r·w + b
// element by element, unfused in both versions.

static float sum_portable(const float *p, ptrdiff_t count) {
    float a[8] = {0}, b[8] = {0};
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        for (int l = 0; l < 8; l++) {
            a[l] += p[i + l];
            b[l] += p[i + 8 + l];
        }
    }
    float s = 0;
    for (int l = 0; l < 8; l++) s += a[l] + b[l];
    for (; i < count; i++) s += p[i];
    return s;
}

static void normalize_portable(const float *x, const float *w, const float *b, float mu, float r, float *y,
                               ptrdiff_t count) {
    for (ptrdiff_t i = 0; i < count; i++) y[i] = (x[i] - mu) * r * w[i] + b[i];
}

#ifdef WSSS_X86
__attribute__((target("avx2,fma")))
static float sum_fma(const float *p, ptrdiff_t count) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 16 <= count; i += 16) {
        a = _mm256_add_ps(a, _mm256_loadu_ps(p + i));
        b = _mm256_add_ps(b, _mm256_loadu_ps(p + i + 8));
    }
    float la[8], lb[8];
    _mm256_storeu_ps(la, a);
    _mm256_storeu_ps(lb, b);
    float s = 0;
    for (int l = 0; l < 8; l++) s += la[l] + lb[l];
    for (; i < count; i++) s += p[i];
    return s;
}

__attribute__((target("avx2,fma")))
static void normalize_fma(const float *x, const float *w, const float *b, float mu, float r, float *y, ptrdiff_t count) {
    __m256 m = _mm256_set1_ps(mu), rr = _mm256_set1_ps(r);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), m), rr), _mm256_loadu_ps(w + i));
        _mm256_storeu_ps(y + i, _mm256_add_ps(v, _mm256_loadu_ps(b + i)));
    }
    for (; i < count; i++) y[i] = (x[i] - mu) * r * w[i] + b[i];
}
#endif

void wsss_layer_norm_row(const float *x, const float *weight, const float *bias, ptrdiff_t count, float epsilon,
                         float *y, float *mean, float *inverse_std) {
    float s;
#ifdef WSSS_X86
    int fused = wsss_kernels_use_fma();
    s = fused ? sum_fma(x, count) : sum_portable(x, count);
#else
    s = sum_portable(x, count);
#endif
    float mu = s / (float)count;
    float v = wsss_sum_squared_deviations(x, count, mu);
    float r = 1.0f / sqrtf(v / (float)count + epsilon);
#ifdef WSSS_X86
    if (fused) normalize_fma(x, weight, bias, mu, r, y, count);
    else normalize_portable(x, weight, bias, mu, r, y, count);
#else
    normalize_portable(x, weight, bias, mu, r, y, count);
#endif
    *mean = mu;
    *inverse_std = r;
}

// y[i] = e^(x[i] − shift) with the GELU's exp, and Σ y[i]: eight lanes summed in lane order, then
// the tail in order. Softmax numerators.

static float exponentiate_portable(const float *x, float *y, ptrdiff_t count, float shift) {
    float a[8] = {0};
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        for (int l = 0; l < 8; l++) {
            float e = exp_portable(x[i + l] - shift);
            y[i + l] = e;
            a[l] += e;
        }
    }
    float s = 0;
    for (int l = 0; l < 8; l++) s += a[l];
    for (; i < count; i++) {
        float e = exp_portable(x[i] - shift);
        y[i] = e;
        s += e;
    }
    return s;
}

#ifdef WSSS_X86
__attribute__((target("avx2,fma")))
static float exponentiate_fma(const float *x, float *y, ptrdiff_t count, float shift) {
    __m256 a = _mm256_setzero_ps(), s8 = _mm256_set1_ps(shift);
    ptrdiff_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 e = exp_fma(_mm256_sub_ps(_mm256_loadu_ps(x + i), s8));
        _mm256_storeu_ps(y + i, e);
        a = _mm256_add_ps(a, e);
    }
    float la[8];
    _mm256_storeu_ps(la, a);
    float s = 0;
    for (int l = 0; l < 8; l++) s += la[l];
    for (; i < count; i++) {
        float e = exp_portable(x[i] - shift);
        y[i] = e;
        s += e;
    }
    return s;
}
#endif

float wsss_exponentiate(const float *x, float *y, ptrdiff_t count, float shift) {
#ifdef WSSS_X86
    if (wsss_kernels_use_fma()) return exponentiate_fma(x, y, count, shift);
#endif
    return exponentiate_portable(x, y, count, shift);
}

/* Softmax of contiguous rows: max, then e^(x − max) and its sum as wsss_exponentiate (lanes of
   eight summed in order, then the tail), then y = e / Σ. Rows shorter than eight (SAM's image
   tokens over a prompt's 7 keys, 262 144 rows per batch of 8 prompts) take one masked vector
   each on AVX2 instead of the scalar tail: the same values (e^ per lane is the portable one's
   bits; the masked lanes add 0 where the portable sum starts from 0). */
static void softmax_rows_portable(const float *x, float *y, ptrdiff_t rows, ptrdiff_t n) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *src = x + r * n;
        float *dst = y + r * n;
        float best = src[0];
        for (ptrdiff_t k = 1; k < n; k++) best = src[k] > best ? src[k] : best;
        float inverse = 1.0f / exponentiate_portable(src, dst, n, best);
        for (ptrdiff_t k = 0; k < n; k++) dst[k] *= inverse;
    }
}

#ifdef WSSS_X86
__attribute__((target("avx2,fma")))
static void softmax_rows_fma(const float *x, float *y, ptrdiff_t rows, ptrdiff_t n) {
    if (n >= 8) {
        for (ptrdiff_t r = 0; r < rows; r++) {
            const float *src = x + r * n;
            float *dst = y + r * n;
            float best = src[0];
            for (ptrdiff_t k = 1; k < n; k++) best = src[k] > best ? src[k] : best;
            float inverse = 1.0f / exponentiate_fma(src, dst, n, best);
            for (ptrdiff_t k = 0; k < n; k++) dst[k] *= inverse;
        }
        return;
    }
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lanes);
    const __m256 low = _mm256_set1_ps(-INFINITY);
    for (ptrdiff_t r = 0; r < rows; r++) {
        __m256 v = _mm256_blendv_ps(low, _mm256_maskload_ps(x + r * n, mask), _mm256_castsi256_ps(mask));
        __m256 m = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
        m = _mm256_max_ps(m, _mm256_permute_ps(m, 0x4e));
        m = _mm256_max_ps(m, _mm256_permute_ps(m, 0xb1));
        __m256 e = _mm256_and_ps(exp_fma(_mm256_sub_ps(v, m)), _mm256_castsi256_ps(mask));
        float la[8];
        _mm256_storeu_ps(la, e);
        float s = 0;
        for (int l = 0; l < 8; l++) s += la[l];
        _mm256_maskstore_ps(y + r * n, mask, _mm256_mul_ps(e, _mm256_set1_ps(1.0f / s)));
    }
}
#endif

void wsss_softmax_rows(const float *x, float *y, ptrdiff_t rows, ptrdiff_t n) {
    if (n <= 0) return;
#ifdef WSSS_X86
    if (wsss_kernels_use_fma()) { softmax_rows_fma(x, y, rows, n); return; }
#endif
    softmax_rows_portable(x, y, rows, n);
}
