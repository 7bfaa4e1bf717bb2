// Test driver: runs the k-medoids kernel's swap step as a program, so that a build for another architecture can
// run under an emulator (tests/test_kmedoids_kernel_variants.py, AArch64 under qemu-user). Reads raw
// little-endian files from the folder argv[1] (written by the test), writes the results.
//   in:  D.f32 (n * n), medoids.i64 (k), order.i64 (n)
//   out: swapped.i64 (2 * k: the medoids after the one-candidate loop, then after the 16-candidate loop),
//        stats.i64 (4: candidates examined and swaps of each)
#include "kmedoids_kernel.cpp"
#include "driver_io.h"

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string dir = std::string(argv[1]) + "/";
    const auto D = read_all<float>(dir + "D.f32");
    const auto medoids = read_all<int64_t>(dir + "medoids.i64");
    const auto order = read_all<int64_t>(dir + "order.i64");
    const int64_t n = (int64_t)order.size(), k = (int64_t)medoids.size();
    if (n == 0 || (int64_t)D.size() != n * n || k < 2) return 3;
    std::vector<int64_t> swapped, stats;
    for (int batched = 0; batched < 2; ++batched) {
        std::vector<int64_t> med(medoids);
        int64_t s[2] = {0, 0};
        if (ds_fasterpam_swap(D.data(), n, k, med.data(), order.data(), 300 * n, 1e-10, 1, batched, s)) return 4;
        swapped.insert(swapped.end(), med.begin(), med.end());
        stats.insert(stats.end(), s, s + 2);
    }
    return write_all(dir + "swapped.i64", swapped) && write_all(dir + "stats.i64", stats) ? 0 : 5;
}
