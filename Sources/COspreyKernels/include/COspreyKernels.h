#ifndef OSPREY_KERNELS_H
#define OSPREY_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// Instruction sets the 8-bit block kernel can run on, in increasing order of width.
/// Every level computes the same integers (the arithmetic is exact, wrapping in 32 bits).
typedef enum {
    /// Plain C, any architecture.
    OSPREY_KERNEL_PORTABLE = 0,
    /// x86-64 baseline: 128-bit `pmaddwd`, one pair of dimensions per instruction.
    OSPREY_KERNEL_SSE2 = 1,
    /// 256-bit `vpmaddwd`, two pairs per instruction.
    OSPREY_KERNEL_AVX2 = 2,
    /// 512-bit `vpdpwssd` (AVX-512 BW + VNNI), four pairs per fused multiply-add.
    OSPREY_KERNEL_AVX512_VNNI = 3,
} osprey_kernel_level;

/// The widest level this CPU and operating system support (checked with CPUID once).
int osprey_kernel_best_level(void);

/// The integer dot products of the quantized query with every item of `block_count` blocks.
///
/// Block `b` starts at `blocks + b * block_bytes`; its `pairs` groups of 16 bytes start after
/// `header_bytes` (the layout of `QuantizedItemTable`: read as eight int16 lanes, lane 2m + c holds
/// item m + 4's level of dimension 2p + c in its high byte, signed, and item m's in its low byte,
/// stored plus 128). `query_pairs` holds 8 int16 per pair: (q[2p], q[2p+1]) repeated four times.
/// `low_bias` is 128 · Σ q. Writes 8 int32 per block to `out` (items 0–7 of the block), exact
/// whenever the true dot products fit in int32. `level` above `osprey_kernel_best_level()` is
/// lowered to it.
void osprey_int8_block_dots(int level, const uint8_t *blocks, size_t block_bytes, size_t header_bytes,
                            size_t block_count, const int16_t *query_pairs, size_t pairs, int32_t low_bias,
                            int32_t *out);

/// The approximate scores' bounds of every item of `block_count` blocks, from the dot products of
/// `osprey_int8_block_dots` and each block's 96-byte header (8 float scales, 8 radii, 8 offsets):
/// with `a = offset + ((float)dot * scale) * step` and `e = norm * radius + slack`, writes
/// `a + e` to `upper` and `a − e` to `lower` (8 floats per block each), in exactly those Float32
/// operations (no fused multiply-add), so the bounds are the ones `QuantizedItemTable` proves.
/// A NaN offset (padding, exactly scored rows) gives NaN bounds.
void osprey_int8_block_bounds(int level, const uint8_t *blocks, size_t block_bytes, size_t block_count,
                              const int16_t *query_pairs, size_t pairs, int32_t low_bias, float step, float norm,
                              float slack, float *upper, float *lower);

#endif
