//===- ModelImporter.h - GGUF model to a kiln module ------------*- C++ -*-===//
//
// Builds the `kiln` dialect graph of a decoder-only transformer from a
// validated GGUF file or safetensors checkpoint, keeping every weight in its
// file's encoding as a `#kiln.external` byte range of the file (no weight is
// copied or converted).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IMPORT_MODELIMPORTER_H
#define KILN_IMPORT_MODELIMPORTER_H

#include "Import/GGUF.h"
#include "Import/Safetensors.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace kiln {

struct ImportOptions {
  /// KV cache positions; 0 picks min(the model's context, 4096).
  int64_t contextLength = 0;
  /// Most tokens one call of the step function may process (prompt chunk).
  int64_t maxTokens = 256;
  /// A decoder also gets `forward_batch`, one step over the tokens of
  /// several sequences (kiln-server's batched decode).
  bool batchedStep = false;
};

/// The hyperparameters the runtime's manifest carries.
struct ModelInfo {
  std::string arch, name;
  int64_t layers = 0, embedding = 0, heads = 0, kvHeads = 0, headDim = 0,
          vocab = 0, context = 0, trainedContext = 0, feedForward = 0;
  /// An encoder's step returns its sentence embedding ([1, embedding])
  /// instead of logits.
  bool encoder = false;
};

struct ImportedModel {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  ModelInfo info;
  /// The tokenizer section (see lib/Runtime/Tokenizer.h for the schema).
  std::string vocabJSON;
  /// Most tokens one step takes: the ImportOptions', or fewer where the
  /// model has fewer positions (an encoder).
  int64_t maxTokens = 0;
};

/// The architectures importGGUF understands ("llama", "qwen2", ...).
llvm::ArrayRef<llvm::StringRef> getSupportedArchitectures();

/// Imports `file` as `func.func @forward(%tokens: tensor<?xi32>, %position:
/// index, %cache: !kiln.kv_cache<...>, %logits: tensor<?xVxf32>) ->
/// tensor<?xVxf32>` with the result tied to %logits (its rows are the last
/// tokens' logits). Errors name the file and the key or tensor at fault.
llvm::Expected<ImportedModel> importGGUF(mlir::MLIRContext &context,
                                         const gguf::GGUFFile &file,
                                         const ImportOptions &options);

/// Imports a Hugging Face Llama-family checkpoint into the same `@forward`
/// as importGGUF, reading the vocabulary from the tokenizer.json beside its
/// config.json. Errors name the file and the field or tensor at fault.
llvm::Expected<ImportedModel>
importSafetensors(mlir::MLIRContext &context,
                  const safetensors::Checkpoint &checkpoint,
                  const ImportOptions &options);

/// The !kiln.weight type of a GGUF tensor (shape [N, K] from ggml's [K, N]).
llvm::Expected<mlir::Type> getWeightType(mlir::MLIRContext &context,
                                         const gguf::TensorInfo &tensor);

} // namespace kiln

#endif // KILN_IMPORT_MODELIMPORTER_H
