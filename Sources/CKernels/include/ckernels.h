// Reductions of Autograd's kernels that need fused multiply-adds: Swift compiles for baseline
// x86-64, where each lane of a SIMD fma becomes a call to libm's fmaf. These are compiled twice,
// for AVX2+FMA and for baseline, and chosen once per process from the CPU's features. Both
// versions compute the same fused operations in the same order, so results are bit-identical
// whichever runs.
#ifndef WSSS_CKERNELS_H
#define WSSS_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Σ (p[i] - mu)², in sixteen lanes (two accumulators of eight), folded lane by lane.
float wsss_sum_squared_deviations(const float *p, ptrdiff_t count, float mu);

/// *sum = Σ dy[i], *dot = Σ dy[i]·(x[i] - mu), in eight lanes, folded lane by lane.
void wsss_sum_and_centered_dot(const float *dy, const float *x, ptrdiff_t count, float mu, float *sum, float *dot);

/// 1 when the AVX2+FMA versions run, 0 for the baseline ones.
int wsss_kernels_use_fma(void);

/// Tests: 0 forces the baseline versions, 1 the AVX2+FMA ones (only where the CPU has them),
/// -1 decides from the CPU again.
void wsss_kernels_set_use_fma(int value);
/// Whether the element-wise kernels that have one take their AVX-512F build (GELU; the same bits
/// as the AVX2 one, on sixteen lanes); `wsss_kernels_set_use_avx512` forces it as above.
int wsss_kernels_use_avx512(void);
void wsss_kernels_set_use_avx512(int value);

/// Winograd F(2x2, 3x3) transforms G g Gᵀ of `count` 3x3 kernels (kernel k at w + k·kernel_stride,
/// rotated by 180° when `rotate` is non-zero); element ξ of kernel k's 4x4 result goes to
/// u[ξ·u_stride + k].
void wsss_winograd_kernels(const float *w, ptrdiff_t kernel_stride, ptrdiff_t count, int rotate, float *u,
                           ptrdiff_t u_stride);

/// Winograd F(2x2, 3x3) input transform of every tile of one plane (see kernels.c).
void wsss_winograd_input(const float *image, ptrdiff_t width, const float *zeros, const ptrdiff_t *row_inputs,
                         ptrdiff_t row_tiles, const ptrdiff_t *col_inputs, ptrdiff_t col_tiles, float *out,
                         ptrdiff_t stride);

/// Winograd F(2x2, 3x3) output transform of every tile of one plane (see kernels.c).
void wsss_winograd_output(const float *m, ptrdiff_t stride, const ptrdiff_t *row_outputs, ptrdiff_t row_tiles,
                          const ptrdiff_t *col_outputs, ptrdiff_t col_tiles, float *image, ptrdiff_t width,
                          int accumulate);

/// Winograd F(4x4, 3x3) transforms G g Gᵀ of `count` 3x3 kernels, as `wsss_winograd_kernels`
/// but 6x6 results (element ξ = 6r + s) (see winograd4.c).
void wsss_winograd4_kernels(const float *w, ptrdiff_t kernel_stride, ptrdiff_t count, int rotate, float *u,
                            ptrdiff_t u_stride);

/// Winograd F(4x4, 3x3) input transform of every tile of one plane: six input rows and columns
/// per tile (`row_inputs[6a + u]`, −1 outside), 36 elements per tile (see winograd4.c).
void wsss_winograd4_input(const float *image, ptrdiff_t width, const float *zeros, const ptrdiff_t *row_inputs,
                          ptrdiff_t row_tiles, const ptrdiff_t *col_inputs, ptrdiff_t col_tiles, float *out,
                          ptrdiff_t stride);

/// Winograd F(4x4, 3x3) output transform of every tile of one plane: four output rows and
/// columns per tile (`row_outputs[4a + s]`, −1 past the end) (see winograd4.c).
void wsss_winograd4_output(const float *m, ptrdiff_t stride, const ptrdiff_t *row_outputs, ptrdiff_t row_tiles,
                           const ptrdiff_t *col_outputs, ptrdiff_t col_tiles, float *image, ptrdiff_t width,
                           int accumulate);

