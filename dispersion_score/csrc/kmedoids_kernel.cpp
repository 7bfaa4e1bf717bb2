// k-medoids kernel (CPU): k-medoids++ seeding, the alternate step, FasterPAM's eager swaps and the
// distance-matrix check, loaded by dispersion_score/_kmedoids_kernel.py (whose docstring describes the
// algorithms and the caches). Every function computes what its torch counterpart in
// dispersion_score/clustering.py computes, with the same tie rules and float64 sums in item order.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cfloat>
#include <cmath>
#include <new>
#include <vector>

namespace {

// Vector widths by instruction set (chosen at compile time; -march=native where the compiler allows).
// VN: lanes of the scans over the items (evaluate(), apply()), one register of floats. W16_DOUBLES: doubles per
// vector of the 16-candidate evaluation, one register. Measured on one core with an AVX2 build: 16 float lanes
// (two registers) ran the one-candidate loop 2.2-2.7x slower than 8, and 8 doubles the 16-candidate loop 4-5x
// slower than 4; with AVX-512, 8 doubles made a swap step 5-15 % faster than 4.
#if defined(__AVX512F__)
constexpr int VN = 16;
constexpr int W16_DOUBLES = 8;
#elif defined(__AVX__)
constexpr int VN = 8;
constexpr int W16_DOUBLES = 4;
#else  // SSE2, NEON: 128-bit registers
constexpr int VN = 4;
constexpr int W16_DOUBLES = 4;
#endif
typedef float vfn __attribute__((vector_size(VN * sizeof(float))));
typedef int32_t vin __attribute__((vector_size(VN * sizeof(int32_t))));
typedef float vf4 __attribute__((vector_size(4 * sizeof(float))));
typedef double vd4 __attribute__((vector_size(4 * sizeof(double))));
typedef float vf8 __attribute__((vector_size(8 * sizeof(float))));
typedef double vd8 __attribute__((vector_size(8 * sizeof(double))));
// Vectors of G doubles and of the G floats they are converted from (G = 4 or 8).
template <int G> struct Lanes;
template <> struct Lanes<4> { typedef vd4 d; typedef vf4 f; };
template <> struct Lanes<8> { typedef vd8 d; typedef vf8 f; };

inline vfn loadfn(const float* p) { vfn v; std::memcpy(&v, p, sizeof v); return v; }

// Whether any lane of a comparison result is set (lanes OR-ed as 64-bit words: extracting the lanes one by
// one costs more than the comparison).
inline bool any_lane(const vin& mask) {
    uint64_t words[VN / 2], any = 0;
    std::memcpy(words, &mask, sizeof words);
    for (int l = 0; l < VN / 2; ++l) any |= words[l];
    return any != 0;
}

struct Caches {
    std::vector<int32_t> near, sec;
    std::vector<float> dnear, dsec;
};

// Nearest and second-nearest position for item o from the distances dist(j) to every position j,
// ties to the lower position (the order of a stable sort by distance).
template <class Dist>
inline void top_two(int64_t k, Dist dist, int32_t& p1, float& d1, int32_t& p2, float& d2) {
    p1 = 0; d1 = INFINITY; p2 = 0; d2 = INFINITY;
    for (int64_t j = 0; j < k; ++j) {
        const float d = dist(j);
        if (d < d1) { p2 = p1; d2 = d1; p1 = (int32_t)j; d1 = d; }
        else if (d < d2) { p2 = (int32_t)j; d2 = d; }
    }
}

struct Swapper {
    Swapper(const float* D_, int64_t n_, int64_t k_, int64_t* med_) : D(D_), n(n_), k(k_), med(med_) {}

    const float* D; int64_t n, k; int64_t* med;
    std::vector<float> T;  // (n, k) D[o, med[j]] when use_t, else empty: rescans read D's row o
    std::vector<char> is_med;
    Caches c;
    std::vector<double> removal, ploss;

    void rescan(int64_t o) {
        if (!T.empty()) {
            const float* t = T.data() + o * k;
            top_two(k, [&](int64_t j) { return t[j]; }, c.near[o], c.dnear[o], c.sec[o], c.dsec[o]);
        } else {
            const float* row = D + o * n;
            top_two(k, [&](int64_t j) { return row[med[j]]; }, c.near[o], c.dnear[o], c.sec[o], c.dsec[o]);
        }
    }

