//===- ImportFuzzer.cpp - libFuzzer entry for GGUF model import -----------===//
//
// What kiln-compile does with a model file before lowering: parse the GGUF,
// build the kiln graph of the model it describes, and verify it. Any input
// must either import or return an error; a crash, sanitizer report, leak,
// timeout or a module that fails the kiln verifiers is a bug. The
// vocabulary goes on to the runtime's tokenizer, as in kiln-compile.
// Only Kiln's code is instrumented: libMLIR is Debian's build.
//
//===----------------------------------------------------------------------===//

#include "Import/GGUF.h"
#include "Import/ModelImporter.h"
#include "Kiln/IR/KilnDialect.h"
#include "Runtime/Tokenizer.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

using namespace mlir;

// See test/fuzz/KilnOptFuzzer.cpp: LLVM's bump allocators are shared between
// instrumented Kiln code and the uninstrumented libMLIR.
extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0";
}

/// A context shared by a batch of inputs, then replaced (creating one costs
/// far more than importing a small model).
static MLIRContext &getContext() {
  static std::unique_ptr<MLIRContext> ctx;
  static unsigned uses = 0;
  if (!ctx || ++uses == 500) {
    DialectRegistry registry;
    registry.insert<mlir::kiln::KilnDialect, func::FuncDialect, arith::ArithDialect,
                    tensor::TensorDialect>();
    ctx = std::make_unique<MLIRContext>(registry,
                                        MLIRContext::Threading::DISABLED);
    ctx->loadAllAvailableDialects();
    uses = 0;
  }
  return *ctx;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto buffer = llvm::MemoryBuffer::getMemBuffer(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.gguf",
      /*RequiresNullTerminator=*/false);
  auto file = ::kiln::gguf::GGUFFile::parse(std::move(buffer));
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  MLIRContext &ctx = getContext();
  std::string diagnostics;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return success();
  });
  ::kiln::ImportOptions options;
  options.contextLength = 64; // the cache size is the importer's own check
  auto model = ::kiln::importGGUF(ctx, *file, options);
  if (!model) {
    llvm::consumeError(model.takeError());
    return 0;
  }
  if (failed(verify(*model->module))) {
    llvm::errs() << "imported module fails verification:\n"
                 << diagnostics << "\n";
    std::abort();
  }
  // kiln-compile hands the vocabulary to the runtime's tokenizer next, which
  // either accepts it or returns the error kiln-compile reports.
  std::string error;
  if (auto tok = ::kiln::Tokenizer::fromJSON(model->vocabJSON, error))
    (void)tok->encode("Hello, world! 123", /*addSpecial=*/true,
                      /*parseSpecial=*/true);
  else if (error.empty())
    std::abort(); // every failure must say why
  return 0;
}
