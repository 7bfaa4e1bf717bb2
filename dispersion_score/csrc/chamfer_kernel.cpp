// Exact nearest-neighbour Chamfer kernel (CPU), loaded by dispersion_score/_chamfer_kernel.py.
//
// Store layout: cloud k starts at offset[k] and holds three rows of padded[k] floats (x, y, z);
// padded[k] is a multiple of 16 and the positions size[k]..padded[k]-1 repeat earlier points of the
// same cloud, which changes no minimum.
//
// One body (chamfer_pair / nearest_pair) is instantiated for one instruction set, chosen at compile
// time from the target macros: AVX-512F (16 lanes), AVX2 + FMA (8 lanes), AArch64 NEON (4 lanes), or a
// portable path (4 lanes of plain C++ for any other CPU; -DDS_PORTABLE forces it). Every path
// computes each squared distance with the same operations in the same order,
//     d = fma(dz, dz, fma(dy, dy, dx * dx)),  dx = x_b - x_a, ...
// (the difference form: no |a|^2 + |b|^2 - 2ab cancellation), takes exact minima and sums the minima in
// point order, so all paths return bit-identical results.
//
// Instruction mix per point pair (a lane of one vector step): 3 sub, 1 mul, 2 fma, 2 min. The two
// minima are integer minima of the float bit patterns (d >= 0, so integer and float order agree and
// +0 is the only zero): on AMD Zen and Intel cores they issue on the vector integer ports, which
// FP add/mul/fma leave free, instead of competing with them.

#include <cmath>
#include <cstdint>
#include <cstdlib>

#if !defined(DS_PORTABLE) && defined(__AVX512F__)
#define DS_ISA_AVX512 1
#include <immintrin.h>
#elif !defined(DS_PORTABLE) && defined(__AVX2__) && defined(__FMA__)
#define DS_ISA_AVX2 1
#include <immintrin.h>
#elif !defined(DS_PORTABLE) && defined(__aarch64__) && defined(__ARM_NEON)
#define DS_ISA_NEON 1
#include <arm_neon.h>
#else
#define DS_ISA_PORTABLE 1
#endif

