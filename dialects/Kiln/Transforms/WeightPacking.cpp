//===- WeightPacking.cpp - the registry of targets' weight packers --------===//

#include "Kiln/Transforms/WeightPacking.h"

#include "llvm/ADT/StringSwitch.h"

#include <array>
#include <atomic>

using namespace mlir::kiln;

namespace {
constexpr size_t kTargets = size_t(LoweringTarget::CUDA) + 1;

/// One slot per target; atomic so that drivers may register from any thread
/// (the C API registers once per compile).
std::array<std::atomic<const WeightPacker *>, kTargets> &packers() {
  static std::array<std::atomic<const WeightPacker *>, kTargets> table{};
  return table;
}
} // namespace

std::optional<UnstructuredStorage>
mlir::kiln::parseUnstructuredStorage(llvm::StringRef name) {
  return llvm::StringSwitch<std::optional<UnstructuredStorage>>(name)
      .Case("auto", UnstructuredStorage::Auto)
      .Case("bitmap", UnstructuredStorage::Bitmap)
      .Case("dense", UnstructuredStorage::Dense)
      .Default(std::nullopt);
}

llvm::StringRef mlir::kiln::stringify(LoweringTarget target) {
  switch (target) {
  case LoweringTarget::CPU:
    return "cpu";
  case LoweringTarget::CUDA:
    return "cuda";
  }
  return "";
}

void mlir::kiln::registerWeightPacker(LoweringTarget target,
                                      const WeightPacker &packer) {
  packers()[size_t(target)].store(&packer);
}

const WeightPacker *mlir::kiln::lookupWeightPacker(LoweringTarget target) {
  return packers()[size_t(target)].load();
}