    double update_removal() {
        std::fill(removal.begin(), removal.end(), 0.0);
        double cost = 0.0;
        for (int64_t o = 0; o < n; ++o) {
            removal[c.near[o]] += (double)c.dsec[o] - (double)c.dnear[o];
            cost += (double)c.dnear[o];
        }
        return cost;
    }

    void init() {
        c.near.assign(n, 0); c.sec.assign(n, 0);
        c.dnear.assign(n, INFINITY); c.dsec.assign(n, INFINITY);
        is_med.assign(n, 0);
        for (int64_t j = 0; j < k; ++j) {
            is_med[med[j]] = 1;
            const float* row = D + med[j] * n;  // D symmetric: row med[j] holds D[o, med[j]]
            for (int64_t o = 0; o < n; ++o) {
                const float d = row[o];
                if (!T.empty()) T[o * k + j] = d;
                if (d < c.dnear[o]) {
                    c.sec[o] = c.near[o]; c.dsec[o] = c.dnear[o]; c.near[o] = (int32_t)j; c.dnear[o] = d;
                } else if (d < c.dsec[o]) {
                    c.sec[o] = (int32_t)j; c.dsec[o] = d;
                }
            }
        }
        removal.assign(k, 0.0);
        ploss.assign(k, 0.0);
    }

    inline void visit(const float* row, int64_t o, double& acc) {
        const float d = row[o], dn = c.dnear[o];
        if (d < dn) {
            acc += (double)d - (double)dn;
            ploss[c.near[o]] += (double)dn - (double)c.dsec[o];
        } else {
            ploss[c.near[o]] += (double)d - (double)c.dsec[o];
        }
    }

    // Best position for candidate x: returns the cost change, position in *best.
    double evaluate(int64_t x, int32_t* best) {
        const float* row = D + x * n;
        const float* ds = c.dsec.data();
        std::memcpy(ploss.data(), removal.data(), sizeof(double) * k);
        double acc = 0.0;
        int64_t o0 = 0;
        for (; o0 + VN <= n; o0 += VN) {
            const vin below = loadfn(row + o0) < loadfn(ds + o0);
            if (!any_lane(below)) continue;
            for (int l = 0; l < VN; ++l)
                if (below[l]) visit(row, o0 + l, acc);
        }
        for (int64_t o = o0; o < n; ++o)
            if (row[o] < ds[o]) visit(row, o, acc);
        int32_t b = 0;
        double best_change = ploss[0] + acc;
        for (int64_t j = 1; j < k; ++j) {
            const double change = ploss[j] + acc;
            if (change < best_change) { best_change = change; b = (int32_t)j; }
        }
        *best = b;
        return best_change;
    }

    // Candidates x .. x + W - 1 at once (W = 4 or 16, x + W <= n): D is symmetric, so their entries for
    // item o are the W contiguous floats D[o, x : x + W], and one pass over the items serves all W. Every
    // term is computed without branches (min(D - d_near, 0) for the shared gain; min(max(D, d_near) -
    // d_sec, 0), zero unless D < d_sec, for the position near(o)), which adds exactly what evaluate()
    // adds, in the same order: the results are identical. ploss16 is (k, W).
    std::vector<double> ploss16;