/// y[i] = x[i]·Φ(x[i]), the exact GELU (erfc to 1.2e-7 relative), fused multiply-adds
/// throughout; x and y may alias.
void wsss_gelu(const float *x, float *y, ptrdiff_t count);

/// Layer norm of one contiguous row of `count` values (sixteen-lane sums; see kernels.c): y may
/// alias x; the row's mean and 1/√(var + ε) are stored.
void wsss_layer_norm_row(const float *x, const float *weight, const float *bias, ptrdiff_t count, float epsilon,
                         float *y, float *mean, float *inverse_std);

/// y[i] = e^(x[i] − shift) (to about 2 ulp; −87.3 and below give e^−87.3) and returns Σ y[i];
/// x and y may alias.
float wsss_exponentiate(const float *x, float *y, ptrdiff_t count, float shift);

/// Softmax of `rows` contiguous rows of `n` values: y = e^(x − max) / Σ (wsss_exponentiate's
/// exponentials and sums; rows shorter than eight in one masked vector each). x and y may alias.
void wsss_softmax_rows(const float *x, float *y, ptrdiff_t rows, ptrdiff_t n);

/// bf16 products with fp32 accumulation (bf16.c). `wsss_bf16_round`: fp32 → bf16, round to
/// nearest even (NaN stays NaN). B is packed once with `wsss_sbgemm_pack_b` into
/// `wsss_sbgemm_packed_count(k, n)` bf16 values (panels of 16 columns, k-pairs interleaved);
/// `wsss_sbgemm` computes C[m,n] = A[m,k]·B (+ beta·C), A rounded to bf16 as it is read, each
/// output one running sum over k-pairs as VDPBF16PS does (odd product, then even, each addition
/// rounded), started from 0, or from beta·C when beta is not 0.
/// AVX512-BF16 where the CPU has it (`wsss_bf16_supported`), the portable kernel (same sums,
/// same order) elsewhere; `wsss_sbgemm_set_hardware(0|1|-1)` forces one (tests; 1 only where
/// supported, -1 restores the automatic choice).
uint16_t wsss_bf16_round(float x);
void wsss_to_bf16(const float *x, uint16_t *y, ptrdiff_t count);
int wsss_bf16_supported(void);
int wsss_sbgemm_uses_hardware(void);
void wsss_sbgemm_set_hardware(int value);
ptrdiff_t wsss_sbgemm_packed_count(ptrdiff_t k, ptrdiff_t n);
void wsss_sbgemm_pack_b(const float *b, ptrdiff_t ldb, int trans_b, ptrdiff_t k, ptrdiff_t n, uint16_t *packed);
void wsss_sbgemm(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda, const uint16_t *packed_b, float beta,
                 float *c, ptrdiff_t ldc);
/// C[m,n] = alpha·(A·B (+ beta·C)) with A and B fp32, either stored transposed (A as [k,m], B as
/// [n,k]): both rounded to bf16 while packed, the same sums as `wsss_sbgemm`, alpha multiplying
/// the finished sums (single-threaded). An alpha other than 1 is meant for beta 0.
void wsss_sbgemm_full(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a,
                      ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc);
/// `rows` rows of `columns` floats (leading dimension `ldx`) rounded to bf16 and written back as
/// fp32 values, contiguous (the bf16 operands of mixed-precision products run through sgemm).
void wsss_round_to_bf16_rows(const float *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t columns, float *y);
/// The calling thread's product arithmetic (`Kernels.productArithmetic`: 0 fp32, 1 bf16 rounded
/// operands through sgemm, 2 the bf16 kernel); the worker pool gives each job the caller's.
int wsss_product_arithmetic(void);
void wsss_set_product_arithmetic(int value);

#endif
