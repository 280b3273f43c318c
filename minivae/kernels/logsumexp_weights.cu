// Fused log-sum-exp and normalized importance weights: the one hand-written CUDA kernel of minivae.
//
// For every column b of log_w (K x B: the K importance log-weights of example b) it computes
//
//     lse[b]        = log sum_k exp(log_w[k, b])
//     weights[k, b] = exp(log_w[k, b] - lse[b])        (= softmax over k; each column sums to 1)
//
// exactly as minivae.ops.logsumexp_weights_reference does, special values included:
//   -inf entries      -> weight 0;
//   all entries -inf  -> lse = -inf, weights 0 (no NaN);
//   some entries +inf -> lse = +inf, weights uniform over the +inf entries, 0 elsewhere;
//   a NaN anywhere    -> lse and the whole column of weights are NaN.
//
// ---------------------------------------------------------------------------------------------
// Memory layout and the thread map
// ---------------------------------------------------------------------------------------------
// log_w and weights are C-contiguous (row-major) K x B arrays: element (k, b) sits at k * B + b.
// Neighbouring *columns* are neighbours in memory, so a warp reads memory in few transactions
// ("coalesced") when its 32 lanes touch adjacent b for the same k. A block is therefore a 2-D
// tile of threads, blockDim = (TX, TY):
//
//     threadIdx.x = tx in [0, TX): the column inside the block's TX adjacent columns,
//                                  b = blockIdx.x * TX + tx;
//     threadIdx.y = ty in [0, TY): which rows the thread visits: k = ty, ty + TY, ty + 2 TY, ...
//
// The 32 lanes of a warp are 32 / TX rows times TX adjacent columns. With TX >= 8 (float) or
// TX >= 4 (double) each row's piece is at least one whole 32-byte memory sector, so no fetched
// byte is wasted; and when B < TX the rows themselves are adjacent in memory. The launcher
// (minivae/cuda.py, launch_shape) chooses TX and TY from K, B and the element size.
//
// Requirements on the launch, checked by the launcher: TX is a power of two <= 32, TX * TY is a
// multiple of 32 and at most 256, and gridDim.x * TX >= B.
//
// ---------------------------------------------------------------------------------------------
// The algorithm: one reading pass with a running (max, sum) pair, a tree reduction, one write
// ---------------------------------------------------------------------------------------------
// The textbook way reads the column three times (max, then sum of exp(x - max), then the
// weights). Here each thread keeps a running pair (m, s) over the entries it has seen:
//
//     m = max of those entries,   s = sum of exp(x - m) over them.
//
// Meeting a new entry x (the "online log-sum-exp" update):
//     x > m :  s = s * exp(m - x) + 1,  m = x      (the old terms shrink relative to the new max)
//     else  :  s = s + exp(x - m)
// and two pairs (m1, s1), (m2, s2) merge into  m = max(m1, m2),
//     s = s1 * exp(m1 - m) + s2 * exp(m2 - m).
// Merging is associative and commutative, so the pairs of all threads of a column can be
// combined in any order: first inside each warp with register shuffles, then across the warps
// of the block through shared memory. The result is lse = m + log(s). A second loop re-reads the
// tile (which the block has just read, so it is mostly still in L2 cache) and writes each
// weight once: w = exp(x - m) / s.
//
// Why this is numerically safe:
//   * every exponent is x - m <= 0 (m is a max), so exp never overflows;
//   * the largest entry contributes exactly exp(0) = 1, so s >= 1: log(s) is finite and the
//     division by s never amplifies rounding; s <= K, far from overflow even in float;
//   * entries far below the max underflow to 0 in exp, which is the right answer to within
//     the precision of the type (their true weight is below the smallest representable one).
//
// Special values fall out of the same update, given two conventions (the first two points):
//   * scale(a, m) = 1 when a == m, else exp(a - m). This avoids inf - inf = NaN: an all -inf
//     pair merged into -inf keeps s = 0, and the +inf entries of a column count as exp(0) = 1
//     each, so s ends as the number of +inf entries and lse = +inf + log(count) = +inf;
//   * a -inf entry adds 0 to s (its weight is 0), even when the running max is still -inf.
//   * NaN: m only changes on x > m, which is false for NaN, so m never becomes NaN; instead
//     exp(NaN - m) = NaN is added to s, and NaN is absorbing in + and *: the column's s, lse
//     and every weight (a division by s) come out NaN.
//   * all -inf: m = -inf, s = 0, lse = -inf + log(0) = -inf; the weights are written as 0.
//
// Floating-point notes. minivae passes no --use_fast_math, so division is IEEE-rounded and
// expf/exp, logf/log are CUDA's accurate versions (within 2 ulp): the results match the NumPy
// reference to a few ulp, not bit for bit (the sums also run in a different order). CuPy,
// however, appends -ftz=true to every kernel it compiles, so in float32 denormal inputs and
// results are flushed to zero (float64 is never flushed). Consequences here: a float32 weight
// that would be a denormal (below 2^-126 ~ 1.2e-38, i.e. more than ~87 nats below the column's
// max) comes out exactly 0, and a denormal log-weight reads as 0. lse is unaffected (s >= 1),
// and so, in effect, is the IWAE gradient: the lost weights are < 1e-38 against a largest
// weight >= 1/K. Comparisons with NumPy need an absolute tolerance of 2^-126 on float32 weights.
//
// This file is compiled by NVRTC through cupy.RawModule with the name expressions
// "logsumexp_weights<float>" and "logsumexp_weights<double>", and, for the CPU tests, by the
// host C++ compiler through kernels/cuda_emulation.h. Keep to the CUDA features that header
// emulates: threadIdx/blockIdx/blockDim, __shared__, __syncthreads, __shfl_xor_sync,
// __int_as_float, __longlong_as_double, expf/exp, logf/log.

