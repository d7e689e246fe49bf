// The 8-bit block scan of QuantizedItemTable at every width this machine offers, chosen at run
// time: Swift cannot compile one function for AVX2 or AVX-512 while the rest of the binary stays
// on the x86-64 baseline, C can (`__attribute__((target))`), the way NumPy and OpenBLAS dispatch.
//
// Per 16 bytes of a block (one pair of dimensions for 8 items) the kernel needs one arithmetic
// shift and two multiply-adds of int16 pairs: madd(v >> 8, q) is the high items' contribution and
// madd(v, q) − 256·that − 128·Σq the low items'. See osprey_int8_block_dots in the header.

#include "COspreyKernels.h"

#include <string.h>

// The bounds are proven for separately rounded products and sums: never fuse them.
#pragma clang fp contract(off)

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/// What one pass over the blocks produces: the dot products, the bounds, or both (NULL skips).
typedef struct {
    int32_t *dots;
    float *upper, *lower;
    float step, norm, slack;
} outputs;

static inline float header_float(const uint8_t *header, size_t at) {
    float f;
    memcpy(&f, header + at, 4);
    return f;
}

static void run_portable(const uint8_t *blocks, size_t block_bytes, size_t header_bytes, size_t block_count,
                         const int16_t *query_pairs, size_t pairs, int32_t low_bias, outputs o) {
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *header = blocks + b * block_bytes, *data = header + header_bytes;
        uint32_t whole[4] = {0, 0, 0, 0}, high[4] = {0, 0, 0, 0};
        for (size_t p = 0; p < pairs; p++) {
            int16_t v[8];
            memcpy(v, data + p * 16, 16);
            const int16_t *q = query_pairs + p * 8;
            for (int j = 0; j < 4; j++) {
                // Each int16 product fits int32; the sums wrap like pmaddwd's, so add unsigned.
                whole[j] += (uint32_t)((int32_t)v[2 * j] * q[2 * j]) + (uint32_t)((int32_t)v[2 * j + 1] * q[2 * j + 1]);
                high[j] += (uint32_t)((int32_t)(int16_t)(v[2 * j] >> 8) * q[2 * j])
                         + (uint32_t)((int32_t)(int16_t)(v[2 * j + 1] >> 8) * q[2 * j + 1]);
            }
        }
        int32_t dots[8];
        for (int j = 0; j < 4; j++) {
            dots[j] = (int32_t)(whole[j] - (high[j] << 8) - (uint32_t)low_bias);
            dots[4 + j] = (int32_t)high[j];
        }
        if (o.dots) memcpy(o.dots + b * 8, dots, sizeof dots);
        if (o.upper) {
            for (int lane = 0; lane < 8; lane++) {
                float approx = header_float(header, 64 + 4 * lane)
                             + ((float)dots[lane] * header_float(header, 4 * lane)) * o.step;
                float error = o.norm * header_float(header, 32 + 4 * lane) + o.slack;
                o.upper[b * 8 + lane] = approx + error;
                o.lower[b * 8 + lane] = approx - error;
            }
        }
    }
}

#if defined(__x86_64__)

/// The low items' sums from the four-lane accumulators.
static inline __m128i low_items(__m128i whole, __m128i high, __m128i bias) {
    return _mm_sub_epi32(_mm_sub_epi32(whole, _mm_slli_epi32(high, 8)), bias);
}

