// Benchmark-only companion of dispersion_score/csrc/chamfer_kernel.cpp (compiled by
// benchmarks/bench_chamfer.py with the same flags as the kernel variant it measures).
//
// ds_bench_clock: the core clock, from a chain of dependent integer adds (1 cycle each on every
//   x86-64 and AArch64 core), so that times convert to cycles without hardware counters (none are
//   exposed in the VM this was written on).
// ds_bench_l1: the kernel on clouds that stay in the L1 cache: the pair rate of its own instruction
//   stream when no cache miss intervenes.
#include "chamfer_kernel.cpp"  // found through -I dispersion_score/csrc (build_library)

extern "C" {

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
