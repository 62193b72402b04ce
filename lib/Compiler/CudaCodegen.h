//===- CudaCodegen.h - kiln module to CUDA images and host step -*- C++ -*-===//
//
// The CUDA route of kiln-compile: lowers a kiln module (convert-kiln-to-gpu
// and convert-gpu-to-nvvm, see Conversion/Passes.h) and serializes its
// gpu.module into PTX for every architecture and, when the CUDA toolkit's
// ptxas is installed, cubins; what is left is the host step in the LLVM
// dialect, ready for emitSharedObject.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_CUDACODEGEN_H
#define KILN_COMPILER_CUDACODEGEN_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace kiln {

/// One device image of the kernels.
struct CudaImage {
  std::string format; // "ptx" or "cubin", as the manifest spells it
  std::string arch;   // "sm_90a"
  std::string bytes;
};

struct CudaCode {
  /// Kernel names, in the order the host step's rt->launch indexes them.
  std::vector<std::string> kernels;
  std::vector<CudaImage> images; // PTX first, then cubins
  int64_t scratchBytes = 0;
};

/// The architectures kiln-compile generates code for, best first.
const std::vector<std::string> &getCudaArchs();

/// The CUDA toolkit directory whose bin/ptxas makes cubins: $KILN_CUDA_PATH
/// when set, else /usr/local/cuda; empty when it has no ptxas.
std::string findCudaToolkit();

/// Lowers `module` (kiln ops) in place to the host step in the LLVM dialect
/// and returns the kernels' images. `maxTokens` bounds dynamic token sizes
/// (0: the function's kiln.max_tokens); `activationBits` is the width decode
/// GEMVs quantize their input to (0: f32). Errors are one line.
llvm::Expected<CudaCode> lowerToCuda(mlir::ModuleOp module, int64_t maxTokens,
                                     int64_t activationBits, bool withCubins);

} // namespace kiln

#endif // KILN_COMPILER_CUDACODEGEN_H