static void run_sse2(const uint8_t *blocks, size_t block_bytes, size_t header_bytes, size_t block_count,
                     const int16_t *query_pairs, size_t pairs, int32_t low_bias, outputs o) {
    const __m128i bias = _mm_set1_epi32(low_bias);
    const __m128 step = _mm_set1_ps(o.step), norm = _mm_set1_ps(o.norm), slack = _mm_set1_ps(o.slack);
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *header = blocks + b * block_bytes, *data = header + header_bytes;
        __m128i whole = _mm_setzero_si128(), high = _mm_setzero_si128();
        for (size_t p = 0; p < pairs; p++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(data + p * 16));
            __m128i q = _mm_loadu_si128((const __m128i *)(query_pairs + p * 8));
            whole = _mm_add_epi32(whole, _mm_madd_epi16(v, q));
            high = _mm_add_epi32(high, _mm_madd_epi16(_mm_srai_epi16(v, 8), q));
        }
        __m128i halves[2] = {low_items(whole, high, bias), high};
        if (o.dots) {
            _mm_storeu_si128((__m128i *)(o.dots + b * 8), halves[0]);
            _mm_storeu_si128((__m128i *)(o.dots + b * 8 + 4), halves[1]);
        }
        if (o.upper) {
            for (int h = 0; h < 2; h++) {
                __m128 scale = _mm_loadu_ps((const float *)(header + 16 * h));
                __m128 radius = _mm_loadu_ps((const float *)(header + 32 + 16 * h));
                __m128 offset = _mm_loadu_ps((const float *)(header + 64 + 16 * h));
                __m128 approx = _mm_add_ps(offset, _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(halves[h]), scale), step));
                __m128 error = _mm_add_ps(_mm_mul_ps(norm, radius), slack);
                _mm_storeu_ps(o.upper + b * 8 + 4 * h, _mm_add_ps(approx, error));
                _mm_storeu_ps(o.lower + b * 8 + 4 * h, _mm_sub_ps(approx, error));
            }
        }
    }
}

/// Stores a block's 8 dot products and bounds (AVX2 and wider).
__attribute__((target("avx2")))
static inline void finish_block_avx2(const uint8_t *header, size_t b, __m128i whole, __m128i high, __m128i bias,
                                     outputs o, __m256 step, __m256 norm, __m256 slack) {
    __m256i dots = _mm256_set_m128i(high, low_items(whole, high, bias));
    if (o.dots) _mm256_storeu_si256((__m256i *)(o.dots + b * 8), dots);
    if (o.upper) {
        __m256 scale = _mm256_loadu_ps((const float *)header);
        __m256 radius = _mm256_loadu_ps((const float *)(header + 32));
        __m256 offset = _mm256_loadu_ps((const float *)(header + 64));
        __m256 approx = _mm256_add_ps(offset, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(dots), scale), step));
        __m256 error = _mm256_add_ps(_mm256_mul_ps(norm, radius), slack);
        _mm256_storeu_ps(o.upper + b * 8, _mm256_add_ps(approx, error));
        _mm256_storeu_ps(o.lower + b * 8, _mm256_sub_ps(approx, error));
    }
}

__attribute__((target("avx2")))
static void run_avx2(const uint8_t *blocks, size_t block_bytes, size_t header_bytes, size_t block_count,
                     const int16_t *query_pairs, size_t pairs, int32_t low_bias, outputs o) {
    const __m128i bias = _mm_set1_epi32(low_bias);
    const __m256 step = _mm256_set1_ps(o.step), norm = _mm256_set1_ps(o.norm), slack = _mm256_set1_ps(o.slack);
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *header = blocks + b * block_bytes, *data = header + header_bytes;
        __m256i whole = _mm256_setzero_si256(), high = _mm256_setzero_si256();
        size_t p = 0;
        for (; p + 2 <= pairs; p += 2) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(data + p * 16));
            __m256i q = _mm256_loadu_si256((const __m256i *)(query_pairs + p * 8));
            whole = _mm256_add_epi32(whole, _mm256_madd_epi16(v, q));
            high = _mm256_add_epi32(high, _mm256_madd_epi16(_mm256_srai_epi16(v, 8), q));
        }
        __m128i w = _mm_add_epi32(_mm256_castsi256_si128(whole), _mm256_extracti128_si256(whole, 1));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(high), _mm256_extracti128_si256(high, 1));
        if (p < pairs) {
            __m128i v = _mm_loadu_si128((const __m128i *)(data + p * 16));
            __m128i q = _mm_loadu_si128((const __m128i *)(query_pairs + p * 8));
            w = _mm_add_epi32(w, _mm_madd_epi16(v, q));
            h = _mm_add_epi32(h, _mm_madd_epi16(_mm_srai_epi16(v, 8), q));
        }
        finish_block_avx2(header, b, w, h, bias, o, step, norm, slack);
    }
}

