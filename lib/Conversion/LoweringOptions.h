//===- LoweringOptions.h - typed options of Kiln's lowerings ----*- C++ -*-===//
//
// The option values of the lowerings, with their one spelling, shared by the
// passes (as typed pass options), kiln-compile and the C API. Plain C++ and
// llvm/ADT only, so the compiler driver's header can use them.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_LOWERINGOPTIONS_H
#define KILN_CONVERSION_LOWERINGOPTIONS_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>

namespace mlir::kiln {

/// How a linear layer over integer-coded weights takes its activations:
/// quantized per 32 values to b-bit codes (int8 is ggml's q8_1) and
/// multiplied with integer dot products, or exact f32. The value is the
/// width (activationBits).
enum class ActivationPrecision {
  F32 = 0,
  Int2 = 2,
  Int3,
  Int4,
  Int5,
  Int6,
  Int7,
  Int8
};
/// The code width of quantized activations, 0 for f32.
inline int64_t activationBits(ActivationPrecision value) {
  return static_cast<int64_t>(value);
}
/// The instruction set CPU kernels may use.
enum class KernelISA { Generic, X86_64_V3, X86_64_V4 };

namespace detail {
template <typename Enum> struct Spelling {
  Enum value;
  const char *name;
};
inline constexpr Spelling<ActivationPrecision> kActivationPrecisions[] = {
    {ActivationPrecision::Int8, "int8"}, {ActivationPrecision::F32, "f32"},
    {ActivationPrecision::Int2, "int2"}, {ActivationPrecision::Int3, "int3"},
    {ActivationPrecision::Int4, "int4"}, {ActivationPrecision::Int5, "int5"},
    {ActivationPrecision::Int6, "int6"}, {ActivationPrecision::Int7, "int7"}};
inline constexpr Spelling<KernelISA> kKernelISAs[] = {
    {KernelISA::Generic, "generic"},
    {KernelISA::X86_64_V3, "x86-64-v3"},
    {KernelISA::X86_64_V4, "x86-64-v4"}};

template <typename Enum, size_t N>
std::optional<Enum> parse(const Spelling<Enum> (&table)[N],
                          llvm::StringRef name) {
  for (const Spelling<Enum> &s : table)
    if (name == s.name)
      return s.value;
  return std::nullopt;
}
template <typename Enum, size_t N>
llvm::StringRef stringify(const Spelling<Enum> (&table)[N], Enum value) {
  for (const Spelling<Enum> &s : table)
    if (value == s.value)
      return s.name;
  return "";
}
} // namespace detail

inline std::optional<ActivationPrecision>
parseActivationPrecision(llvm::StringRef name) {
  return detail::parse(detail::kActivationPrecisions, name);
}
inline llvm::StringRef stringify(ActivationPrecision value) {
  return detail::stringify(detail::kActivationPrecisions, value);
}
inline std::optional<KernelISA> parseKernelISA(llvm::StringRef name) {
  return detail::parse(detail::kKernelISAs, name);
}
inline llvm::StringRef stringify(KernelISA value) {
  return detail::stringify(detail::kKernelISAs, value);
}

} // namespace mlir::kiln

#endif // KILN_CONVERSION_LOWERINGOPTIONS_H
