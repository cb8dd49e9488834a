// Force-included (g++ -include, through CXXFLAGS_x86_64_unknown_linux_gnu) by scripts/build_gpu_binary.sh
// when torch-sys 0.26 compiles its C wrapper against libtorch 2.11's own headers. tch 0.26's
// torch_api_generated.cpp is generated from 2.13's operator list and names 15 operators that 2.11 lacks
// (or declares with fewer arguments); nothing in spikerl calls them. These stand-ins let the wrapper
// compile: each throws (a Torch error on the Rust side) if ever called. tch's sources are not modified.
// Only active against libtorch 2.11; elsewhere the file is empty.
#pragma once
#if defined(__cplusplus) && __has_include(<torch/torch.h>) && __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 11
#include <stdexcept>
#include <string>
#include <tuple>
#include <torch/torch.h>

namespace torch {
namespace spikerl_compat {
[[noreturn]] inline void missing(const char* op) {
  throw std::runtime_error(std::string(op) + " is not in libtorch 2.11 (stand-in from spikerl's "
                           "scripts/gpu/tch_compat_torch2.11.h)");
}
}  // namespace spikerl_compat

// Qualified lookup of torch::NAME finds these before the using-directive's at::NAME.
#define SPIKERL_COMPAT_MISSING(name)            \
  template <typename... Args>                   \
  at::Tensor name(Args&&...) {                  \
    spikerl_compat::missing(#name);             \
  }
SPIKERL_COMPAT_MISSING(_flash_attention_forward_no_dropout_inplace)
SPIKERL_COMPAT_MISSING(_philox_key_fold_in)
SPIKERL_COMPAT_MISSING(_philox_key_split)
SPIKERL_COMPAT_MISSING(_philox_normal)
SPIKERL_COMPAT_MISSING(_philox_normal_)
SPIKERL_COMPAT_MISSING(_philox_normal_out)
SPIKERL_COMPAT_MISSING(_philox_uniform)
SPIKERL_COMPAT_MISSING(_philox_uniform_)
SPIKERL_COMPAT_MISSING(_philox_uniform_out)
SPIKERL_COMPAT_MISSING(_upsample_lanczos2d_aa)
SPIKERL_COMPAT_MISSING(_upsample_lanczos2d_aa_out)
SPIKERL_COMPAT_MISSING(_upsample_lanczos2d_aa_backward)
SPIKERL_COMPAT_MISSING(_upsample_lanczos2d_aa_backward_out)
#undef SPIKERL_COMPAT_MISSING

// 2.13 added enable_gqa; 2.11's has one argument fewer.
template <typename... Args>
std::tuple<at::Tensor, at::Tensor> _scaled_dot_product_attention_math_for_mps(Args&&...) {
  spikerl_compat::missing("_scaled_dot_product_attention_math_for_mps (with enable_gqa)");
}
}  // namespace torch
#endif
#endif