namespace {

#if defined(DS_ISA_AVX512)

struct Simd {
    static constexpr const char* isa = "avx512";
    static constexpr int W = 16;   // lanes
    static constexpr int QB = 16;  // query points per register block (32 zmm registers)
    static constexpr bool broadcast_block = false;  // subtractions broadcast from memory ({1to16})
    using F = __m512;
    using I = __m512i;
    using M = __mmask16;
    static F load(const float* p) { return _mm512_loadu_ps(p); }
    static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
    static I loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
    static void storei(int32_t* p, I v) { _mm512_storeu_si512(p, v); }
    static F splat(float v) { return _mm512_set1_ps(v); }
    static I splati(int32_t v) { return _mm512_set1_epi32(v); }
    static I iota(int32_t start) {
        return _mm512_add_epi32(_mm512_set1_epi32(start),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    }
    static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static F min_nonneg(F a, F b) {
#if defined(DS_FLOAT_MIN)  // benchmark switch (same results): float minima, on the FP ports
        return _mm512_maskz_min_ps(0xFFFF, a, b);
#else  // the masked form: GCC 12 warns (-Wall) on the unmasked one's _mm512_undefined
        return _mm512_castsi512_ps(_mm512_maskz_min_epi32(0xFFFF, _mm512_castps_si512(a), _mm512_castps_si512(b)));
#endif
    }
    static M less(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
    static F select(M m, F if_false, F if_true) { return _mm512_mask_blend_ps(m, if_false, if_true); }
    static I selecti(M m, I if_false, I if_true) { return _mm512_mask_blend_epi32(m, if_false, if_true); }
};

#elif defined(DS_ISA_AVX2)

struct Simd {
    static constexpr const char* isa = "avx2";
    static constexpr int W = 8;
    static constexpr int QB = 8;  // 16 ymm registers: 4 streamed + 8 minima + temporaries
    // No broadcast memory operand: a separate vbroadcastss per coordinate would take 3 of the ~11
    // instructions per step (the front end issues 6 per cycle on Zen 3/4); broadcasting the block once
    // lets each subtraction read a full vector from L1 instead (a load folded into the sub).
    static constexpr bool broadcast_block = true;
    using F = __m256;
    using I = __m256i;
    using M = __m256;
    static F load(const float* p) { return _mm256_loadu_ps(p); }
    static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
    static I loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    static void storei(int32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
    static F splat(float v) { return _mm256_set1_ps(v); }
    static I splati(int32_t v) { return _mm256_set1_epi32(v); }
    static I iota(int32_t start) {
        return _mm256_add_epi32(_mm256_set1_epi32(start), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static F min_nonneg(F a, F b) {
#if defined(DS_FLOAT_MIN)
        return _mm256_min_ps(a, b);
#else
        return _mm256_castsi256_ps(_mm256_min_epi32(_mm256_castps_si256(a), _mm256_castps_si256(b)));
#endif
    }
    static M less(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
    static F select(M m, F if_false, F if_true) { return _mm256_blendv_ps(if_false, if_true, m); }
    static I selecti(M m, I if_false, I if_true) {
        return _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(if_false), _mm256_castsi256_ps(if_true), m));
    }
};

#elif defined(DS_ISA_NEON)

struct Simd {
    static constexpr const char* isa = "neon";
    static constexpr int W = 4;
    static constexpr int QB = 8;  // 32 registers, but 16 minima spilled under GCC 12
    // GCC turns per-step broadcasts into scalar loads + dup, an ALU op each: read a broadcast block.
    static constexpr bool broadcast_block = true;
    using F = float32x4_t;
    using I = int32x4_t;
    using M = uint32x4_t;
    static F load(const float* p) { return vld1q_f32(p); }
    static void store(float* p, F v) { vst1q_f32(p, v); }
    static I loadi(const int32_t* p) { return vld1q_s32(p); }
    static void storei(int32_t* p, I v) { vst1q_s32(p, v); }
    static F splat(float v) { return vdupq_n_f32(v); }
    static I splati(int32_t v) { return vdupq_n_s32(v); }
    static I iota(int32_t start) {
        const int32_t steps[4] = {0, 1, 2, 3};
        return vaddq_s32(vdupq_n_s32(start), vld1q_s32(steps));
    }
    static F sub(F a, F b) { return vsubq_f32(a, b); }
    static F mul(F a, F b) { return vmulq_f32(a, b); }
    static F fma(F a, F b, F c) { return vfmaq_f32(c, a, b); }  // c + a * b, one rounding
    static F min_nonneg(F a, F b) {
        return vreinterpretq_f32_s32(vminq_s32(vreinterpretq_s32_f32(a), vreinterpretq_s32_f32(b)));
    }
    static M less(F a, F b) { return vcltq_f32(a, b); }
    static F select(M m, F if_false, F if_true) { return vbslq_f32(m, if_true, if_false); }
    static I selecti(M m, I if_false, I if_true) { return vbslq_s32(m, if_true, if_false); }
};

#else

struct Simd {
    static constexpr const char* isa = "portable";
    static constexpr int W = 4;
    static constexpr int QB = 8;
    static constexpr bool broadcast_block = false;
    struct F { float v[W]; };
    struct I { int32_t v[W]; };
    struct M { bool v[W]; };
    static F load(const float* p) { F r; for (int l = 0; l < W; ++l) r.v[l] = p[l]; return r; }
    static void store(float* p, F a) { for (int l = 0; l < W; ++l) p[l] = a.v[l]; }
    static I loadi(const int32_t* p) { I r; for (int l = 0; l < W; ++l) r.v[l] = p[l]; return r; }
    static void storei(int32_t* p, I a) { for (int l = 0; l < W; ++l) p[l] = a.v[l]; }
    static F splat(float v) { F r; for (int l = 0; l < W; ++l) r.v[l] = v; return r; }
    static I splati(int32_t v) { I r; for (int l = 0; l < W; ++l) r.v[l] = v; return r; }
    static I iota(int32_t start) { I r; for (int l = 0; l < W; ++l) r.v[l] = start + l; return r; }
    static F sub(F a, F b) { F r; for (int l = 0; l < W; ++l) r.v[l] = a.v[l] - b.v[l]; return r; }
    static F mul(F a, F b) { F r; for (int l = 0; l < W; ++l) r.v[l] = a.v[l] * b.v[l]; return r; }
    static F fma(F a, F b, F c) {  // one rounding, as the hardware FMA of the vector paths
        F r; for (int l = 0; l < W; ++l) r.v[l] = std::fma(a.v[l], b.v[l], c.v[l]); return r;
    }
    static F min_nonneg(F a, F b) {
        F r; for (int l = 0; l < W; ++l) r.v[l] = b.v[l] < a.v[l] ? b.v[l] : a.v[l]; return r;
    }
    static M less(F a, F b) { M r; for (int l = 0; l < W; ++l) r.v[l] = a.v[l] < b.v[l]; return r; }
    static F select(M m, F if_false, F if_true) {
        F r; for (int l = 0; l < W; ++l) r.v[l] = m.v[l] ? if_true.v[l] : if_false.v[l]; return r;
    }
    static I selecti(M m, I if_false, I if_true) {
        I r; for (int l = 0; l < W; ++l) r.v[l] = m.v[l] ? if_true.v[l] : if_false.v[l]; return r;
    }
};

#endif

using F = Simd::F;
using I = Simd::I;
constexpr int W = Simd::W;
constexpr int QB = Simd::QB;
// nearest_pair keeps an index vector beside each running minimum. 8 points per block measured fastest
// for AVX-512 (16 spills) and AVX2 (4 re-reads the streamed cloud too often, for fewer spills).
constexpr int QB_NEAREST = 8;
static_assert(16 % W == 0 && 16 % QB == 0 && QB_NEAREST > 0, "lanes and blocks must divide the padding of 16");

struct Cloud {
    const float* x;
    const float* y;
    const float* z;
    int64_t padded;  // multiple of 16
    int64_t size;    // real points; the rest repeat earlier ones
};

Cloud cloud_at(const float* store, int64_t offset, int64_t padded, int64_t size) {
    const float* base = store + offset;
    return Cloud{base, base + padded, base + 2 * padded, padded, size};
}

inline F sqdist(F x, F y, F z, F qx, F qy, F qz) {
    const F dx = Simd::sub(x, qx);
    const F dy = Simd::sub(y, qy);
    const F dz = Simd::sub(z, qz);
    return Simd::fma(dz, dz, Simd::fma(dy, dy, Simd::mul(dx, dx)));
}

// The coordinates of query points i0..i0+QB-1 of a, as the inner loops read them: x of point k at
// coords[0][k * stride], repeated `stride` times (stride W where the ISA broadcasts the block up front).
template <int B>
struct QueryBlock {
    static constexpr int stride = Simd::broadcast_block ? W : 1;
    alignas(64) float coords[3][B * stride];
    QueryBlock(const Cloud& a, int64_t i0) {
        const float* src[3] = {a.x + i0, a.y + i0, a.z + i0};
        for (int c = 0; c < 3; ++c)
            for (int k = 0; k < B; ++k)
                for (int l = 0; l < stride; ++l) coords[c][k * stride + l] = src[c][k];
    }
};

inline F query(const float* q, int k) {
    if constexpr (Simd::broadcast_block) {
        return Simd::load(q + k * W);
    } else {
        return Simd::splat(q[k]);
    }
}

// Makes the compiler forget what p points to, once per step of the streamed cloud: the QB query
// coordinates are then re-read there (as broadcast memory operands: load-port work) rather than hoisted
// into 3 * QB vector registers, which spills the running minima to the stack.
template <class T>
inline void opaque(T*& p) {
#if defined(__GNUC__)
    asm("" : "+r"(p));
#else
    (void)p;
#endif
}

float lane_min(F v) {
    alignas(64) float lanes[W];
    Simd::store(lanes, v);
    float m = lanes[0];
    for (int l = 1; l < W; ++l) m = lanes[l] < m ? lanes[l] : m;
    return m;
}

// mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2 for one pair. colmin: scratch of b.padded floats.
// A block of QB points of a stays in registers (their running minima best[k]) while b streams by in
// vectors of W points; each distance updates both its row minimum and its column minimum colmin[j].
// (Kept in one function: GCC keeps best[] in registers only when it sees every use unrolled here.)
double chamfer_pair(const Cloud& a, const Cloud& b, float* __restrict colmin) {
    const float* __restrict bx = b.x;
    const float* __restrict by = b.y;
    const float* __restrict bz = b.z;
    const int64_t nb = b.padded;
    for (int64_t j = 0; j < nb; ++j) colmin[j] = INFINITY;
    double row_sum = 0.0;
    for (int64_t i0 = 0; i0 < a.padded; i0 += QB) {
        const QueryBlock<QB> block(a, i0);
        const float* ax = block.coords[0];
        const float* ay = block.coords[1];
        const float* az = block.coords[2];
        F best[QB];
#pragma GCC unroll 16
        for (int k = 0; k < QB; ++k) best[k] = Simd::splat(INFINITY);
        for (int64_t j0 = 0; j0 < nb; j0 += W) {
            const F x = Simd::load(bx + j0), y = Simd::load(by + j0), z = Simd::load(bz + j0);
            opaque(ax);
            opaque(ay);
            opaque(az);
            F cm = Simd::load(colmin + j0);
#pragma GCC unroll 16
            for (int k = 0; k < QB; ++k) {
                const F d = sqdist(x, y, z, query(ax, k), query(ay, k), query(az, k));
                best[k] = Simd::min_nonneg(best[k], d);
                cm = Simd::min_nonneg(cm, d);
            }
            Simd::store(colmin + j0, cm);
        }
        // Unrolled like the loops above: a variable index into best[] would keep it in memory.
#pragma GCC unroll 16
        for (int k = 0; k < QB; ++k) {
            if (i0 + k < a.size) row_sum += lane_min(best[k]);
        }
    }
    double col_sum = 0.0;
    for (int64_t j = 0; j < b.size; ++j) col_sum += colmin[j];
    return row_sum / (double)a.size + col_sum / (double)b.size;
}

// Index of the nearest point of b for every point of a (ties: smallest index), and the reverse.
void nearest_pair(const Cloud& a, const Cloud& b, float* __restrict colmin, int32_t* __restrict colarg,
                  int64_t* idx_ab, int64_t* idx_ba) {
    const float* __restrict bx = b.x;
    const float* __restrict by = b.y;
    const float* __restrict bz = b.z;
    const int64_t nb = b.padded;
    for (int64_t j = 0; j < nb; ++j) {
        colmin[j] = INFINITY;
        colarg[j] = 0;
    }
    for (int64_t i0 = 0; i0 < a.padded; i0 += QB_NEAREST) {
        const QueryBlock<QB_NEAREST> block(a, i0);
        const float* ax = block.coords[0];
        const float* ay = block.coords[1];
        const float* az = block.coords[2];
        F best[QB_NEAREST];
        I arg[QB_NEAREST];
#pragma GCC unroll 16
        for (int k = 0; k < QB_NEAREST; ++k) {
            best[k] = Simd::splat(INFINITY);
            arg[k] = Simd::splati(0);
        }
        for (int64_t j0 = 0; j0 < nb; j0 += W) {
            const F x = Simd::load(bx + j0), y = Simd::load(by + j0), z = Simd::load(bz + j0);
            opaque(ax);
            opaque(ay);
            opaque(az);
            const I jv = Simd::iota((int32_t)j0);
            F cm = Simd::load(colmin + j0);
            I ca = Simd::loadi(colarg + j0);
#pragma GCC unroll 16
            for (int k = 0; k < QB_NEAREST; ++k) {
                const F d = sqdist(x, y, z, query(ax, k), query(ay, k), query(az, k));
                const auto row_better = Simd::less(d, best[k]);
                best[k] = Simd::select(row_better, best[k], d);
                arg[k] = Simd::selecti(row_better, arg[k], jv);
                const auto col_better = Simd::less(d, cm);
                cm = Simd::select(col_better, cm, d);
                ca = Simd::selecti(col_better, ca, Simd::splati((int32_t)(i0 + k)));
            }
            Simd::store(colmin + j0, cm);
            Simd::storei(colarg + j0, ca);
        }
#pragma GCC unroll 16
        for (int k = 0; k < QB_NEAREST; ++k) {
            if (i0 + k >= a.size) continue;
            alignas(64) float m[W];
            alignas(64) int32_t at[W];
            Simd::store(m, best[k]);
            Simd::storei(at, arg[k]);
            for (int l = 1; l < W; ++l) {
                if (m[l] < m[0] || (m[l] == m[0] && at[l] < at[0])) {
                    m[0] = m[l];
                    at[0] = at[l];
                }
            }
            idx_ab[i0 + k] = at[0] % b.size;
        }
    }
    for (int64_t j = 0; j < b.size; ++j) idx_ba[j] = colarg[j] % a.size;
}

int64_t max_padded(const int64_t* padded, const int64_t* idx, int64_t count) {
    int64_t m = 0;
    for (int64_t p = 0; p < count; ++p) m = padded[idx[p]] > m ? padded[idx[p]] : m;
    return m;
}

}  // namespace

extern "C" {

int ds_abi_version() { return 2; }

// Which body this build holds: "avx512", "avx2" or "portable"; lanes; query points per block.
const char* ds_isa() { return Simd::isa; }
int ds_lanes() { return W; }
int ds_query_block() { return QB; }

// out[p] = Chamfer(cloud ia[p], cloud ib[p]) for p < npairs. Returns 0, or 1 if scratch allocation fails.
int ds_chamfer_pairs(const float* store, const int64_t* offset, const int64_t* padded, const int64_t* size,
                     const int64_t* ia, const int64_t* ib, int64_t npairs, float* out) {
    const int64_t scratch = max_padded(padded, ib, npairs);
    float* colmin = static_cast<float*>(std::malloc(sizeof(float) * (size_t)(scratch > 0 ? scratch : 1)));
    if (!colmin) return 1;
    for (int64_t p = 0; p < npairs; ++p) {
        const Cloud a = cloud_at(store, offset[ia[p]], padded[ia[p]], size[ia[p]]);
        const Cloud b = cloud_at(store, offset[ib[p]], padded[ib[p]], size[ib[p]]);
        out[p] = (float)chamfer_pair(a, b, colmin);
    }
    std::free(colmin);
    return 0;
}

// For pairs (ia[p], ib[p]): idx_ab[p*stride_ab + i] = nearest point of b to point i of a, and the reverse.
int ds_nearest_pairs(const float* store, const int64_t* offset, const int64_t* padded, const int64_t* size,
                     const int64_t* ia, const int64_t* ib, int64_t npairs, int64_t* idx_ab, int64_t stride_ab,
                     int64_t* idx_ba, int64_t stride_ba) {
    const int64_t scratch = max_padded(padded, ib, npairs);
    float* colmin = static_cast<float*>(std::malloc(sizeof(float) * (size_t)(scratch > 0 ? scratch : 1)));
    int32_t* colarg = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (size_t)(scratch > 0 ? scratch : 1)));
    if (!colmin || !colarg) {
        std::free(colmin);
        std::free(colarg);
        return 1;
    }
    for (int64_t p = 0; p < npairs; ++p) {
        const Cloud a = cloud_at(store, offset[ia[p]], padded[ia[p]], size[ia[p]]);
        const Cloud b = cloud_at(store, offset[ib[p]], padded[ib[p]], size[ib[p]]);
        nearest_pair(a, b, colmin, colarg, idx_ab + p * stride_ab, idx_ba + p * stride_ba);
    }
    std::free(colmin);
    std::free(colarg);
    return 0;
}

}  // extern "C"
