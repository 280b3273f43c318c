// Just enough of CUDA, on the CPU, to run kernels/logsumexp_weights.cu with the host compiler.
//
// It exists so that CI, which has no GPU, executes the *same source* that NVRTC compiles for
// the device (tests/test_kernel_emulated.py). It is not a general emulator: it provides exactly
// what that kernel uses, and fails loudly on misuse rather than guessing.
//
// Execution model. emulate_launch(grid, block, body) runs the blocks of the grid one after
// another. The threads of a block are real OS threads (one std::thread per CUDA thread, reused
// for every block), so the kernel's races and barriers are real:
//   * threadIdx, blockIdx, blockDim, gridDim are thread_local variables set before each block;
//   * __shared__ becomes `static`: one copy per kernel instantiation, shared by all threads.
//     Because blocks run one at a time, that is exactly per-block shared memory;
//   * __syncthreads() is a barrier over the block's threads;
//   * __shfl_xor_sync(mask, v, lane_mask) goes through a per-warp exchange buffer: each lane
//     stores v, a barrier over the warp's 32 threads, each lane reads the slot of lane ^ lane_mask,
//     and a second barrier so that no lane overwrites its slot before all have read. The mask
//     must be full (the kernel only uses full-warp shuffles), and the block size a multiple of 32.
//   * a barrier that does not fill within a timeout means threads diverged at a barrier (some
//     threads skipped a __syncthreads or a shuffle, which is undefined behaviour on a GPU). The
//     barrier then breaks, every waiting thread is released, and emulate_launch returns an error
//     code instead of hanging.
//
// Compile with: g++ -std=c++17 -O2 -pthread (see the test for the exact line).
#pragma once

#include <math.h>      // expf, exp, logf, log in the global namespace, as CUDA has them

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>  // _mm_getcsr/_mm_setcsr, to flush denormals as CUDA's -ftz=true does
#endif

// How long a barrier waits for its last thread before declaring divergence (milliseconds).
#ifndef EMU_BARRIER_TIMEOUT_MS
#define EMU_BARRIER_TIMEOUT_MS 20000
#endif

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
using uint3 = dim3;

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

inline float __int_as_float(int bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
inline float __int_as_float(unsigned int bits) { return __int_as_float(static_cast<int>(bits)); }
inline double __longlong_as_double(long long bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}
inline double __longlong_as_double(unsigned long long bits) {
    return __longlong_as_double(static_cast<long long>(bits));
}

namespace emu {

// A reusable barrier for n threads that breaks (releases everyone, returns false) if it has not
// filled within the timeout: the emulated form of "threads diverged at a barrier".
class Barrier {
  public:
    explicit Barrier(int n) : n_(n) {}
    bool wait() {
        std::unique_lock<std::mutex> lock(mu_);
        if (broken_) return false;
        const long long gen = generation_;
        if (++arrived_ == n_) {
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
            return true;
        }
        const bool filled = cv_.wait_for(lock, std::chrono::milliseconds(EMU_BARRIER_TIMEOUT_MS),
                                         [&] { return generation_ != gen || broken_; });
        if (!filled || broken_) {
            broken_ = true;
            cv_.notify_all();
            return false;
        }
        return true;
    }
    bool broken() {
        std::lock_guard<std::mutex> lock(mu_);
        return broken_;
    }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    int n_, arrived_ = 0;
    long long generation_ = 0;
    bool broken_ = false;
};

constexpr int kWarp = 32;

// Per-launch state the intrinsics reach through a thread_local pointer.
struct Block {
    explicit Block(int threads) : sync(threads), end(threads) {
        for (int w = 0; w < threads / kWarp; ++w) warps.emplace_back(new Warp);
    }
    struct Warp {
        Barrier barrier{kWarp};
        unsigned char slots[kWarp][8];  // room for one float or double per lane
    };
    Barrier sync;                        // __syncthreads
    Barrier end;                         // end of a block: a separate barrier, so that a thread
                                         // leaving the kernel early cannot complete a __syncthreads
    std::vector<std::unique_ptr<Warp>> warps;
    std::atomic<bool> bad_mask{false};
};

thread_local Block* current = nullptr;

inline int linear_thread() {
    return static_cast<int>((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x);
}

}  // namespace emu

inline void __syncthreads() { emu::current->sync.wait(); }

template <typename T>
T __shfl_xor_sync(unsigned int mask, T v, int lane_mask) {
    static_assert(sizeof(T) <= 8, "the exchange slots hold at most 8 bytes");
    emu::Block& block = *emu::current;
    if (mask != 0xffffffffu) block.bad_mask = true;  // only full-warp shuffles are emulated
    const int t = emu::linear_thread();
    const int lane = t % emu::kWarp;
    emu::Block::Warp& warp = *block.warps[t / emu::kWarp];
    std::memcpy(warp.slots[lane], &v, sizeof(T));
    warp.barrier.wait();                                  // everyone has written
    T out;
    std::memcpy(&out, warp.slots[(lane ^ lane_mask) % emu::kWarp], sizeof(T));
    warp.barrier.wait();                                  // everyone has read
    return out;
}

namespace emu {

// Error codes of emulate_launch.
enum { kOk = 0, kBadLaunch = 1, kDiverged = 2, kBadMask = 3 };

// Flush denormal results and inputs to zero in this thread's SSE arithmetic: the host analogue
// of `-ftz=true`, which CuPy adds to every kernel it compiles. x86 applies it to double too, so
// use it for float launches only (CUDA's -ftz affects single precision only).
inline bool flush_denormals() {
#if defined(__SSE__)
    _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ (bit 15) | DAZ (bit 6)
    return true;
#else
    return false;
#endif
}

// Run body() (the kernel call) on every thread of every block of the grid; with ftz, in the
// flush-to-zero floating-point mode (returns kBadLaunch if the host cannot do that).
inline int emulate_launch(dim3 grid, dim3 block, const std::function<void()>& body,
                          bool ftz = false) {
    const int threads = static_cast<int>(block.x * block.y * block.z);
    if (threads <= 0 || threads % kWarp != 0 || threads > 1024) return kBadLaunch;
#if !defined(__SSE__)
    if (ftz) return kBadLaunch;
#endif
    Block state(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            if (ftz) flush_denormals();
            current = &state;
            blockDim = block;
            gridDim = grid;
            threadIdx.x = t % block.x;
            threadIdx.y = (t / block.x) % block.y;
            threadIdx.z = t / (block.x * block.y);
            for (unsigned int bz = 0; bz < grid.z; ++bz)
                for (unsigned int by = 0; by < grid.y; ++by)
                    for (unsigned int bx = 0; bx < grid.x; ++bx) {
                        blockIdx.x = bx;
                        blockIdx.y = by;
                        blockIdx.z = bz;
                        body();
                        if (!state.end.wait()) return;  // a broken barrier: stop everything
                    }
        });
    }
    for (auto& th : pool) th.join();
    bool diverged = state.sync.broken() || state.end.broken();
    for (auto& w : state.warps) diverged = diverged || w->barrier.broken();
    if (diverged) return kDiverged;
    return state.bad_mask ? kBadMask : kOk;
}

}  // namespace emu
