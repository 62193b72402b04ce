//===- TokenizerJSON.h - Hugging Face tokenizer.json as a vocabulary -*- C++
//-*-===//
//
// Reads the `tokenizer.json` of a Hugging Face checkpoint into the runtime's
// vocabulary section (the schema of lib/Runtime/Tokenizer.h, which mirrors
// GGUF's tokenizer.* keys), converting as llama.cpp's convert_hf_to_gguf.py
// does: tokens by id, added tokens as control (special) or user-defined,
// holes and the padding up to the model's vocab_size as unused "[PADn]".
//
//===----------------------------------------------------------------------===//

#ifndef KILN_IMPORT_TOKENIZERJSON_H
#define KILN_IMPORT_TOKENIZERJSON_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace kiln {

/// Token ids config.json names; -1 when it names none.
struct SpecialTokenIds {
  int64_t bos = -1, eos = -1;
};

/// The vocabulary JSON for byte-level BPE `tokenizer.json` text (`path`
/// names it in errors) of a model with `vocabSize` embedding rows. Other
/// tokenizer models and pre-tokenizers Kiln cannot reproduce are refused
/// with a one-line error naming them.
llvm::Expected<std::string> convertTokenizerJSON(llvm::StringRef text,
                                                 llvm::StringRef path,
                                                 int64_t vocabSize,
                                                 SpecialTokenIds special);

} // namespace kiln

#endif // KILN_IMPORT_TOKENIZERJSON_H