    // G candidates per vector of doubles (see W16_DOUBLES).
    template <int W, int G = (W == 16 ? W16_DOUBLES : 4)>
    void evaluate_many(int64_t x, double* change, int32_t* best) {
        typedef typename Lanes<G>::d vg;
        typedef typename Lanes<G>::f vgf;
        constexpr int V = W / G;
        const vg zero = vg{} + 0.0;
        double* pl = ploss16.data();
        for (int64_t j = 0; j < k; ++j)
            for (int l = 0; l < W; ++l) pl[j * W + l] = removal[j];
        vg acc[V];
        for (int t = 0; t < V; ++t) acc[t] = zero;
        for (int64_t o = 0; o < n; ++o) {
            const float* p = D + o * n + x;
            const vg dn = vg{} + (double)c.dnear[o], ds = vg{} + (double)c.dsec[o];
            double* target = pl + (int64_t)c.near[o] * W;
            for (int t = 0; t < V; ++t) {
                vgf df;
                std::memcpy(&df, p + G * t, sizeof df);
                const vg d = __builtin_convertvector(df, vg);
                const vg g = d - dn;
                acc[t] += g < zero ? g : zero;
                vg f = (d > dn ? d : dn) - ds;
                f = f < zero ? f : zero;
                vg v;
                std::memcpy(&v, target + G * t, sizeof v);
                v += f;
                std::memcpy(target + G * t, &v, sizeof v);
            }
        }
        // Best position of every candidate, the W candidates side by side in vectors: the first j with the
        // lowest ploss + shared, the same comparisons as one candidate at a time (evaluate()).
        vg best_v[V], best_j[V];
        for (int t = 0; t < V; ++t) {
            std::memcpy(&best_v[t], pl + G * t, sizeof(vg));
            best_v[t] += acc[t];
            best_j[t] = zero;
        }
        for (int64_t j = 1; j < k; ++j) {
            const vg jv = vg{} + (double)j;
            for (int t = 0; t < V; ++t) {
                vg v;
                std::memcpy(&v, pl + j * W + G * t, sizeof v);
                v += acc[t];
                const auto lower = v < best_v[t];
                best_v[t] = lower ? v : best_v[t];
                best_j[t] = lower ? jv : best_j[t];
            }
        }
        for (int l = 0; l < W; ++l) {
            change[l] = best_v[l / G][l % G];
            best[l] = (int32_t)best_j[l / G][l % G];
        }
    }

    // Swap x in at position b and bring the caches up to date (as a fresh top_two would give them).
    void apply(int64_t x, int32_t b) {
        is_med[med[b]] = 0;
        med[b] = x;
        is_med[x] = 1;
        const float* row = D + x * n;
        if (!T.empty()) for (int64_t o = 0; o < n; ++o) T[o * k + b] = row[o];
        // Only items whose nearest or second was at b, or with row[o] <= d_sec(o), can change: VN items are
        // tested at once (VN lanes) and the loop below visits the few that can.
        const vin bv = vin{} + b;
        int64_t o0 = 0;
        for (; o0 + VN <= n; o0 += VN) {
            vin near, sec;
            std::memcpy(&near, c.near.data() + o0, sizeof near);
            std::memcpy(&sec, c.sec.data() + o0, sizeof sec);
            const vin hit = (near == bv) | (sec == bv) | (loadfn(row + o0) <= loadfn(c.dsec.data() + o0));
            if (!any_lane(hit)) continue;
            for (int l = 0; l < VN; ++l)
                if (hit[l]) refresh(row, o0 + l, b);
        }
        for (int64_t o = o0; o < n; ++o) refresh(row, o, b);
    }

