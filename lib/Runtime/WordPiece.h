//===- WordPiece.h - BERT's WordPiece tokenization ------------------------===//
//
// Plain C++17, no MLIR/LLVM. What Hugging Face tokenizers does for a BERT
// tokenizer.json (tokenizers/src/normalizers/bert.rs, pre_tokenizers/bert.rs,
// models/wordpiece): BertNormalizer (drop control characters, whitespace to
// spaces, spaces around CJK ideographs, NFD accent stripping, lowercase),
// BertPreTokenizer (split at whitespace, each punctuation character a word),
// then greedy longest-match-first WordPiece with "##" continuations; a word
// longer than max_input_chars_per_word or with no match is [UNK].
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_WORDPIECE_H
#define KILN_RUNTIME_WORDPIECE_H

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

struct WordPieceOptions {
  bool lowercase = true, stripAccents = true, cleanText = true,
       chineseChars = true;
  std::string subwordPrefix = "##";
  size_t maxCharsPerWord = 100;
};

/// Appends the WordPiece ids of `text` (no [CLS]/[SEP]) to `out`; `lookup`
/// gives a token's id or -1.
void encodeWordPiece(std::string_view text, const WordPieceOptions &options,
                     const std::function<int32_t(const std::string &)> &lookup,
                     int32_t unkId, std::vector<int32_t> &out);

} // namespace kiln

#endif // KILN_RUNTIME_WORDPIECE_H
