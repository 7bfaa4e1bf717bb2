// Test driver: runs the Chamfer kernel as a program, so that a build for another architecture can run
// under an emulator (tests/test_chamfer_kernel.py, AArch64 under qemu-user). Reads the store and the
// pairs from raw little-endian files in the folder argv[1] (written by the test), writes the results.
//   in:  store.f32 offset.i64 padded.i64 size.i64 ia.i64 ib.i64 (Chamfer pairs),
//        na.i64 nb.i64 (nearest-neighbour pairs: every na cloud of one size, every nb cloud of one size)
//   out: chamfer.f32, idx_ab.i64, idx_ba.i64
#include "chamfer_kernel.cpp"
#include "driver_io.h"

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string dir = std::string(argv[1]) + "/";
    const auto store = read_all<float>(dir + "store.f32");
    const auto offset = read_all<int64_t>(dir + "offset.i64");
    const auto padded = read_all<int64_t>(dir + "padded.i64");
    const auto size = read_all<int64_t>(dir + "size.i64");
    const auto ia = read_all<int64_t>(dir + "ia.i64");
    const auto ib = read_all<int64_t>(dir + "ib.i64");
    const auto na = read_all<int64_t>(dir + "na.i64");
    const auto nb = read_all<int64_t>(dir + "nb.i64");
    if (store.empty() || ia.size() != ib.size() || na.size() != nb.size() || na.empty()) return 3;
    std::vector<float> chamfer(ia.size());
    if (ds_chamfer_pairs(store.data(), offset.data(), padded.data(), size.data(), ia.data(), ib.data(),
                         (int64_t)ia.size(), chamfer.data()))
        return 4;
    const int64_t pa = size[na[0]], pb = size[nb[0]];
    std::vector<int64_t> idx_ab(na.size() * pa), idx_ba(na.size() * pb);
    if (ds_nearest_pairs(store.data(), offset.data(), padded.data(), size.data(), na.data(), nb.data(),
                         (int64_t)na.size(), idx_ab.data(), pa, idx_ba.data(), pb))
        return 5;
    std::printf("%s\n", ds_isa());
    return write_all(dir + "chamfer.f32", chamfer) && write_all(dir + "idx_ab.i64", idx_ab) &&
                   write_all(dir + "idx_ba.i64", idx_ba)
               ? 0
               : 6;
}
