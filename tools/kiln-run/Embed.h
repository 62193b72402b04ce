//===- Embed.h - kiln-run --embed and --embed-file ------------------------===//
//
// Sentence embeddings of an encoder artifact, through the runtime's C API
// (kiln_embed): one line per text, its n_embd floats separated by spaces.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_TOOLS_KILN_RUN_EMBED_H
#define KILN_TOOLS_KILN_RUN_EMBED_H

#include "kiln/runtime/Runtime.h"

#include <string>
#include <vector>

namespace kiln::run {

/// Prints the embedding of each text to stdout, one line each. Returns
/// false with `err` set on a runtime error or a decoder model.
bool runEmbed(kiln_model *model, const std::vector<std::string> &texts,
              std::string &err);

/// The lines of `path` (a final newline ends the last line, not an empty
/// text). Returns false with `err` set if it cannot be read.
bool readLines(const std::string &path, std::vector<std::string> &lines,
               std::string &err);

} // namespace kiln::run

#endif // KILN_TOOLS_KILN_RUN_EMBED_H