__attribute__((target("avx2,avx512f,avx512bw,avx512vnni")))
static void run_avx512(const uint8_t *blocks, size_t block_bytes, size_t header_bytes, size_t block_count,
                       const int16_t *query_pairs, size_t pairs, int32_t low_bias, outputs o) {
    const __m128i bias = _mm_set1_epi32(low_bias);
    const __m256 step = _mm256_set1_ps(o.step), norm = _mm256_set1_ps(o.norm), slack = _mm256_set1_ps(o.slack);
    const size_t full = pairs / 4, rest = pairs % 4;
    // The last 1–3 pairs: a masked load reads only their 8·rest int16 lanes (no fault past them).
    const __mmask32 tail = (__mmask32)((1u << (8 * rest)) - 1);
    const __m512i qtail = _mm512_maskz_loadu_epi16(tail, query_pairs + full * 32);
    for (size_t b = 0; b < block_count; b++) {
        const uint8_t *header = blocks + b * block_bytes, *data = header + header_bytes;
        __m512i whole = _mm512_setzero_si512(), high = _mm512_setzero_si512();
        for (size_t g = 0; g < full; g++) {
            __m512i v = _mm512_loadu_si512((const void *)(data + g * 64));
            __m512i q = _mm512_loadu_si512((const void *)(query_pairs + g * 32));
            whole = _mm512_dpwssd_epi32(whole, v, q);
            high = _mm512_dpwssd_epi32(high, _mm512_srai_epi16(v, 8), q);
        }
        if (rest) {
            __m512i v = _mm512_maskz_loadu_epi16(tail, data + full * 64);
            whole = _mm512_dpwssd_epi32(whole, v, qtail);
            high = _mm512_dpwssd_epi32(high, _mm512_srai_epi16(v, 8), qtail);
        }
        __m256i w8 = _mm256_add_epi32(_mm512_castsi512_si256(whole), _mm512_extracti64x4_epi64(whole, 1));
        __m256i h8 = _mm256_add_epi32(_mm512_castsi512_si256(high), _mm512_extracti64x4_epi64(high, 1));
        __m128i w = _mm_add_epi32(_mm256_castsi256_si128(w8), _mm256_extracti128_si256(w8, 1));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
        finish_block_avx2(header, b, w, h, bias, o, step, norm, slack);
    }
}

int osprey_kernel_best_level(void) {
    static int cached = -1;  // a benign race: every thread computes the same value
    if (cached < 0) {
        __builtin_cpu_init();
        int level = OSPREY_KERNEL_SSE2;
        if (__builtin_cpu_supports("avx2")) level = OSPREY_KERNEL_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vnni"))
            level = OSPREY_KERNEL_AVX512_VNNI;
        cached = level;
    }
    return cached;
}

#else

int osprey_kernel_best_level(void) { return OSPREY_KERNEL_PORTABLE; }

#endif

static void run(int level, const uint8_t *blocks, size_t block_bytes, size_t header_bytes, size_t block_count,
                const int16_t *query_pairs, size_t pairs, int32_t low_bias, outputs o) {
    int best = osprey_kernel_best_level();
    if (level > best) level = best;
    switch (level) {
#if defined(__x86_64__)
    case OSPREY_KERNEL_AVX512_VNNI:
        run_avx512(blocks, block_bytes, header_bytes, block_count, query_pairs, pairs, low_bias, o);
        return;
    case OSPREY_KERNEL_AVX2:
        run_avx2(blocks, block_bytes, header_bytes, block_count, query_pairs, pairs, low_bias, o);
        return;
    case OSPREY_KERNEL_SSE2:
        run_sse2(blocks, block_bytes, header_bytes, block_count, query_pairs, pairs, low_bias, o);
        return;
#endif
    default:
        run_portable(blocks, block_bytes, header_bytes, block_count, query_pairs, pairs, low_bias, o);
        return;
    }
}

void osprey_int8_block_dots(int level, const uint8_t *blocks, size_t block_bytes, size_t header_bytes,
                            size_t block_count, const int16_t *query_pairs, size_t pairs, int32_t low_bias,
                            int32_t *out) {
    outputs o = {out, NULL, NULL, 0, 0, 0};
    run(level, blocks, block_bytes, header_bytes, block_count, query_pairs, pairs, low_bias, o);
}

void osprey_int8_block_bounds(int level, const uint8_t *blocks, size_t block_bytes, size_t block_count,
                              const int16_t *query_pairs, size_t pairs, int32_t low_bias, float step, float norm,
                              float slack, float *upper, float *lower) {
    outputs o = {NULL, upper, lower, step, norm, slack};
    run(level, blocks, block_bytes, 96, block_count, query_pairs, pairs, low_bias, o);
}
