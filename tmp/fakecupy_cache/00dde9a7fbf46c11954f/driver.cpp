
#include "cuda_emulation.h"
#include "kern.cu"
#include <tuple>
#include <type_traits>
#include <utility>

template <typename... P, std::size_t... I>
static int fake_call_impl(void (*fn)(P...), void** args, dim3 grid, dim3 block, bool ftz,
                          std::index_sequence<I...>) {
    std::tuple<std::decay_t<P>...> vals{*reinterpret_cast<std::decay_t<P>*>(args[I])...};
    return emu::emulate_launch(grid, block, [=] { std::apply(fn, vals); }, ftz);
}
template <typename... P>
static int fake_call(void (*fn)(P...), void** args, dim3 grid, dim3 block, bool ftz) {
    return fake_call_impl(fn, args, grid, block, ftz, std::index_sequence_for<P...>{});
}

extern "C" int fake_launch_0(void** args, unsigned gx, unsigned gy, unsigned gz,
                                unsigned bx, unsigned by, unsigned bz, int ftz) {
    dim3 g, b;
    g.x = gx; g.y = gy; g.z = gz; b.x = bx; b.y = by; b.z = bz;
    return fake_call(&logsumexp_weights<float>, args, g, b, ftz != 0);
}

extern "C" int fake_launch_1(void** args, unsigned gx, unsigned gy, unsigned gz,
                                unsigned bx, unsigned by, unsigned bz, int ftz) {
    dim3 g, b;
    g.x = gx; g.y = gy; g.z = gz; b.x = bx; b.y = by; b.z = bz;
    return fake_call(&logsumexp_weights<double>, args, g, b, ftz != 0);
}
