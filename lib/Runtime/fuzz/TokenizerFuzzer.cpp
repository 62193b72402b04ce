//===- TokenizerFuzzer.cpp - libFuzzer entry for the runtime tokenizer ----===//
//
// Input layout: one control byte, the vocabulary JSON, a NUL byte, then the
// text (JSON text cannot contain a raw NUL, so the first one splits them).
// Control bits: 0 addSpecial, 1 parseSpecial. A vocabulary that loads is
// used to encode the text, decode the ids again, render pieces of every id
// produced plus a few out-of-range ones, and apply the chat template.
//
// Any input must either load or return an error; a crash, sanitizer report,
// leak, timeout or an id outside the vocabulary is a bug.
//
//===----------------------------------------------------------------------===//

#include "Runtime/Tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  const uint8_t control = data[0];
  std::string_view rest(reinterpret_cast<const char *>(data + 1), size - 1);
  size_t nul = rest.find('\0');
  std::string_view json = rest.substr(0, nul);
  std::string_view text =
      nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);

  std::string error;
  std::unique_ptr<kiln::Tokenizer> tok = kiln::Tokenizer::fromJSON(json, error);
  if (!tok) {
    if (error.empty())
      std::abort(); // every failure must say why
    return 0;
  }
  const int32_t n = static_cast<int32_t>(tok->size());
  std::vector<int32_t> ids =
      tok->encode(text, /*addSpecial=*/control & 1, /*parseSpecial=*/control & 2);
  for (int32_t id : ids)
    if (id < 0 || id >= n)
      std::abort();
  std::string decoded = tok->decode(ids);
  for (int32_t id : ids)
    (void)tok->tokenToPiece(id);
  for (int32_t id : {-1, n, INT32_MIN, INT32_MAX})
    if (!tok->tokenToPiece(id).empty())
      std::abort(); // out-of-range ids render as ""
  (void)tok->isEndOfGeneration(n);
  (void)tok->isEndOfGeneration(-1);
  std::string chat;
  (void)tok->applyChatTemplate(text, chat, error);
  return 0;
}
