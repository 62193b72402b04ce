//===- GatherWeights.cpp - every weight into the file the code reads ------===//

#include "Kiln/IR/WeightStore.h"
#include "Kiln/Transforms/Passes.h"

#include "llvm/Support/FileUtilities.h"

namespace mlir::kiln {
#define GEN_PASS_DEF_KILNGATHERWEIGHTS
#include "Kiln/Transforms/Passes.h.inc"
} // namespace mlir::kiln

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct GatherWeights : mlir::kiln::impl::KilnGatherWeightsBase<GatherWeights> {
  using Base::Base;

  void runOnOperation() override {
    FailureOr<std::string> section = gatherWeights(getOperation(), file);
    if (failed(section))
      return signalPassFailure();
    // Written to a temporary file and renamed into place.
    if (llvm::Error e = llvm::writeToOutput(file, [&](llvm::raw_ostream &os) {
          os << *section;
          return llvm::Error::success();
        })) {
      getOperation().emitError("cannot write the weights to ")
          << file << ": " << llvm::toString(std::move(e));
      return signalPassFailure();
    }
  }
};

} // namespace