#define MINIVAE_MAX_THREADS 256
#define MINIVAE_WARP 32
#define MINIVAE_MAX_WARPS (MINIVAE_MAX_THREADS / MINIVAE_WARP)
#define MINIVAE_FULL_MASK 0xffffffffu

// Type-generic math: CUDA's float functions carry an f suffix, so pick them by overload.
__device__ __forceinline__ float exp_t(float x) { return expf(x); }
__device__ __forceinline__ double exp_t(double x) { return exp(x); }
__device__ __forceinline__ float log_t(float x) { return logf(x); }
__device__ __forceinline__ double log_t(double x) { return log(x); }

// -inf from its IEEE bit pattern (NVRTC defines neither INFINITY nor HUGE_VAL).
template <typename T> __device__ __forceinline__ T neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() {
    return __int_as_float(0xff800000);
}
template <> __device__ __forceinline__ double neg_inf<double>() {
    return __longlong_as_double(0xfff0000000000000ULL);
}

// exp(a - m) for a <= m, defined as 1 when a == m so that inf - inf never happens.
template <typename T>
__device__ __forceinline__ T scale(T a, T m) {
    return a == m ? T(1) : exp_t(a - m);
}

// Fold one entry x into the running pair (m, s).
template <typename T>
__device__ __forceinline__ void push(T& m, T& s, T x) {
    if (x > m) {                      // a new max: rescale what was summed so far
        s = s * scale(m, x) + T(1);
        m = x;
    } else if (x != neg_inf<T>()) {   // -inf adds nothing; NaN lands here and poisons s
        s += scale(x, m);
    }
}

// Merge the pair (m2, s2) into (m, s).
template <typename T>
__device__ __forceinline__ void merge(T& m, T& s, T m2, T s2) {
    T mm = m > m2 ? m : m2;
    s = s * scale(m, mm) + s2 * scale(m2, mm);
    m = mm;
}

template <typename T>
__global__ void __launch_bounds__(MINIVAE_MAX_THREADS)
logsumexp_weights(const T* __restrict__ log_w,   // (K, B), row-major
                  T* __restrict__ weights,       // (K, B), row-major, written once
                  T* __restrict__ lse,           // (B,)
                  int K, int B) {
    // Partial pairs of each warp, then (row 0) the final pair of each column of the tile.
    __shared__ T sh_m[MINIVAE_MAX_WARPS][MINIVAE_WARP];
    __shared__ T sh_s[MINIVAE_MAX_WARPS][MINIVAE_WARP];

    const int TX = blockDim.x, TY = blockDim.y;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int t = ty * TX + tx;                 // linear thread index: lanes are consecutive t
    const int lane = t % MINIVAE_WARP, warp = t / MINIVAE_WARP;
    const int b = blockIdx.x * TX + tx;
    const bool active = b < B;                  // the last tile may stick out past column B-1

    // 1. One pass over this thread's rows. No early return for inactive threads: every thread
    //    must reach the shuffles and barriers below, so they just keep the empty pair.
    T m = neg_inf<T>(), s = T(0);
    if (active) {
        for (long long k = ty; k < K; k += TY) {
            push(m, s, log_w[k * B + b]);
        }
    }

    // 2. Inside a warp, lane = (row in warp) * TX + tx. XOR-ing the lane with TX, 2 TX, ..., 16
    //    pairs lanes of the same column (same tx, other rows); after the butterfly every lane
    //    holds its column's pair over the warp's rows. With TX = 32 there is nothing to do.
    for (int offset = MINIVAE_WARP / 2; offset >= TX; offset /= 2) {
        T m2 = __shfl_xor_sync(MINIVAE_FULL_MASK, m, offset);
        T s2 = __shfl_xor_sync(MINIVAE_FULL_MASK, s, offset);
        merge(m, s, m2, s2);
    }

    // 3. Across warps: lanes 0 .. TX-1 (the first row of the warp) publish the warp's pair.
    if (lane < TX) {
        sh_m[warp][lane] = m;
        sh_s[warp][lane] = s;
    }
    __syncthreads();

    // 4. The first TX threads (ty = 0, so t = tx) combine the warps' pairs of their column and
    //    write lse. Only a handful of warps: a sequential loop is simplest.
    if (t < TX) {
        const int n_warps = (TX * TY) / MINIVAE_WARP;
        for (int w = 1; w < n_warps; ++w) {
            merge(m, s, sh_m[w][t], sh_s[w][t]);
        }
        sh_m[0][t] = m;
        sh_s[0][t] = s;
        if (active) {
            lse[b] = m + log_t(s);        // -inf + log(0) = -inf; +inf + log(n) = +inf; NaN stays
        }
    }
    __syncthreads();

    // 5. Write each weight once: w = exp(x - m) / s, and 0 for an all -inf column (s = 0).
    if (active) {
        m = sh_m[0][tx];
        s = sh_s[0][tx];
        for (long long k = ty; k < K; k += TY) {
            const long long i = k * B + b;
            weights[i] = s == T(0) ? T(0) : scale(log_w[i], m) / s;
        }
    }
}
