//===- GGUFWriter.h - write a GGUF file --------------------------*- C++
//-*-===//
//
// The writing half of GGUF.h (gguf.md, version 3): metadata in the reader's
// Value form and tensors of any ggml type, data aligned to general.alignment.
// kiln-compile --emit=gguf writes Kiln-quantized models with it, so that
// llama.cpp can load them.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IMPORT_GGUFWRITER_H
#define KILN_IMPORT_GGUFWRITER_H

#include "Import/GGUF.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace kiln {
namespace gguf {

struct TensorToWrite {
  std::string name;
  std::vector<uint64_t> dims; // ggml order: dims[0] is the innermost
  TensorType type;
  llvm::ArrayRef<uint8_t> data; // exactly the bytes of dims in type
};

/// Writes a GGUF v3 file at `path` atomically (a temporary file renamed into
/// place): `metadata` in order, then the tensors in order, each at an offset
/// aligned to `alignment` (general.alignment, if present, must agree).
llvm::Error writeGGUF(llvm::StringRef path, llvm::ArrayRef<KeyValue> metadata,
                      llvm::ArrayRef<TensorToWrite> tensors,
                      uint64_t alignment = GGUFFile::kDefaultAlignment);

} // namespace gguf
} // namespace kiln

#endif // KILN_IMPORT_GGUFWRITER_H
