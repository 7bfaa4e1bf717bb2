// Benchmark-only companion of dispersion_score/csrc/chamfer_kernel.cpp (compiled by
// benchmarks/bench_chamfer.py with the same flags as the kernel variant it measures).
//
// ds_bench_clock: the core clock, from a chain of dependent integer adds (1 cycle each on every
//   x86-64 and AArch64 core), so that times convert to cycles without hardware counters (none are
//   exposed in the VM this was written on).
// ds_bench_l1: the kernel on clouds that stay in the L1 cache: the pair rate of its own instruction
//   stream when no cache miss intervenes.
// ds_bench_mix: the kernel's instruction mix alone, in registers (x86 AVX2 and AVX-512 bodies; inline
//   assembly, so no compiler choice intervenes): per step of W point pairs 3 vsubps, 1 vmulps, 2
//   vfmadd231ps, 2 vpminsd, four independent steps per iteration. Measures how close this core gets
//   to the limit derived from its port counts.
#include "chamfer_kernel.cpp"  // found through -I dispersion_score/csrc (build_library)

// One step of the mix: d = fma(dz, dz, fma(dy, dy, dx * dx)) from x = R0 and the broadcast query in
// R13..R15, then two minima into the accumulators MA and MB. T, U, V: temporaries.
#define DS_MIX_STEP(R, T, U, V, MA, MB)                                                            \
    "vsubps %%" R "13, %%" R "0, %%" R #T "\n\t"                                                    \
    "vsubps %%" R "14, %%" R "0, %%" R #U "\n\t"                                                    \
    "vsubps %%" R "15, %%" R "0, %%" R #V "\n\t"                                                    \
    "vmulps %%" R #T ", %%" R #T ", %%" R #T "\n\t"                                                 \
    "vfmadd231ps %%" R #U ", %%" R #U ", %%" R #T "\n\t"                                            \
    "vfmadd231ps %%" R #V ", %%" R #V ", %%" R #T "\n\t"                                            \
    "vpminsd %%" R #T ", %%" R #MA ", %%" R #MA "\n\t"                                              \
    "vpminsd %%" R #T ", %%" R #MB ", %%" R #MB "\n\t"
#define DS_MIX_ITERATION(R)                                                                          \
    DS_MIX_STEP(R, 1, 2, 3, 4, 5) DS_MIX_STEP(R, 6, 7, 8, 9, 10) DS_MIX_STEP(R, 1, 2, 3, 11, 12)     \
    DS_MIX_STEP(R, 6, 7, 8, 4, 9)

#define DS_MIX_CLOBBERS                                                                                 \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",     \
        "xmm12", "xmm13", "xmm14", "xmm15"
#if defined(DS_ISA_AVX512)
#define DS_MIX_REG "zmm"
#else
#define DS_MIX_REG "ymm"
#endif

extern "C" {

// Runs `iterations` iterations of four mix steps; returns the point pairs per iteration (4 W), or -1
// where this build has no such loop (portable body, or not x86-64 with GCC/Clang).
int64_t ds_bench_mix(int64_t iterations) {
#if defined(__GNUC__) && defined(__x86_64__) && (defined(DS_ISA_AVX512) || defined(DS_ISA_AVX2))
    // Zeros in every register used (no denormals, no NaN: FP timing is then data-independent).
    asm volatile("vzeroall" ::: DS_MIX_CLOBBERS);
    for (int64_t i = 0; i < iterations; ++i) asm volatile(DS_MIX_ITERATION(DS_MIX_REG) ::: DS_MIX_CLOBBERS);
    asm volatile("vzeroupper" ::: DS_MIX_CLOBBERS);
    return 4 * W;
#else
    (void)iterations;
    return -1;
#endif
}

int64_t ds_bench_clock(int64_t iterations) {
    int64_t v = 0;
    for (int64_t i = 0; i < iterations; ++i) {
#if defined(__x86_64__)
        asm volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                     "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                     : "+r"(v));
#elif defined(__aarch64__)
        asm volatile("add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\t"
                     "add %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1\n\tadd %0, %0, #1"
                     : "+r"(v));
#else
        return -1;  // no calibration on this architecture
#endif
    }
    return v;  // 8 dependent adds per iteration
}

// chamfer_pair on two clouds (na and nb points, multiples of 16) small enough to stay in the L1 cache,
// `repeats` times: point pairs = repeats * na * nb. Returns the sum of the results (kept live).
double ds_bench_l1(int64_t repeats, int64_t na, int64_t nb) {
    float* buffer = static_cast<float*>(std::malloc(sizeof(float) * (size_t)(3 * na + 4 * nb)));
    if (!buffer) return -1.0;
    for (int64_t j = 0; j < 3 * (na + nb); ++j) buffer[j] = 0.001f * (float)((j * 7919) % 1000);
    const Cloud a = cloud_at(buffer, 0, na, na);
    const Cloud b = cloud_at(buffer, 3 * na, nb, nb);
    double total = 0.0;
    for (int64_t r = 0; r < repeats; ++r) total += chamfer_pair(a, b, buffer + 3 * (na + nb));
    std::free(buffer);
    return total;
}

}  // extern "C"