    // The caches of item o after position b took the medoid whose row is `row` (a no-op unless o's nearest
    // or second was at b or row[o] <= d_sec(o)), ranked by (distance, position) as top_two ranks; every
    // other medoid ranks after the old top two.
    inline void refresh(const float* row, int64_t o, int32_t b) {
        const float d = row[o];
        if (c.near[o] == b) {
            // Its nearest was replaced: position b stays nearest if it ranks before the second.
            if (d < c.dsec[o] || (d == c.dsec[o] && b < c.sec[o])) c.dnear[o] = d;
            else rescan(o);  // the third-ranked medoid, unknown here, may now be second
            return;
        }
        if (c.sec[o] == b) {
            if (d < c.dnear[o] || (d == c.dnear[o] && b < c.near[o])) {
                c.sec[o] = c.near[o]; c.dsec[o] = c.dnear[o]; c.near[o] = b; c.dnear[o] = d;
            } else if (d <= c.dsec[o]) {
                c.dsec[o] = d;  // still ranks before every other medoid (they ranked after (d_sec, b))
            } else {
                rescan(o);
            }
            return;
        }
        // Position b ranked third or later before: the new top two are the best two of the old top two
        // and (row[o], b).
        if (d < c.dnear[o] || (d == c.dnear[o] && b < c.near[o])) {
            c.sec[o] = c.near[o]; c.dsec[o] = c.dnear[o]; c.near[o] = b; c.dnear[o] = d;
        } else if (d < c.dsec[o] || (d == c.dsec[o] && b < c.sec[o])) {
            c.sec[o] = b; c.dsec[o] = d;
        }
    }
};

// k-medoids++ (see dispersion_score.clustering.kpp_seed): draws holds the (k - 1) * t uniforms of the
// steps in order. Returns false when every candidate of a step is a medoid (all weight is zero): the
// caller then redoes the seeding with the torch path, which draws differently in that case.
bool kpp_seed(const float* D, int64_t n, int64_t k, int64_t first, const double* draws, int64_t t, int64_t* med) {
    std::vector<double> closest(n), cumulative(n);
    std::vector<char> is_med(n, 0);
    std::vector<int64_t> candidates;
    const float* row = D + first * n;
    for (int64_t o = 0; o < n; ++o) closest[o] = (double)row[o] * (double)row[o];
    closest[first] = 0.0;
    med[0] = first;
    is_med[first] = 1;
    for (int64_t j = 1; j < k; ++j) {
        double run = 0.0;
        for (int64_t o = 0; o < n; ++o) { run += closest[o]; cumulative[o] = run; }
        int64_t best = -1;
        double best_total = INFINITY;
        candidates.clear();
        for (int64_t trial = 0; trial < t; ++trial) {
            const double v = draws[(j - 1) * t + trial] * run;
            // side="right": the first item whose cumulative weight exceeds v
            int64_t c = std::upper_bound(cumulative.begin(), cumulative.end(), v) - cumulative.begin();
            if (c > n - 1) c = n - 1;
            if (!is_med[c]) candidates.push_back(c);
        }
        // The potentials of four candidates in one pass over the items: four independent chains of float64
        // additions, each still summed in item order (the same totals as one candidate at a time).
        for (size_t g = 0; g < candidates.size(); g += 4) {
            const float* rows[4];
            for (size_t q = 0; q < 4; ++q)
                rows[q] = D + candidates[g + q < candidates.size() ? g + q : g] * n;
            double total[4] = {0.0, 0.0, 0.0, 0.0};
            for (int64_t o = 0; o < n; ++o) {
                const double cl = closest[o];
                for (int q = 0; q < 4; ++q) {
                    const double d2 = (double)rows[q][o] * (double)rows[q][o];
                    total[q] += d2 < cl ? d2 : cl;
                }
            }
            for (size_t q = 0; q < 4 && g + q < candidates.size(); ++q)
                if (total[q] < best_total) { best_total = total[q]; best = candidates[g + q]; }
        }
        if (best < 0) return false;
        const float* rb = D + best * n;
        for (int64_t o = 0; o < n; ++o) {
            const double d2 = (double)rb[o] * (double)rb[o];
            if (d2 < closest[o]) closest[o] = d2;
        }
        closest[best] = 0.0;
        med[j] = best;
        is_med[best] = 1;
    }
    return true;
}

// Nearest medoid position of every item (ties: the lower position).
void assign(const float* D, int64_t n, int64_t k, const int64_t* med, int32_t* labels, float* dist) {
    for (int64_t o = 0; o < n; ++o) { labels[o] = 0; dist[o] = INFINITY; }
    for (int64_t j = 0; j < k; ++j) {
        const float* row = D + med[j] * n;
        for (int64_t o = 0; o < n; ++o)
            if (row[o] < dist[o]) { dist[o] = row[o]; labels[o] = (int32_t)j; }
    }
}

// Voronoi iteration (see dispersion_score.clustering._alternate); returns the iterations run.
int64_t alternate(const float* D, int64_t n, int64_t k, int64_t* med, int64_t max_iter) {
    std::vector<int32_t> labels(n), new_labels(n);
    std::vector<float> dist(n);
    std::vector<char> changed(k, 1);
    std::vector<std::vector<int64_t>> members(k);
    assign(D, n, k, med, labels.data(), dist.data());
    for (int64_t it = 1; it <= max_iter; ++it) {
        for (int64_t j = 0; j < k; ++j) members[j].clear();
        for (int64_t o = 0; o < n; ++o) if (changed[labels[o]]) members[labels[o]].push_back(o);
        bool moved = false;
        for (int64_t j = 0; j < k; ++j) {
            const std::vector<int64_t>& m = members[j];
            if (!changed[j] || m.empty()) continue;
            double best_cost = INFINITY, current = INFINITY;
            int64_t best = -1;
            for (int64_t a : m) {
                const float* row = D + a * n;
                double cost = 0.0;
                for (int64_t b : m) cost += (double)row[b];
                if (cost < best_cost) { best_cost = cost; best = a; }
                if (a == med[j]) current = cost;
            }
            // Keep the medoid unless a member is strictly better (scikit-learn-extra).
            if (best_cost < current && best != med[j]) { med[j] = best; moved = true; }
        }
        if (!moved) return it;
        assign(D, n, k, med, new_labels.data(), dist.data());
        std::fill(changed.begin(), changed.end(), 0);
        for (int64_t o = 0; o < n; ++o)
            if (new_labels[o] != labels[o]) { changed[new_labels[o]] = 1; changed[labels[o]] = 1; }
        labels.swap(new_labels);
    }
    return max_iter;
}

// Whether a and b are within the symmetry tolerance of dispersion_score._matrix._close, in float32 and in
// the same operations as torch (|a - b| <= atol + rtol * max(|a|, |b|); the kernel is built with
// -ffp-contract=off, so there is no fused multiply-add to round differently).
inline bool close_f32(float a, float b, float rtol, float atol) {
    return std::fabs(a - b) <= atol + rtol * std::max(std::fabs(a), std::fabs(b));
}

// One pass over the square blocks of the upper triangle, each compared with its (transposed) mirror: true
// when every entry is finite and >= 0 and every pair is close_f32. Exactly equal pairs need no tolerance:
// a block is compared in 8-wide vectors for finiteness, sign, maximum and equality, and only a block with
// an unequal pair is checked pair by pair. *largest: max(D) (meaningful when true is returned).
bool check_distances(const float* D, int64_t n, float rtol, float atol, float* largest) {
    constexpr int64_t B = 32;
    typedef float v8 __attribute__((vector_size(8 * sizeof(float))));
    typedef int32_t v8i __attribute__((vector_size(8 * sizeof(int32_t))));
    alignas(32) float mirror[B * B];
    const v8 zero = {0, 0, 0, 0, 0, 0, 0, 0};
    const v8 fmax = {FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX};
    v8 top = zero;
    float top1 = 0.0f;
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        const int64_t i1 = std::min(i0 + B, n), h = i1 - i0;
        for (int64_t j0 = i0; j0 < n; j0 += B) {
            const int64_t j1 = std::min(j0 + B, n), w = j1 - j0;
            for (int64_t j = j0; j < j1; ++j)
                for (int64_t i = i0; i < i1; ++i) mirror[(i - i0) * B + (j - j0)] = D[j * n + i];
            v8i bad = {0, 0, 0, 0, 0, 0, 0, 0}, neq = bad;
            const int64_t wv = w - w % 8;
            for (int64_t r = 0; r < h; ++r) {
                const float* row = D + (i0 + r) * n + j0;
                const float* mir = mirror + r * B;
                for (int64_t c = 0; c < wv; c += 8) {
                    v8 a, m;
                    std::memcpy(&a, row + c, sizeof a);
                    std::memcpy(&m, mir + c, sizeof m);
                    // NaN fails every comparison: !(x >= 0) catches it with the negatives.
                    bad |= ~(a >= zero) | ~(m >= zero) | (a > fmax) | (m > fmax);
                    neq |= a != m;
                    top = top > a ? top : a;
                    top = top > m ? top : m;
                }
                for (int64_t c = wv; c < w; ++c) {
                    const float a = row[c], m = mir[c];
                    if (!(a >= 0.0f) || !(m >= 0.0f) || a > FLT_MAX || m > FLT_MAX) return false;
                    top1 = std::max(top1, std::max(a, m));
                    if (a != m && !close_f32(a, m, rtol, atol)) return false;
                }
            }
            int32_t any_bad = 0, any_neq = 0;
            for (int l = 0; l < 8; ++l) { any_bad |= bad[l]; any_neq |= neq[l]; }
            if (any_bad) return false;
            if (any_neq)
                for (int64_t r = 0; r < h; ++r)
                    for (int64_t c = 0; c < wv; ++c)
                        if (!close_f32(D[(i0 + r) * n + j0 + c], mirror[r * B + c], rtol, atol)) return false;
        }
    }
    for (int l = 0; l < 8; ++l) top1 = std::max(top1, top[l]);
    *largest = top1;
    return true;
}

}  // namespace

extern "C" {

// 1 when D passes check_distances (largest entry in *largest), else 0.
int ds_check_distances(const float* D, int64_t n, float rtol, float atol, float* largest) {
    return check_distances(D, n, rtol, atol, largest) ? 1 : 0;
}

int ds_kmedoids_abi_version() { return 2; }

// 1 when the 16-candidate loop runs in native vectors (AVX and up); 0 on 128-bit targets (SSE2, NEON), where
// its 4-double vectors are split and it is slower than one candidate at a time at every measured size
// (benchmarks/bench_kmedoids_loops.py: 1.2-6.3x).
int ds_kmedoids_wide_vectors() {
#if defined(__AVX__)
    return 1;
#else
    return 0;
#endif
}

// Returns 1 when done, 0 when the caller must use the torch seeding (see kpp_seed), 2 out of memory.
int ds_kpp_seed(const float* D, int64_t n, int64_t k, int64_t first, const double* draws, int64_t t,
                int64_t* med) {
    try {
        return kpp_seed(D, n, k, first, draws, t, med) ? 1 : 0;
    } catch (const std::bad_alloc&) {
        return 2;
    }
}

// Nearest medoid position (ties: the lower one) and distance of every item.
void ds_assign(const float* D, int64_t n, int64_t k, const int64_t* med, int32_t* labels, float* dist) {
    assign(D, n, k, med, labels, dist);
}

// Voronoi iteration from med (updated in place); iterations in *iters. Returns 0, or 1 out of memory.
int ds_alternate(const float* D, int64_t n, int64_t k, int64_t* med, int64_t max_iter, int64_t* iters) {
    try {
        *iters = alternate(D, n, k, med, max_iter);
        return 0;
    } catch (const std::bad_alloc&) {
        return 1;
    }
}

// FasterPAM's eager swap search on the (n, n) float32 matrix D from the k medoids in med (updated in
// place); candidates are taken in the cyclic processing order `order` (a permutation of 0..n-1); a swap
// must lower the cost by more than rtol times the starting cost. stats[0]: candidates examined, stats[1]:
// swaps applied. Returns 0; 1 when memory runs out; 2 when an applied swap did not lower the cost (which
// the arithmetic rules out; checked, not assumed).
int ds_fasterpam_swap(const float* D, int64_t n, int64_t k, int64_t* med, const int64_t* order,
                      int64_t max_examined, double rtol, int use_t, int batched, int64_t* stats) {
    try {
        Swapper s(D, n, k, med);
        if (use_t) s.T.assign((size_t)n * (size_t)k, 0.0f);
        s.init();
        double cost = s.update_removal();
        const double tol = rtol * cost;
        int64_t examined = 0, since = 0, swaps = 0, p = 0;
        if (batched) s.ploss16.assign((size_t)k * 16, 0.0);
        double change16[16];
        int32_t best16[16];
        int width = 16;
        while (since < n && examined < max_examined) {
            // Evaluate 16 candidates ahead when the order takes 16 consecutive items next (up to the end
            // of the order: the wrap to its start is a new run); a swap among them makes the later ones
            // stale: they are evaluated again after it, so the order of decisions is unchanged. Swaps
            // come in runs: right after one, 4 at a time waste less.
            const int64_t x = order[p];
            int run = 1;
            if (batched) {
                const int64_t limit = std::min<int64_t>(width, n - p);
                while (run < limit && order[p + run] == x + run) ++run;
            }
            const int count = run >= width ? width : run >= 4 ? 4 : 1;
            if (count == 16) {
                s.evaluate_many<16>(x, change16, best16);
            } else if (count == 4) {
                s.evaluate_many<4>(x, change16, best16);
            } else if (!s.is_med[x]) {
                change16[0] = s.evaluate(x, &best16[0]);
            }
            width = 16;
            int l = 0;
            for (; l < count && since < n && examined < max_examined; ++l) {
                ++examined; ++since;
                if (s.is_med[x + l] || !(change16[l] < -tol)) continue;
                s.apply(x + l, best16[l]);
                const double now = s.update_removal();
                if (!(now < cost)) { stats[0] = examined; stats[1] = swaps; return 2; }
                cost = now;
                ++swaps;
                since = 0;
                width = 4;
                ++l;
                break;
            }
            p = (p + l) % n;
        }
        stats[0] = examined;
        stats[1] = swaps;
        return 0;
    } catch (const std::bad_alloc&) {
        return 1;
    }
}

}  // extern "C"
